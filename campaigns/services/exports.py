"""Target-list exports for field teams, of two kinds:
- a campaign's: the frozen targets of the caller's districts (with a random control group, contacted alike
  and not told apart; never a holdout), optionally of one micro-area, subscribers who have since opted out
  left out (the rest of the contact policy was applied at the freeze);
- a micro-area's or a hex's: a product's customers of some classes living there, the contact policy applied
  as the list is made, as a freeze applies it (opted out, not active, on the do-not-disturb list, contacted
  too often lately; nothing on a blackout day).
Full MSISDNs only for users allowed to contact subscribers. Every export reserves its rows of the user's daily
quota before its first row, is streamed in ranges of ids, hashed as it goes, and logged."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from microarea.models import MicroArea
from microarea.selectors import visible_districts
from tagging.lake import store
from tagging.lake.sql import empty_relation
from tagging.models import Region
from tagging.selectors import behaviour_terms
from tagging.stages import stage_files
from tagging.stages.features import BEHAVIOUR_SOURCES, catalogue

from ..models import Campaign, ContactBlackout, ExportLog, ExportQuota
from ..offers import next_best_offer_sql
from ..stages.churn import REASONS as CHURN_REASONS
from ..stages.churn import SCORE as CHURN_SCORE
from ..stages.churn import STAGE as CHURN_STAGE
from .campaigns import campaign_districts, contact_barred, contacted_sql, residents_sql, target_list_sql, targets_path

COLUMNS = ("subscriber_id", "msisdn", "region_code", "reasons")
# A retention campaign's list says too how likely each target is to leave and why, in the catalogue's words.
RETENTION_COLUMNS = (*COLUMNS, "churn_risk", "churn_reasons")
AREA_COLUMNS = ("subscriber_id", "msisdn", "region_code", "customer_class", "home_h3", "home_confidence")
TEXT_COLUMNS = {"msisdn", "region_code", "reasons", "customer_class", "home_h3", "churn_reasons", "next_best_offer",
                "next_best_offer_name"}  # the rest are numbers
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


@dataclasses.dataclass(frozen=True)
class Export:
    """An export planned and its rows reserved: `sql` selects `columns` for the ids in [$low, $high)."""

    user: object
    kind: str
    campaign: Campaign | None
    districts: list[str]
    columns: tuple[str, ...]
    sql: str
    params: dict
    ids: tuple[int, int]  # the least and greatest subscriber id the list can hold
    rows: int
    full_msisdn: bool
    filters: dict
    barred: np.ndarray | None = None  # ids the contact policy leaves out, as relation `barred`


def _no_blackout() -> None:
    today = timezone.localdate()
    blackout = ContactBlackout.objects.filter(start_date__lte=today, end_date__gte=today).first()
    if blackout is not None:
        raise ExportRefused(f"no contacts from {blackout.start_date} to {blackout.end_date}: {blackout.reason}", status=409)


def _connect(barred: np.ndarray | None):
    con = store.reader()
    if barred is not None:
        con.register("barred", pa.table({"subscriber_id": barred}))
    return con


def reserve_quota(*, user, rows: int) -> None:
    """Take `rows` of the user's daily quota, or refuse (429) naming what is left: one conditional UPDATE, so two
    exports at once cannot both pass it."""
    today, quota = timezone.localdate(), settings.EXPORT_ROWS_PER_DAY
    ExportQuota.objects.get_or_create(user=user, day=today)
    if rows <= quota and ExportQuota.objects.filter(user=user, day=today, rows__lte=quota - rows).update(rows=F("rows") + rows):
        return
    exported = ExportQuota.objects.get(user=user, day=today).rows
    raise ExportRefused(f"export quota: {quota:,} rows a day; {exported:,} exported today and this list has {rows:,}",
                        status=429)


def _release_quota(*, user, day, rows: int) -> None:
    if rows > 0:
        ExportQuota.objects.filter(user=user, day=day, rows__gte=rows).update(rows=F("rows") - rows)


def _planned(export: Export, *, listed: str, params: dict) -> Export:
    """The export with the range of ids its list (`listed`, with its `params`) holds, its rows counted (without
    the MSISDNs) and reserved of the user's quota."""
    con = _connect(export.barred)
    try:
        low, high = con.execute(f"SELECT min(subscriber_id), max(subscriber_id) FROM {listed}", params).fetchone()
        ids = (low or 0, high if high is not None else -1)
        (rows,) = con.execute(f"SELECT count(*) FROM ({export.sql})",
                              {**export.params, "low": ids[0], "high": ids[1] + 1}).fetchone()
    finally:
        con.close()
    reserve_quota(user=export.user, rows=rows)
    return dataclasses.replace(export, ids=ids, rows=rows)


OFFER_COLUMNS = ("next_best_offer", "next_best_offer_name", "offer_probability", "offer_value")


def plan_export(*, campaign: Campaign, user, area_id: int | None = None, next_best_offer: bool = False) -> Export:
    """What the user may export of the campaign: refused (naming why) when not frozen, over the daily
    quota, or for an area that is not the user's."""
    if campaign.status == Campaign.Status.DRAFT or not targets_path(campaign).exists():
        raise ExportRefused("the campaign is not frozen yet: freeze it to make its target list", status=400, field="status")
    if campaign.status == Campaign.Status.CLOSED:
        raise ExportRefused("the campaign is closed: its list is no longer contacted", status=409, field="status")
    _no_blackout()
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
    # Which interest, circle or inter-network term a target matched is for analysts only (tagging.view_behaviour).
    reasons = "t.reasons"
    if not user.has_perm("tagging.view_behaviour"):
        reasons = "list_filter(t.reasons, lambda r: NOT list_contains($hidden::VARCHAR[], split_part(r, '=', 1)))"
        params["hidden"] = sorted(behaviour_terms())
    # Columns and joins beyond the list's own: a retention campaign's churn risk and reasons, the next best offer.
    columns, extra_columns, extra_joins = COLUMNS, "", ""
    if campaign.purpose == Campaign.Purpose.RETENTION:
        columns, extra_columns, extra_joins = RETENTION_COLUMNS, *_churn_reasons_sql(campaign, user, params)
    if next_best_offer:  # the best other product for each target, by expected value (campaigns/offers.py)
        offers = next_best_offer_sql(campaign.snapshot.run_id, leaving_out=campaign.product.code if campaign.product else None,
                                     where="p.subscriber_id >= $low AND p.subscriber_id < $high")
        if offers is None:
            raise ExportRefused("the frozen snapshot's run fitted no propensity model to offer by", status=400,
                                field="next_best_offer")
        columns = (*columns, *OFFER_COLUMNS)
        extra_columns += ", " + ", ".join(f"o.{c}" for c in OFFER_COLUMNS)
        extra_joins += f" LEFT JOIN {offers} o USING (subscriber_id)"
        filters["next_best_offer"] = True
    sql = (f"SELECT t.subscriber_id, s.msisdn::VARCHAR AS msisdn, t.region_code, array_to_string({reasons}, '; ') AS reasons"
           f"{extra_columns} FROM {target_list_sql(campaign)} t JOIN {subscribers} s USING (subscriber_id){extra_joins} "
           f"WHERE {' AND '.join(where)} AND NOT coalesce(s.marketing_opt_out, false)")
    return _planned(Export(user, ExportLog.Kind.CAMPAIGN, campaign, districts, columns, sql, params, (0, -1), 0,
                           user.has_perm("campaigns.contact_subscribers"), filters),
                    listed=target_list_sql(campaign), params={})


def _churn_reasons_sql(campaign: Campaign, user, params: dict) -> tuple[str, str]:
    """The churn-risk decile and top reasons (by the catalogue's Chinese label) of each target in the frozen snapshot,
    as columns and a join; a reason that tells what a subscriber does online or whom they call is for analysts only
    (tagging.view_behaviour), like the list's own reasons."""
    files = stage_files(campaign.snapshot.run_id, CHURN_STAGE)
    if not files:
        return ", NULL::INTEGER AS churn_risk, '' AS churn_reasons", ""
    features = [f for f in catalogue() if user.has_perm("tagging.view_behaviour") or f.source not in BEHAVIOUR_SOURCES]
    params.update(reason_codes=[f.name for f in features], reason_labels=[f.label for f in features])
    labels = [f"$reason_labels[list_position($reason_codes, c.{name})]" for name in CHURN_REASONS]
    return (f", c.{CHURN_SCORE}::INTEGER AS churn_risk, "
            f"array_to_string(list_filter([{', '.join(labels)}], lambda r: r IS NOT NULL), '; ') AS churn_reasons",
            f" LEFT JOIN (SELECT subscriber_id, {CHURN_SCORE}, {', '.join(CHURN_REASONS)} FROM "
            f"read_parquet({store.files_sql(files)}) WHERE subscriber_id >= $low AND subscriber_id < $high) c "
            f"USING (subscriber_id)")


def plan_area_export(*, user, kind: str, customers: tuple[str, dict] | None, filters: dict) -> Export:
    """A micro-area's or hex's customers (microarea's area_customers_sql) as a list to contact: the contact
    policy applied, refused on a blackout day or over the quota."""
    _no_blackout()
    districts = visible_districts(user)
    if customers is None:
        customers = (empty_relation(subscriber_id="BIGINT", region_code="VARCHAR", customer_class="VARCHAR",
                                    home_h3="UBIGINT", home_confidence="DOUBLE"), {})
    relation, params = customers
    # Opted out and not active as the subscriber file says now; the do-not-disturb list and contact counts now.
    subscribers = (f"(SELECT subscriber_id, msisdn, marketing_opt_out, status FROM {store.current_sql('subscribers')} "
                   f"WHERE subscriber_id >= $low AND subscriber_id < $high)")
    sql = (f"SELECT c.subscriber_id, s.msisdn::VARCHAR AS msisdn, c.region_code, c.customer_class, "
           f"lower(hex(c.home_h3)) AS home_h3, round(c.home_confidence, 3) AS home_confidence "
           f"FROM {relation} c JOIN {subscribers} s USING (subscriber_id) "
           f"WHERE c.subscriber_id >= $low AND c.subscriber_id < $high AND NOT coalesce(s.marketing_opt_out, false) "
           f"AND s.status = 'active' AND c.subscriber_id NOT IN (SELECT subscriber_id FROM barred)")
    barred = np.asarray(contact_barred().to_array(), dtype=np.int64)
    return _planned(Export(user, kind, None, districts, AREA_COLUMNS, sql, params, (0, -1), 0,
                           user.has_perm("campaigns.contact_subscribers"), filters, barred), listed=relation, params=params)


def stream(export: Export, answer: str, *, ids_per_query: int = 50_000) -> Iterator[bytes]:
    """The body, in chunks, one query per range of subscriber ids (so memory stays flat however long the
    list: each range is formatted as CSV or JSON text by DuckDB, in subscriber order); the log entry is made
    before the first row and completed after the last, with the rows and the SHA-256 of what was sent. Rows
    reserved of the quota and not sent (a client that stopped reading) are given back."""
    log = ExportLog.objects.create(user=export.user, kind=export.kind, campaign=export.campaign, filters=export.filters,
                                   format=answer, full_msisdn=export.full_msisdn)
    log.regions.set(Region.objects.filter(code__in=export.districts))
    day = timezone.localdate()
    digest, rows = hashlib.sha256(), 0
    shown = {c: (c if c != "msisdn" or export.full_msisdn else _masked_sql("msisdn")) for c in export.columns}
    if answer == "csv":
        # Cells neutralised once in an inner query, then quoted: quoting names a cell three times, and
        # naming the neutralising expression there would compute it three times (a quarter of the time).
        cells = (f"SELECT {', '.join(f'{_neutralised_sql(shown[c])} AS {c}' if c in TEXT_COLUMNS else c for c in export.columns)} "
                 f"FROM ({export.sql})")
        line = " || ',' || ".join(f"coalesce({_csv_cell_sql(c)}, '')" if c in TEXT_COLUMNS else f"coalesce({c}::VARCHAR, '')"
                                  for c in export.columns)
        head, separator, tail = ",".join(export.columns) + "\n", "\n", "\n"
    else:
        cells = export.sql
        line = f"json_array({', '.join(shown[c] for c in export.columns)})::VARCHAR"
        head, separator, tail = '{"columns": ' + json.dumps(export.columns) + ', "rows": [', ",", "]}"

    def emit(text: str) -> bytes:
        data = text.encode()
        digest.update(data)
        return data

    con = _connect(export.barred)
    try:
        yield emit(head)
        low, high = export.ids
        for start in range(low, high + 1, ids_per_query):
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
        _release_quota(user=export.user, day=day, rows=export.rows - rows)
