from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MicroareaConfig(AppConfig):
    name = "microarea"
    verbose_name = _("Micro-areas")

    def ready(self) -> None:
        # The location and aggregates stages (and location features) register themselves on import.
        from tagging.models import StaffProfile
        from tagging.services.accounts import grant_role_permissions
        from tagging.services.audiences import AUDIENCE_FUNCTIONS

        from .audiences import area_audience, hex_audience
        from .stages import aggregates, call_graph, location  # noqa: F401

        AUDIENCE_FUNCTIONS.update({"area": area_audience, "hex": hex_audience})
        grant_role_permissions("microarea", {
            StaffProfile.Role.ADMIN: ["view_*", "add_microarea", "change_microarea"],
            StaffProfile.Role.SALES: ["view_microarea", "add_microarea"],  # sales staff draw their own areas on the map
            StaffProfile.Role.FIELD: ["view_microarea"],
        })
