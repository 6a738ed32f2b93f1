from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from ..models import (
    AuditEvent,
    IngestBatch,
    Product,
    Region,
    Snapshot,
    SnapshotPartition,
    SnapshotRun,
    StaffProfile,
    Subscriber,
    Subscription,
    TagDefinition,
)
from ..services.accounts import assign_role, role_of
from ..services.snapshots import MAX_WINDOW_DAYS, SnapshotRefused, cancel_run, start_snapshot_run


class RegionScopedAdmin(admin.ModelAdmin):
    """Lists only what the user's regions allow, through the model's own visible_to(user)."""

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only ingest or a snapshot run may write."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Region)
class RegionAdmin(RegionScopedAdmin):
    list_display = ["code", "name", "name_en", "level", "parent"]
    list_filter = ["level"]
    search_fields = ["code", "name", "name_en"]
    readonly_fields = ["path"]


class StaffProfileInline(admin.StackedInline):
    model = StaffProfile
    can_delete = False
    filter_horizontal = ["regions"]


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    inlines = [StaffProfileInline]
    list_display = ["username", "email", "role", "is_staff", "is_active"]
    list_filter = ["staff__role", "is_staff", "is_active"]

    @admin.display(description="role", ordering="staff__role")
    def role(self, user):
        return user.staff.get_role_display() if hasattr(user, "staff") else "-"

    def save_related(self, request, form, formsets, change):
        """The role and regions saved through the inline go through assign_role too: the role's permission group
        follows, and the change is written to the audit log with who made it."""
        user = form.instance
        before = role_of(user)
        super().save_related(request, form, formsets, change)
        profile = StaffProfile.objects.filter(user=user).first()
        if profile is not None:
            assign_role(user=user, role=profile.role, region_codes=list(profile.regions.values_list("code", flat=True)),
                        actor=request.user, before=before)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The security audit log (等保): read by analysts, written only by the service."""

    list_display = ["at", "kind", "username", "user", "actor", "address", "detail"]
    list_filter = ["kind"]
    search_fields = ["username", "address"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    """Rows shown beside their parent, written only by ingest or a run."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return self.fields


class SubscriptionInline(ReadOnlyInline):
    model = Subscription
    fields = ["product", "start_date", "end_date"]


@admin.register(Subscriber)
class SubscriberAdmin(RegionScopedAdmin, ReadOnlyAdmin):
    list_display = ["id", "msisdn_masked", "brand", "plan", "region", "status", "marketing_opt_out", "join_date"]
    list_filter = ["brand", "status", "marketing_opt_out", "gender", "region"]
    list_select_related = ["region"]
    # Exact matches only: a partial number search would reveal numbers the page then masks.
    search_fields = ["=msisdn", "=pseudonym", "=id"]
    fields = ["id", "msisdn_masked", "pseudonym", "brand", "plan", "join_date", "born", "gender", "region",
              "status", "marketing_opt_out", "batch", "tags_now", "profile_sections", "features_now"]
    readonly_fields = fields
    inlines = [SubscriptionInline]
    show_full_result_count = False  # counting millions of rows on every page is slow and says little

    @admin.display(description="MSISDN")
    def msisdn_masked(self, subscriber):
        return subscriber.msisdn_masked

    @admin.display(description=_("birth year"))
    def born(self, subscriber):
        return str(subscriber.birth_year) if subscriber.birth_year else "-"  # a year, not 1,990

    @admin.display(description=_("tags now"))
    def tags_now(self, subscriber):
        """The tags held in the current snapshot, and what changed since the one before (the API's profile)."""
        from ..selectors import subscriber_tag_timeline

        # Behaviour tags are behaviour_now's, for analysts.
        timeline = subscriber_tag_timeline(subscriber_id=subscriber.id, limit=2)
        if not timeline:
            return "-"
        now = timeline[-1]
        held = format_html_join(", ", "{} {} ({})", TagDefinition.objects.filter(code__in=now["tags"])
                                .order_by("code").values_list("name", "name_en", "code"))
        change = []
        if now["gained"]:
            change.append("+ " + ", ".join(now["gained"]))
        if now["lost"]:
            change.append("- " + ", ".join(now["lost"]))
        return format_html("{}: {}<br>{}<br><a href=\"{}\">profile (JSON)</a>", now["as_of_date"], held or "-",
                           "; ".join(change) or "no change since the snapshot before",
                           reverse("subscriber-profile", args=[subscriber.id]))

    @admin.display(description=_("next"))
    def profile_sections(self, subscriber):
        """What other apps add to the profile (the campaigns app: the next best offer), one line each."""
        from ..models import Snapshot
        from ..selectors import PROFILE_SECTIONS

        current = Snapshot.objects.current()
        lines = [(name, section(subscriber_id=subscriber.id, snapshot=current)) for name, section in PROFILE_SECTIONS.items()]
        return format_html_join(mark_safe("<br>"), "{}: {}", (
            (name.replace("_", " "), _section_line(value)) for name, value in lines)) or "-"

    def get_fields(self, request, obj=None):
        # What they do online and whom they call: analysts only (sales staff see it as counts and map layers).
        return self.fields + (["behaviour_now"] if request.user.has_perm("tagging.view_behaviour") else [])

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @staticmethod
    def _feature_table(values: dict, features) -> str:
        rows = ((f.label, f.name, "-" if values.get(f.name) is None else values[f.name], f.unit)
                for f in features if f.name in values)
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>", rows))

    @admin.display(description=_("features"))
    def features_now(self, subscriber):
        """Every feature but what they do online and whom they call (behaviour_now, for analysts)."""
        from ..selectors import subscriber_features
        from ..stages.features import catalogue

        values = subscriber_features(subscriber_id=subscriber.id)
        return self._feature_table(values, catalogue()) if values else "-"

    @admin.display(description=_("online and circle"))
    def behaviour_now(self, subscriber):
        from ..selectors import behaviour_summary, behaviour_terms, subscriber_features, subscriber_tag_timeline
        from ..stages.features import BEHAVIOUR_SOURCES, catalogue

        values = subscriber_features(subscriber_id=subscriber.id, behaviour=True)
        if not values:
            return "-"
        summary = behaviour_summary(values)
        timeline = subscriber_tag_timeline(subscriber_id=subscriber.id, limit=1, behaviour=True)
        held = sorted(set(timeline[-1]["tags"]) & behaviour_terms()) if timeline else []
        top = ", ".join(f"{c['name']} {c['name_en']} ({c['minutes_30d']} min/30d)" for c in summary["top_categories"]) or "-"
        share = summary["circle_onnet_share"]
        return format_html(
            "{}: {}<br>{}: {}<br>{}: {} ({}: {}; {}: {})<br>{}: {}<br><a href=\"{}\">{}</a>",
            _("tags"), ", ".join(held) or "-",
            _("top app categories"), top, _("circle"), summary["circle_size"], _("close"), summary["close_circle_size"],
            _("on-net"), "-" if share is None else f"{share:.0%}", _("household"), summary["household_size"],
            reverse("subscriber-circle", args=[subscriber.id]), _("circle listing (JSON, audited)")) + \
            self._feature_table(values, [f for f in catalogue() if f.source in BEHAVIOUR_SOURCES])


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "name_en", "category", "monthly_fee_yuan", "demand_tag", "potential_tag"]
    list_filter = ["category"]
    search_fields = ["code", "name", "name_en"]
    # Products come from the products file; what admins set here is how the map classes customers.
    readonly_fields = ["code", "name", "name_en", "category", "monthly_fee_yuan"]
    fields = [*readonly_fields, "demand_tag", "potential_tag"]
    autocomplete_fields = ["demand_tag", "potential_tag"]

    def has_add_permission(self, request):
        return False


@admin.register(Subscription)
class SubscriptionAdmin(RegionScopedAdmin, ReadOnlyAdmin):
    list_display = ["subscriber", "product", "start_date", "end_date"]
    list_filter = ["product", "subscriber__region"]
    list_select_related = ["subscriber", "product"]
    search_fields = ["=subscriber__msisdn", "=subscriber__id"]
    show_full_result_count = False


@admin.register(IngestBatch)
class IngestBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "dataset", "file_name", "status", "rows_total", "rows_accepted", "rows_rejected",
                    "duration_seconds", "started_at", "created_by"]
    list_filter = ["dataset", "status"]
    search_fields = ["file_name", "checksum"]
    fields = ["dataset", "file_name", "checksum", "size_bytes", "status", "message", "rows_total", "rows_accepted",
              "rows_rejected", "period_start", "period_end", "error_table", "report_path", "lake_path", "same_as",
              "created_by", "started_at", "finished_at", "duration_seconds"]
    readonly_fields = fields

    @admin.display(description="rejected rows")
    def error_table(self, batch):
        if not batch.errors:
            return "-"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((e["line"], e["column"], e["reason"]) for e in batch.errors))
        return format_html("<table><tr><th>line</th><th>column</th><th>reason</th></tr>{}</table>", rows)


class SnapshotPartitionInline(ReadOnlyInline):
    model = SnapshotPartition
    fields = ["stage", "index", "id_from", "id_to", "status", "attempts", "rows", "error", "claimed_at", "finished_at"]


@admin.register(SnapshotRun)
class SnapshotRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "as_of_date", "status", "stage", "progress_percent", "partition_count", "started_at",
                    "finished_at", "created_by"]
    list_filter = ["status"]
    fields = ["as_of_date", "status", "stage", "window_days", "partition_size", "partition_count",
              "max_subscriber_id", "lake_batches", "definitions", "error", "created_by", "created_at", "started_at", "finished_at"]
    readonly_fields = fields
    inlines = [SnapshotPartitionInline]
    actions = ["cancel_runs"]

    @admin.action(description=_("Cancel the selected running runs (the current snapshot stays current)"),
                  permissions=["start"])
    def cancel_runs(self, request, queryset):
        for run in queryset:
            try:
                cancel_run(run_id=run.id, user=request.user)
            except SnapshotRefused as exc:
                messages.warning(request, str(exc))
            else:
                messages.success(request, _("Run #%(id)s cancelled: nothing more is dispatched") % {"id": run.id})

    def has_start_permission(self, request) -> bool:
        return request.user.has_perm("tagging.add_snapshotrun")

    def get_queryset(self, request):
        return super().get_queryset(request).with_progress()

    @admin.display(description="progress")
    def progress_percent(self, run):
        return f"{run.progress:.0%}"

    def get_urls(self):
        start = path("start/", self.admin_site.admin_view(self.start_view), name="tagging_snapshotrun_start")
        return [start, *super().get_urls()]

    def start_view(self, request):
        """Start a snapshot run as of a date (the API's POST /api/v1/snapshot-runs/ in a form); a refused
        run says why and starts nothing."""
        if not request.user.has_perm("tagging.add_snapshotrun"):
            raise PermissionDenied
        latest = IngestBatch.objects.accepted().filter(dataset="usage_daily").aggregate(day=Max("period_end"))["day"]
        form = StartRunForm(request.POST or None, initial={"as_of_date": latest or timezone.localdate(),
                                                           "window_days": settings.SNAPSHOT_WINDOW_DAYS})
        if request.method == "POST" and form.is_valid():
            try:
                run = start_snapshot_run(as_of=form.cleaned_data["as_of_date"], window_days=form.cleaned_data["window_days"],
                                         churn_window_days=form.cleaned_data["churn_window_days"], user=request.user)
            except SnapshotRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Snapshot run #%(id)s as of %(date)s started: its partitions' progress is below.")
                                 % {"id": run.id, "date": run.as_of_date})
                return redirect("admin:tagging_snapshotrun_change", run.id)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": _("Start a snapshot run"), "latest_usage": latest}
        return TemplateResponse(request, "admin/tagging/snapshotrun/start.html", context)


class StartRunForm(forms.Form):
    as_of_date = forms.DateField(label=_("As-of date"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                                 help_text="Features, tags and locations describe the window ending on this day")
    window_days = forms.IntegerField(label=_("Window (days)"), min_value=1, max_value=MAX_WINDOW_DAYS)
    churn_window_days = forms.IntegerField(label=_("Churn window (days)"), required=False,
                                           help_text=_("Leavers counted in this many days after a snapshot that long "
                                                       "before the as-of date; empty: CHURN_WINDOW_DAYS"))


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ["as_of_date", "run", "is_current", "subscriber_count", "published_at"]
    list_filter = ["is_current"]
    fields = ["as_of_date", "run", "is_current", "subscriber_count", "summary", "published_at"]
    readonly_fields = fields


def _section_line(value) -> str:
    """A profile section's answer in a line: a product with its chance and expected value, or a dash."""
    if not value:
        return "-"
    if {"name", "probability", "expected_value"} <= set(value):
        return f"{value['name']} {value.get('name_en') or ''} ({value['probability']:.1%}, ¥{value['expected_value']:,.0f})"
    return str(value)
