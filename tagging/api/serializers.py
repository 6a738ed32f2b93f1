from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import (
    IngestBatch,
    Product,
    Region,
    Snapshot,
    SnapshotPartition,
    SnapshotRun,
    Subscriber,
    Subscription,
    TagDefinition,
    TagVersion,
)


class RegionSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Region
        fields = ["id", "code", "name", "name_en", "level", "parent"]


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["code", "name", "name_en", "category", "monthly_fee_yuan"]


class SubscriptionSerializer(serializers.ModelSerializer):
    product = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Subscription
        fields = ["product", "start_date", "end_date"]


class SubscriberSerializer(serializers.ModelSerializer):
    msisdn = serializers.CharField(source="msisdn_masked", read_only=True, help_text="Masked: 138****1234")
    region = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Subscriber
        fields = ["id", "msisdn", "pseudonym", "brand", "plan", "join_date", "birth_year", "gender", "region",
                  "status", "marketing_opt_out"]


class SubscriberDetailSerializer(SubscriberSerializer):
    subscriptions = SubscriptionSerializer(many=True, read_only=True)

    class Meta(SubscriberSerializer.Meta):
        fields = SubscriberSerializer.Meta.fields + ["subscriptions"]


class IngestBatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestBatch
        fields = ["id", "dataset", "file_name", "checksum", "size_bytes", "status", "message", "rows_total",
                  "rows_accepted", "rows_rejected", "errors", "period_start", "period_end", "started_at",
                  "finished_at", "duration_seconds"]


class SnapshotPartitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = SnapshotPartition
        fields = ["stage", "index", "id_from", "id_to", "status", "attempts", "rows", "summary", "error",
                  "claimed_at", "finished_at"]


class SnapshotRunSerializer(serializers.ModelSerializer):
    partitions = SnapshotPartitionSerializer(many=True, read_only=True)
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = SnapshotRun
        fields = ["id", "as_of_date", "status", "stage", "progress", "window_days", "partition_size",
                  "partition_count", "error", "created_at", "started_at", "finished_at", "partitions"]


class StartSnapshotRunSerializer(serializers.Serializer):
    as_of_date = serializers.DateField()
    partition_size = serializers.IntegerField(required=False, min_value=1)
    window_days = serializers.IntegerField(required=False, min_value=1, max_value=366)
    churn_window_days = serializers.IntegerField(required=False, help_text="Days after a snapshot that long before the "
                                                 "as-of date the churn model counts leavers in (CHURN_WINDOW_DAYS)")


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["id", "as_of_date", "run", "is_current", "subscriber_count", "summary", "published_at"]


class FeatureSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["number", "boolean", "text"])
    unit = serializers.CharField()
    label = serializers.CharField(help_text="Chinese name")
    description = serializers.CharField()
    source = serializers.CharField(help_text="The raw dataset it is computed from")


class TagVersionSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = TagVersion
        fields = ["number", "expression", "enabled", "name", "name_en", "category", "change", "author", "created_at"]


class TagSerializer(serializers.ModelSerializer):
    count = serializers.SerializerMethodField(help_text="Subscribers in your regions with the tag, current snapshot")
    previous_count = serializers.SerializerMethodField(help_text="The same in the snapshot before")
    trend = serializers.SerializerMethodField(help_text="count - previous_count")

    class Meta:
        model = TagDefinition
        fields = ["code", "name", "name_en", "category", "kind", "expression", "enabled", "description", "version",
                  "updated_at", "count", "previous_count", "trend"]

    def _count(self, tag, which: str) -> int | None:
        bitmaps = self.context.get(which)
        return None if bitmaps is None else bitmaps.tag_counts().get(tag.code)

    def get_count(self, tag) -> int | None:
        return self._count(tag, "current")

    def get_previous_count(self, tag) -> int | None:
        return self._count(tag, "previous")

    def get_trend(self, tag) -> int | None:
        now, before = self.get_count(tag), self.get_previous_count(tag)
        return None if now is None or before is None else now - before


class TagHistoryEntrySerializer(serializers.Serializer):
    snapshot = serializers.IntegerField()
    as_of_date = serializers.DateField()
    count = serializers.IntegerField()
    entered = serializers.IntegerField(allow_null=True)
    left = serializers.IntegerField(allow_null=True)


class TagDetailSerializer(TagSerializer):
    history = serializers.SerializerMethodField()
    versions = TagVersionSerializer(many=True, read_only=True)

    class Meta(TagSerializer.Meta):
        fields = TagSerializer.Meta.fields + ["history", "versions"]

    def get_history(self, tag) -> list[dict]:
        return TagHistoryEntrySerializer(self.context["history"], many=True).data


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "example": "< 5"}]})
class ShownCountField(serializers.Field):
    """A count, or for sales staff and field teams a count narrowed by area(): "< AREA_MIN_COUNT" below it, else
    rounded to a multiple of it."""


class RegionCountSerializer(serializers.Serializer):
    region = serializers.CharField()
    name = serializers.CharField()
    count = ShownCountField()


class AudiencePreviewRequestSerializer(serializers.Serializer):
    expression = serializers.CharField(trim_whitespace=False, help_text='e.g. high_value and lifecycle_at_risk')
    snapshot = serializers.PrimaryKeyRelatedField(queryset=Snapshot.objects.all(), required=False,
                                                  help_text="A published snapshot; the current one by default")


class AudiencePreviewSerializer(serializers.Serializer):
    count = ShownCountField(help_text="Subscribers in your regions matching the expression")
    subscribers = serializers.IntegerField(help_text="All subscribers in your regions")
    snapshot = serializers.DateField(help_text="As-of date of the snapshot counted")
    by_region = RegionCountSerializer(many=True)
    suppressed_below = serializers.IntegerField(allow_null=True, help_text="Set when counts are narrowed by area() "
                                                "and shown as the suppressed map shows them (AREA_MIN_COUNT)")
    elapsed_ms = serializers.FloatField()


class TagIndexSerializer(serializers.Serializer):
    tag = serializers.CharField()
    name = serializers.CharField()
    name_en = serializers.CharField()
    category = serializers.CharField()
    count = ShownCountField(help_text="Audience members carrying the tag")
    share = serializers.FloatField(allow_null=True, help_text="Of the audience")
    base_share = serializers.FloatField(allow_null=True, help_text="Of all subscribers in your regions")
    index = serializers.IntegerField(allow_null=True, help_text="TGI: 100 * share / base_share")


class AudienceProfileSerializer(serializers.Serializer):
    count = ShownCountField()
    subscribers = serializers.IntegerField()
    snapshot = serializers.DateField()
    tags = TagIndexSerializer(many=True, help_text="Every tag the expression does not use, highest index first")
    suppressed_below = serializers.IntegerField(allow_null=True)
    elapsed_ms = serializers.FloatField()


class ExpressionErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    error = serializers.DictField(help_text="message, line, column (1-based) and the offending token")
