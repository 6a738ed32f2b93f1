"""Reference data and runs (reference.py); tag definitions, their versions and bitmap snapshots (tags.py);
per-district terminal aggregates of published snapshots (terminals.py)."""

from .audit import AuditEvent
from .reference import (
    IngestBatch,
    Product,
    Region,
    Snapshot,
    SnapshotPartition,
    SnapshotRun,
    StaffProfile,
    Subscriber,
    Subscription,
)
from .tags import RegionSnapshot, ScoreSnapshot, SegmentModel, TagDefinition, TagSnapshot, TagVersion
from .terminals import HandsetSwitch, TerminalShare, TerminalSummary

__all__ = [
    "AuditEvent", "HandsetSwitch", "IngestBatch", "Product", "Region", "RegionSnapshot", "ScoreSnapshot", "SegmentModel", "Snapshot", "SnapshotPartition",
    "SnapshotRun", "StaffProfile", "Subscriber", "Subscription", "TagDefinition", "TagSnapshot", "TagVersion",
    "TerminalShare", "TerminalSummary",
]
