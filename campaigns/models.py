"""Campaigns (营销活动): an audience for a product, a random control group, a frozen target list."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tagging.models import Product, Region, Snapshot


class CampaignQuerySet(models.QuerySet):
    def visible_to(self, user) -> "CampaignQuerySet":
        """Those in any of the user's regions (a campaign over several districts shows to each)."""
        return self.filter(regions__in=Region.objects.visible_to(user)).distinct()


class SavedAudience(models.Model):
    """An audience expression kept under a name, for campaigns to reuse; seen in the regions it was saved for."""

    name = models.CharField(max_length=100)
    expression = models.TextField()
    description = models.TextField(blank=True)
    regions = models.ManyToManyField(Region, related_name="saved_audiences")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="saved_audiences")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        FROZEN = "frozen", _("Frozen")
        RUNNING = "running", _("Running")
        CLOSED = "closed", _("Closed")

    class Channel(models.TextChoices):
        OUTBOUND_CALL = "outbound_call", _("Outbound call")
        SMS = "sms", _("SMS")
        APP_PUSH = "app_push", _("App push")
        STORE = "store", _("Store")

    class Purpose(models.TextChoices):
        SALE = "sale", _("Sale: a product is offered, success is taking it up")
        RETENTION = "retention", _("Retention: an offer to stay, success is not leaving")

    name = models.CharField(max_length=100)
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.SALE)
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns",
                                help_text="What a sale campaign sells; a retention campaign sells nothing")
    offer = models.CharField(max_length=200, blank=True,
                             help_text="What the contact offers, in words (a retention campaign's offer: '30 yuan credit a "
                                       "month for 6 months if you stay'); recorded, not interpreted")
    cost_per_contact = models.DecimalField(
        max_digits=8, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))],
        help_text="Yuan per subscriber contacted; empty: the channel's default (CAMPAIGN_COST_PER_CONTACT)")
    value_per_conversion = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))],
        help_text="Yuan a conversion (a retention campaign: a leaver kept) is worth; empty: the product's monthly fee, "
                  "or a kept target's monthly revenue, times CAMPAIGN_VALUE_MONTHS")
    audience = models.TextField(help_text="Audience expression over tags, area(\"...\") and hex(\"...\")")
    saved_audience = models.ForeignKey(SavedAudience, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="campaigns", help_text="Where the expression was taken from")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    start_date = models.DateField()
    end_date = models.DateField()
    class ControlKind(models.TextChoices):
        HOLDOUT = "holdout", _("Holdout: a share of the audience, never contacted")
        RANDOM = "random", _("Random group: drawn from all eligible subscribers, contacted alike")

    control_share = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.100"),
                                        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("0.5"))],
                                        help_text="Size of the control group as a share of the eligible audience")
    control_kind = models.CharField(
        max_length=8, choices=ControlKind.choices, default=ControlKind.HOLDOUT,
        help_text="Holdout measures what contacting adds (uptake, whole groups); a random group contacted like the "
                  "targets measures what the targeting adds (reported conversions of those contacted)")
    regions = models.ManyToManyField(Region, related_name="campaigns", help_text="Districts the campaign runs in")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="campaigns")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when frozen: what the target list was made from, so that it can be made again to the row.
    snapshot = models.ForeignKey(Snapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns")
    seed = models.BigIntegerField(null=True, blank=True, help_text="Seed of the control group's draw")
    tag_versions = models.JSONField(default=dict, blank=True, help_text="Tag code -> version the snapshot used")
    counts = models.JSONField(default=dict, blank=True, help_text="audience, excluded by reason, targets, control")
    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("contact_subscribers", "May export full MSISDNs to contact subscribers"),
                       ("report_outcomes", "May report contact outcomes for targets of their districts")]
        constraints = [
            models.CheckConstraint(condition=models.Q(end_date__gte=models.F("start_date")), name="campaign_ends_after_it_starts"),
            models.CheckConstraint(condition=models.Q(purpose="sale", product__isnull=False)
                                   | models.Q(purpose="retention", product__isnull=True),
                                   name="campaign_sells_a_product_unless_retention"),
            models.CheckConstraint(condition=models.Q(cost_per_contact__isnull=True) | models.Q(cost_per_contact__gte=0),
                                   name="campaign_cost_not_negative"),
            models.CheckConstraint(condition=models.Q(value_per_conversion__isnull=True)
                                   | models.Q(value_per_conversion__gte=0), name="campaign_value_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"


class ContactBlackout(models.Model):
    """Days no campaign may contact subscribers (festivals, network incidents, regulator orders): exports
    are refused on them."""

    start_date = models.DateField()
    end_date = models.DateField()
    reason = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-start_date"]
        constraints = [models.CheckConstraint(condition=models.Q(end_date__gte=models.F("start_date")),
                                              name="blackout_ends_after_it_starts")]

    def __str__(self) -> str:
        return f"{self.start_date}-{self.end_date} {self.reason}"


class ExportLog(models.Model):
    """Every target-list export, of a campaign, a micro-area or a hex: who, what was asked, the districts it
    covered, how many rows, the SHA-256 of the body. Append-only."""

    class Kind(models.TextChoices):
        CAMPAIGN = "campaign", _("Campaign targets")
        AREA = "area", _("Micro-area targets")
        HEX = "hex", _("Hex targets")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exports")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CAMPAIGN)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="exports")
    regions = models.ManyToManyField(Region, related_name="+", help_text="The districts the list covered")
    filters = models.JSONField(default=dict)
    format = models.CharField(max_length=4)
    full_msisdn = models.BooleanField()
    rows = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    completed = models.BooleanField(default=False, help_text="False: the client stopped reading before the end")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=models.Q(kind="campaign", campaign__isnull=False)
                                              | ~models.Q(kind="campaign") & models.Q(campaign__isnull=True),
                                              name="export_log_campaign_iff_campaign_kind")]

    def save(self, *args, **kwargs):
        if self.pk is not None and ExportLog.objects.filter(pk=self.pk, completed=True).exists():
            raise ValueError("the export log is append-only: a finished entry is never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("the export log is append-only: entries are never deleted")


class ExportQuota(models.Model):
    """Target rows a user has taken of their daily export quota (EXPORT_ROWS_PER_DAY). An export reserves its
    rows with one conditional UPDATE before its first row is sent, so parallel exports cannot pass the quota
    together; what a stream did not send is given back when it ends."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    rows = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="export_quota_once_per_user_and_day")]

    def __str__(self) -> str:
        return f"{self.user} {self.day}: {self.rows:,}"


class PropensityModel(models.Model):
    """A run's logistic propensity model for one product: what it learnt from, how well it ranks, its numbers.

    Fitted on an earlier snapshot's features against take-up of the product by the run's as-of date; the
    run scores every subscriber into deciles (`propensity_<product>`), usable in rules and audiences."""

    class Status(models.TextChoices):
        FITTED = "fitted", _("Fitted")
        SKIPPED = "skipped", _("Skipped")

    run = models.ForeignKey("tagging.SnapshotRun", on_delete=models.CASCADE, related_name="propensity_models")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="propensity_models")
    status = models.CharField(max_length=8, choices=Status.choices)
    note = models.CharField(max_length=300, blank=True, help_text="Why no model was fitted, when none was")
    trained_on = models.ForeignKey(Snapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The snapshot whose features the model learnt from")
    horizon_days = models.PositiveSmallIntegerField(default=0, help_text="Days of take-up after that snapshot")
    training_rows = models.PositiveIntegerField(default=0)
    positives = models.PositiveIntegerField(default=0, help_text="Training rows that took the product up")
    auc = models.FloatField(null=True, blank=True, help_text="Area under the ROC curve, held-out 30%")
    top_decile_lift = models.FloatField(null=True, blank=True, help_text="Take-up in the held-out top decile / overall")
    fitted = models.JSONField(default=dict, blank=True, help_text="Inputs, standardisation, coefficients, cut points")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-run_id", "product__code"]
        constraints = [models.UniqueConstraint(fields=["run", "product"], name="propensity_model_unique")]

    def __str__(self) -> str:
        return f"propensity_{self.product.code} (run #{self.run_id}, {self.status})"


class ResponseModel(models.Model):
    """A run's response model for one product (响应模型): learnt from earlier campaigns' contact results, who converted
    among those reached when called about the product, on each contact's features in the snapshot their campaign was
    frozen from. The run scores every subscriber into deciles (`response_<product>`), for a new campaign to rank by."""

    class Status(models.TextChoices):
        FITTED = "fitted", _("Fitted")
        SKIPPED = "skipped", _("Skipped")

    run = models.ForeignKey("tagging.SnapshotRun", on_delete=models.CASCADE, related_name="response_models")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="response_models")
    status = models.CharField(max_length=8, choices=Status.choices)
    note = models.CharField(max_length=300, blank=True, help_text="Why no model was fitted, when none was")
    campaigns = models.JSONField(default=list, blank=True, help_text="The campaigns whose contacts it learnt from")
    training_rows = models.PositiveIntegerField(default=0, help_text="Contacts that reached the subscriber")
    positives = models.PositiveIntegerField(default=0, help_text="Of them, conversions")
    auc = models.FloatField(null=True, blank=True, help_text="Area under the ROC curve, held-out 30%")
    top_decile_lift = models.FloatField(null=True, blank=True, help_text="Conversion in the held-out top decile / overall")
    fitted = models.JSONField(default=dict, blank=True, help_text="Inputs, standardisation, coefficients, cut points")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-run_id", "product__code"]
        constraints = [models.UniqueConstraint(fields=["run", "product"], name="response_model_unique")]

    def __str__(self) -> str:
        return f"response_{self.product.code} (run #{self.run_id}, {self.status})"


class ChurnModel(models.Model):
    """A run's churn-warning model (离网预警): what it learnt from, which learner won and by how much, its drivers.

    Fitted on an earlier snapshot's active subscribers against closing or porting out in the window after it; the run
    scores every active subscriber into deciles (`churn_risk`), with their top reasons (`churn_reason_1..3`)."""

    class Status(models.TextChoices):
        FITTED = "fitted", _("Fitted")
        SKIPPED = "skipped", _("Skipped")

    run = models.OneToOneField("tagging.SnapshotRun", on_delete=models.CASCADE, related_name="churn_model")
    status = models.CharField(max_length=8, choices=Status.choices)
    note = models.CharField(max_length=300, blank=True, help_text="Why no model was fitted, when none was")
    trained_on = models.ForeignKey(Snapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The snapshot whose features the model learnt from")
    window_days = models.PositiveSmallIntegerField(default=0, help_text="Days after that snapshot a leaver is counted in")
    training_rows = models.PositiveIntegerField(default=0)
    churners = models.PositiveIntegerField(default=0, help_text="Training rows that closed or ported out in the window")
    held_out_rows = models.PositiveIntegerField(default=0)
    held_out_churners = models.PositiveIntegerField(default=0)
    learner = models.CharField(max_length=20, blank=True, help_text="The learner kept: the better held-out AUC")
    auc = models.FloatField(null=True, blank=True, help_text="The kept learner's area under the ROC curve, held out")
    other_auc = models.FloatField(null=True, blank=True, help_text="The other learner's, on the same rows")
    top_decile_lift = models.FloatField(null=True, blank=True, help_text="Churn in the held-out top decile / overall")
    fitted = models.JSONField(default=dict, blank=True, help_text="Inputs, standardisation, importances, cut points")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-run_id"]

    def __str__(self) -> str:
        return f"churn_risk (run #{self.run_id}, {self.status})"


class EventTrigger(models.Model):
    """触点营销: an event rule attached to a campaign. While the campaign runs, each accepted batch of
    signalling events adds the subscribers it matches to the campaign's target stream."""

    class Kind(models.TextChoices):
        HANDSET_5G = "handset_5g", _("Changed to a 5G handset")
        ENTERED_AREA = "entered_area", _("First seen in a micro-area")
        BACK_ON = "back_on", _("Back on after a long power-off")
        ROAMING_START = "roaming_start", _("Roaming started")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="triggers")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    micro_area = models.ForeignKey("microarea.MicroArea", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", help_text="For entered_area: the area entered")
    min_off_days = models.PositiveSmallIntegerField(default=3, help_text="For back_on: days off at least")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [models.CheckConstraint(condition=~models.Q(kind="entered_area") | models.Q(micro_area__isnull=False),
                                              name="entered_area_names_its_area")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} -> campaign #{self.campaign_id}"


class TriggeredTarget(models.Model):
    """A subscriber an event trigger added to a running campaign (its target stream), once per campaign."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="triggered")
    trigger = models.ForeignKey(EventTrigger, on_delete=models.CASCADE, related_name="targets")
    subscriber_id = models.BigIntegerField()
    group = models.CharField(max_length=8, help_text="target, or control: held out by the campaign's share")
    region_code = models.CharField(max_length=12)
    event_time = models.DateTimeField(help_text="When the matching event happened")
    batch = models.ForeignKey("tagging.IngestBatch", on_delete=models.PROTECT, related_name="+",
                              help_text="The events batch it was found in")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "added_at", "subscriber_id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "subscriber_id"], name="triggered_once_per_campaign")]


class TriggerPass(models.Model):
    """One events batch matched against the running campaigns' triggers: when, and how many it added
    (how fast touch-point marketing acts is the gap between the batch's ingest and this)."""

    batch = models.OneToOneField("tagging.IngestBatch", on_delete=models.CASCADE, related_name="trigger_pass")
    added = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "trigger passes"

    def __str__(self) -> str:
        return f"events batch #{self.batch_id}: {self.added} added"
