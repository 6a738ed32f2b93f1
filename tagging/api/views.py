from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from ..models import IngestBatch, Product, Region, Snapshot, SnapshotRun, Subscriber
from ..services.snapshots import SnapshotRefused, start_snapshot_run
from . import serializers
from .filters import IngestBatchFilter, SubscriberFilter
from .permissions import ModelPermissions


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


class IngestBatchViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = IngestBatch.objects.all()
    serializer_class = serializers.IngestBatchSerializer
    permission_classes = [ModelPermissions]
    filterset_class = IngestBatchFilter


class SnapshotRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Snapshot runs with per-partition progress; POST starts one (admins)."""

    queryset = SnapshotRun.objects.prefetch_related("partitions")
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
                                     window_days=start.validated_data.get("window_days"))
        except SnapshotRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        run.refresh_from_db()
        return Response(serializers.SnapshotRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class SnapshotViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Snapshot.objects.all()
    serializer_class = serializers.SnapshotSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["is_current", "as_of_date"]
