"""Sets of subscribers as Roaring bitmaps of their dense ids: how tags, audiences and campaign lists are counted
and combined, and how a snapshot stage stores them (one file per partition, merged when published)."""

from __future__ import annotations

import array
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyroaring import BitMap

from .stages import stage_files, write_table_atomically

GRADES = range(1, 11)  # graded scores (propensity deciles, circle shares) run 1 to 10


def to_bitmap(ids: np.ndarray) -> BitMap:
    return BitMap(array.array("I", ids.astype(np.uint32).tobytes()))


def write_bitmaps(entries: list[tuple[str, str, BitMap]], target: Path) -> None:
    """A partition's bitmaps, (kind, key, bitmap) each, as one file (kind, key, count, bitmap)."""
    write_table_atomically(pa.table({
        "kind": pa.array([kind for kind, _, _ in entries], pa.string()),
        "key": pa.array([key for _, key, _ in entries], pa.string()),
        "count": pa.array([len(bitmap) for _, _, bitmap in entries], pa.int64()),
        "bitmap": pa.array([bitmap.serialize() for _, _, bitmap in entries], pa.binary()),
    }), target)


def merge_bitmaps(files: list[str]) -> dict[tuple[str, str], BitMap]:
    """The union, per (kind, key), of the bitmap files every partition of a run wrote (stage_files)."""
    merged: dict[tuple[str, str], BitMap] = {}
    for path in files:
        table = pq.read_table(path).to_pydict()
        for kind, key, blob in zip(table["kind"], table["key"], table["bitmap"]):
            merged.setdefault((kind, key), BitMap()).update(BitMap.deserialize(blob))
    return merged


def write_graded_bitmaps(con, source: Path, scores: list[str], target: Path) -> None:
    """A bitmap per (score, grade) of a partition's file holding one graded column (1-10, NULL: none) per score."""
    entries = []
    if scores:
        data = con.execute(f"SELECT subscriber_id, {', '.join(scores)} FROM read_parquet('{source}')").fetchnumpy()
        ids = np.asarray(data["subscriber_id"])
        for score in scores:
            graded = np.ma.filled(data[score], 0)
            entries += [("score", f"{score}={grade}", to_bitmap(ids[graded == grade])) for grade in GRADES]
    write_bitmaps(entries, target)


def publish_graded_scores(*, run_id: int, stage: str, snapshot) -> int:
    """Store the graded bitmaps every partition of a run's stage wrote as the snapshot's scores; how many."""
    from .models import ScoreSnapshot

    scores = sorted(merge_bitmaps(stage_files(run_id, stage)).items())
    ScoreSnapshot.objects.bulk_create([
        ScoreSnapshot(snapshot=snapshot, code=key.split("=")[0], grade=int(key.split("=")[1]),
                      subscriber_count=len(bitmap), bitmap=bitmap.serialize())
        for (_, key), bitmap in scores
    ])
    return len(scores)
