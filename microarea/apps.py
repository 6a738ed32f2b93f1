from django.apps import AppConfig


class MicroareaConfig(AppConfig):
    name = "microarea"
    verbose_name = "微区域 Micro-areas"

    def ready(self) -> None:
        # The location and aggregates stages (and location features) register themselves on import.
        from tagging.services.audiences import AUDIENCE_FUNCTIONS

        from . import aggregates, location  # noqa: F401
        from .audiences import area_audience, hex_audience

        AUDIENCE_FUNCTIONS.update({"area": area_audience, "hex": hex_audience})
