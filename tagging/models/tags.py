"""Tag definitions with their kept versions, and the bitmaps a published snapshot holds per tag and region."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .reference import Region, Snapshot, SnapshotRun

# A tag's code is a name in the expression language, so it must be an identifier.
tag_code_validator = RegexValidator(
    r"^[a-z][a-z0-9_]{1,47}$", "2-48 characters: lower-case letters, digits and _, starting with a letter"
)


class TagDefinitionQuerySet(models.QuerySet):
    def enabled(self) -> "TagDefinitionQuerySet":
        return self.filter(enabled=True)

    def rules(self) -> "TagDefinitionQuerySet":
        return self.filter(kind=TagDefinition.Kind.RULE)


class TagDefinition(models.Model):
    """A tag of the user tag library: a rule over features, a behaviour segment, or an imported list."""

    class Category(models.TextChoices):
        BASIC = "basic", _("Basic")
        CONSUMPTION = "consumption", _("Consumption")
        BEHAVIOUR = "behaviour", _("Behaviour")
        NEED = "need", _("Need")
        TERMINAL = "terminal", _("Terminal")
        LOCATION = "location", _("Location")
        INTEREST = "interest", _("Interest")
        CIRCLE = "circle", _("Call circle")
        INTERNETWORK = "internetwork", _("Inter-network")
        LIFECYCLE = "lifecycle", _("Lifecycle")
        VALUE = "value", _("Value")
        MODEL = "model", _("Model")
        SEGMENT = "segment", _("Segment")

    class Kind(models.TextChoices):
        RULE = "rule", _("Rule")
        SEGMENT = "segment", _("Segment model")
        IMPORTED = "imported", _("Imported list")

    code = models.CharField(max_length=48, unique=True, validators=[tag_code_validator],
                            help_text="The tag's name in rules and audiences, e.g. sms_expert")
    name = models.CharField(_("name"), max_length=64)
    name_en = models.CharField("English name", max_length=64, blank=True)
    category = models.CharField(max_length=12, choices=Category.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RULE)
    expression = models.TextField(blank=True, help_text="For rules: a condition over features and other tags")
    enabled = models.BooleanField(default=True, help_text="Computed by the next snapshot run")
    description = models.TextField(blank=True, help_text="Why operators use this tag and how it is decided")
    version = models.PositiveIntegerField(default=0, editable=False, help_text="The latest kept version")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TagDefinitionQuerySet.as_manager()

    class Meta:
        ordering = ["category", "code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class TagVersion(models.Model):
    """One kept version of a tag definition: who changed what, when. Never edited afterwards."""

    tag = models.ForeignKey(TagDefinition, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=64)
    name_en = models.CharField(max_length=64, blank=True)
    category = models.CharField(max_length=12, choices=TagDefinition.Category.choices)
    kind = models.CharField(max_length=10, choices=TagDefinition.Kind.choices)
    expression = models.TextField(blank=True)
    enabled = models.BooleanField()
    description = models.TextField(blank=True)
    members = models.BinaryField(null=True, blank=True, help_text="Imported lists: the member ids, as a bitmap")
    member_count = models.PositiveBigIntegerField(null=True, blank=True)
    change = models.CharField(max_length=255, blank=True, help_text="What changed from the version before")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tag", "-number"]
        constraints = [models.UniqueConstraint(fields=["tag", "number"], name="tag_version_unique")]

    def __str__(self) -> str:
        return f"{self.tag.code} v{self.number}"


class TagSnapshotQuerySet(models.QuerySet):
    def current(self) -> "TagSnapshotQuerySet":
        return self.filter(snapshot__is_current=True)


class TagSnapshot(models.Model):
    """The subscribers carrying a tag in a published snapshot, as a serialized roaring bitmap of ids."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="tags")
    tag = models.ForeignKey(TagDefinition, on_delete=models.PROTECT, related_name="snapshots")
    version = models.ForeignKey(TagVersion, on_delete=models.PROTECT, related_name="+")
    subscriber_count = models.PositiveBigIntegerField()
    bitmap = models.BinaryField()

    objects = TagSnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["snapshot", "tag"]
        constraints = [models.UniqueConstraint(fields=["snapshot", "tag"], name="tag_snapshot_unique")]

    def __str__(self) -> str:
        return f"{self.tag.code} @ {self.snapshot.as_of_date}: {self.subscriber_count}"


class RegionSnapshot(models.Model):
    """The subscribers of a district in a published snapshot: what scopes counts to a user's regions."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="regions")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    subscriber_count = models.PositiveBigIntegerField()
    bitmap = models.BinaryField()

    class Meta:
        ordering = ["snapshot", "region"]
        constraints = [models.UniqueConstraint(fields=["snapshot", "region"], name="region_snapshot_unique")]


class SegmentModel(models.Model):
    """The k-means behaviour segments a run fitted: centroids, automatic descriptions, and their stable codes."""

    run = models.OneToOneField(SnapshotRun, on_delete=models.CASCADE, related_name="segment_model")
    k = models.PositiveSmallIntegerField()
    features = models.JSONField(help_text="Behaviour features, in order, as transformed before standardising")
    mean = models.JSONField()
    scale = models.JSONField()
    centroids = models.JSONField(help_text="Per segment code: the centroid in standardised units")
    descriptions = models.JSONField(help_text="Per segment code: the most distinguishing features, zh and en")
    sample_size = models.PositiveIntegerField()
    matched_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The previous model whose segment codes were carried over")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"segments of run #{self.run_id} (k={self.k})"


class ScoreSnapshot(models.Model):
    """The subscribers of one grade of a graded score (a propensity decile, 1-10) in a published snapshot:
    what `propensity_5g_plan >= 8` in an audience unions."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="scores")
    code = models.CharField(max_length=64, help_text="The score's name in expressions, e.g. propensity_5g_plan")
    grade = models.PositiveSmallIntegerField(help_text="1 (lowest) to 10 (highest)")
    subscriber_count = models.PositiveBigIntegerField()
    bitmap = models.BinaryField()

    class Meta:
        ordering = ["snapshot", "code", "grade"]
        constraints = [models.UniqueConstraint(fields=["snapshot", "code", "grade"], name="score_snapshot_unique")]

    def __str__(self) -> str:
        return f"{self.code} = {self.grade} @ {self.snapshot.as_of_date}: {self.subscriber_count}"
