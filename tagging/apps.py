from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "tagging"
    verbose_name = "用户标签库 User tag library"

    def ready(self) -> None:
        # The stages and feature sources this app contributes register themselves on import.
        from django.db.models.signals import post_migrate

        from . import features, tag_stage, terminals  # noqa: F401
        from .services.accounts import refresh_role_groups

        post_migrate.connect(refresh_role_groups, dispatch_uid="tagging.refresh_role_groups")
