"""The reject report: the detailed pass over a file the fast checks flagged, naming every problem with its line,
column and reason, and the report file an analyst fixes the file from."""

from __future__ import annotations

import csv
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import duckdb
from django.conf import settings

from ..privacy import hmac_pads, mask_numbers
from .parties import party_rows_sql
from .schemas import Dataset
from .sql import quote
from .staging import FileProblem, RowError, Source, earlier_keys, encoding_reason, reference_keys, subscriber_ids
from .validation import SEPARATOR, staging_sql


@dataclass
class Outcome:
    rows: int
    errors: list[RowError]
    errors_count: int
    bad_rows: int


def detailed_problems(con: duckdb.DuckDBPyConnection, spec: Dataset, source: Source) -> Outcome:
    """The detailed pass over a file with problems: every bad row with its line, column and reason."""
    if spec.parties:
        subscriber_ids(con)  # the records' checks look both ends up
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
    earlier = earlier_keys(con, spec, "staged")
    if earlier:
        params = {}
        if spec.parties:
            keyed = f"({party_rows_sql(spec, '(SELECT rowid AS rid, * FROM staged)', subscriber_ids(con), batch='s.rid')})"
            params = dict(zip(("ipad", "opad"), hmac_pads(settings.PSEUDONYM_KEY)))
        elif spec.keyed_by_subscriber:
            keyed = f"(SELECT s.rowid AS rid, s.*, m.subscriber_id FROM staged s LEFT JOIN {subscriber_ids(con)} m USING (msisdn))"
        else:
            keyed = "(SELECT rowid AS rid, * FROM staged)"
        again = (f"SELECT s.rid, min(e._batch) AS batch FROM {keyed} s JOIN {earlier} e "
                 f"USING ({', '.join(quote(k) for k in spec.lake_key)}) GROUP BY s.rid")
        con.execute(f"INSERT INTO bad_rows SELECT rid FROM ({again})", params)
        found += [(r, "+".join(spec.key), f"already ingested in batch #{batch}")
                  for r, batch in con.execute(f"{again} ORDER BY rid LIMIT {limit}", params).fetchall()]
    for reference in spec.references:
        target = reference_keys(con, spec, reference, staged="staged")
        if reference.sql is None:
            rows_sql, value = "(SELECT rowid AS rid, * FROM staged) s", f"s.{quote(reference.column)}"
        else:  # a compound key, over the typed row with its subscriber id as the lake stores it
            rows_sql = f"(SELECT s.rowid AS rid, s.*, m.subscriber_id FROM staged s LEFT JOIN {subscriber_ids(con)} m USING (msisdn)) s"
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
    return Outcome(rows=rows, errors=errors[:limit], errors_count=max(len(errors), bad_rows), bad_rows=bad_rows)


def _parser_rejects(con: duckdb.DuckDBPyConnection) -> list[RowError]:
    """Lines the CSV parser itself refused, one error per line (DuckDB lists a short line per column)."""
    errors: dict[int, RowError] = {}
    for line, column, error_type, message in con.execute(
        "SELECT line, column_name, error_type, error_message FROM reject_errors ORDER BY line, column_idx"
    ).fetchall():
        if int(line) in errors:
            continue
        if error_type == "INVALID ENCODING":
            reason, column = encoding_reason(), ""
        elif error_type in {"MISSING COLUMNS", "TOO MANY COLUMNS"}:
            reason, column = f"wrong number of fields ({message.strip()})", ""
        else:
            reason = f"{error_type.lower()}: {message}"
        errors[int(line)] = RowError(int(line), column or "", reason)
    return list(errors.values())


def write_reject_report(*, batch_id: int, dataset: str, outcome: Outcome) -> dict:
    """Write the report file (every listed problem, numbers in full, for the analyst fixing the file) and return
    what the rejected batch records: the message, and the problems as admin and the API show them (masked)."""
    report = Path(settings.DATA_DIR) / "reports" / f"ingest-{batch_id}-{dataset}.csv"
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
    shown = [{**e.as_dict(), "reason": mask_numbers(e.reason)} for e in outcome.errors[:200]]
    return {"rows_total": outcome.rows, "rows_rejected": outcome.bad_rows, "errors": shown, "report_path": str(report),
            "message": message}
