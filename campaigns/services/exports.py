"""Target-list exports for field teams: the frozen targets of the caller's districts (with a random control
group, contacted alike and not told apart; never a holdout), optionally of one micro-area, subscribers who
have since opted out left out; full MSISDNs only for users allowed to contact subscribers; streamed in
batches, hashed as they go, and logged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from microarea.models import MicroArea
from tagging.lake import store

from ..models import Campaign, ContactBlackout, ExportLog
from .campaigns import campaign_districts, contacted_sql, residents_sql, target_list_sql, targets_path

COLUMNS = ("subscriber_id", "msisdn", "region_code", "reasons")
# A spreadsheet takes a cell starting with one of these for a formula (CSV injection): such cells are
# written with a leading apostrophe, which spreadsheets show as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ExportRefused(Exception):
    def __init__(self, message: str, *, status: int, field: str = "detail"):
        super().__init__(message)
        self.status, self.field = status, field


def neutralised(value):
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _neutralised_sql(text: str) -> str:
    """neutralised() in SQL."""
    starts = ", ".join(f"chr({ord(c)})" for c in FORMULA_STARTS)
    return f"CASE WHEN left({text}, 1) IN ({starts}) THEN chr(39) || {text} ELSE {text} END"


def _csv_cell_sql(text: str) -> str:
    """A text cell as Python's csv module writes it (quoted only when it holds a comma, quote or newline)."""
    return (f"CASE WHEN regexp_matches({text}, '[,\"\\r\\n]') THEN '\"' || replace({text}, '\"', '\"\"') || '\"' "
            f"ELSE {text} END")


def _masked_sql(msisdn: str) -> str:
    """privacy.mask_msisdn in SQL: 138****1234."""
    return (f"CASE WHEN length({msisdn}) < 8 THEN repeat('*', length({msisdn})) "
            f"ELSE left({msisdn}, 3) || repeat('*', length({msisdn}) - 7) || right({msisdn}, 4) END")


@dataclass(frozen=True)
class Export:
    campaign: Campaign
    user: object
    sql: str
    params: dict
    rows: int
    full_msisdn: bool
    filters: dict


def plan_export(*, campaign: Campaign, user, area_id: int | None = None) -> Export:
    """What the user may export of the campaign: refused (naming why) when not frozen, over the daily
    quota, or for an area that is not the user's."""
    if campaign.status == Campaign.Status.DRAFT or not targets_path(campaign).exists():
        raise ExportRefused("the campaign is not frozen yet: freeze it to make its target list", status=400, field="status")
    if campaign.status == Campaign.Status.CLOSED:
        raise ExportRefused("the campaign is closed: its list is no longer contacted", status=409, field="status")
    today = timezone.localdate()
    blackout = ContactBlackout.objects.filter(start_date__lte=today, end_date__gte=today).first()
    if blackout is not None:
        raise ExportRefused(f"no contacts from {blackout.start_date} to {blackout.end_date}: {blackout.reason}", status=409)
    districts = campaign_districts(campaign, user)
    where = ["t.region_code IN (SELECT unnest($districts::VARCHAR[]))", contacted_sql(campaign)]
    params = {"districts": districts}
    filters = {}
    if area_id is not None:
        area = MicroArea.objects.visible_to(user).filter(pk=area_id).first()
        if area is None:
            raise ExportRefused(f"no micro-area {area_id} in your regions", status=404)
        residents, hexes = residents_sql(campaign, area)
        where.append(residents)
        params.update(hexes)
        filters["area"] = {"id": area.id, "name": area.name}
    # Both sides keep to the range of ids asked ($low, $high), so that each range reads only its slice.
    subscribers = f"(SELECT * FROM {store.current_sql('subscribers')} WHERE subscriber_id >= $low AND subscriber_id < $high)"
    where.append("t.subscriber_id >= $low AND t.subscriber_id < $high")
    sql = (f"SELECT t.subscriber_id, s.msisdn::VARCHAR AS msisdn, t.region_code, array_to_string(t.reasons, '; ') AS reasons "
           f"FROM {target_list_sql(campaign)} t JOIN {subscribers} s USING (subscriber_id) "
           f"WHERE {' AND '.join(where)} AND NOT coalesce(s.marketing_opt_out, false)")
    con = store.reader()
    try:
        # Counted without the MSISDNs: the targets less those who opted out since (a small set of ids).
        (rows,) = con.execute(
            f"SELECT count(*) FROM {target_list_sql(campaign)} t WHERE {' AND '.join(where)} AND t.subscriber_id "
            f"NOT IN (SELECT subscriber_id FROM {store.current_sql('subscribers')} WHERE marketing_opt_out)",
            {**params, "low": 0, "high": 2 ** 62}).fetchone()
    finally:
        con.close()
    exported = ExportLog.objects.filter(user=user, created_at__date=today).aggregate(n=Sum("rows"))["n"] or 0
    quota = settings.EXPORT_ROWS_PER_DAY
    if exported + rows > quota:
        raise ExportRefused(f"export quota: {quota:,} rows a day; {exported:,} exported today and this list has {rows:,}",
                            status=429)
    return Export(campaign, user, sql, params, rows, user.has_perm("campaigns.contact_subscribers"), filters)


def stream(export: Export, answer: str, *, ids_per_query: int = 50_000) -> Iterator[bytes]:
    """The body, in chunks, one query per range of subscriber ids (so memory stays flat however long the
    list: each range is formatted as CSV or JSON text by DuckDB, in subscriber order); the log entry is made
    before the first row and completed after the last, with the rows and the SHA-256 of what was sent."""
    log = ExportLog.objects.create(user=export.user, campaign=export.campaign, filters=export.filters, format=answer,
                                   full_msisdn=export.full_msisdn)
    digest, rows = hashlib.sha256(), 0
    msisdn = "msisdn" if export.full_msisdn else _masked_sql("msisdn")
    if answer == "csv":
        # Cells neutralised once in an inner query, then quoted: quoting names a cell three times, and
        # naming the neutralising expression there would compute it three times (a quarter of the time).
        cells = (f"SELECT subscriber_id, {_neutralised_sql(msisdn)} AS msisdn, {_neutralised_sql('region_code')} AS region_code, "
                 f"{_neutralised_sql('reasons')} AS reasons FROM ({export.sql})")
        line = (f"subscriber_id::VARCHAR || ',' || {_csv_cell_sql('msisdn')} || ',' || {_csv_cell_sql('region_code')} "
                f"|| ',' || {_csv_cell_sql('reasons')}")
        head, separator, tail = ",".join(COLUMNS) + "\n", "\n", "\n"
    else:
        cells = export.sql
        line = f"json_array(subscriber_id, {msisdn}, region_code, reasons)::VARCHAR"
        head, separator, tail = '{"columns": ' + json.dumps(COLUMNS) + ', "rows": [', ",", "]}"

    def emit(text: str) -> bytes:
        data = text.encode()
        digest.update(data)
        return data

    con = store.reader()
    try:
        low, high = con.execute(f"SELECT min(subscriber_id), max(subscriber_id) FROM {target_list_sql(export.campaign)}").fetchone()
        yield emit(head)
        for start in range(low or 0, (high or -1) + 1, ids_per_query):
            lines = [text for (text,) in con.execute(
                f"SELECT {line} FROM ({cells}) ORDER BY subscriber_id",
                {**export.params, "low": start, "high": start + ids_per_query}).fetchall()]
            if lines:
                yield emit(("" if rows == 0 or answer == "csv" else separator) + separator.join(lines)
                           + (separator if answer == "csv" else ""))
                rows += len(lines)
        yield emit("" if answer == "csv" else tail)
        log.completed = True
    finally:
        con.close()
        log.rows, log.sha256 = rows, digest.hexdigest()
        log.save(update_fields=["rows", "sha256", "completed"])
