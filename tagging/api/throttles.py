"""A DRF rate (DEFAULT_THROTTLE_RATES) applied in a plain Django view, such as admin's rule preview."""

from rest_framework.throttling import SimpleRateThrottle


class UserRate(SimpleRateThrottle):
    """The rate of `scope`, counted per signed-in user, as ScopedRateThrottle counts it for API views."""

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__()

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
