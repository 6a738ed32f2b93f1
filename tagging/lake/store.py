"""The lake: one immutable Parquet file per accepted ingest batch, read through DuckDB.

Readers take the files of accepted batches from the database (never a directory listing), so a file
being written, or left behind by a crash, is never read. Master datasets are read as their latest
row per key ("latest batch wins"); facts are stored by dense subscriber id, sorted, so a partition
of subscriber ids reads only the row groups that hold it.
"""

from __future__ import annotations

import os
import threading
from datetime import date
from pathlib import Path

import duckdb
from django.conf import settings
from django.db.models import Q

from ..models import IngestBatch
from .schemas import DATASETS
from .sql import files_sql, quote  # noqa: F401  (files_sql: readers take it from the store)


def dataset_dir(dataset: str) -> Path:
    return Path(settings.LAKE_DIR) / dataset


def batch_path(dataset: str, batch_id: int) -> Path:
    return dataset_dir(dataset) / f"batch={batch_id:08d}.parquet"


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection bounded by the settings, spilling to DATA_DIR rather than failing."""
    spill = Path(settings.DATA_DIR) / "tmp" / "duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    config = {"memory_limit": settings.DUCKDB_MEMORY_LIMIT, "temp_directory": str(spill)}
    if settings.DUCKDB_THREADS:
        config["threads"] = settings.DUCKDB_THREADS
    con = duckdb.connect(config=config)
    con.execute(f"SET TimeZone = '{settings.TIME_ZONE}'")
    return con


_reader: tuple[int, duckdb.DuckDBPyConnection] | None = None
_reader_lock = threading.Lock()


def reader() -> duckdb.DuckDBPyConnection:
    """A connection for short reads (pages, the API): a cursor on one database per process. Opening a
    database costs 10-15 ms, a cursor on it microseconds; close it after use like any connection."""
    global _reader
    with _reader_lock:
        if _reader is None or _reader[0] != os.getpid():  # a forked worker makes its own
            _reader = (os.getpid(), connect())
        return _reader[1].cursor()


def accepted_batches(dataset: str, *, period: tuple[date, date] | None = None, up_to: int | None = None):
    """Accepted batches of a dataset, optionally only those whose rows overlap a period."""
    batches = IngestBatch.objects.accepted().filter(dataset=dataset)
    if up_to is not None:
        batches = batches.filter(id__lte=up_to)
    if period is not None:
        start, end = period
        batches = batches.filter(Q(period_start__isnull=True) | Q(period_start__lte=end, period_end__gte=start))
    return batches.order_by("id")


def read_sql(dataset: str, paths: list[str], *, columns: str = "*") -> str:
    """SQL over the given lake files: all rows for facts, the latest row per key for master data."""
    spec = DATASETS[dataset]
    source = f"read_parquet({files_sql(paths)}, union_by_name = true)"
    if spec.kind.value == "fact" or len(paths) == 1:
        return f"(SELECT {columns} FROM {source})"
    # The lake keeps subscribers by dense id, never by MSISDN: the key names the id where it names the MSISDN.
    keys = ("subscriber_id",) if spec.assigns_subscriber_ids else spec.lake_key
    key = ", ".join(quote(k) for k in keys)
    return (
        f"(SELECT {columns} FROM {source} "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _batch DESC) = 1)"
    )


def current_sql(dataset: str, **kwargs) -> str | None:
    """The current content of a dataset as a SQL subquery, or None when nothing has been ingested."""
    paths = [b.lake_path for b in accepted_batches(dataset, **kwargs)]
    return read_sql(dataset, paths) if paths else None
