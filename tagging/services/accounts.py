"""Staff roles as permission groups, and the assignment of a role and regions to a user."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from ..models import AuditEvent, Region, StaffProfile
from .audit import record_event

# What each role may do in admin and the API, by app; every row it sees is still scoped to its regions. Each app
# grants its own permissions from its AppConfig.ready() (grant_role_permissions), so adding a permission to a role
# touches only the app that owns it.
ROLE_PERMISSIONS: dict[str, dict[str, list[str]]] = {role: {} for role in StaffProfile.Role.values}


def grant_role_permissions(app_label: str, grants: dict[str, list[str]]) -> None:
    """role -> the app's permission codenames ("view_*" for all its view permissions) that role holds."""
    for role, codenames in grants.items():
        ROLE_PERMISSIONS[role][app_label] = list(codenames)


grant_role_permissions("tagging", {
    StaffProfile.Role.ADMIN: ["view_*", "add_product", "change_product", "add_region", "change_region", "add_snapshotrun",
                              "add_tagdefinition", "change_tagdefinition"],  # view_* includes view_small_counts
    StaffProfile.Role.SALES: ["view_region", "view_product", "view_subscriber", "view_subscription", "view_snapshot",
                              "view_tagdefinition", "view_terminalshare"],
    StaffProfile.Role.FIELD: ["view_region", "view_product", "view_subscriber", "view_tagdefinition", "view_terminalshare"],
})


# Each role's permission group, by a name that does not change with the language (the roles' labels do).
ROLE_GROUP_NAMES = {StaffProfile.Role.ADMIN: "管理员 Admin (marketing analyst)", StaffProfile.Role.SALES: "区域销售 Regional sales",
                    StaffProfile.Role.FIELD: "一线团队 Field team"}


def role_group(role: str) -> Group:
    """The permission group of a role, created or brought up to date."""
    group, _ = Group.objects.get_or_create(name=ROLE_GROUP_NAMES[role])
    permissions = Permission.objects.none()
    for app_label, codenames in ROLE_PERMISSIONS[role].items():
        for codename in codenames:
            lookup = {"content_type__app_label": app_label}
            lookup["codename__startswith" if codename.endswith("*") else "codename"] = codename.rstrip("*")
            permissions |= Permission.objects.filter(**lookup)
    group.permissions.set(permissions)
    return group


def refresh_role_groups(sender=None, **_) -> None:
    """Bring the groups of roles already in use up to date with ROLE_PERMISSIONS (after every migrate, so
    that a release adding a permission to a role gives it to the staff who hold the role). post_migrate is sent
    once per app: this runs after the last one's, when every app's permissions exist."""
    from django.apps import apps

    if sender is not None and sender is not [c for c in apps.get_app_configs() if c.models_module is not None][-1]:
        return
    for role in StaffProfile.Role.values:
        if Group.objects.filter(name=ROLE_GROUP_NAMES[role]).exists():
            role_group(role)


def role_of(user) -> dict:
    """A user's role and region codes as they stand (what the audit log compares)."""
    profile = StaffProfile.objects.filter(user=user).first() if user.pk else None
    return {"role": profile.role if profile else None,
            "regions": sorted(profile.regions.values_list("code", flat=True)) if profile else []}


@transaction.atomic
def assign_role(*, user, role: str, region_codes: list[str], actor=None, before: dict | None = None) -> StaffProfile:
    """Give a user a role and regions, with the role's permission group; a change is written to the audit log
    (by `actor`), against `before` when the caller saved the profile already (admin's inline form)."""
    regions = list(Region.objects.filter(code__in=region_codes))
    missing = set(region_codes) - {r.code for r in regions}
    if missing:
        raise ValueError(f"unknown region codes: {', '.join(sorted(missing))}")
    before = before if before is not None else role_of(user)
    profile, _ = StaffProfile.objects.update_or_create(user=user, defaults={"role": role})
    profile.regions.set(regions)
    user.groups.set([role_group(role)])
    # Field teams work through the REST API and their pages, not Django admin.
    user.is_staff = role != StaffProfile.Role.FIELD
    user.save(update_fields=["is_staff"])
    after = {"role": role, "regions": sorted(r.code for r in regions)}
    if after != before:
        record_event(kind=AuditEvent.Kind.ROLE_CHANGED, user=user, actor=actor, detail={"from": before, "to": after})
    return profile
