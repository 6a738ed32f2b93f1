"""Reference data and runs (reference.py); tag definitions, their versions and bitmap snapshots (tags.py)."""

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
from .tags import RegionSnapshot, SegmentModel, TagDefinition, TagSnapshot, TagVersion

__all__ = [
    "IngestBatch", "Product", "Region", "RegionSnapshot", "SegmentModel", "Snapshot", "SnapshotPartition",
    "SnapshotRun", "StaffProfile", "Subscriber", "Subscription", "TagDefinition", "TagSnapshot", "TagVersion",
]
