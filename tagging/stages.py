"""The stages of a snapshot run, in order. Other apps register theirs in AppConfig.ready().

A stage computes one subscriber-id partition of one run and writes its result to a file keyed by
(run, stage, partition), so a redelivered or retried task overwrites instead of duplicating.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
from django.conf import settings

from .lake.store import files_sql, read_sql


@dataclass(frozen=True)
class PartitionWork:
    """What a stage gets: the run's as-of date and window, the id range and the lake files to read."""

    run_id: int
    as_of: date
    window_days: int
    id_from: int
    id_to: int
    lake_files: dict[str, list[str]]  # dataset -> Parquet files of the batches the run pinned

    @property
    def window_start(self) -> date:
        return self.as_of - timedelta(days=self.window_days - 1)

    def output_path(self, stage: str, index: int) -> Path:
        return snapshot_dir(self.run_id) / stage / f"part={index:05d}.parquet"


@dataclass(frozen=True)
class Stage:
    name: str
    label: str
    order: int
    compute: Callable[[duckdb.DuckDBPyConnection, PartitionWork, Path], dict]  # writes the file, returns a summary


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> None:
    STAGES[stage.name] = stage


def ordered_stages() -> list[Stage]:
    return sorted(STAGES.values(), key=lambda s: s.order)


def snapshot_dir(run_id: int) -> Path:
    return Path(settings.LAKE_DIR) / "snapshots" / f"run={run_id:06d}"


def write_atomically(con: duckdb.DuckDBPyConnection, select: str, target: Path, params=None) -> None:
    """COPY a query to Parquet through a temporary name, so a reader never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    con.execute(f"COPY ({select}) TO '{partial}' (FORMAT parquet, COMPRESSION zstd)", params or {})
    os.replace(partial, target)


def compute_usage_totals(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    """Per-subscriber usage over the window: every subscriber of the partition, zeros when silent."""
    subscribers = read_sql("subscribers", work.lake_files["subscribers"], columns="subscriber_id, _batch")
    usage_files = work.lake_files.get("usage_daily", [])
    usage = (
        f"(SELECT * FROM read_parquet({files_sql(usage_files)}) WHERE subscriber_id >= {work.id_from} "
        f"AND subscriber_id < {work.id_to} AND date BETWEEN DATE '{work.window_start}' AND DATE '{work.as_of}')"
        if usage_files
        else "(SELECT NULL::BIGINT AS subscriber_id, NULL::DATE AS date, 0 AS voice_calls, 0.0 AS voice_minutes, "
        "0 AS sms, 0 AS mms, 0.0 AS data_mb, 0.0 AS roaming_minutes, 0.0 AS charge_yuan WHERE false)"
    )
    select = f"""
        SELECT s.subscriber_id,
               count(u.date) AS active_days,
               coalesce(sum(u.voice_calls), 0)::BIGINT AS voice_calls,
               coalesce(sum(u.voice_minutes), 0)::DOUBLE AS voice_minutes,
               coalesce(sum(u.sms), 0)::BIGINT AS sms,
               coalesce(sum(u.mms), 0)::BIGINT AS mms,
               coalesce(sum(u.data_mb), 0)::DOUBLE AS data_mb,
               count(u.date) FILTER (WHERE u.roaming_minutes > 0) AS roaming_days,
               coalesce(sum(u.charge_yuan), 0)::DOUBLE AS charge_yuan
        FROM (SELECT subscriber_id FROM {subscribers} WHERE subscriber_id >= {work.id_from}
              AND subscriber_id < {work.id_to}) s
        LEFT JOIN {usage} u USING (subscriber_id)
        GROUP BY s.subscriber_id ORDER BY s.subscriber_id
    """
    write_atomically(con, select, target)
    subscribers_n, active, minutes, data_mb, charge = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE active_days > 0), sum(voice_minutes), sum(data_mb), "
        f"sum(charge_yuan) FROM read_parquet('{target}')"
    ).fetchone()
    return {
        "subscribers": subscribers_n,
        "subscribers_with_usage": active,
        "voice_minutes": round(minutes or 0, 1),
        "data_gb": round((data_mb or 0) / 1024, 2),
        "charge_yuan": round(charge or 0, 2),
    }


register_stage(Stage("usage_totals", "用量汇总 Usage totals", 10, compute_usage_totals))
