"""Writing the security audit log: sign-ins and failures (from Django's and django-axes's signals), API tokens
issued and role changes (from the services that make them)."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings

from ..models import AuditEvent


def client_address(request) -> str | None:
    """The caller's address: the one our proxy appended to X-Forwarded-For when a proxy is declared
    (PROXY_SETS_FORWARDED_HEADERS), else the socket's; what lockouts and the log are keyed by."""
    if request is None:
        return None
    meta = request.META
    if settings.PROXY_SETS_FORWARDED_HEADERS and meta.get("HTTP_X_FORWARDED_FOR"):
        return meta["HTTP_X_FORWARDED_FOR"].split(",")[-1].strip() or None
    return meta.get("REMOTE_ADDR") or None


def record_event(*, kind: str, request=None, user=None, username: str = "", actor=None, detail: dict | None = None) -> None:
    AuditEvent.objects.create(
        kind=kind, user=user if user is not None and user.pk else None,
        username=(username or getattr(user, "username", "") or "")[:150],
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        address=client_address(request), detail=detail or {})


def on_signed_in(sender, request, user, **kwargs) -> None:
    record_event(kind=AuditEvent.Kind.SIGN_IN, request=request, user=user,
                 detail={"path": getattr(request, "path", "")})


def on_sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django hides the password in `credentials` already; only the name typed is kept.
    record_event(kind=AuditEvent.Kind.SIGN_IN_FAILED, request=request, username=str(credentials.get("username", "")),
                 detail={"path": getattr(request, "path", "")})


def on_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    record_event(kind=AuditEvent.Kind.LOCKED_OUT, request=request, username=str(username or ""),
                 detail={"failures": settings.AXES_FAILURE_LIMIT, "minutes": settings.LOGIN_LOCKOUT_MINUTES})


class SignInLockout(AxesStandaloneBackend):
    """django-axes's lockout for every sign-in that comes with a request (the sign-in page, admin, the token
    endpoint); code signing in without one (a shell, the test client's login) is not an attempt from anywhere."""

    def authenticate(self, request=None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
