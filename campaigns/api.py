"""REST for campaigns: drafts created with their audience checked at once, frozen on request; scoped
to the caller's regions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from tagging.api.permissions import ModelPermissions, requires
from tagging.models import Product, Region

from .models import Campaign
from .services.campaigns import CampaignRefused, check_audience, freeze_campaign


class CampaignSerializer(serializers.ModelSerializer):
    product = serializers.SlugRelatedField(slug_field="code", queryset=Product.objects.all())
    regions = serializers.SlugRelatedField(slug_field="code", many=True,
                                           queryset=Region.objects.filter(level=Region.Level.DISTRICT))
    owner = serializers.CharField(source="owner.username", read_only=True)
    snapshot_date = serializers.DateField(source="snapshot.as_of_date", read_only=True, default=None)

    class Meta:
        model = Campaign
        fields = ["id", "name", "product", "audience", "channel", "start_date", "end_date", "holdout_share", "regions",
                  "status", "owner", "created_at", "snapshot", "snapshot_date", "seed", "tag_versions", "counts",
                  "frozen_at"]
        read_only_fields = ["status", "owner", "created_at", "snapshot", "seed", "tag_versions", "counts", "frozen_at"]

    def validate_regions(self, regions):
        user = self.context["request"].user
        mine = set(Region.objects.visible_to(user).values_list("code", flat=True))
        if not regions:
            raise ValidationError("at least one district")
        if others := sorted(r.code for r in regions if r.code not in mine):
            raise ValidationError(f"not your districts: {', '.join(others)}")
        return regions

    def validate(self, data):
        if data["end_date"] < data["start_date"]:
            raise ValidationError({"end_date": "ends before it starts"})
        try:
            check_audience(text=data["audience"], user=self.context["request"].user)
        except CampaignRefused as exc:
            raise ValidationError({exc.field: str(exc)}) from None
        return data


class CampaignViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Campaigns of your regions. POST creates a draft (the audience is checked against the current
    snapshot); POST {id}/freeze/ makes its target list: audience, exclusions by reason, control group."""

    serializer_class = CampaignSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["status", "channel", "product__code"]

    def get_permissions(self):
        if self.action == "freeze":
            return [requires("campaigns.change_campaign")()]
        return super().get_permissions()

    def get_queryset(self):
        return Campaign.objects.visible_to(self.request.user).select_related("product", "owner", "snapshot").prefetch_related("regions")

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)

    @extend_schema(request=None, responses={200: CampaignSerializer, 400: dict})
    @action(detail=True, methods=["post"])
    def freeze(self, request, pk=None):
        try:
            campaign = freeze_campaign(campaign=self.get_object(), user=request.user, seed=None)
        except CampaignRefused as exc:
            return Response({exc.field: [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(CampaignSerializer(campaign, context={"request": request}).data)
