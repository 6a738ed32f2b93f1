from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        # contact_results name their campaign by id: ingest checks it against the campaigns made.
        from microarea.selectors import TARGET_LISTS, TargetListSource
        from tagging.lake.staging import REFERENCE_SOURCES
        from tagging.models import StaffProfile
        from tagging.selectors import PROFILE_SECTIONS
        from tagging.services.accounts import grant_role_permissions
        from tagging.services.ingest import ACCEPTED_HOOKS

        from .models import Campaign
        from .offers import profile_offer
        from .selectors import campaign_on_map, campaigns_on_map
        from .services.campaigns import contact_list_keys
        from .stages import churn, propensity, response  # noqa: F401  (register the model stages and their features)
        from .tasks import apply_event_triggers_task

        REFERENCE_SOURCES["campaign"] = lambda: [str(i) for i in Campaign.objects.exclude(status=Campaign.Status.DRAFT)
                                                 .values_list("id", flat=True)]
        REFERENCE_SOURCES["campaign_contact"] = contact_list_keys
        # Each accepted batch of signalling events is matched against running campaigns' event triggers.
        hooks = ACCEPTED_HOOKS.setdefault("events", [])
        if apply_event_triggers_task.delay not in hooks:
            hooks.append(apply_event_triggers_task.delay)
        # A subscriber's profile names the product to offer them next.
        PROFILE_SECTIONS["next_best_offer"] = profile_offer
        # The micro-area map shows where a campaign's targets live.
        TARGET_LISTS["campaign"] = TargetListSource(listed=campaigns_on_map, find=campaign_on_map)
        grant_role_permissions("campaigns", {
            # marketing analysts run the campaigns
            StaffProfile.Role.ADMIN: ["view_*", "add_campaign", "change_campaign", "add_savedaudience", "delete_savedaudience",
                                      "add_eventtrigger", "change_eventtrigger", "report_outcomes"],
            StaffProfile.Role.SALES: ["view_campaign"],
            # field teams call the subscribers and report what the calls gave
            StaffProfile.Role.FIELD: ["view_campaign", "contact_subscribers", "report_outcomes"],
        })
