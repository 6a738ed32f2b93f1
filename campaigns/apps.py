from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "营销活动 Campaigns"

    def ready(self) -> None:
        # contact_results name their campaign by id: ingest checks it against the campaigns made.
        from tagging.services.ingest import REFERENCE_SOURCES

        from . import propensity_stage  # noqa: F401  (registers the propensity stage and its features)
        from .models import Campaign

        REFERENCE_SOURCES["campaign"] = lambda: [str(i) for i in Campaign.objects.exclude(status=Campaign.Status.DRAFT)
                                                 .values_list("id", flat=True)]
