"""Target-list exports for field teams: the frozen targets (never the control group) of the caller's
districts, optionally of one micro-area, subscribers who have since opted out left out; full MSISDNs only
for users allowed to contact subscribers; streamed in batches, hashed as they go, and logged."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from microarea.models import MicroArea
from tagging.lake import store
from tagging.models import Region
from tagging.privacy import mask_msisdn
from tagging.stages import snapshot_dir

from ..models import Campaign, ContactBlackout, ExportLog
from .campaigns import targets_path

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
    today = timezone.localdate()
    blackout = ContactBlackout.objects.filter(start_date__lte=today, end_date__gte=today).first()
    if blackout is not None:
        raise ExportRefused(f"no contacts from {blackout.start_date} to {blackout.end_date}: {blackout.reason}", status=409)
    districts = sorted(set(Region.objects.visible_to(user).filter(level=Region.Level.DISTRICT).values_list("code", flat=True))
                       & set(campaign.counts.get("districts", [])))
    where, params = ["t.\"group\" = 'target'", "t.region_code IN (SELECT unnest($districts::VARCHAR[]))"], {"districts": districts}
    filters = {}
    if area_id is not None:
        area = MicroArea.objects.visible_to(user).filter(pk=area_id).first()
        if area is None:
            raise ExportRefused(f"no micro-area {area_id} in your regions", status=404)
        location = snapshot_dir(campaign.snapshot.run_id) / "location"
        where.append(f"t.subscriber_id IN (SELECT subscriber_id FROM read_parquet('{location}/part=*.parquet') "
                     f"WHERE home_h3 IN (SELECT unnest($hexes::UBIGINT[])))")
        params["hexes"] = area.hex_array().tolist()
        filters["area"] = {"id": area.id, "name": area.name}
    subscribers = store.current_sql("subscribers")
    sql = (f"SELECT t.subscriber_id, s.msisdn::VARCHAR AS msisdn, t.region_code, t.reasons "
           f"FROM read_parquet('{targets_path(campaign)}') t JOIN {subscribers} s USING (subscriber_id) "
           f"WHERE {' AND '.join(where)} AND NOT coalesce(s.marketing_opt_out, false)")
    con = store.reader()
    try:
        (rows,) = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()
    finally:
        con.close()
    exported = ExportLog.objects.filter(user=user, created_at__date=today).aggregate(n=Sum("rows"))["n"] or 0
    quota = settings.EXPORT_ROWS_PER_DAY
    if exported + rows > quota:
        raise ExportRefused(f"export quota: {quota:,} rows a day; {exported:,} exported today and this list has {rows:,}",
                            status=429)
    return Export(campaign, user, f"{sql} ORDER BY t.subscriber_id", params, rows,
                  user.has_perm("campaigns.contact_subscribers"), filters)


def stream(export: Export, answer: str, *, batch_size: int = 20_000) -> Iterator[bytes]:
    """The body, in chunks; the log entry is made before the first row and completed after the last."""
    log = ExportLog.objects.create(user=export.user, campaign=export.campaign, filters=export.filters, format=answer,
                                   full_msisdn=export.full_msisdn)
    digest, rows = hashlib.sha256(), 0
    show = (lambda msisdn: msisdn) if export.full_msisdn else mask_msisdn

    def emit(text: str) -> bytes:
        data = text.encode()
        digest.update(data)
        return data

    con = store.reader()
    try:
        cursor = con.execute(export.sql, export.params)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if answer == "csv":
            writer.writerow(COLUMNS)
        else:
            buffer.write('{"columns": ' + json.dumps(COLUMNS) + ', "rows": [')
        while batch := cursor.fetchmany(batch_size):
            shown = [(sid, show(msisdn), region, "; ".join(reasons)) for sid, msisdn, region, reasons in batch]
            if answer == "csv":
                writer.writerows([[neutralised(v) for v in row] for row in shown])
            else:
                buffer.write(("," if rows else "") + ",".join(json.dumps(row, ensure_ascii=False) for row in shown))
            rows += len(batch)
            yield emit(buffer.getvalue())
            buffer.seek(0), buffer.truncate()
        if answer == "json":
            buffer.write("]}")
        yield emit(buffer.getvalue())
        log.completed = True
    finally:
        con.close()
        log.rows, log.sha256 = rows, digest.hexdigest()
        log.save(update_fields=["rows", "sha256", "completed"])
