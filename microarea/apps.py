from django.apps import AppConfig


class MicroareaConfig(AppConfig):
    name = "microarea"
    verbose_name = "微区域 Micro-areas"

    def ready(self) -> None:
        # The location stage and its features register themselves into tagging's registries on import.
        from . import location  # noqa: F401
