"""The stages of a snapshot run, in order. Other apps register theirs in AppConfig.ready().

A stage computes one subscriber-id partition of one run and writes its result to a file keyed by
(run, stage, partition), so a redelivered or retried task overwrites instead of duplicating.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from ..lake.sql import literal

if TYPE_CHECKING:
    from ..models import Snapshot, SnapshotRun


@dataclass(frozen=True)
class PartitionWork:
    """What a stage gets: the run's as-of date and window, the id range and the lake files to read."""

    run_id: int
    index: int  # the partition's number, the same in every stage
    as_of: date
    window_days: int
    id_from: int
    id_to: int
    lake_files: dict[str, list[str]]  # dataset -> Parquet files of the batches the run pinned
    definitions: dict = field(default_factory=dict)  # what the run pinned before this stage (SnapshotRun.definitions)

    @property
    def ids_sql(self) -> str:
        """SQL condition selecting the partition's subscribers (lake files prune row groups by it)."""
        return f"subscriber_id >= {self.id_from} AND subscriber_id < {self.id_to}"

    @property
    def window_start(self) -> date:
        return self.as_of - timedelta(days=self.window_days - 1)

    @property
    def trend_starts(self) -> tuple[date, date]:
        """The first days of the previous and the current trend period (pinned by the features stage's prepare)."""
        trend = self.definitions["trend"]
        return date.fromisoformat(trend["previous"][0]), date.fromisoformat(trend["current"][0])

    def output_path(self, stage: str, index: int) -> Path:
        return snapshot_dir(self.run_id) / stage / f"part={index:05d}.parquet"

    def earlier_output(self, stage: str) -> Path:
        """The file an earlier stage of this run wrote for the same id range."""
        return self.output_path(stage, self.index)


@dataclass(frozen=True)
class Stage:
    name: str
    label: str
    order: int
    compute: Callable[[duckdb.DuckDBPyConnection, PartitionWork, Path], dict]  # writes the file, returns a summary
    # Run once before the stage's partitions are created, with the run; returns what to pin into
    # run.definitions for every partition to read (tag versions, a fitted model, periods).
    prepare: Callable[["SnapshotRun"], dict] | None = None
    # Run inside the publishing transaction, to store the stage's results in the database.
    publish: Callable[["SnapshotRun", "Snapshot"], dict] | None = None


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> None:
    STAGES[stage.name] = stage


def ordered_stages() -> list[Stage]:
    return sorted(STAGES.values(), key=lambda s: s.order)


def snapshot_dir(run_id: int) -> Path:
    return Path(settings.LAKE_DIR) / "snapshots" / f"run-{run_id:06d}"


def stage_files(run_id: int, stage: str) -> list[str]:
    """The files every partition of a run's stage wrote, in partition order (none before the stage ran)."""
    return sorted(str(p) for p in (snapshot_dir(run_id) / stage).glob("part=*.parquet"))


def stage_sql(run_id: int, stage: str) -> str:
    """A run's stage output as one relation (all its partitions); the stage must have written its files."""
    return f"read_parquet({literal(snapshot_dir(run_id) / stage / 'part=*.parquet')})"


def local_offset_seconds(day: date) -> int:
    """The UTC offset of TIME_ZONE at noon of `day`: local hours are counted with it over a window (no daylight
    saving in China; elsewhere, hours near a change are one off)."""
    noon = datetime.combine(day, time(12), tzinfo=ZoneInfo(settings.TIME_ZONE))
    return int(noon.utcoffset().total_seconds())


# Snapshot files are written once and read a few times within their life: Snappy writes a wide feature
# table about a third faster than zstd (bench/tags.py) for somewhat larger files; the lake keeps zstd.
STAGE_COMPRESSION = "snappy"


def _partial(target: Path) -> Path:
    """A temporary name beside the target: written there, then renamed, so a reader never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name}.{os.getpid()}.partial")


def write_atomically(con: duckdb.DuckDBPyConnection, select: str, target: Path, params=None) -> None:
    """COPY a query to Parquet through a temporary name."""
    partial = _partial(target)
    con.execute(f"COPY ({select}) TO '{partial}' (FORMAT parquet, COMPRESSION {STAGE_COMPRESSION})", params or {})
    os.replace(partial, target)


def write_table_atomically(table: pa.Table, target: Path, con: duckdb.DuckDBPyConnection | None = None) -> None:
    """Write an Arrow table to Parquet through a temporary name; through DuckDB when given a connection (its writer
    uses every thread: a partition's 1.8 M peer rows in 0.13 s, pyarrow's 0.24 s)."""
    if con is None:
        partial = _partial(target)
        pq.write_table(table, partial)
        os.replace(partial, target)
        return
    con.register("_arrow_rows", table)
    try:
        write_atomically(con, "SELECT * FROM _arrow_rows", target)
    finally:
        con.unregister("_arrow_rows")
