"""Django admin for the terminal snapshot library: the published mix and brand flows, read-only and
limited to the user's districts."""

from django.contrib import admin
from django.db.models import F, Sum, Window
from django.utils.translation import gettext_lazy as _

from ..models import HandsetSwitch, TerminalShare
from .reference import ReadOnlyAdmin, RegionScopedAdmin


@admin.register(TerminalShare)
class TerminalShareAdmin(RegionScopedAdmin, ReadOnlyAdmin):
    list_display = ["brand_shown", "model", "tier", "network", "os", "region", "subscribers", "share", "knockoffs", "snapshot"]
    list_filter = ["snapshot", "region", "tier", "network", "brand"]
    search_fields = ["brand", "model"]
    list_select_related = ["region", "snapshot"]

    def get_queryset(self, request):
        # The share is of the handsets in the districts and filters the list shows, per snapshot: a window
        # sum is taken after the list's filters (WHERE) and before its paging.
        return super().get_queryset(request).annotate(
            snapshot_total=Window(Sum("subscribers"), partition_by=[F("snapshot_id")]))

    @admin.display(description=_("Brand"), ordering="brand")
    def brand_shown(self, obj):
        return obj.brand or _("Unregistered")

    @admin.display(description=_("Share"))
    def share(self, obj):
        return f"{obj.subscribers / obj.snapshot_total:.2%}" if obj.snapshot_total else "—"


@admin.register(HandsetSwitch)
class HandsetSwitchAdmin(RegionScopedAdmin, ReadOnlyAdmin):
    list_display = ["from_brand", "to_brand", "changes", "region", "snapshot"]
    list_filter = ["snapshot", "region", "from_brand", "to_brand"]
    list_select_related = ["region", "snapshot"]
