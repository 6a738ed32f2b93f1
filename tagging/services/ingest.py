"""Ingest a raw file into the lake: validate all of it, then accept all of it or none of it."""

from __future__ import annotations

import codecs
import csv
import fcntl
import hashlib
import logging
import os
from bisect import bisect_right
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ..lake import store
from ..lake.schemas import DATASETS, Column, Dataset, Kind
from ..lake.validation import SEPARATOR, checked_by_statistics, csv_column_types, quote, staging_sql
from ..models import IngestBatch, Product, Region, Subscriber, Subscription
from ..privacy import hmac_pads, mask_numbers, pseudonym_sql

# Other apps register where their reference keys live (campaigns registers "campaign"): name -> keys.
REFERENCE_SOURCES: dict[str, Callable[[], list[str] | str]] = {}
# Dataset -> what to call with an accepted batch's id once its ingest has committed (event triggers
# register here: campaigns act on signalling events within minutes of their arrival).
ACCEPTED_HOOKS: dict[str, list[Callable[[int], None]]] = {}

logger = logging.getLogger("tagging.ingest")


class UnknownDataset(ValueError):
    pass


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    reason: str

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "reason": self.reason}


class FileProblem(Exception):
    """The file as a whole cannot be read (empty, wrong header, not UTF-8...)."""

    def __init__(self, reason: str, *, line: int = 0, column: str = ""):
        super().__init__(reason)
        self.error = RowError(line, column, reason)


def ingest_file(*, dataset: str, path: Path, user=None, encoding: str = "utf-8") -> IngestBatch:
    """Validate `path` as `dataset`; accept every row into the lake, or reject the file and say why."""
    spec = DATASETS.get(dataset)
    if spec is None:
        raise UnknownDataset(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    size = path.stat().st_size
    with _dataset_lock(dataset), ThreadPoolExecutor(max_workers=1) as hasher:
        _sweep_dataset(dataset)  # holding the lock, any batch still "running" here was left by a killed process
        batch = IngestBatch.objects.create(
            dataset=dataset, file_name=str(path), size_bytes=size,
            created_by=user if user and user.is_authenticated else None,
        )
        if IngestBatch.objects.accepted().filter(dataset=dataset, size_bytes=size).exists():
            # Perhaps the same file again: find out before doing any work.
            checksum = _sha256(path)
            previous = IngestBatch.objects.accepted().filter(dataset=dataset, checksum=checksum).first()
            if previous:
                return _finish(batch, IngestBatch.Status.UNCHANGED, checksum=checksum, same_as=previous,
                               rows_total=previous.rows_total,
                               message=f"Same file (SHA-256) already accepted as batch #{previous.id}; nothing changed.")
            return _ingest(spec, path, batch, checksum, encoding)
        # No accepted file has this size, so this one is new: hash it while DuckDB reads it.
        return _ingest(spec, path, batch, hasher.submit(_sha256, path), encoding)


@contextmanager
def _dataset_lock(dataset: str, *, wait: bool = True):
    """One ingest per dataset at a time (new subscriber ids, duplicate checks against the lake);
    ingests of different datasets run in parallel. The lock dies with its process, so a killed ingest
    never blocks the next. With wait=False, yields whether the lock was free (and then holds it)."""
    folder = store.dataset_dir(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".ingest.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sweep_dataset(dataset: str) -> int:
    """With the dataset's lock held (so no live process is ingesting it): batches left "running" by a killed
    process are marked rejected and their files (staging file, transcoded copy, a lake file moved into place
    just before the kill) removed. Only those batches' files: a file the database does not know (a database
    restored from an older backup) is never deleted. Returns how many batches were closed."""
    stale = list(IngestBatch.objects.filter(dataset=dataset, status=IngestBatch.Status.RUNNING).values_list("id", flat=True))
    IngestBatch.objects.filter(id__in=stale, status=IngestBatch.Status.RUNNING).update(
        status=IngestBatch.Status.REJECTED, finished_at=timezone.now(),
        message="Abandoned: the process ingesting it stopped (killed?) before it finished; nothing was accepted. "
                "Ingest the file again.")
    for batch_id in stale:
        store.batch_path(dataset, batch_id).unlink(missing_ok=True)
        (store.dataset_dir(dataset) / f".staging-{batch_id}.parquet").unlink(missing_ok=True)
        for copy in (Path(settings.DATA_DIR) / "tmp").glob(f"ingest-{batch_id}.*"):
            copy.unlink(missing_ok=True)
    if stale:
        logger.warning("%s: %s abandoned ingest batches closed (%s)", dataset, len(stale), ", ".join(f"#{i}" for i in stale))
    return len(stale)


def sweep_abandoned_ingests() -> int:
    """What resume_runs and Celery beat do for ingests: sweep every dataset nobody is ingesting now."""
    closed = 0
    for dataset in DATASETS:
        with _dataset_lock(dataset, wait=False) as free:
            if free:
                closed += _sweep_dataset(dataset)
    return closed


def _ingest(spec: Dataset, path: Path, batch: IngestBatch, checksum: str | Future, encoding: str) -> IngestBatch:
    dataset = spec.name

    def record_checksum() -> None:
        if not batch.checksum:
            batch.checksum = checksum.result() if isinstance(checksum, Future) else checksum
            batch.save(update_fields=["checksum"])

    staging = store.dataset_dir(dataset) / f".staging-{batch.id}.parquet"
    text_path = path
    con = store.connect()
    try:
        if encoding.lower().replace("_", "-") not in {"utf-8", "utf8"}:
            text_path = _utf8_copy(path, encoding, batch.id)
        source = _Source.open(con, spec, text_path)
        # Fast path: one pass types, flags and writes every row; only a file with problems pays for
        # the second, detailed pass that names each one.
        rows, problems, parser_rejects = _write_staging(con, spec, source, batch.id, staging, native=source.is_csv)
        record_checksum()
        if problems:
            con.close()
            con = store.connect()
            outcome = _report(con, spec, source)
            if outcome.errors_count:
                return _reject(batch, outcome)
            if parser_rejects:
                # The parser refused a value the detailed pass reads as good, so the staging file lacks
                # that row: write it again the detailed pass's way, reading every value as text.
                rows, problems, _ = _write_staging(con, spec, source, batch.id, staging, native=False)
                if problems:
                    raise RuntimeError(f"{spec.name}: the fast and the detailed checks disagree about this file")
        period = _period(con, spec, staging)
        final = store.batch_path(dataset, batch.id)
        try:
            with transaction.atomic():
                _load_reference_rows(con, spec, staging, batch)
                # Readers find lake files through accepted batches only, so the file may appear just
                # before the commit; if the commit fails it is removed again.
                os.replace(staging, final)
                for hook in ACCEPTED_HOOKS.get(dataset, []):
                    transaction.on_commit(lambda hook=hook: hook(batch.id))
                return _finish(batch, IngestBatch.Status.ACCEPTED, rows_total=rows, rows_accepted=rows,
                               lake_path=str(final), period_start=period[0], period_end=period[1],
                               message=f"{rows:,} rows accepted.")
        except Exception:
            final.unlink(missing_ok=True)
            raise
    except FileProblem as problem:
        record_checksum()
        return _reject(batch, _Outcome(rows=0, errors=[problem.error], errors_count=1, bad_rows=0))
    except Exception as exc:
        record_checksum()
        _finish(batch, IngestBatch.Status.REJECTED, message=f"Ingest failed, nothing was written: {exc}")
        raise
    finally:
        con.close()
        staging.unlink(missing_ok=True)
        if text_path != path:
            text_path.unlink(missing_ok=True)


@dataclass
class _Outcome:
    rows: int
    errors: list[RowError]
    errors_count: int
    bad_rows: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()  # releases the GIL on large chunks, so it overlaps DuckDB's work
    with open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _utf8_copy(path: Path, encoding: str, batch_id: int) -> Path:
    """Operator exports are often GBK: transcode once, streaming, and ingest the UTF-8 copy."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise FileProblem(f"unknown encoding {encoding!r}") from None
    target = Path(settings.DATA_DIR) / "tmp" / f"ingest-{batch_id}{path.suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    line = 0
    with open(path, encoding=encoding, newline="") as source, open(target, "w", encoding="utf-8", newline="") as out:
        try:
            for line, text in enumerate(source, start=1):
                out.write(text)
        except UnicodeDecodeError:
            raise FileProblem(f"not valid {encoding}", line=line + 1) from None
    return target


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Source:
    """A raw file opened for reading: its columns, and where its data rows start."""

    path: Path
    names: tuple[str, ...]
    first_line: int  # the line number of the first data row (CSV) or 1 (Parquet rows)
    headerless: bool

    @property
    def is_csv(self) -> bool:
        return self.path.suffix.lower() != ".parquet"

    @classmethod
    def open(cls, con: duckdb.DuckDBPyConnection, spec: Dataset, path: Path) -> "_Source":
        if not path.stat().st_size:
            raise FileProblem("the file is empty", line=1)
        if path.suffix.lower() == ".parquet":
            try:
                names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_literal(str(path))})").fetchall()]
                rows = con.execute(f"SELECT count(*) FROM read_parquet({_literal(str(path))})").fetchone()[0]
            except duckdb.Error as exc:
                raise FileProblem(f"not a readable Parquet file: {str(exc).splitlines()[0]}") from None
            if not rows:
                raise FileProblem("the file has no data rows")
            source = cls(path, tuple(names), 1, False)
        else:
            with open(path, "rb") as handle:
                first, second = handle.readline(), handle.readline()
            if not first.strip():
                raise FileProblem("the file is empty", line=1)
            try:
                header_text = first.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise FileProblem(_encoding_reason(), line=1) from None
            fields = [f.strip() for f in next(csv.reader([header_text]))]
            # OpenCelliD publishes cells without a header: the first field is then a radio type.
            headerless = bool(spec.headerless_columns) and fields[0].upper() in spec.column("radio").choices
            if headerless:
                extra = len(fields) - len(spec.headerless_columns)
                names = list(spec.headerless_columns) + [f"extra_{i}" for i in range(max(extra, 0))]
            else:
                names = fields
                if not second.strip():
                    raise FileProblem("the file has a header but no data rows", line=1)
            source = cls(path, tuple(names), 1 if headerless else 2, headerless)
        missing = [c.name for c in spec.columns if c.required and c.name not in source.names]
        if missing:
            raise FileProblem(
                f"missing required column{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
                f"(the file has: {', '.join(source.names)})", line=0 if source.headerless else 1, column=", ".join(missing))
        return source

    def sql(self, spec: Dataset, *, native: bool) -> str:
        """A DuckDB relation over the file with every column the dataset declares (absent optional
        columns read as NULL; extra columns are ignored)."""
        if self.is_csv:
            types = csv_column_types(spec, list(self.names), native=native)
            columns = ", ".join(f"{_literal(name)}: '{kind}'" for name, kind in types.items())
            relation = (
                f"read_csv({_literal(str(self.path))}, header = {str(not self.headerless).lower()}, "
                f"columns = {{{columns}}}, delim = ',', quote = '\"', escape = '\"', auto_detect = false, "
                f"store_rejects = true, rejects_limit = 0)"
            )
        else:
            relation = f"read_parquet({_literal(str(self.path))})"
        absent = [c.name for c in spec.columns if c.name not in self.names]
        if absent:
            types = csv_column_types(spec, absent, native=native and self.is_csv)
            relation = f"(SELECT *, {', '.join(f'NULL::{types[n]} AS {quote(n)}' for n in absent)} FROM {relation})"
        return relation


def _encoding_reason() -> str:
    return ("not UTF-8: the file looks like another encoding (operator exports are often GBK); "
            "ingest it with --encoding gbk, or convert it with iconv -f GBK -t UTF-8")


def _write_staging(con: duckdb.DuckDBPyConnection, spec: Dataset, source: _Source, batch_id: int,
                   staging: Path, *, native: bool) -> tuple[int, bool, int]:
    """Type, flag and write every row to the batch's Parquet file in one pass; return (rows written,
    any problem, lines the CSV parser refused).

    A bad row is written with _batch = -1 and a subscriber the lake does not know with a NULL id, so
    the checks afterwards read the small, typed Parquet file instead of the raw file again.
    """
    staging.parent.mkdir(parents=True, exist_ok=True)
    rows_sql = f"({staging_sql(spec, source.sql(spec, native=native), native=native)})"
    columns = ", ".join(f"s.{quote(c)}" for c in spec.column_names if c != "msisdn" or not spec.keyed_by_subscriber)
    batch = f"CASE WHEN s._bad THEN -1 ELSE {batch_id} END::BIGINT AS _batch"
    params = {}
    if spec.name == "subscribers":
        known = _subscriber_ids(con)
        max_id = con.execute(f"SELECT coalesce(max(subscriber_id), 0) FROM {known}").fetchone()[0]
        # New subscribers get the next dense ids (in MSISDN order, so a re-run assigns the same); known ones keep theirs.
        select = (
            f"SELECT coalesce(k.subscriber_id, {max_id} + row_number() OVER (PARTITION BY k.subscriber_id IS NULL "
            f"ORDER BY s.msisdn))::BIGINT AS subscriber_id, {columns}, {pseudonym_sql('s.msisdn')} AS pseudonym, {batch} "
            f"FROM {rows_sql} s LEFT JOIN {known} k USING (msisdn) ORDER BY subscriber_id"
        )
        ipad, opad = hmac_pads(settings.PSEUDONYM_KEY)
        params = {"ipad": ipad, "opad": opad}
    elif spec.keyed_by_subscriber:
        order = ", ".join(quote(k) for k in spec.key if k != "msisdn")
        select = (
            f"SELECT m.subscriber_id, {columns}, {batch} FROM {rows_sql} s "
            f"LEFT JOIN {_subscriber_ids(con)} m USING (msisdn) ORDER BY m.subscriber_id, {order}"
        )
    elif spec.name == "cells":
        select = f"SELECT {columns}, concat_ws('-', s.radio, s.mcc, s.net, s.area, s.cell) AS cell_key, {batch} FROM {rows_sql} s"
    else:
        select = f"SELECT {columns}, {batch} FROM {rows_sql} s"
    try:
        con.execute(f"COPY ({select}) TO {_literal(str(staging))} (FORMAT parquet, COMPRESSION zstd)", params)
    except duckdb.Error as exc:
        raise FileProblem(f"cannot be read as {spec.name}: {str(exc).splitlines()[0]}") from None

    parquet = f"read_parquet({_literal(str(staging))})"
    key = [quote("subscriber_id" if k == "msisdn" and spec.keyed_by_subscriber else k) for k in spec.key]
    # Sorted by key, a repeated key is a row equal to the one before it (facts are written sorted, so
    # this sort is nearly free).
    repeats = " AND ".join(f"{k} = lag({k}) OVER w" for k in key)
    written = f"(SELECT *, coalesce({repeats}, false) AS _repeat FROM {parquet} WINDOW w AS (ORDER BY {', '.join(key)}))"
    checks = ["count(*) FILTER (WHERE _repeat)"]
    for reference in spec.references:
        if reference.target != "subscriber":
            target = _reference_keys(con, spec, reference.target, staged=parquet)
            checks.append(f"count(*) FILTER (WHERE {reference.value_sql} IS NOT NULL AND "
                          f"{reference.value_sql} NOT IN (SELECT key FROM {target}))")
    rows, *counts = con.execute(f"SELECT count(*), {', '.join(checks)} FROM {written}").fetchone()
    # Bad rows were written with _batch = -1, unknown subscribers with no id; the footer tells.
    limits = [*checked_by_statistics(spec, native=native), Column("_batch", "int", minimum=0)]
    if spec.keyed_by_subscriber:
        limits.append(Column("subscriber_id", "int"))
    counts.append(_outside_statistics(con, staging, limits))
    parser_rejects = con.execute("SELECT count(*) FROM reject_errors").fetchone()[0] if source.is_csv else 0
    earlier = _earlier_keys(con, spec, parquet)
    if earlier and not any(counts):
        counts.append(con.execute(f"SELECT count(*) FROM {parquet} SEMI JOIN {earlier} USING ({', '.join(key)})").fetchone()[0])
    return rows, bool(parser_rejects or any(counts)), parser_rejects


def _outside_statistics(con: duckdb.DuckDBPyConnection, staging: Path, limits: list[Column]) -> bool:
    """Does any of these columns have a missing value or a value out of range? Read from the Parquet
    footer's column statistics, without scanning a row."""
    columns = {c.name: c for c in limits}
    stats = con.execute(
        f"SELECT path_in_schema, min(TRY_CAST(stats_min_value AS DOUBLE)), max(TRY_CAST(stats_max_value AS DOUBLE)), "
        # A row group whose non-null values have no min or max holds NaN or infinity (or has no
        # statistics at all): let the detailed pass name the rows.
        f"sum(stats_null_count), count(*) FILTER (WHERE stats_null_count IS NULL OR ((stats_min_value IS NULL "
        f"OR stats_max_value IS NULL) AND stats_null_count < row_group_num_rows)) "
        f"FROM parquet_metadata({_literal(str(staging))}) WHERE path_in_schema IN (SELECT unnest($names::VARCHAR[])) GROUP BY 1",
        {"names": list(columns)},
    ).fetchall()
    if len(stats) != len(columns):
        return True  # no statistics to go by: let the detailed pass look at every row
    for name, low, high, nulls, unknown in stats:
        column = columns[name]
        if unknown or (column.required and nulls):
            return True
        if column.minimum is not None and low is not None and low < column.minimum:
            return True
        if column.maximum is not None and high is not None and high > column.maximum:
            return True
    return False


def _earlier_keys(con: duckdb.DuckDBPyConnection, spec: Dataset, rows: str) -> str | None:
    """Keys (and their batch) of earlier accepted batches of a fact dataset over the same days, or None.

    Facts are appended, so a day delivered twice would be counted twice: a key already in the lake is
    refused like a duplicate inside the file.
    """
    if spec.kind != Kind.FACT or not spec.period:
        return None
    day = f"CAST({quote(spec.period)} AS DATE)"
    first, last = con.execute(f"SELECT min({day}), max({day}) FROM {rows}").fetchone()
    if first is None:
        return None
    paths = [b.lake_path for b in store.accepted_batches(spec.name, period=(first, last))]
    if not paths:
        return None
    lake_key = ", ".join(quote("subscriber_id" if k == "msisdn" and spec.keyed_by_subscriber else k) for k in spec.key)
    return (f"(SELECT {lake_key}, _batch FROM read_parquet({store.files_sql(paths)}, union_by_name = true) "
            f"WHERE {day} BETWEEN DATE '{first}' AND DATE '{last}')")


def _report(con: duckdb.DuckDBPyConnection, spec: Dataset, source: _Source) -> _Outcome:
    """The detailed pass over a file with problems: every bad row with its line, column and reason."""
    try:
        con.execute(f"CREATE TEMP TABLE staged AS {staging_sql(spec, source.sql(spec, native=False), detailed=True)}")
    except duckdb.Error as exc:
        raise FileProblem(f"cannot be read as {spec.name}: {str(exc).splitlines()[0]}") from None
    limit = settings.INGEST_MAX_REPORTED_ERRORS
    parser_rejects = _parser_rejects(con) if source.is_csv else []
    rejected_lines = sorted({e.line for e in parser_rejects})

    def line_of(rowid: int) -> int:
        # Rows the CSV parser rejected are missing from `staged`, shifting rowids; undo the shift.
        line = rowid + source.first_line
        while True:
            shifted = rowid + source.first_line + bisect_right(rejected_lines, line)
            if shifted == line:
                return line
            line = shifted

    con.execute("CREATE TEMP TABLE bad_rows AS SELECT rowid AS rid FROM staged WHERE len(_errors) > 0")
    found: list[tuple[int, str, str]] = [(r, *e.split(SEPARATOR, 1)) for r, e in con.execute(
        f"SELECT rowid, unnest(_errors) FROM staged WHERE len(_errors) > 0 ORDER BY rowid LIMIT {limit}").fetchall()]
    key = ", ".join(quote(k) for k in spec.key)
    duplicates = (
        f"SELECT s.rowid AS rid, d.first FROM staged s JOIN (SELECT {key}, min(rowid) AS first FROM staged "
        f"GROUP BY ALL HAVING count(*) > 1) d USING ({key}) WHERE s.rowid <> d.first"
    )
    con.execute(f"INSERT INTO bad_rows SELECT rid FROM ({duplicates})")
    found += [(r, "+".join(spec.key), f"duplicate key: same as line {line_of(first)}")
              for r, first in con.execute(f"{duplicates} ORDER BY rid LIMIT {limit}").fetchall()]
    earlier = _earlier_keys(con, spec, "staged")
    if earlier:
        ids = _subscriber_ids(con) if spec.keyed_by_subscriber else None
        lake_key = ["subscriber_id" if k == "msisdn" and ids else k for k in spec.key]
        keyed = f"(SELECT s.rowid AS rid, s.*, m.subscriber_id FROM staged s LEFT JOIN {ids} m USING (msisdn))" if ids \
            else "(SELECT rowid AS rid, * FROM staged)"
        again = (f"SELECT s.rid, min(e._batch) AS batch FROM {keyed} s JOIN {earlier} e "
                 f"USING ({', '.join(quote(k) for k in lake_key)}) GROUP BY s.rid")
        con.execute(f"INSERT INTO bad_rows SELECT rid FROM ({again})")
        found += [(r, "+".join(spec.key), f"already ingested in batch #{batch}")
                  for r, batch in con.execute(f"{again} ORDER BY rid LIMIT {limit}").fetchall()]
    for reference in spec.references:
        target = _reference_keys(con, spec, reference.target, staged="staged")
        if reference.sql is None:
            rows_sql, value = "(SELECT rowid AS rid, * FROM staged) s", f"s.{quote(reference.column)}"
        else:  # a compound key, over the typed row with its subscriber id as the lake stores it
            rows_sql = f"(SELECT s.rowid AS rid, s.*, m.subscriber_id FROM staged s LEFT JOIN {_subscriber_ids(con)} m USING (msisdn)) s"
            value = reference.sql
        unknown = (
            f"SELECT s.rid, s.{quote(reference.column)} AS value FROM {rows_sql} "
            f"ANTI JOIN {target} t ON ({value}) = t.key WHERE ({value}) IS NOT NULL"
        )
        con.execute(f"INSERT INTO bad_rows SELECT rid FROM ({unknown})")
        found += [(r, reference.column, f"{reference.message}: {value}")
                  for r, value in con.execute(f"{unknown} ORDER BY rid LIMIT {limit}").fetchall()]

    rows = con.execute("SELECT count(*) FROM staged").fetchone()[0] + len(rejected_lines)
    bad_rows = con.execute("SELECT count(DISTINCT rid) FROM bad_rows").fetchone()[0] + len(rejected_lines)
    errors = parser_rejects + [RowError(line_of(r) if source.is_csv else r + 1, column, reason) for r, column, reason in found]
    errors.sort(key=lambda e: (e.line, e.column))
    return _Outcome(rows=rows, errors=errors[:limit], errors_count=max(len(errors), bad_rows), bad_rows=bad_rows)


def _period(con: duckdb.DuckDBPyConnection, spec: Dataset, staging: Path) -> tuple:
    """The first and last day the batch's rows describe, so runs read only the batches they need."""
    if not spec.period:
        return (None, None)
    day = f"CAST({quote(spec.period)} AS DATE)"
    return tuple(con.execute(f"SELECT min({day}), max({day}) FROM read_parquet({_literal(str(staging))})").fetchone())


def _parser_rejects(con: duckdb.DuckDBPyConnection) -> list[RowError]:
    """Lines the CSV parser itself refused, one error per line (DuckDB lists a short line per column)."""
    errors: dict[int, RowError] = {}
    for line, column, error_type, message in con.execute(
        "SELECT line, column_name, error_type, error_message FROM reject_errors ORDER BY line, column_idx"
    ).fetchall():
        if int(line) in errors:
            continue
        if error_type == "INVALID ENCODING":
            reason, column = _encoding_reason(), ""
        elif error_type in {"MISSING COLUMNS", "TOO MANY COLUMNS"}:
            reason, column = f"wrong number of fields ({message.strip()})", ""
        else:
            reason = f"{error_type.lower()}: {message}"
        errors[int(line)] = RowError(int(line), column or "", reason)
    return list(errors.values())


def _reference_keys(con: duckdb.DuckDBPyConnection, spec: Dataset, target: str, *, staged: str) -> str:
    """A SQL relation with column `key` holding every valid value for the reference."""
    if target == "region":
        codes = list(Region.objects.values_list("code", flat=True))
        if spec.name == "regions":  # a region file may bring a parent and its children together
            codes += [r[0] for r in con.execute(f"SELECT code FROM {staged}").fetchall()]
        return _keys_table(con, "ref_region", codes)
    if target == "product":
        return _keys_table(con, "ref_product", list(Product.objects.values_list("code", flat=True)))
    if target == "subscriber":
        return f"(SELECT msisdn AS key FROM {_subscriber_ids(con)})"
    if target == "cell":
        current = store.current_sql("cells")
        if not current:
            return "(SELECT NULL::VARCHAR AS key WHERE false)"
        con.execute(f"CREATE OR REPLACE TEMP TABLE ref_cell AS SELECT DISTINCT cell_key AS key FROM {current}")
        return "ref_cell"
    source = REFERENCE_SOURCES.get(target)
    keys = source() if source else []
    # A source gives the valid keys as a list, or, when there are many, as a SQL relation of `key`.
    return f"({keys})" if isinstance(keys, str) else _keys_table(con, f"ref_{target}", keys)


def _subscriber_ids(con: duckdb.DuckDBPyConnection) -> str:
    """A view (msisdn, subscriber_id) of every known subscriber in the lake."""
    exists = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'subscriber_ids'").fetchone()[0]
    if not exists:
        current = store.current_sql("subscribers")
        source = f"(SELECT msisdn, subscriber_id FROM {current})" if current else \
            "(SELECT NULL::VARCHAR AS msisdn, NULL::BIGINT AS subscriber_id WHERE false)"
        con.execute(f"CREATE TEMP VIEW subscriber_ids AS {source}")
    return "subscriber_ids"


def _keys_table(con: duckdb.DuckDBPyConnection, name: str, keys: list[str]) -> str:
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT unnest($keys::VARCHAR[]) AS key", {"keys": keys})
    return name


def _load_reference_rows(con: duckdb.DuckDBPyConnection, spec: Dataset, staging: Path, batch: IngestBatch) -> None:
    """Reference data the web pages and admin need also goes into the database, upserted by key."""
    source = "read_parquet('" + str(staging).replace("'", "''") + "')"
    if spec.name == "regions":
        order = "CASE level WHEN 'province' THEN 0 WHEN 'city' THEN 1 ELSE 2 END"
        for code, name, name_en, level, parent_code in con.execute(
            f"SELECT code, name, coalesce(name_en, ''), level, parent_code FROM {source} ORDER BY {order}, code"
        ).fetchall():  # a handful of regions, parents first so each child finds its parent
            region, _ = Region.objects.get_or_create(code=code, defaults={"name": name, "level": level})
            region.name, region.name_en, region.level = name, name_en, level
            region.parent = Region.objects.get(code=parent_code) if parent_code else None
            region.save()
    elif spec.name == "products":
        rows = con.execute(f"SELECT code, name, coalesce(name_en, ''), category, monthly_fee_yuan FROM {source}").fetchall()
        Product.objects.bulk_create(
            [Product(code=r[0], name=r[1], name_en=r[2], category=r[3], monthly_fee_yuan=round(r[4], 2)) for r in rows],
            update_conflicts=True, unique_fields=["code"], update_fields=["name", "name_en", "category", "monthly_fee_yuan"],
        )
    elif spec.name == "subscribers":
        _upsert(con, f"""SELECT s.subscriber_id, s.msisdn, s.pseudonym, s.brand, s.plan, s.join_date, s.birth_year,
                                coalesce(s.gender, 'U'), r.id, s.status, s.marketing_opt_out, {batch.id}
                         FROM {source} s JOIN region_ids r ON r.code = s.region_code""",
                Subscriber, ["id", "msisdn", "pseudonym", "brand", "plan", "join_date", "birth_year", "gender", "region",
                             "status", "marketing_opt_out", "batch"], key=["id"],
                region_ids=_codes_to_ids(Region.objects.values_list("code", "id")))
    elif spec.name == "subscriptions":
        _upsert(con, f"""SELECT s.subscriber_id, p.id, s.start_date, s.end_date
                         FROM {source} s JOIN product_ids p ON p.code = s.product_code""",
                Subscription, ["subscriber", "product", "start_date", "end_date"], key=["subscriber", "product", "start_date"],
                product_ids=_codes_to_ids(Product.objects.values_list("code", "id")))


def _codes_to_ids(pairs) -> pa.Table:
    codes, ids = zip(*pairs) if pairs else ((), ())
    return pa.table({"code": pa.array(codes, pa.string()), "id": pa.array(ids, pa.int64())})


def _upsert(con: duckdb.DuckDBPyConnection, select: str, model, fields: list[str], *, key: list[str], **tables: pa.Table) -> None:
    """The rows of a DuckDB query inserted into a model's table, or updated where the key exists, in plain
    SQL: PostgreSQL copies them into a scratch table first, SQLite takes multi-row statements. The ORM's
    bulk_create built a model instance and compiled each of its values one at a time (a million
    subscribers: 222 s to ingest on SQLite, 63 s now), and psycopg's client-side binding parses every
    statement again (235 s for multi-row statements on PostgreSQL, 102 s copied). The file was validated
    before, and a reference check has made every key valid.
    `tables` are Arrow tables the query joins by name."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = [quote(model._meta.get_field(name).column) for name in fields]
    keys = {quote(model._meta.get_field(name).column) for name in key}
    listed = ", ".join(columns)
    on_conflict = (f"ON CONFLICT ({', '.join(c for c in columns if c in keys)}) DO UPDATE SET "
                   + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys))
    duck = con.cursor()  # its own result and registrations, beside whatever the ingest's connection holds
    try:
        for name, arrow in tables.items():
            duck.register(name, arrow)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                scratch = quote(f"upsert_{model._meta.db_table}")
                cursor.execute(f"CREATE TEMP TABLE {scratch} AS SELECT {listed} FROM {table} WITH NO DATA")
                with cursor.cursor.copy(f"COPY {scratch} ({listed}) FROM STDIN") as copy:
                    for chunk in _chunks(duck, select):
                        for line in chunk:
                            copy.write_row(line)
                cursor.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {scratch} {on_conflict}")
                cursor.execute(f"DROP TABLE {scratch}")
                return
            # SQLite binds at most 32,766 values in one statement.
            per_statement = max(1, min(UPSERT_ROWS, 32_000 // len(columns)))
            row = "(" + ", ".join(["%s"] * len(columns)) + ")"
            for chunk in _chunks(duck, select, size=per_statement):
                cursor.execute(f"INSERT INTO {table} ({listed}) VALUES {', '.join([row] * len(chunk))} {on_conflict}",
                               [value for line in chunk for value in line])
    finally:
        duck.close()


UPSERT_ROWS = 1000


def _chunks(con: duckdb.DuckDBPyConnection, sql: str, size: int = 20_000):
    cursor = con.execute(sql)
    while rows := cursor.fetchmany(size):
        yield rows


def _reject(batch: IngestBatch, outcome: _Outcome) -> IngestBatch:
    report = Path(settings.DATA_DIR) / "reports" / f"ingest-{batch.id}-{batch.dataset}.csv"
    report.parent.mkdir(parents=True, exist_ok=True)
    with open(report, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "column", "reason"])
        writer.writerows([e.line, e.column, e.reason] for e in outcome.errors)
    report.chmod(0o640)  # it holds the rows' numbers in full: the service's account and its group only
    more = outcome.errors_count - len(outcome.errors)
    message = f"{outcome.errors_count:,} problem{'s' if outcome.errors_count != 1 else ''}"
    message += f" in {outcome.bad_rows:,} rows" if outcome.bad_rows else ""
    message += f" (first {len(outcome.errors):,} listed)" if more > 0 else ""
    message += "; nothing was written to the lake or the database."
    # Shown in admin and the API: numbers masked. The report file has them in full, for the analyst to fix the file.
    shown = [{**e.as_dict(), "reason": mask_numbers(e.reason)} for e in outcome.errors[:200]]
    return _finish(batch, IngestBatch.Status.REJECTED, rows_total=outcome.rows, rows_rejected=outcome.bad_rows,
                   errors=shown, report_path=str(report), message=message)


def _finish(batch: IngestBatch, status: str, **fields) -> IngestBatch:
    batch.status = status
    batch.finished_at = timezone.now()
    for name, value in fields.items():
        setattr(batch, name, value)
    batch.save(update_fields=["status", "finished_at", *fields])
    return batch
