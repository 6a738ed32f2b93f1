"""The tag library in admin: edit rules with validation and a live count, versions, history, the catalogue."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from ..api.throttles import UserRate
from ..expressions import ExpressionError
from ..models import SegmentModel, TagDefinition, TagVersion
from ..selectors import revenue_shares, tag_counts, tag_history
from ..services.tags import check_definition, import_member_list, preview_rule, save_tag_definition
from ..stages.features import catalogue
from ..value import TIER_NAMES, TIERS
from .reference import ReadOnlyAdmin, ReadOnlyInline


class TagDefinitionForm(forms.ModelForm):
    members_file = forms.FileField(
        required=False, label=_("member list"),
        help_text="Imported lists only: a CSV or text file, one MSISDN per line (a header line is skipped)",
    )

    class Meta:
        model = TagDefinition
        fields = ["code", "name", "name_en", "category", "kind", "expression", "enabled", "description"]
        widgets = {"expression": forms.Textarea(attrs={"rows": 3, "cols": 90, "spellcheck": "false",
                                                       "style": "font-family: monospace"})}

    def clean_members_file(self):
        upload = self.cleaned_data.get("members_file")
        self.members = None
        if upload:
            try:
                self.members = import_member_list(upload.read())
            except ExpressionError as exc:
                raise forms.ValidationError(exc.message) from None
        return upload

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:
            check_definition(self.instance)
        except ExpressionError as exc:
            self.add_error(getattr(exc, "field", "expression") if getattr(exc, "field", "") in self.fields else None, str(exc))


class TagVersionInline(ReadOnlyInline):
    model = TagVersion
    fields = ["number", "change", "author", "created_at", "enabled", "expression", "member_count"]
    verbose_name_plural = _("versions (who, when, what)")


@admin.register(TagDefinition)
class TagDefinitionAdmin(admin.ModelAdmin):
    form = TagDefinitionForm
    change_form_template = "admin/tagging/tagdefinition/change_form.html"
    change_list_template = "admin/tagging/tagdefinition/change_list.html"
    list_display = ["code", "name", "name_en", "category", "kind", "enabled", "version", "updated_at"]
    list_filter = ["category", "kind", "enabled"]
    search_fields = ["code", "name", "name_en", "expression", "description"]
    inlines = [TagVersionInline]

    def get_readonly_fields(self, request, obj=None):
        # A segment tag is fitted by the run; its code and kind are the run's to decide.
        return ["code", "kind"] if obj and obj.kind == TagDefinition.Kind.SEGMENT else []

    def get_list_display(self, request):
        counts = tag_counts(user=request.user)

        @admin.display(description=_("subscribers (your regions)"))
        def subscribers(tag):
            now, before = counts.get(tag.code, (None, None))
            if now is None:
                return "-"
            if before is None:
                return f"{now:,}"
            return f"{now:,} ({now - before:+,})"

        return [*self.list_display[:6], subscribers, *self.list_display[6:]]

    def has_delete_permission(self, request, obj=None):
        return False  # tags keep their history; disable a tag instead

    def save_model(self, request, obj, form, change):
        save_tag_definition(tag=obj, author=request.user, members=getattr(form, "members", None))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        tag = self.get_object(request, object_id)
        extra = {"history": tag_history(code=tag.code, user=request.user) if tag else []}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(self.preview_view), name="tagging_tagdefinition_preview"),
            path("features/", view(self.features_view), name="tagging_tagdefinition_features"),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        """How many subscribers the rule being edited matches in the latest snapshot, or where it is wrong."""
        if not self.has_view_permission(request):
            return JsonResponse({"detail": "permission denied"}, status=403)
        rate = UserRate("preview")
        if not rate.allow_request(request, None):
            return JsonResponse({"detail": f"too many previews: try again in {rate.wait():.0f} s"}, status=429)
        try:
            return JsonResponse(preview_rule(expression=request.GET.get("expression", ""), user=request.user))
        except ExpressionError as exc:
            return JsonResponse({"detail": str(exc), "error": exc.as_dict()}, status=400)

    def features_view(self, request):
        context = {**self.admin_site.each_context(request), "title": _("Feature catalogue"),
                   "features": catalogue(), "opts": self.model._meta}
        return TemplateResponse(request, "admin/tagging/tagdefinition/features.html", context)


@admin.register(SegmentModel)
class SegmentModelAdmin(ReadOnlyAdmin):
    list_display = ["run", "k", "sample_size", "matched_to", "created_at"]
    fields = ["run", "k", "features", "segment_table", "sample_size", "matched_to", "created_at"]
    readonly_fields = fields

    @admin.display(description="segments")
    def segment_table(self, model):
        """Each segment's share of the sample it was fitted on, and of the run's snapshot: headcount against revenue
        (a segment's worth beside its size), then the value tiers' the same way."""
        snapshot = getattr(model.run, "snapshot", None)
        tiers = [f"value_tier_{code}" for code in TIERS]
        shares = revenue_shares(snapshot=snapshot, codes=[*model.descriptions, *tiers]) if snapshot else {}

        def share(code, key):
            return f"{shares[code][key]:.1%}" if code in shares else "—"

        # format_html escapes its arguments into strings first: numbers are formatted before.
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (code, d["zh"], d["en"], f"{d['sample_share']:.1%}", share(code, "headcount_share"), share(code, "revenue_share"))
            for code, d in sorted(model.descriptions.items())
        ))
        tier_rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td></td><td>{}</td><td>{}</td></tr>", (
            (f"value_tier_{code}", *TIER_NAMES[code], share(f"value_tier_{code}", "headcount_share"),
             share(f"value_tier_{code}", "revenue_share")) for code in TIERS if f"value_tier_{code}" in shares
        ))
        return format_html("<table><tr><th>code</th><th>中文</th><th>English</th><th>share (sample)</th>"
                           "<th>headcount share 人数占比</th><th>revenue share 收入占比</th></tr>{}{}</table>", rows, tier_rows)
