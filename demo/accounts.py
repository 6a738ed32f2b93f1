"""The demo accounts, one per staff role, with passwords printed in the README (development mode only)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from tagging.models import StaffProfile
from tagging.services.accounts import assign_role


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    regions: tuple[str, ...]
    description: str


DEMO_ACCOUNTS = [
    DemoAccount("admin", "admin-demo-2026", StaffProfile.Role.ADMIN, ("4406",), "管理员 marketing analyst, all of Foshan, Django admin"),
    DemoAccount("sales_chancheng", "sales-demo-2026", StaffProfile.Role.SALES, ("440604",), "区域销售 regional sales, 禅城区 Chancheng"),
    DemoAccount("field_chancheng", "field-demo-2026", StaffProfile.Role.FIELD, ("440604",), "一线团队 field team, 禅城区 Chancheng"),
    DemoAccount("field_shunde", "field-demo-2026", StaffProfile.Role.FIELD, ("440606",), "一线团队 field team, 顺德区 Shunde"),
]


def create_demo_accounts() -> list[DemoAccount]:
    """One account per role, idempotent; the regions must have been ingested first. Their passwords are printed
    in the README, so they are refused outside a development setting (DEBUG)."""
    if not settings.DEBUG:
        raise PermissionDenied("the demo accounts' passwords are public: they are made only with DEBUG=1, never in production")
    User = get_user_model()
    for account in DEMO_ACCOUNTS:
        user, _ = User.objects.get_or_create(username=account.username)
        user.set_password(account.password)
        user.save(update_fields=["password"])
        assign_role(user=user, role=account.role, region_codes=list(account.regions))
    return DEMO_ACCOUNTS
