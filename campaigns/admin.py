"""Django admin for campaigns: listed in the user's regions; a frozen campaign's record is read-only."""

from django.contrib import admin

from tagging.admin.reference import RegionScopedAdmin

from .models import Campaign, ContactBlackout, ExportLog


@admin.register(Campaign)
class CampaignAdmin(RegionScopedAdmin):
    list_display = ["name", "product", "channel", "status", "start_date", "end_date", "holdout_share", "targets",
                    "control", "owner", "frozen_at"]
    list_filter = ["status", "channel", "product"]
    search_fields = ["name", "audience"]
    readonly_fields = ["status", "owner", "snapshot", "seed", "tag_versions", "counts", "frozen_at", "frozen_by"]
    filter_horizontal = ["regions"]

    @admin.display(description="目标 Targets")
    def targets(self, campaign):
        return campaign.counts.get("targets")

    @admin.display(description="对照 Control")
    def control(self, campaign):
        return campaign.counts.get("control")

    def has_add_permission(self, request):
        return False  # made through the API, where the audience is checked against the snapshot

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (obj is None or obj.status == Campaign.Status.DRAFT)


@admin.register(ExportLog)
class ExportLogAdmin(admin.ModelAdmin):
    """The append-only export log: read, never changed."""

    list_display = ["created_at", "user", "campaign", "format", "rows", "full_msisdn", "completed", "sha256"]
    list_filter = ["format", "full_msisdn", "completed"]
    search_fields = ["user__username", "campaign__name", "sha256"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(campaign__in=Campaign.objects.visible_to(request.user))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ContactBlackout)
class ContactBlackoutAdmin(admin.ModelAdmin):
    list_display = ["start_date", "end_date", "reason", "created_by"]
    readonly_fields = ["created_by"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
