from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaggingConfig(AppConfig):
    name = "tagging"
    verbose_name = _("User tag library")

    def ready(self) -> None:
        # The stages and feature sources this app contributes register themselves on import.
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from django.db.models.signals import post_migrate

        from .services.accounts import refresh_role_groups
        from .services.audit import on_locked_out, on_sign_in_failed, on_signed_in
        from .stages import apps, circles, features, tags, terminals, value  # noqa: F401

        post_migrate.connect(refresh_role_groups, dispatch_uid="tagging.refresh_role_groups")
        # The security audit log (等保): every sign-in, failure and lockout.
        user_logged_in.connect(on_signed_in, dispatch_uid="tagging.audit.sign_in")
        user_login_failed.connect(on_sign_in_failed, dispatch_uid="tagging.audit.sign_in_failed")
        user_locked_out.connect(on_locked_out, dispatch_uid="tagging.audit.locked_out")
