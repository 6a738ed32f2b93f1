from datetime import timedelta

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from ..expressions import ExpressionError
from ..models import AuditEvent, IngestBatch, Product, Region, Snapshot, SnapshotRun, Subscriber, TagDefinition
from ..selectors import (
    PROFILE_SECTIONS,
    behaviour_summary,
    subscriber_circle,
    subscriber_contacts,
    subscriber_features,
    subscriber_tag_timeline,
    tag_difference,
    tag_history,
)
from ..services.audiences import SnapshotBitmaps, preview_audience, profile_audience
from ..services.audit import record_event
from ..services.snapshots import SnapshotRefused, cancel_run, start_snapshot_run
from ..stages.features import catalogue
from ..terminal_selectors import MIX_BY, change_cycle_distribution, subscriber_handsets, switching_matrix, terminal_mix
from . import serializers
from .common import SNAPSHOT_PARAMETER, snapshot_asked
from .filters import IngestBatchFilter, SubscriberFilter
from .permissions import ModelPermissions, requires


class RegionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.RegionSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["level"]
    lookup_field = "code"

    def get_queryset(self):
        return Region.objects.visible_to(self.request.user).select_related("parent")


class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()
    serializer_class = serializers.ProductSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["category"]
    lookup_field = "code"


class SubscriberViewSet(viewsets.ReadOnlyModelViewSet):
    """Subscribers in the caller's regions; MSISDNs masked."""

    permission_classes = [ModelPermissions]
    filterset_class = SubscriberFilter

    def get_queryset(self):
        queryset = Subscriber.objects.visible_to(self.request.user).select_related("region")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("subscriptions__product")
        return queryset

    def get_serializer_class(self):
        return serializers.SubscriberDetailSerializer if self.action == "retrieve" else serializers.SubscriberSerializer

    @extend_schema(responses=dict)
    @action(detail=True)
    def profile(self, request, pk=None):
        """The subscriber's profile (masked): tags now, the tag timeline over snapshots, features, and the
        campaign contacts recorded with their outcomes."""
        subscriber = self.get_object()
        behaviour = request.user.has_perm("tagging.view_behaviour")
        timeline = subscriber_tag_timeline(subscriber_id=subscriber.id, behaviour=behaviour)
        current = Snapshot.objects.current()
        now = next((entry for entry in timeline if current and entry["snapshot"] == current.id), None)
        tags = TagDefinition.objects.filter(code__in=now["tags"] if now else [])
        features = subscriber_features(subscriber_id=subscriber.id, snapshot=current, behaviour=behaviour)
        return Response({
            "subscriber": serializers.SubscriberDetailSerializer(subscriber).data,
            "snapshot": str(current.as_of_date) if current else None,
            "tags": [{"code": t.code, "name": t.name, "name_en": t.name_en, "category": t.category} for t in tags],
            "timeline": timeline,
            "features": features,
            # What they do online and whom they call: analysts only.
            **({"behaviour": behaviour_summary(features)} if behaviour and features else {}),
            "contacts": subscriber_contacts(subscriber_id=subscriber.id),
            # What other apps add (the campaigns app: the next best offer), by the name they registered.
            **{name: section(subscriber_id=subscriber.id, snapshot=current) for name, section in PROFILE_SECTIONS.items()},
        })

    @extend_schema(responses=dict)
    @action(detail=True)
    def circle(self, request, pk=None):
        """The subscriber's call circle in the current snapshot's window (analysts only; every listing is written to
        the audit log): on-net peers masked, off-net peers as their network and a pseudonym, never a number."""
        if not request.user.has_perm("tagging.view_circle"):
            raise PermissionDenied("listing a call circle needs the view_circle permission (analysts)")
        subscriber = self.get_object()
        current = Snapshot.objects.current()
        if current is None:
            raise NotFound("no published snapshot yet")
        circle = subscriber_circle(subscriber_id=subscriber.id, snapshot=current)
        record_event(kind=AuditEvent.Kind.CIRCLE_VIEWED, request=request, user=request.user,
                     detail={"subscriber": subscriber.id, "snapshot": current.id, "peers_listed": circle.get("listed", 0)})
        return Response({"subscriber": serializers.SubscriberSerializer(subscriber).data,
                         "snapshot": str(current.as_of_date), **circle})

    @extend_schema(responses=dict)
    @action(detail=True)
    def terminals(self, request, pk=None):
        """The subscriber's handsets (IMEIs masked): the chain in order of first use, with knock-off
        reasons, and the handset in use at each of the last snapshots."""
        subscriber = self.get_object()
        return Response({"subscriber": serializers.SubscriberSerializer(subscriber).data,
                         **subscriber_handsets(subscriber_id=subscriber.id)})


class IngestBatchViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = IngestBatch.objects.all()
    serializer_class = serializers.IngestBatchSerializer
    permission_classes = [ModelPermissions]
    filterset_class = IngestBatchFilter


class SnapshotRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Snapshot runs with per-partition progress; POST starts one (admins)."""

    queryset = SnapshotRun.objects.with_progress().prefetch_related("partitions")
    serializer_class = serializers.SnapshotRunSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["status", "as_of_date"]

    @extend_schema(request=serializers.StartSnapshotRunSerializer, responses={202: serializers.SnapshotRunSerializer})
    def create(self, request, *args, **kwargs):
        start = serializers.StartSnapshotRunSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        try:
            run = start_snapshot_run(as_of=start.validated_data["as_of_date"], user=request.user,
                                     partition_size=start.validated_data.get("partition_size"),
                                     window_days=start.validated_data.get("window_days"),
                                     churn_window_days=start.validated_data.get("churn_window_days"))
        except SnapshotRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        run.refresh_from_db()
        return Response(serializers.SnapshotRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: serializers.SnapshotRunSerializer, 409: dict})
    @action(detail=True, methods=["post"], permission_classes=[requires("tagging.add_snapshotrun")])
    def cancel(self, request, pk=None):
        """Cancel a running run: nothing more is dispatched, the run is marked cancelled and the snapshot that was
        current stays current (analysts, who start runs)."""
        try:
            run = cancel_run(run_id=self.get_object().id, user=request.user)
        except SnapshotRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(serializers.SnapshotRunSerializer(run).data)


class SnapshotViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Snapshot.objects.all()
    serializer_class = serializers.SnapshotSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["is_current", "as_of_date"]


class FeatureCatalogueView(APIView):
    """The feature catalogue: every column a tag rule may use, with type, unit and source."""

    permission_classes = [requires("tagging.view_tagdefinition")]

    @extend_schema(responses=serializers.FeatureSerializer(many=True))
    def get(self, request):
        return Response([feature.as_dict() for feature in catalogue()])


class TagViewSet(viewsets.ReadOnlyModelViewSet):
    """Tags with their count in your regions (current snapshot), the count before and the trend;
    the detail adds the count over the last snapshots and every kept version."""

    queryset = TagDefinition.objects.prefetch_related("versions__author")
    permission_classes = [ModelPermissions]
    filterset_fields = ["category", "kind", "enabled"]
    search_fields = ["code", "name", "name_en", "description"]
    lookup_field = "code"

    def get_serializer_class(self):
        return serializers.TagDetailSerializer if self.action == "retrieve" else serializers.TagSerializer

    def get_serializer_context(self):
        context = super().get_serializer_context()
        recent = list(Snapshot.objects.filter(tags__isnull=False).distinct().order_by("-is_current", "-as_of_date", "-id")[:2])
        if recent and recent[0].is_current:
            context["current"] = SnapshotBitmaps(recent[0], self.request.user)
            context["previous"] = SnapshotBitmaps(recent[1], self.request.user) if len(recent) > 1 else None
        if self.action == "retrieve":
            context["history"] = tag_history(code=self.kwargs["code"], user=self.request.user)
        return context

    @extend_schema(parameters=[OpenApiParameter("before", int, description="Snapshot id (default: the one before after)"),
                               OpenApiParameter("after", int, description="Snapshot id (default: the current one)")],
                   responses=dict)
    @action(detail=True)
    def diff(self, request, code=None):
        """Who entered and who left the tag between two snapshots, in your regions."""
        tag = self.get_object()
        try:
            after = Snapshot.objects.get(id=request.query_params["after"]) if "after" in request.query_params else Snapshot.objects.current()
            before = (Snapshot.objects.get(id=request.query_params["before"]) if "before" in request.query_params
                      else Snapshot.objects.filter(as_of_date__lte=after.as_of_date, tags__tag=tag).exclude(id=after.id)
                      .order_by("-as_of_date", "-id").first())
        except (Snapshot.DoesNotExist, ValueError, AttributeError):
            return Response({"detail": "no such snapshot"}, status=status.HTTP_404_NOT_FOUND)
        if before is None:
            return Response({"detail": "there is no earlier snapshot to compare with"}, status=status.HTTP_404_NOT_FOUND)
        try:
            return Response(tag_difference(code=tag.code, user=request.user, before=before, after=after))
        except LookupError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)


def _audience_answer(request, answer) -> Response:
    """An audience expression posted ({"expression", "snapshot"}) and answered, or a 400 naming the place."""
    given = serializers.AudiencePreviewRequestSerializer(data=request.data)
    given.is_valid(raise_exception=True)
    try:
        return Response(answer(expression=given.validated_data["expression"], user=request.user,
                               snapshot=given.validated_data.get("snapshot")))
    except ExpressionError as exc:
        return Response({"detail": str(exc), "error": exc.as_dict()}, status=status.HTTP_400_BAD_REQUEST)


class AudiencePreviewView(APIView):
    """Count an audience (tags joined with and/or/not) in your regions: total, per district, time taken."""

    permission_classes = [requires("tagging.view_tagdefinition")]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "preview"

    @extend_schema(request=serializers.AudiencePreviewRequestSerializer,
                   responses={200: serializers.AudiencePreviewSerializer, 400: serializers.ExpressionErrorSerializer})
    def post(self, request):
        return _audience_answer(request, preview_audience)


class AudienceProfileView(APIView):
    """Who an audience are (人群画像): every other tag's share in the audience against its share in your
    regions, and the target group index (TGI) of the two."""

    permission_classes = [requires("tagging.view_tagdefinition")]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "profile"

    @extend_schema(request=serializers.AudiencePreviewRequestSerializer,
                   responses={200: serializers.AudienceProfileSerializer, 400: serializers.ExpressionErrorSerializer})
    def post(self, request):
        return _audience_answer(request, profile_audience)


# --- the terminal snapshot library -------------------------------------------------------------------------

class TerminalMixView(APIView):
    """Subscribers by handset model (or brand, tier, network, OS) in your districts, with shares."""

    permission_classes = [requires("tagging.view_terminalshare")]

    @extend_schema(parameters=[SNAPSHOT_PARAMETER, OpenApiParameter("by", str, enum=list(MIX_BY), description="default: model")],
                   responses=dict)
    def get(self, request):
        by = request.query_params.get("by", "model")
        if by not in MIX_BY:
            return Response({"by": [f"one of {', '.join(MIX_BY)}, not {by!r}"]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(terminal_mix(user=request.user, snapshot=snapshot_asked(request), by=by))


class HandsetSwitchingView(APIView):
    """Brand-to-brand handset changes in the 12 months to the snapshot, in your districts, with retention."""

    permission_classes = [requires("tagging.view_terminalshare")]

    @extend_schema(parameters=[SNAPSHOT_PARAMETER], responses=dict)
    def get(self, request):
        return Response(switching_matrix(user=request.user, snapshot=snapshot_asked(request)))


class ChangeCycleView(APIView):
    """How long subscribers in your districts keep a handset: subscribers per change-cycle bin."""

    permission_classes = [requires("tagging.view_terminalshare")]

    @extend_schema(parameters=[SNAPSHOT_PARAMETER], responses=dict)
    def get(self, request):
        return Response(change_cycle_distribution(user=request.user, snapshot=snapshot_asked(request)))


class ObtainExpiringToken(ObtainAuthToken):
    """POST username and password: a new token for the user, the old one no longer working. Rated per address
    (RATE_SIGN_IN); repeated failures for one user from one address lock that pair out (LOGIN_FAILURE_LIMIT)."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "sign_in"

    def post(self, request, *args, **kwargs):
        # Django's own request: the lockout marks it, and its middleware answers a locked-out sign-in (429).
        serializer = self.serializer_class(data=request.data, context={"request": request._request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        # Signing in again rotates the token: one copied earlier (a shared script, a lost laptop) stops working.
        with transaction.atomic():
            Token.objects.filter(user=user).delete()
            token = Token.objects.create(user=user)
        record_event(kind=AuditEvent.Kind.TOKEN_ISSUED, request=request, user=user)
        return Response({"token": token.key, "expires": (token.created + timedelta(hours=settings.API_TOKEN_HOURS)).isoformat()})
