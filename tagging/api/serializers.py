from rest_framework import serializers

from ..models import IngestBatch, Product, Region, Snapshot, SnapshotPartition, SnapshotRun, Subscriber, Subscription


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


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["id", "as_of_date", "run", "is_current", "subscriber_count", "summary", "published_at"]
