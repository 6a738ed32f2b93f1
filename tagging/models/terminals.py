"""What a published snapshot holds per district for the terminal snapshot library: small aggregates that
pages and the API read instead of scanning the partition files."""

from __future__ import annotations

from django.db import models

from .reference import Region, RegionScopedQuerySet, Snapshot

CYCLE_BINS = [0, 180, 365, 545, 730, 1095]  # days: under 6 months, 6-12, 12-18, 18-24, 2-3 years, 3 years +


class TerminalShare(models.Model):
    """Subscribers by handset model in one district of a snapshot: the terminal mix (终端结构)."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="terminal_shares")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    brand = models.CharField(max_length=64, blank=True, help_text="Empty: a TAC the catalogue lacks")
    model = models.CharField(max_length=128, blank=True)
    tier = models.CharField(max_length=16, blank=True)
    network = models.CharField(max_length=8, blank=True)
    os = models.CharField(max_length=32, blank=True)
    subscribers = models.PositiveIntegerField()
    knockoffs = models.PositiveIntegerField(default=0)

    objects = RegionScopedQuerySet.as_manager()  # rows are per district

    class Meta:
        ordering = ["snapshot", "region", "-subscribers"]
        indexes = [models.Index(fields=["snapshot", "region"])]

    def __str__(self) -> str:
        return f"{self.brand} {self.model} in {self.region_id} @ {self.snapshot_id}: {self.subscribers}"


class HandsetSwitch(models.Model):
    """Handset changes from one brand to another in the 12 months to the snapshot, by district."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="handset_switches")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    from_brand = models.CharField(max_length=64, blank=True)
    to_brand = models.CharField(max_length=64, blank=True)
    changes = models.PositiveIntegerField()

    objects = RegionScopedQuerySet.as_manager()  # rows are per district

    class Meta:
        ordering = ["snapshot", "region", "from_brand", "to_brand"]
        verbose_name_plural = "handset switches"
        indexes = [models.Index(fields=["snapshot", "region"])]


class TerminalSummary(models.Model):
    """Per district of a snapshot: handsets seen, knock-offs, 5G handsets, changes, and how long people
    keep a handset (subscribers per change-cycle bin, see CYCLE_BINS)."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="terminal_summaries")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    subscribers = models.PositiveIntegerField()
    with_handset = models.PositiveIntegerField()
    knockoffs = models.PositiveIntegerField()
    five_g_handsets = models.PositiveIntegerField()
    changes_12m = models.PositiveIntegerField()
    cycle_bins = models.JSONField(help_text="Subscribers per change-cycle bin, in CYCLE_BINS order")
    cycle_unknown = models.PositiveIntegerField(help_text="Subscribers without a measured change cycle")

    objects = RegionScopedQuerySet.as_manager()  # rows are per district

    class Meta:
        ordering = ["snapshot", "region"]
        constraints = [models.UniqueConstraint(fields=["snapshot", "region"], name="terminal_summary_unique")]
