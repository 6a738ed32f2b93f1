"""Touch-point triggers (触点营销): each accepted batch of signalling events, matched against the event
rules of running campaigns, adds subscribers to their target streams within minutes of the ingest.

One DuckDB query per trigger finds who the batch matches; then, set-wise: the campaign's districts only,
nobody already on its list, the contact policy of the current snapshot (opted out, inactive, holding the
product, do-not-disturb, contacted too often), and the campaign's control share held out by a draw that
depends only on the campaign's seed and the subscriber. Rows are unique per (campaign, subscriber), so a
batch processed twice adds nothing; the stream is kept in the database and written beside the frozen
list, where exports, outcomes and the evaluation read it.
"""

from __future__ import annotations

from datetime import timezone as dt_timezone

import numpy as np
import pyarrow as pa
from django.db import transaction
from pyroaring import BitMap

from microarea.models import MicroArea
from microarea.services.coverage import cell_coverage
from tagging.bitmaps import to_bitmap
from tagging.lake import store
from tagging.lake.sql import empty_relation
from tagging.models import IngestBatch, Snapshot
from tagging.stages import write_table_atomically

from ..models import Campaign, EventTrigger, TriggeredTarget, TriggerPass
from .campaigns import CampaignRefused, excluded_now, target_list_sql, triggered_path

AREA_LOOKBACK_DAYS = 30  # "first seen" in an area: no event at its cells in this many days before


def check_event_trigger(*, campaign: Campaign, user, kind: str, micro_area=None) -> None:
    """A new event rule goes on a frozen or running campaign; an area rule names a micro-area of the campaign's
    districts that the user sees. Admin's form checks a rule with it; the API adds one with add_event_trigger."""
    if campaign.status in (Campaign.Status.DRAFT, Campaign.Status.CLOSED):
        raise CampaignRefused(f"the campaign is {campaign.status}: rules go on frozen or running campaigns",
                              field="campaign")
    if kind == EventTrigger.Kind.ENTERED_AREA and micro_area is None:
        raise CampaignRefused("entered_area needs the micro-area entered", field="micro_area")
    if micro_area is not None and not MicroArea.objects.visible_to(user).filter(
            pk=micro_area.pk, region__code__in=campaign.counts.get("districts", [])).exists():
        raise CampaignRefused(f"no micro-area {micro_area.pk} in this campaign's districts of yours", field="micro_area")


def add_event_trigger(*, campaign: Campaign, user, kind: str, micro_area=None, min_off_days: int = 3,
                      enabled: bool = True) -> EventTrigger:
    check_event_trigger(campaign=campaign, user=user, kind=kind, micro_area=micro_area)
    return EventTrigger.objects.create(campaign=campaign, kind=kind, micro_area=micro_area, min_off_days=min_off_days,
                                       enabled=enabled, created_by=user)


def _matching_sql(trigger: EventTrigger, batch: str) -> tuple[str, dict]:
    """(subscriber_id, event_time) of the batch's events the trigger matches, first per subscriber."""
    events = store.current_sql("events")
    if trigger.kind == EventTrigger.Kind.ROAMING_START:
        return f"SELECT subscriber_id, min(time) FROM {batch} WHERE kind = 'roaming_start' GROUP BY 1", {}
    if trigger.kind == EventTrigger.Kind.HANDSET_5G:
        catalogue = store.current_sql("tac_catalogue")
        if catalogue is None:
            return f"SELECT * FROM {empty_relation(subscriber_id='BIGINT', time='TIMESTAMPTZ')}", {}
        return (f"SELECT subscriber_id, min(time) FROM {batch} WHERE kind = 'imei_change' "
                f"AND substr(imei, 1, 8) IN (SELECT tac::VARCHAR FROM {catalogue} WHERE network = '5G') GROUP BY 1"), {}
    if trigger.kind == EventTrigger.Kind.BACK_ON:
        # The power-off before each power-on, from everything the lake holds of the subscriber.
        return (f"SELECT o.subscriber_id, min(o.time) FROM {batch} o WHERE o.kind = 'power_on' AND "
                f"o.time - (SELECT max(f.time) FROM {events} f WHERE f.subscriber_id = o.subscriber_id "
                f"AND f.kind = 'power_off' AND f.time < o.time) >= to_days($days) GROUP BY 1"), {"days": trigger.min_off_days}
    # ENTERED_AREA: the area's cells are those whose coverage lies mostly inside it; "first" means no
    # event at any of them in the lookback before this one.
    coverage = cell_coverage()
    cells = (f"(SELECT cell_key FROM read_parquet('{coverage}') GROUP BY cell_key "
             f"HAVING sum(weight) FILTER (WHERE h3 IN (SELECT unnest($hexes::UBIGINT[]))) >= 0.5)") if coverage else \
        empty_relation(cell_key="VARCHAR")
    return (f"SELECT e.subscriber_id, min(e.time) FROM {batch} e WHERE e.cell_key IN {cells} AND NOT EXISTS ("
            f"SELECT 1 FROM {events} f WHERE f.subscriber_id = e.subscriber_id AND f.cell_key IN {cells} "
            f"AND f.time < e.time AND f.time >= e.time - INTERVAL {AREA_LOOKBACK_DAYS} DAY) GROUP BY 1"), \
        {"hexes": trigger.micro_area.hex_array().tolist()}


def _held_out(seed: int, ids: np.ndarray, share: float) -> np.ndarray:
    """A draw per subscriber from the campaign's seed alone (splitmix64): the same subscriber falls in the
    same group whichever batch finds them, and whatever else that batch holds."""
    x = ids.astype(np.uint64) + np.uint64(seed & (2 ** 64 - 1))
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / 2.0 ** 53 < share


def apply_event_triggers(*, batch_id: int) -> int:
    """Add what an accepted events batch matches to every running campaign's stream; return how many."""
    batch = IngestBatch.objects.filter(id=batch_id, dataset="events", status=IngestBatch.Status.ACCEPTED).first()
    snapshot = Snapshot.objects.current()
    if batch is None:
        return 0
    if snapshot is None:  # nothing published yet: no policy to apply, nobody is added
        TriggerPass.objects.update_or_create(batch=batch, defaults={"added": 0})
        return 0
    added = 0
    triggers = (EventTrigger.objects.filter(enabled=True, campaign__status=Campaign.Status.RUNNING)
                .select_related("campaign__product", "micro_area").order_by("campaign_id", "id"))
    for trigger in triggers:  # a handful of rules; each is one set-wise query
        added += _apply(trigger, batch, snapshot)
    TriggerPass.objects.update_or_create(batch=batch, defaults={"added": added})
    return added


def _apply(trigger: EventTrigger, batch: IngestBatch, snapshot: Snapshot) -> int:
    campaign = trigger.campaign
    sql, params = _matching_sql(trigger, store.read_sql("events", [batch.lake_path]))
    con = store.reader()
    try:
        found = con.execute(
            f"SELECT m.subscriber_id, m.event_time, s.region_code FROM ({sql}) AS m(subscriber_id, event_time) "
            f"JOIN {store.current_sql('subscribers')} s USING (subscriber_id) "
            f"WHERE s.region_code IN (SELECT unnest($districts::VARCHAR[])) "
            f"AND m.subscriber_id NOT IN (SELECT subscriber_id FROM {target_list_sql(campaign)}) ORDER BY 1",
            {**params, "districts": campaign.counts.get("districts", [])}).fetchnumpy()
    finally:
        con.close()
    ids = np.asarray(found["subscriber_id"], dtype=np.int64)
    barred = BitMap.union(BitMap(), *excluded_now(snapshot, campaign.product.code if campaign.product else None).values())
    keep = ~np.isin(ids, np.fromiter(barred & to_bitmap(ids), dtype=np.int64))
    ids, times, regions = ids[keep], np.asarray(found["event_time"])[keep], np.asarray(found["region_code"])[keep]
    control = _held_out(campaign.seed or 0, ids, float(campaign.control_share))
    with transaction.atomic():
        # One pass at a time writes a campaign's stream: the file is rewritten from the table, and a second pass
        # writing it alongside, without the first's rows (not yet committed), would drop them from the list.
        list(Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("pk", flat=True))
        created = TriggeredTarget.objects.bulk_create([
            TriggeredTarget(campaign=campaign, trigger=trigger, subscriber_id=int(i), event_time=t.replace(tzinfo=dt_timezone.utc), region_code=r,
                            group="control" if c else "target", batch=batch)
            # DuckDB hands timestamps with a zone over as UTC without one.
            for i, t, r, c in zip(ids, times.astype("datetime64[us]").tolist(), regions.tolist(), control)
        ], ignore_conflicts=True)
        _write_stream(campaign)
    return len(created)


def _write_stream(campaign: Campaign) -> None:
    """The campaign's stream as a list file like the frozen one (subscriber_id, group, region, reasons)."""
    rows = list(TriggeredTarget.objects.filter(campaign=campaign).order_by("subscriber_id")
                .values_list("subscriber_id", "group", "region_code", "trigger__kind"))
    write_table_atomically(pa.table({
        "subscriber_id": pa.array([r[0] for r in rows], pa.int64()), "group": pa.array([r[1] for r in rows], pa.string()),
        "region_code": pa.array([r[2] for r in rows], pa.string()),
        "reasons": pa.array([[f"trigger:{r[3]}"] for r in rows], pa.list_(pa.string())),
    }), triggered_path(campaign))
