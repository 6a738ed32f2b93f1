from rest_framework.permissions import BasePermission, DjangoModelPermissions


class ModelPermissions(DjangoModelPermissions):
    """Like DjangoModelPermissions, but reading also needs the model's view permission."""

    perms_map = {**DjangoModelPermissions.perms_map, "GET": ["%(app_label)s.view_%(model_name)s"],
                 "HEAD": ["%(app_label)s.view_%(model_name)s"], "OPTIONS": []}


def requires(permission: str) -> type[BasePermission]:
    """A permission class for views without a model queryset: signed in and holding `permission`."""

    class Required(BasePermission):
        def has_permission(self, request, view):
            return bool(request.user and request.user.is_authenticated and request.user.has_perm(permission))

    return Required
