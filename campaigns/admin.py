"""Django admin for campaigns: listed in the user's regions; a frozen campaign's record is read-only."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from microarea.models import MicroArea
from microarea.selectors import visible_districts
from tagging.admin.reference import ReadOnlyAdmin, RegionScopedAdmin
from tagging.models import Region

from .models import (
    Campaign,
    ChurnModel,
    ContactBlackout,
    EventTrigger,
    ExportLog,
    PropensityModel,
    ResponseModel,
    TriggeredTarget,
    TriggerPass,
)
from .selectors import churn_drivers
from .services.campaigns import CampaignRefused, check_audience, check_purpose
from .services.triggers import check_event_trigger


@admin.register(Campaign)
class CampaignAdmin(RegionScopedAdmin):
    list_display = ["name", "product", "channel", "status", "start_date", "end_date", "control_share", "targets",
                    "control", "owner", "frozen_at"]
    list_filter = ["status", "channel", "product"]
    search_fields = ["name", "audience"]
    readonly_fields = ["status", "owner", "snapshot", "seed", "tag_versions", "counts", "frozen_at", "frozen_by"]
    filter_horizontal = ["regions"]

    @admin.display(description=_("Targets"))
    def targets(self, campaign):
        return campaign.counts.get("targets")

    @admin.display(description=_("Control"))
    def control(self, campaign):
        return campaign.counts.get("control")

    def has_add_permission(self, request):
        return False  # drafted on the campaign pages or through the API

    def has_change_permission(self, request, obj=None):
        # A draft, and only by someone whose districts cover all of the campaign's (as freezing needs).
        return super().has_change_permission(request, obj) and (obj is None or obj.status == Campaign.Status.DRAFT and not
                                                                 obj.regions.exclude(code__in=visible_districts(request.user)).exists())

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "regions":  # the user's districts only
            kwargs["queryset"] = Region.objects.visible_to(request.user).districts()
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class AudienceChecked(form):
            def clean(self):
                """The audience as the API and the campaign pages check it (check_audience), with its place named."""
                data = super().clean()
                if data.get("audience"):
                    try:
                        check_audience(text=data["audience"], user=request.user)
                    except CampaignRefused as exc:
                        self.add_error("audience", str(exc))
                if data.get("purpose"):  # a retention campaign sells nothing and keeps a holdout, as create_campaign checks
                    try:
                        check_purpose(data["purpose"], data.get("product"), data.get("control_kind"))
                    except CampaignRefused as exc:
                        self.add_error(exc.field if exc.field in self.fields else None, str(exc))
                return data

        return AudienceChecked


class CampaignScopedAdmin(admin.ModelAdmin):
    """Rows of the campaigns in the user's regions only."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(campaign__in=Campaign.objects.visible_to(request.user))


@admin.register(ExportLog)
class ExportLogAdmin(ReadOnlyAdmin):
    """The append-only export log of the user's districts: read, never changed."""

    list_display = ["created_at", "user", "kind", "campaign", "filters", "format", "rows", "full_msisdn", "completed", "sha256"]
    list_filter = ["kind", "format", "full_msisdn", "completed"]

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user).select_related("user", "campaign")
    search_fields = ["user__username", "campaign__name", "sha256"]


@admin.register(ContactBlackout)
class ContactBlackoutAdmin(admin.ModelAdmin):
    list_display = ["start_date", "end_date", "reason", "created_by"]
    readonly_fields = ["created_by"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(PropensityModel)
class PropensityModelAdmin(ReadOnlyAdmin):
    """Each run's propensity model per product: how well it ranks, or why there is none."""

    list_display = ["product", "run", "status", "trained_on", "horizon_days", "training_rows", "positives", "auc",
                    "top_decile_lift", "note"]
    list_filter = ["status", "product"]


@admin.register(ResponseModel)
class ResponseModelAdmin(ReadOnlyAdmin):
    """Each run's response model per product: the campaigns it learnt from, how well it ranks, or why there is none."""

    list_display = ["product", "run", "status", "campaigns", "training_rows", "positives", "auc", "top_decile_lift", "note"]
    list_filter = ["status", "product"]


@admin.register(ChurnModel)
class ChurnModelAdmin(ReadOnlyAdmin):
    """Each run's churn-warning model: the learner that won on held-out subscribers and by how much, or why there is
    none; its drivers in the catalogue's words, with how the deciles stand on them."""

    list_display = ["run", "status", "learner", "auc", "other_auc", "top_decile_lift", "trained_on", "window_days",
                    "training_rows", "churners", "held_out_churners", "note"]
    list_filter = ["status", "learner"]
    exclude = ["fitted"]
    readonly_fields = ["drivers", "lost_by_operator"]

    @admin.display(description=_("Drivers (permutation importance on held-out subscribers; deciles 1, 5 and 10 in "
                                 "standard deviations from the mean)"))
    def drivers(self, obj: ChurnModel):
        rows = churn_drivers(obj) if obj.status == ChurnModel.Status.FITTED else []
        if not rows:
            return "-"
        return format_html("<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>1</th><th>5</th><th>10</th></tr>{}</table>",
                           _("Feature"), _("Code"), _("Importance"), _("Risk rises when"), format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
                (row["label"], row["feature"], row["importance"], row["direction"],
                 *(row["by_decile"].get(decile, "") for decile in ("1", "5", "10")))
                for row in rows)))


    @admin.display(description=_("Leavers in the window learnt from, by receiving operator, with the monthly revenue "
                                 "they brought"))
    def lost_by_operator(self, obj: ChurnModel):
        rows = obj.fitted.get("lost_by_operator", [])
        if not rows:
            return "-"
        return format_html("<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>{}</table>",
                           _("Went to"), _("Leavers"), _("Monthly revenue lost (yuan)"), format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((row["label"], row["churners"], f"{row['monthly_revenue']:,.0f}") for row in rows)))


@admin.register(EventTrigger)
class EventTriggerAdmin(CampaignScopedAdmin):
    """Touch-point rules on campaigns of the user's regions."""

    list_display = ["campaign", "kind", "micro_area", "min_off_days", "enabled", "created_by", "created_at"]
    list_filter = ["kind", "enabled"]
    readonly_fields = ["created_by"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class Checked(form):
            def clean(self):
                data = super().clean()
                if obj is None and data.get("campaign") and data.get("kind"):  # a new rule: the API's checks
                    try:
                        check_event_trigger(campaign=data["campaign"], user=request.user, kind=data["kind"],
                                            micro_area=data.get("micro_area"))
                    except CampaignRefused as exc:
                        self.add_error(exc.field if exc.field in self.fields else None, str(exc))
                return data

        return Checked

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "campaign":
            kwargs["queryset"] = Campaign.objects.visible_to(request.user)
        if db_field.name == "micro_area":
            kwargs["queryset"] = MicroArea.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(TriggeredTarget)
class TriggeredTargetAdmin(CampaignScopedAdmin, ReadOnlyAdmin):
    """The target streams event triggers made; subscribers by id (no MSISDN here)."""

    list_display = ["campaign", "trigger", "subscriber_id", "group", "region_code", "event_time", "added_at"]
    list_filter = ["group", "trigger__kind"]


@admin.register(TriggerPass)
class TriggerPassAdmin(ReadOnlyAdmin):
    """Each events batch's pass over the triggers: when it finished and how many it added."""

    list_display = ["batch", "added", "finished_at"]
