"""Reference data (regions, subscribers, products), staff scoping, ingest batches and snapshot runs."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q, Value
from django.db.models.functions import Concat, Substr
from django.utils.translation import gettext_lazy as _

from ..privacy import mask_msisdn


class RegionQuerySet(models.QuerySet):
    def visible_to(self, user) -> "RegionQuerySet":
        """The user's assigned regions and everything below them; superusers see all, others nothing."""
        if not user or not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self.all()
        paths = list(Region.objects.filter(staff__user=user).values_list("path", flat=True))
        if not paths:
            return self.none()
        condition = Q()
        for path in paths:
            condition |= Q(path__startswith=path)
        return self.filter(condition)

    def districts(self) -> "RegionQuerySet":
        return self.filter(level=Region.Level.DISTRICT)


class Region(models.Model):
    """An administrative area: province > city > district."""

    class Level(models.TextChoices):
        PROVINCE = "province", _("Province")
        CITY = "city", _("City")
        DISTRICT = "district", _("District")

    code = models.CharField(max_length=12, unique=True, help_text="Administrative division code, e.g. 440604")
    name = models.CharField(max_length=64)
    name_en = models.CharField(max_length=64, blank=True)
    level = models.CharField(max_length=10, choices=Level.choices)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # Materialised ancestry ("44/4406/440604/") so scoping a user to a region and all below it is one
    # indexed prefix filter instead of a recursive walk.
    path = models.CharField(max_length=255, db_index=True, editable=False)

    objects = RegionQuerySet.as_manager()

    class Meta:
        ordering = ["path"]

    def __str__(self) -> str:
        return f"{self.name} {self.name_en}".strip()

    def clean(self):
        """A code is what the lake's files and every published snapshot name the region by: it is not changed once
        subscribers belong to the region; a parent below the region itself would make a loop."""
        if self.pk is None:
            return
        before = Region.objects.filter(pk=self.pk).values("code", "path").first()
        if before and before["code"] != self.code and Subscriber.objects.filter(region__path__startswith=before["path"]).exists():
            raise ValidationError({"code": f"subscribers belong to {before['code']} (or the regions below it): its code "
                                           "cannot change; add a new region instead"})
        if before and self.parent is not None and self.parent.path.startswith(before["path"]):
            raise ValidationError({"parent": f"{self.parent} is {self} itself or below it"})

    def save(self, *args, **kwargs):
        before = Region.objects.filter(pk=self.pk).values_list("path", flat=True).first() if self.pk else None
        self.path = f"{self.parent.path if self.parent else ''}{self.code}/"
        with transaction.atomic():
            super().save(*args, **kwargs)
            if before and before != self.path:
                # Moved (a new parent or code): every region below follows, so that scoping by path stays true.
                Region.objects.filter(path__startswith=before).exclude(pk=self.pk).update(
                    path=Concat(Value(self.path), Substr("path", len(before) + 1)))


class StaffProfile(models.Model):
    """A staff member's role and the regions they work in; every list is scoped by these regions."""

    class Role(models.TextChoices):
        ADMIN = "admin", _("Admin (marketing analyst)")
        SALES = "sales", _("Regional sales")
        FIELD = "field", _("Field team")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(max_length=10, choices=Role.choices)
    regions = models.ManyToManyField(Region, related_name="staff", blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"

    @property
    def may_contact_subscribers(self) -> bool:
        """Only field teams call subscribers, so only they may see full numbers in their exports."""
        return self.role == self.Role.FIELD


class RegionScopedQuerySet(models.QuerySet):
    """Rows that belong to a region: visible in that region and every region above it."""

    def visible_to(self, user) -> "RegionScopedQuerySet":
        return self.filter(region__in=Region.objects.visible_to(user))


class SubscriberQuerySet(RegionScopedQuerySet):

    def reachable(self) -> "SubscriberQuerySet":
        """Active subscribers who have not opted out of marketing."""
        return self.filter(status=Subscriber.Status.ACTIVE, marketing_opt_out=False)


class Subscriber(models.Model):
    """A subscriber, keyed by a dense integer id that the lake and every bitmap use."""

    class Brand(models.TextChoices):
        GOTONE = "全球通", _("GoTone")
        MZONE = "动感地带", _("M-Zone")
        EASYOWN = "神州行", _("Easy Own")

    class Gender(models.TextChoices):
        MALE = "M", _("Male")
        FEMALE = "F", _("Female")
        UNKNOWN = "U", _("Unknown")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")
        CLOSED = "closed", _("Closed")
        PORTED_OUT = "ported_out", _("Ported out")

    id = models.PositiveBigIntegerField(primary_key=True)
    msisdn = models.CharField(max_length=15, unique=True)
    pseudonym = models.CharField(max_length=64, unique=True, help_text="HMAC-SHA256 of the MSISDN")
    brand = models.CharField(max_length=8, choices=Brand.choices)
    plan = models.CharField(max_length=64)
    join_date = models.DateField()
    birth_year = models.PositiveSmallIntegerField(null=True, blank=True)
    gender = models.CharField(max_length=1, choices=Gender.choices, default=Gender.UNKNOWN)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="subscribers")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    status_date = models.DateField(null=True, blank=True, help_text="When the status took effect (a line left that day)")
    marketing_opt_out = models.BooleanField(default=False)
    batch = models.ForeignKey("IngestBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["region", "status"])]
        # What subscribers do online and whom they call is for analysts: sales staff see it as counts and map layers,
        # field teams not at all. A circle listing (its peers) is audited.
        permissions = [("view_behaviour", "May see a subscriber's interests and call-circle features"),
                       ("view_circle", "May list a subscriber's call circle (each listing is audited)")]

    def __str__(self) -> str:
        return f"#{self.id} {self.msisdn_masked}"

    @property
    def msisdn_masked(self) -> str:
        return mask_msisdn(self.msisdn)


class Product(models.Model):
    """A product or service the operator sells (plan, package, broadband, membership)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    name_en = models.CharField(max_length=64, blank=True)
    category = models.CharField(max_length=32)
    monthly_fee_yuan = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    # The product's customer classes on the map and in area stats: developed (holds it), demand (does not,
    # and this tag says they need it), potential (neither, and this tag says they would take it).
    demand_tag = models.ForeignKey("tagging.TagDefinition", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="demand_for", help_text="需求客户: a tag saying a subscriber needs it")
    potential_tag = models.ForeignKey("tagging.TagDefinition", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="potential_for",
                                      help_text="潜在客户: the product's audience rule or propensity tag")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} {self.name_en}".strip()


class SubscriptionQuerySet(models.QuerySet):
    def visible_to(self, user) -> "SubscriptionQuerySet":
        return self.filter(subscriber__region__in=Region.objects.visible_to(user))

    def active_on(self, day) -> "SubscriptionQuerySet":
        return self.filter(Q(end_date__isnull=True) | Q(end_date__gte=day), start_date__lte=day)


class Subscription(models.Model):
    """A subscriber holding a product over a period (end open while it lasts)."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="subscriptions")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="subscriptions")
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "product", "start_date"], name="subscription_unique"),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="subscription_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber} {self.product.code} {self.start_date}..{self.end_date or ''}"


def relative_to_data(path) -> str:
    """A path under DATA_DIR as stored: relative to it, so that workers may mount the shared lake anywhere and a
    restored backup works in another folder. One written elsewhere before (an older absolute path) keeps what
    follows its lake/ or reports/ folder."""
    text = str(path)
    if not text or not text.startswith("/"):
        return text
    root = str(settings.DATA_DIR).rstrip("/") + "/"
    if text.startswith(root):
        return text[len(root):]
    for folder in ("/lake/", "/reports/"):
        if folder in text:
            return folder.strip("/") + "/" + text.rsplit(folder, 1)[1]
    return text


def in_data_dir(stored: str) -> str:
    """A stored path as this process finds it: under its own DATA_DIR."""
    return str(Path(settings.DATA_DIR) / stored) if stored and not stored.startswith("/") else stored


class DataPathField(models.CharField):
    """A file under DATA_DIR: stored relative to it, read as the absolute path in this process's DATA_DIR."""

    def from_db_value(self, value, expression, connection):
        return in_data_dir(value) if value else value

    def get_prep_value(self, value):
        return relative_to_data(super().get_prep_value(value) or "")


class IngestBatchQuerySet(models.QuerySet):
    def accepted(self) -> "IngestBatchQuerySet":
        return self.filter(status=IngestBatch.Status.ACCEPTED)



class IngestBatch(models.Model):
    """One attempt to ingest one file into the lake: all of it or none of it."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")
        UNCHANGED = "unchanged", _("Already ingested")

    dataset = models.CharField(max_length=32, db_index=True)
    file_name = models.CharField(max_length=500)
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the file")
    size_bytes = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    rows_total = models.PositiveBigIntegerField(default=0)
    rows_accepted = models.PositiveBigIntegerField(default=0)
    rows_rejected = models.PositiveBigIntegerField(default=0)
    message = models.TextField(blank=True)
    errors = models.JSONField(default=list, blank=True, help_text="The first rejected rows: line, column, reason")
    report_path = DataPathField(max_length=500, blank=True)
    lake_path = DataPathField(max_length=500, blank=True)
    period_start = models.DateField(null=True, blank=True, help_text="Earliest day the rows describe")
    period_end = models.DateField(null=True, blank=True, help_text="Latest day the rows describe")
    same_as = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = IngestBatchQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ingest batches"
        constraints = [
            # The database itself refuses to accept one file twice, even from two racing ingests.
            models.UniqueConstraint(
                fields=["dataset", "checksum"], condition=Q(status="accepted"), name="ingest_accept_file_once"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.dataset} {self.file_name} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if not self.finished_at:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


class SnapshotRunQuerySet(models.QuerySet):
    def active(self) -> "SnapshotRunQuerySet":
        return self.filter(status=SnapshotRun.Status.RUNNING)

    def with_progress(self) -> "SnapshotRunQuerySet":
        """Each run with its partitions done counted in the same query (lists show every run's progress)."""
        return self.annotate(partitions_done=models.Count(
            "partitions", filter=Q(partitions__status=SnapshotPartition.Status.DONE)))


class SnapshotRun(models.Model):
    """Computing a snapshot as of a date, stage by stage over subscriber-id partitions."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Published")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    as_of_date = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    stage = models.CharField(max_length=32, blank=True, help_text="The stage now running")
    window_days = models.PositiveSmallIntegerField()
    partition_size = models.PositiveIntegerField()
    partition_count = models.PositiveIntegerField(default=0)
    max_subscriber_id = models.PositiveBigIntegerField(default=0)
    lake_batches = models.JSONField(default=dict, help_text="The accepted ingest batches read, per dataset")
    definitions = models.JSONField(
        default=dict, blank=True, help_text="What the run pinned before its later stages: tag versions, segment model"
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = SnapshotRunQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        # One run at a time, enforced where two requests at once cannot both pass: the database.
        constraints = [models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="one_running_snapshot_run")]

    def __str__(self) -> str:
        return f"run #{self.id} as of {self.as_of_date} ({self.status})"

    @property
    def progress(self) -> float:
        """Share of (stage, partition) work items done, 0..1, counting the stages not yet started."""
        from ..stages import STAGES

        if self.status == self.Status.SUCCEEDED:
            return 1.0
        total = self.partition_count * len(STAGES)
        done = getattr(self, "partitions_done", None)  # annotated by with_progress() in lists
        if done is None:
            done = self.partitions.filter(status=SnapshotPartition.Status.DONE).count()
        return min(done / total, 1.0) if total else 0.0


class SnapshotPartition(models.Model):
    """One stage over one subscriber-id range of one run; keyed so a redelivered task overwrites."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    run = models.ForeignKey(SnapshotRun, on_delete=models.CASCADE, related_name="partitions")
    stage = models.CharField(max_length=32)
    index = models.PositiveIntegerField()
    id_from = models.PositiveBigIntegerField(help_text="First subscriber id (inclusive)")
    id_to = models.PositiveBigIntegerField(help_text="Last subscriber id (exclusive)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    rows = models.PositiveBigIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True, help_text="The lease of the worker computing it: only that "
                                                                  "worker writes its result")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "stage", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "stage", "index"], name="partition_unique")]

    def __str__(self) -> str:
        return f"{self.run} {self.stage}[{self.index}] {self.status}"


class SnapshotQuerySet(models.QuerySet):
    def current(self) -> "Snapshot | None":
        return self.filter(is_current=True).first()


class Snapshot(models.Model):
    """A published, immutable snapshot; exactly one is current (the latest as-of date, the latest published of
    that date), the others are history: a backfill published later never displaces newer data."""

    run = models.OneToOneField(SnapshotRun, on_delete=models.PROTECT, related_name="snapshot")
    as_of_date = models.DateField(db_index=True)
    published_at = models.DateTimeField(auto_now_add=True)
    is_current = models.BooleanField(default=False)
    subscriber_count = models.PositiveBigIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["-as_of_date", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["is_current"], condition=Q(is_current=True), name="one_current_snapshot")
        ]
        # Without it (sales staff, field teams) counts narrowed to a place are shown as the suppressed map shows them.
        permissions = [("view_small_counts", "May count single hexes and see exact counts narrowed by area()")]

    def __str__(self) -> str:
        return f"snapshot {self.as_of_date} (run #{self.run_id}){' current' if self.is_current else ''}"

    def previous(self) -> "Snapshot | None":
        """The latest snapshot of an earlier date: what "change since the previous snapshot" compares with."""
        return Snapshot.objects.filter(as_of_date__lt=self.as_of_date).order_by("-as_of_date", "-id").first()
