from django.apps import AppConfig


class MicroareaConfig(AppConfig):
    name = "microarea"
    verbose_name = "微区域 Micro-areas"

    def ready(self) -> None:
        # The location and aggregates stages (and location features) register themselves on import.
        from . import aggregates, location  # noqa: F401
