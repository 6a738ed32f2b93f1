"""REST for campaigns and saved audiences: drafts created with their audience checked at once, frozen on
request, target lists exported, outcomes reported, results evaluated; scoped to the caller's regions."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from microarea.api import PRODUCT_PARAMETER, area_asked, area_query, no_area, product_field, valid_hex
from microarea.models import MicroArea
from microarea.selectors import CUSTOMER_CLASSES, area_customers_sql, res9_hexes
from tagging.api.authentication import ExpiringTokenAuthentication
from tagging.api.common import SNAPSHOT_PARAMETER, CodeField, FormatIsTheFiles, export_response, snapshot_asked
from tagging.api.permissions import ModelPermissions, requires
from tagging.expressions import ExpressionError
from tagging.models import IngestBatch, Product, Region

from .forms import PerformanceFilter
from .models import Campaign, EventTrigger, ExportLog, SavedAudience
from .selectors import (
    adopter_quality,
    campaign_evaluation,
    campaign_performance,
    campaigns_of,
    churn_model_report,
    product_association,
    saved_audiences_of,
    triggers_with_counts,
)
from .services.campaigns import CampaignRefused, create_campaign, freeze_campaign, move_campaign, save_audience
from .services.exports import Export, ExportRefused, plan_area_export, plan_export, stream
from .services.outcomes import OutcomesRefused, record_outcomes
from .services.triggers import add_event_trigger


def _export_response(export: Export, answer: str, filename: str) -> StreamingHttpResponse:
    return export_response(stream(export, answer), answer=answer, filename=filename, rows=export.rows)


def _refused(exc: ExportRefused | CampaignRefused) -> Response:
    """A service's refusal as DRF answers a bad field ({field: [message]}), or {"detail": message}."""
    return Response({exc.field: [str(exc)]} if exc.field != "detail" else {"detail": str(exc)}, status=exc.status)


class SavedAudienceSerializer(serializers.ModelSerializer):
    regions = CodeField(slug_field="code", many=True,
                                           queryset=Region.objects.districts())
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = SavedAudience
        fields = ["id", "name", "expression", "description", "regions", "owner", "created_at"]
        read_only_fields = ["owner", "created_at"]



class SavedAudienceViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Audiences kept under a name for campaigns to reuse (POST /api/v1/campaigns/ with "saved_audience")."""

    serializer_class = SavedAudienceSerializer
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return saved_audiences_of(self.request.user)

    def create(self, request, *args, **kwargs):
        given = self.get_serializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        try:
            saved = save_audience(owner=request.user, name=data["name"], expression=data["expression"],
                                  description=data.get("description", ""), regions=[r.code for r in data["regions"]])
        except CampaignRefused as exc:
            return _refused(exc)
        return Response(self.get_serializer(saved).data, status=status.HTTP_201_CREATED)


class CampaignSerializer(serializers.ModelSerializer):
    product = CodeField(slug_field="code", queryset=Product.objects.all(), required=False, allow_null=True)
    regions = CodeField(slug_field="code", many=True,
                                           queryset=Region.objects.districts())
    owner = serializers.CharField(source="owner.username", read_only=True)
    snapshot_date = serializers.DateField(source="snapshot.as_of_date", read_only=True, default=None)

    class Meta:
        model = Campaign
        fields = ["id", "name", "purpose", "product", "offer", "audience", "saved_audience", "channel", "start_date", "end_date",
                  "control_share", "control_kind", "cost_per_contact", "value_per_conversion", "regions",
                  "status", "owner", "created_at", "snapshot", "snapshot_date", "seed", "tag_versions", "counts",
                  "frozen_at"]
        read_only_fields = ["status", "owner", "created_at", "snapshot", "seed", "tag_versions", "counts", "frozen_at"]
        extra_kwargs = {"audience": {"required": False}}



class EventTriggerSerializer(serializers.ModelSerializer):
    added = serializers.IntegerField(read_only=True, default=0, help_text="Subscribers the rule added so far")

    class Meta:
        model = EventTrigger
        fields = ["id", "kind", "micro_area", "min_off_days", "enabled", "created_at", "added"]
        read_only_fields = ["created_at"]



class CampaignViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Campaigns of your regions. POST creates a draft (the audience is checked against the current
    snapshot); POST {id}/freeze/ makes its target list: audience, exclusions by reason, control group."""

    serializer_class = CampaignSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["status", "channel", "product__code"]
    throttle_scope = None  # exports set theirs

    def get_permissions(self):
        if self.action in ("freeze", "start", "close") or (self.action == "triggers" and self.request.method == "POST"):
            return [requires("campaigns.change_campaign")()]
        if self.action == "outcomes":  # field teams, and the analysts running campaigns, report what contacts gave
            return [requires("campaigns.report_outcomes")()]
        return super().get_permissions()

    def get_queryset(self):
        return campaigns_of(self.request.user)

    def create(self, request, *args, **kwargs):
        given = self.get_serializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        try:
            campaign = create_campaign(
                owner=request.user, name=data["name"], product=data.get("product"), audience=data.get("audience", ""),
                channel=data["channel"], start_date=data["start_date"], end_date=data["end_date"],
                regions=[r.code for r in data["regions"]], control_share=data.get("control_share", 0.1),
                control_kind=data.get("control_kind", Campaign.ControlKind.HOLDOUT),
                saved_audience=data.get("saved_audience"), purpose=data.get("purpose", Campaign.Purpose.SALE),
                offer=data.get("offer", ""), cost_per_contact=data.get("cost_per_contact"),
                value_per_conversion=data.get("value_per_conversion"))
        except CampaignRefused as exc:
            return _refused(exc)
        return Response(self.get_serializer(campaign).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: CampaignSerializer, 400: dict})
    @action(detail=True, methods=["post"])
    def freeze(self, request, pk=None):
        try:
            campaign = freeze_campaign(campaign=self.get_object(), user=request.user, seed=None)
        except CampaignRefused as exc:
            return _refused(exc)
        return Response(CampaignSerializer(campaign, context={"request": request}).data)

    @extend_schema(request=None, responses={200: CampaignSerializer, 400: dict})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Frozen -> running: field teams contact the list; event triggers add to it."""
        return self._move(request, "start")

    @extend_schema(request=None, responses={200: CampaignSerializer, 400: dict})
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """Frozen or running -> closed: no more exports or triggered targets; results stay."""
        return self._move(request, "close")

    def _move(self, request, step: str):
        try:
            campaign = move_campaign(campaign=self.get_object(), step=step, user=request.user)
        except CampaignRefused as exc:
            return _refused(exc)
        return Response(CampaignSerializer(campaign, context={"request": request}).data)

    @extend_schema(request=EventTriggerSerializer, responses={200: EventTriggerSerializer(many=True), 201: EventTriggerSerializer,
                                                              400: dict})
    @action(detail=True, methods=["get", "post"], serializer_class=EventTriggerSerializer)
    def triggers(self, request, pk=None):
        """触点营销: the campaign's event rules with how many each added (GET), or a new rule (POST: kind,
        micro_area for entered_area, min_off_days for back_on). While the campaign runs, every accepted
        events batch adds the subscribers a rule matches to its list, policy and holdout applied."""
        campaign = self.get_object()
        if request.method == "GET":
            rules = triggers_with_counts(campaign)
            return Response(EventTriggerSerializer(rules, many=True).data)
        given = EventTriggerSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            trigger = add_event_trigger(campaign=campaign, user=request.user, **given.validated_data)
        except CampaignRefused as exc:
            return _refused(exc)
        return Response(EventTriggerSerializer(trigger).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["csv", "json"], description="default csv"),
                               OpenApiParameter("area", int, description="a micro-area id of yours: its residents only"),
                               OpenApiParameter("next_best_offer", str, enum=["1", "0"],
                                                description="1: add each target's next best offer (another product, by "
                                                            "expected value) as columns")],
                   responses={(200, "text/csv"): str, 400: dict, 404: dict, 429: dict})
    # Token first: field teams' tools authenticate with a token, and a request without one is told so (401).
    @action(detail=True, methods=["get"], content_negotiation_class=FormatIsTheFiles,
            authentication_classes=[ExpiringTokenAuthentication, SessionAuthentication],
            throttle_classes=[ScopedRateThrottle], throttle_scope="export")
    def targets(self, request, pk=None):
        """The frozen target list of your districts (with a random control group, never a holdout), streamed as
        CSV or JSON; full MSISDNs for staff allowed to contact subscribers, masked otherwise; every export logged."""
        campaign = self.get_object()
        answer = request.query_params.get("format", "csv")
        area = request.query_params.get("area")
        if answer not in ("csv", "json"):
            return Response({"format": ["csv or json"]}, status=status.HTTP_400_BAD_REQUEST)
        if area is not None and not area.isdigit():
            return Response({"area": [f"a micro-area id (a whole number), not {area!r}"]}, status=status.HTTP_400_BAD_REQUEST)
        offer = request.query_params.get("next_best_offer", "0")
        if offer not in ("0", "1"):
            return Response({"next_best_offer": [f"1 or 0, not {offer!r}"]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            export = plan_export(campaign=campaign, user=request.user, area_id=int(area) if area else None,
                                 next_best_offer=offer == "1")
        except ExportRefused as exc:
            return _refused(exc)
        return _export_response(export, answer, f"campaign-{campaign.id}-targets.csv")

    @extend_schema(parameters=[OpenApiParameter("area", int, description="a micro-area id of yours: its residents only")],
                   responses={200: dict, 400: dict, 404: dict})
    @action(detail=True, methods=["get"])
    def evaluation(self, request, pk=None):
        """Target group against control group in your districts: members, conversions (against a holdout:
        the product taken during the campaign; against a random group: conversions reported of those
        contacted), contacts and reported outcomes, rates, lift and uplift with 95% intervals, the
        two-proportion test's p-value; overall, per district, and by propensity decile (gains); `area` limits
        it all to a micro-area's residents."""
        campaign = self.get_object()
        if campaign.status == Campaign.Status.DRAFT:
            return Response({"status": ["the campaign is not frozen yet: it has no groups to compare"]},
                            status=status.HTTP_400_BAD_REQUEST)
        area = request.query_params.get("area")
        if area is None:
            return Response({**campaign_evaluation(campaign=campaign, user=request.user),
                             "adopter_quality": adopter_quality(campaign=campaign, user=request.user)})
        if not area.isdigit():
            return Response({"area": [f"a micro-area id (a whole number), not {area!r}"]}, status=status.HTTP_400_BAD_REQUEST)
        found = MicroArea.objects.visible_to(request.user).filter(pk=int(area)).first()
        if found is None:
            return Response({"detail": f"no micro-area {area} in your regions"}, status=status.HTTP_404_NOT_FOUND)
        return Response(campaign_evaluation(campaign=campaign, user=request.user, area=found))

    @extend_schema(request=dict, responses={201: dict, 200: dict, 400: dict})
    @action(detail=True, methods=["post"], authentication_classes=[ExpiringTokenAuthentication, SessionAuthentication])
    def outcomes(self, request, pk=None):
        """Report contact outcomes: {"rows": [{"msisdn", "contacted_at" (ISO 8601 with zone), "channel",
        "outcome"}]}. Every row must be one of the campaign's targets in your districts (a row that is not is
        refused by its line, never echoing the number); all rows are taken or none (errors
        name the row); the same report twice changes nothing; an outcome already recorded is refused."""
        campaign = self.get_object()
        rows = request.data.get("rows") if isinstance(request.data, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            return Response({"rows": ["a list of {msisdn, contacted_at, channel, outcome}"]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            batch = record_outcomes(campaign=campaign, rows=rows, user=request.user)
        except OutcomesRefused as exc:
            return Response({"detail": str(exc), "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        answer = {"status": batch.status, "rows": batch.rows_accepted, "message": batch.message, "errors": batch.errors[:100]}
        codes = {IngestBatch.Status.ACCEPTED: status.HTTP_201_CREATED, IngestBatch.Status.UNCHANGED: status.HTTP_200_OK}
        return Response(answer, status=codes.get(batch.status, status.HTTP_400_BAD_REQUEST))


class ProductAssociationView(APIView):
    """关联营销: for every ordered pair of products in the current snapshot, over your districts' active
    subscribers, the holders of each, of both, support, confidence and lift; per product a seed audience
    (holders of its strongly associated products who lack it), ready for a campaign."""

    permission_classes = [requires("campaigns.view_campaign")]

    @extend_schema(responses={200: dict, 400: dict})
    def get(self, request):
        try:
            return Response(product_association(user=request.user))
        except ExpressionError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


class ChurnModelView(APIView):
    """离网预警模型: the churn model behind a snapshot's `churn_risk` deciles (the current snapshot, or ?snapshot=):
    the learner kept and the other's held-out AUC, top-decile lift, the training window and counts, and the drivers
    (permutation importance on held-out subscribers) named in the feature catalogue's words, with each decile's
    standing on them. Model figures only: no subscriber is named."""

    permission_classes = [requires("campaigns.view_churnmodel")]

    @extend_schema(parameters=[SNAPSHOT_PARAMETER], responses={200: dict, 404: dict})
    def get(self, request):
        return Response(churn_model_report(snapshot_asked(request)))


class CampaignPerformanceView(APIView):
    """营销效果: every frozen campaign of your regions starting in the period (the latest PERFORMANCE_MAX_CAMPAIGNS), each
    against its control in your districts (rates, lift with its 95% interval, uplift, p), with contacts, cost, the
    return over the control and return on cost; the same pooled by month, product, channel, district and targeting
    (model-targeted or not), and the monthly trend of model-targeted against untargeted sale campaigns."""

    permission_classes = [requires("campaigns.view_campaign")]

    @extend_schema(parameters=[
        OpenApiParameter("since", str, description="YYYY-MM-DD: campaigns starting on or after it"),
        OpenApiParameter("until", str, description="YYYY-MM-DD: campaigns starting on or before it"),
        OpenApiParameter("purpose", str, enum=Campaign.Purpose.values)], responses={200: dict, 400: dict})
    def get(self, request):
        form = PerformanceFilter(request.query_params)
        if not form.is_valid():
            return Response({field: [str(e) for e in errors] for field, errors in form.errors.items()},
                            status=status.HTTP_400_BAD_REQUEST)
        data = form.cleaned_data
        return Response(campaign_performance(user=request.user, since=data["since"], until=data["until"],
                                             purpose=data["purpose"] or None))


TARGET_PARAMETERS = [
    PRODUCT_PARAMETER,
    OpenApiParameter("class", str, description=f"comma-separated, of {', '.join(CUSTOMER_CLASSES)} (default demand,potential)"),
    OpenApiParameter("format", str, enum=["csv", "json"], description="default csv"),
    SNAPSHOT_PARAMETER,
]
TARGETS_DOC = ("?product= (needed), ?class= any of developed, demand, potential (default demand,potential), "
               "?format=csv|json, ?snapshot=. Subscribers of your districts whose home is there, less those the contact "
               "policy leaves out (opted out, not active, do-not-disturb, contacted too often; nothing on a blackout day); "
               "full MSISDNs for staff allowed to contact subscribers, masked otherwise; logged and counted towards "
               "the daily export quota like campaign exports.")


class AreaTargetsView(APIView):
    """A micro-area's or hex's customers of a product as a list to contact (the area export lives here, beside
    campaign exports, because it applies the campaigns' contact policy and shares their log and quota)."""

    permission_classes = [requires("campaigns.view_campaign")]  # as for campaign exports
    content_negotiation_class = FormatIsTheFiles
    # Token first: field teams' tools authenticate with a token, and a request without one is told so (401).
    authentication_classes = [ExpiringTokenAuthentication, SessionAuthentication]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "export"

    def export(self, request, hexes, kind: str, described: dict, name: str):
        asked = area_query(request, AreaTargetsQuery)
        product, classes, answer = asked["product"], asked["class"], asked["format"]
        snapshot = snapshot_asked(request)
        customers = area_customers_sql(snapshot=snapshot, user=request.user, hexes=hexes, product=product, classes=classes)
        filters = {**described, "product": product.code, "classes": list(classes), "snapshot": snapshot.id}
        try:
            export = plan_area_export(user=request.user, kind=kind, customers=customers, filters=filters)
        except ExportRefused as exc:
            return _refused(exc)
        return _export_response(export, answer, f"{name}-{product.code}-targets.csv")


class AreaTargetsQuery(serializers.Serializer):
    product = product_field(required=True)
    format = serializers.ChoiceField(choices=["csv", "json"], default="csv", error_messages={"invalid_choice": "csv or json"})

    def get_fields(self):
        fields = super().get_fields()
        fields["class"] = serializers.CharField(default="demand,potential")  # a Python keyword, so declared here
        return fields

    def validate_class(self, value: str) -> tuple[str, ...]:
        classes = tuple(value.split(","))
        if unknown := [c for c in classes if c not in CUSTOMER_CLASSES]:
            raise serializers.ValidationError(f"{', '.join(unknown)}: not one of {', '.join(CUSTOMER_CLASSES)}")
        return classes


class MicroAreaTargetsView(AreaTargetsView):
    __doc__ = "A micro-area's target customers for a product, streamed. " + TARGETS_DOC

    @extend_schema(parameters=TARGET_PARAMETERS, responses={(200, "text/csv"): str, 400: dict, 404: dict, 409: dict, 429: dict})
    def get(self, request, pk: int):
        area = area_asked(request, pk)
        if area is None:
            return no_area(pk)
        return self.export(request, area.hex_array(), ExportLog.Kind.AREA, {"area": {"id": area.id, "name": area.name}},
                           f"microarea-{area.id}")


class HexTargetsView(AreaTargetsView):
    __doc__ = "A hex's target customers for a product, streamed. " + TARGETS_DOC

    @extend_schema(parameters=TARGET_PARAMETERS, responses={(200, "text/csv"): str, 400: dict, 409: dict, 429: dict})
    def get(self, request, cell: str):
        return valid_hex(cell) or self.export(request, res9_hexes(cell), ExportLog.Kind.HEX, {"hex": cell}, f"hex-{cell}")
