"""Staging and checks: a raw file read once by DuckDB, typed, checked and written sorted to the batch's staging
Parquet file, with what the checks found. What differs per dataset is declared on its spec (lake/schemas.py)."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
from django.conf import settings

from ..models import Product, Region
from ..privacy import hmac_pads, pseudonym_sql
from . import store
from .parties import party_rows_sql
from .schemas import Column, Dataset, Kind, Reference
from .sql import empty_relation, files_sql, literal, parquet, quote
from .validation import checked_by_statistics, csv_column_types, staging_sql

# Where each reference target's valid keys come from: name -> the keys as a list, or (when there are many) a SQL
# relation of `key`. Other apps register theirs from their AppConfig.ready() (campaigns registers "campaign").
REFERENCE_SOURCES: dict[str, Callable[[], list[str] | str]] = {
    "region": lambda: list(Region.objects.values_list("code", flat=True)),
    "product": lambda: list(Product.objects.values_list("code", flat=True)),
    "cell": lambda: f"SELECT cell_key AS key FROM {store.current_sql('cells') or empty_relation(cell_key='VARCHAR')}",
    "app": lambda: f"SELECT app_id AS key FROM {store.current_sql('app_catalogue') or empty_relation(app_id='VARCHAR')}",
}


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


def utf8_copy(path: Path, encoding: str, batch_id: int) -> Path:
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


@dataclass(frozen=True)
class Source:
    """A raw file opened for reading: its columns, and where its data rows start."""

    path: Path
    names: tuple[str, ...]
    first_line: int  # the line number of the first data row (CSV) or 1 (Parquet rows)
    headerless: bool

    @property
    def is_csv(self) -> bool:
        return self.path.suffix.lower() != ".parquet"

    @classmethod
    def open(cls, con: duckdb.DuckDBPyConnection, spec: Dataset, path: Path) -> "Source":
        if not path.stat().st_size:
            raise FileProblem("the file is empty", line=1)
        if path.suffix.lower() == ".parquet":
            try:
                names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {parquet(path)}").fetchall()]
                rows = con.execute(f"SELECT count(*) FROM {parquet(path)}").fetchone()[0]
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
                raise FileProblem(encoding_reason(), line=1) from None
            fields = [f.strip() for f in next(csv.reader([header_text]))]
            # OpenCelliD publishes cells without a header: the first field is then a value of the first column (a radio type).
            headerless = bool(spec.headerless_columns) and fields[0].upper() in spec.column(spec.headerless_columns[0]).choices
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
            columns = ", ".join(f"{literal(name)}: '{kind}'" for name, kind in types.items())
            relation = (
                f"read_csv({literal(self.path)}, header = {str(not self.headerless).lower()}, "
                f"columns = {{{columns}}}, delim = ',', quote = '\"', escape = '\"', auto_detect = false, "
                f"store_rejects = true, rejects_limit = 0)"
            )
        else:
            relation = parquet(self.path)
        absent = [c.name for c in spec.columns if c.name not in self.names]
        if absent:
            types = csv_column_types(spec, absent, native=native and self.is_csv)
            relation = f"(SELECT *, {', '.join(f'NULL::{types[n]} AS {quote(n)}' for n in absent)} FROM {relation})"
        return relation


def encoding_reason() -> str:
    return ("not UTF-8: the file looks like another encoding (operator exports are often GBK); "
            "ingest it with --encoding gbk, or convert it with iconv -f GBK -t UTF-8")


def write_staging(con: duckdb.DuckDBPyConnection, spec: Dataset, source: Source, batch_id: int,
                   staging: Path, *, native: bool) -> tuple[int, bool, int]:
    """Type, flag and write every row to the batch's Parquet file in one pass; return (rows written,
    any problem, lines the CSV parser refused).

    A bad row is written with _batch = -1 and a subscriber the lake does not know with a NULL id, so
    the checks afterwards read the small, typed Parquet file instead of the raw file again.
    """
    staging.parent.mkdir(parents=True, exist_ok=True)
    if spec.parties:
        subscriber_ids(con)  # the records' checks look both ends up
    rows_sql = f"({staging_sql(spec, source.sql(spec, native=native), native=native)})"
    columns = ", ".join(f"s.{quote(c)}" for c in spec.column_names if c != "msisdn" or not spec.keyed_by_subscriber)
    batch = f"CASE WHEN s._bad THEN -1 ELSE {batch_id} END::BIGINT AS _batch"
    params = {}
    if spec.parties:
        ipad, opad = hmac_pads(settings.PSEUDONYM_KEY)
        params = {"ipad": ipad, "opad": opad}
        lake_key = ", ".join(quote(k) for k in spec.lake_key)
        select = f"SELECT * FROM ({party_rows_sql(spec, rows_sql, subscriber_ids(con), batch=batch)}) ORDER BY {lake_key}"
    elif spec.assigns_subscriber_ids:
        known = subscriber_ids(con)
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
            f"LEFT JOIN {subscriber_ids(con)} m USING (msisdn) ORDER BY m.subscriber_id, {order}"
        )
    else:
        derived = "".join(f"{sql} AS {quote(name)}, " for name, sql in spec.derived)
        select = f"SELECT {columns}, {derived}{batch} FROM {rows_sql} s"
    try:
        con.execute(f"COPY ({select}) TO {literal(staging)} (FORMAT parquet, COMPRESSION zstd)", params)
    except duckdb.Error as exc:
        raise FileProblem(f"cannot be read as {spec.name}: {str(exc).splitlines()[0]}") from None

    written_file = parquet(staging)
    key = [quote(k) for k in spec.lake_key]
    # Sorted by key, a repeated key is a row equal to the one before it (facts are written sorted, so
    # this sort is nearly free).
    repeats = " AND ".join(f"{k} = lag({k}) OVER w" for k in key)
    written = f"(SELECT *, coalesce({repeats}, false) AS _repeat FROM {written_file} WINDOW w AS (ORDER BY {', '.join(key)}))"
    checks = ["count(*) FILTER (WHERE _repeat)"]
    for reference in spec.references:
        if reference.target != "subscriber":
            target = reference_keys(con, spec, reference, staged=written_file)
            checks.append(f"count(*) FILTER (WHERE {reference.value_sql} IS NOT NULL AND "
                          f"{reference.value_sql} NOT IN (SELECT key FROM {target}))")
    # A record between two subscribers is kept as two rows (one per end): count the file's records.
    records = "count(*) FILTER (WHERE direction = 'out' OR peer_id IS NULL)" if spec.parties else "count(*)"
    rows, *counts = con.execute(f"SELECT {records}, {', '.join(checks)} FROM {written}").fetchone()
    # Bad rows were written with _batch = -1, unknown subscribers with no id; the footer tells.
    limits = [*checked_by_statistics(spec, native=native), Column("_batch", "int", minimum=0)]
    if spec.keyed_by_subscriber:
        limits.append(Column("subscriber_id", "int"))
    counts.append(_outside_statistics(con, staging, limits))
    parser_rejects = con.execute("SELECT count(*) FROM reject_errors").fetchone()[0] if source.is_csv else 0
    earlier = earlier_keys(con, spec, written_file)
    if earlier and not any(counts):
        counts.append(con.execute(f"SELECT count(*) FROM {written_file} SEMI JOIN {earlier} USING ({', '.join(key)})").fetchone()[0])
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
        f"FROM parquet_metadata({literal(staging)}) WHERE path_in_schema IN (SELECT unnest($names::VARCHAR[])) GROUP BY 1",
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


def earlier_keys(con: duckdb.DuckDBPyConnection, spec: Dataset, rows: str) -> str | None:
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
    lake_key = ", ".join(quote(k) for k in spec.lake_key)
    return (f"(SELECT {lake_key}, _batch FROM read_parquet({files_sql(paths)}, union_by_name = true) "
            f"WHERE {day} BETWEEN DATE '{first}' AND DATE '{last}')")


def period_of(con: duckdb.DuckDBPyConnection, spec: Dataset, staging: Path) -> tuple:
    """The first and last day the batch's rows describe, so runs read only the batches they need."""
    if not spec.period:
        return (None, None)
    day = f"CAST({quote(spec.period)} AS DATE)"
    return tuple(con.execute(f"SELECT min({day}), max({day}) FROM {parquet(staging)}").fetchone())


def reference_keys(con: duckdb.DuckDBPyConnection, spec: Dataset, reference: Reference, *, staged: str) -> str:
    """A SQL relation with column `key` holding every valid value for the reference."""
    if reference.target == "subscriber":
        return f"(SELECT msisdn AS key FROM {subscriber_ids(con)})"
    keys = REFERENCE_SOURCES[reference.target]()
    table = quote(f"ref_{reference.target}")
    if isinstance(keys, str):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT DISTINCT key FROM ({keys})")
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT unnest($keys::VARCHAR[]) AS key", {"keys": keys})
    if reference.includes_own_rows:
        con.execute(f"INSERT INTO {table} SELECT {quote(spec.key[0])} FROM {staged}")
    return table


def subscriber_ids(con: duckdb.DuckDBPyConnection) -> str:
    """A view (msisdn, subscriber_id) of every known subscriber in the lake."""
    exists = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'subscriber_ids'").fetchone()[0]
    if not exists:
        current = store.current_sql("subscribers")
        source = f"(SELECT msisdn, subscriber_id FROM {current})" if current else \
            empty_relation(msisdn="VARCHAR", subscriber_id="BIGINT")
        con.execute(f"CREATE TEMP VIEW subscriber_ids AS {source}")
    return "subscriber_ids"
