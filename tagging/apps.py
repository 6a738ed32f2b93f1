from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "tagging"
    verbose_name = "用户标签库 User tag library"

    def ready(self) -> None:
        # The stages and feature sources this app contributes register themselves on import.
        from . import features, tag_stage, terminals  # noqa: F401
