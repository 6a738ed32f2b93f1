import django_filters

from ..models import IngestBatch, Subscriber


class SubscriberFilter(django_filters.FilterSet):
    region = django_filters.CharFilter(method="in_region", label="region code (that region and all below it)")

    class Meta:
        model = Subscriber
        fields = ["brand", "status", "gender", "marketing_opt_out"]

    def in_region(self, queryset, name, value):
        return queryset.filter(region__path__contains=f"{value}/")


class IngestBatchFilter(django_filters.FilterSet):
    class Meta:
        model = IngestBatch
        fields = ["dataset", "status"]
