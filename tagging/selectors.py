"""Reads that span the lake and the database."""

from __future__ import annotations

from collections.abc import Callable

from pyroaring import BitMap

from .lake import store
from .models import IngestBatch, Region, Snapshot, TagDefinition
from .stages import stage_files, stage_sql

# Sections other apps add to a subscriber's profile (name -> (subscriber_id, snapshot or None) -> JSON), registered in
# their AppConfig.ready(), as the campaigns app adds the next best offer.
PROFILE_SECTIONS: dict[str, Callable[..., object]] = {}


def usage_in_regions(*, snapshot: Snapshot, user) -> dict:
    """The snapshot's usage totals over the subscribers of the user's regions only."""
    codes = list(Region.objects.visible_to(user).values_list("code", flat=True))
    batches = snapshot.run.lake_batches.get("subscribers", [])
    paths = list(IngestBatch.objects.filter(id__in=batches).order_by("id").values_list("lake_path", flat=True))
    empty = {"subscribers": 0, "subscribers_with_usage": 0, "charge_yuan": 0.0, "data_gb": 0.0}
    if not codes or not paths:
        return empty
    subscribers = store.read_sql("subscribers", paths, columns="subscriber_id, region_code, _batch")
    con = store.reader()
    try:
        row = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE u.active_days > 0), coalesce(sum(u.charge_total), 0), "
            f"coalesce(sum(u.data_mb_total), 0) / 1024 FROM {stage_sql(snapshot.run_id, 'features')} u JOIN {subscribers} s USING (subscriber_id) "
            f"WHERE s.region_code IN (SELECT unnest($codes::VARCHAR[]))",
            {"codes": codes},
        ).fetchone()
    finally:
        con.close()
    return {"subscribers": row[0], "subscribers_with_usage": row[1], "charge_yuan": round(row[2], 2), "data_gb": round(row[3], 2)}


def tag_history(*, code: str, user, limit: int = 12) -> list[dict]:
    """A tag's count in the user's regions over the last snapshots, oldest first, with who entered and left."""
    from .services.audiences import SnapshotBitmaps

    snapshots = list(Snapshot.objects.filter(tags__tag__code=code).order_by("-as_of_date", "-id")[:limit])[::-1]
    history, before = [], None
    for snapshot in snapshots:
        bitmaps = SnapshotBitmaps(snapshot, user)
        members = bitmaps.tag(code) & bitmaps.scope
        history.append({
            "snapshot": snapshot.id, "as_of_date": str(snapshot.as_of_date), "count": len(members),
            "entered": len(members - before) if before is not None else None,
            "left": len(before - members) if before is not None else None,
        })
        before = members
    return history


def tag_difference(*, code: str, user, before: Snapshot, after: Snapshot, sample: int = 20) -> dict:
    """Who entered and who left a tag between two snapshots, in the user's regions (a few shown, masked)."""
    from .models import Subscriber
    from .services.audiences import SnapshotBitmaps

    old, new = SnapshotBitmaps(before, user), SnapshotBitmaps(after, user)
    was = old.tag(code) & old.scope if code in old.tag_codes else None
    now = new.tag(code) & new.scope if code in new.tag_codes else None
    if was is None or now is None:
        missing = before if was is None else after
        raise LookupError(f"tag {code} is not in the snapshot of {missing.as_of_date}")
    entered, left = now - was, was - now

    def shown(ids) -> list[dict]:
        first = list(ids[:sample]) if len(ids) else []
        return [{"id": s.id, "msisdn": s.msisdn_masked} for s in Subscriber.objects.filter(id__in=first)]

    return {
        "tag": code, "before": {"snapshot": before.id, "as_of_date": str(before.as_of_date), "count": len(was)},
        "after": {"snapshot": after.id, "as_of_date": str(after.as_of_date), "count": len(now)},
        "entered": len(entered), "left": len(left), "stayed": len(now & was),
        "entered_sample": shown(entered), "left_sample": shown(left),
    }


def tag_overview(*, code: str, user) -> dict:
    """A tag as its page shows it, in the user's regions: the count per district in the current snapshot,
    the count over the last snapshots, and who entered and left in the latest of them."""
    from .services.audiences import SnapshotBitmaps

    history = tag_history(code=code, user=user)
    current = Snapshot.objects.current()
    by_region = []
    if current is not None:
        bitmaps = SnapshotBitmaps(current, user)
        if code in bitmaps.tag_codes:
            by_region = bitmaps.by_region(bitmaps.tag(code))
    difference = None
    if len(history) >= 2:
        snapshots = Snapshot.objects.in_bulk([history[-2]["snapshot"], history[-1]["snapshot"]])
        difference = tag_difference(code=code, user=user, before=snapshots[history[-2]["snapshot"]],
                                    after=snapshots[history[-1]["snapshot"]])
    return {"history": history, "by_region": by_region, "difference": difference}


# Tags saying what a subscriber does online and whom they call: shown per subscriber only to analysts
# (tagging.view_behaviour), like the features they stand on.
BEHAVIOUR_TAG_CATEGORIES = (TagDefinition.Category.INTEREST, TagDefinition.Category.CIRCLE, TagDefinition.Category.INTERNETWORK)


def behaviour_terms() -> set[str]:
    """Tag codes and graded scores that say what a subscriber does online or whom they call."""
    from .models import Product
    from .stages.circles import circle_score_name

    return (set(TagDefinition.objects.filter(category__in=BEHAVIOUR_TAG_CATEGORIES).values_list("code", flat=True))
            | {circle_score_name(code) for code in Product.objects.values_list("code", flat=True)})


def subscriber_tag_timeline(*, subscriber_id: int, limit: int = 12, behaviour: bool = False) -> list[dict]:
    """The subscriber's tags in each of the last snapshots, oldest first, with what was gained and lost; the behaviour
    tags (BEHAVIOUR_TAG_CATEGORIES) only with `behaviour`."""
    from .services.audiences import load_bitmap, snapshot_index

    snapshots = list(Snapshot.objects.order_by("-as_of_date", "-id")[:limit])[::-1]
    names = dict(TagDefinition.objects.values_list("code", "name"))
    hidden = set() if behaviour else behaviour_terms()
    timeline, before = [], None
    for snapshot in snapshots:
        stamp = snapshot.published_at.timestamp()
        held = {code for code, pk in snapshot_index(snapshot.id, stamp)["tag"].items()
                if code not in hidden and subscriber_id in load_bitmap("tag", pk, stamp)}
        timeline.append({
            "snapshot": snapshot.id, "as_of_date": str(snapshot.as_of_date), "tags": sorted(held),
            "gained": sorted(held - before) if before is not None else [],
            "lost": sorted(before - held) if before is not None else [],
        })
        before = held
    for entry in timeline:
        entry["names"] = {code: names.get(code, code) for code in entry["tags"] + entry["lost"]}
    return timeline


def subscriber_features(*, subscriber_id: int, snapshot: Snapshot | None = None, behaviour: bool = False) -> dict | None:
    """The subscriber's feature row in a snapshot (the current one by default), or None. What they do online and whom
    they call (BEHAVIOUR_SOURCES) only with `behaviour`: for users with tagging.view_behaviour."""
    from .stages.features import BEHAVIOUR_SOURCES, FEATURE_SOURCES, catalogue, feature_table_sql

    snapshot = snapshot or Snapshot.objects.current()
    if snapshot is None:
        return None
    files = {stage: stage_files(snapshot.run_id, stage) for stage in FEATURE_SOURCES}
    if not files.get("features"):
        return None
    con = store.reader()
    try:
        cursor = con.execute(f"SELECT * FROM {feature_table_sql(files)} WHERE subscriber_id = $id", {"id": subscriber_id})
        row = cursor.fetchone()
        columns = [d[0] for d in cursor.description]
    finally:
        con.close()
    if row is None:
        return None
    # Catalogue features only: a source's working columns (the handset's IMEI, say) stay out of profiles.
    shown = {f.name for f in catalogue() if behaviour or f.source not in BEHAVIOUR_SOURCES}
    return {name: (round(value, 4) if isinstance(value, float) else value)
            for name, value in zip(columns, row) if name in shown}


def tag_counts(*, user) -> dict[str, tuple[int, int | None]]:
    """Per tag: subscribers in the user's regions in the current snapshot, and in the snapshot before."""
    from .services.audiences import SnapshotBitmaps

    recent = list(Snapshot.objects.filter(tags__isnull=False).distinct().order_by("-is_current", "-as_of_date", "-id")[:2])
    if not recent or not recent[0].is_current:
        return {}
    now = SnapshotBitmaps(recent[0], user).tag_counts()
    before = SnapshotBitmaps(recent[1], user).tag_counts() if len(recent) > 1 else {}
    return {code: (count, before.get(code)) for code, count in now.items()}


def tag_library(*, user) -> list[dict]:
    """Every tag of the current snapshot, in category order, with its count in the user's regions and the
    change since the snapshot before (None when it was not computed then)."""
    counts = tag_counts(user=user)
    order = list(TagDefinition.Category.values)
    rows = []
    for tag in sorted(TagDefinition.objects.filter(code__in=counts), key=lambda t: (order.index(t.category), t.code)):
        now, before = counts[tag.code]
        rows.append({"tag": tag, "count": now, "change": None if before is None else now - before})
    return rows


def subscriber_contacts(*, subscriber_id: int, limit: int = 50) -> list[dict]:
    """The campaign contacts recorded for a subscriber (contact_results), latest first."""
    contacts = store.current_sql("contact_results")
    if contacts is None:
        return []
    con = store.reader()
    try:
        rows = con.execute(f"SELECT campaign, contacted_at, channel, outcome FROM {contacts} WHERE subscriber_id = $id "
                           f"ORDER BY contacted_at DESC LIMIT {limit}", {"id": subscriber_id}).fetchall()
    finally:
        con.close()
    return [{"campaign": campaign, "contacted_at": at.isoformat(), "channel": channel, "outcome": outcome}
            for campaign, at, channel, outcome in rows]


def behaviour_summary(features: dict) -> dict:
    """What a profile shows of a subscriber's behaviour (from their behaviour features): the top app categories by
    time, the circle's size and network, the household."""
    from .stages.apps import CATEGORY_LABELS, INTEREST_CATEGORIES

    minutes = {c: features.get(f"{c}_minutes_30d") or 0 for c in INTEREST_CATEGORIES}
    top = sorted((c for c in minutes if minutes[c] > 0), key=lambda c: -minutes[c])[:3]
    return {
        "top_categories": [{"category": c, "name": CATEGORY_LABELS[c][0], "name_en": CATEGORY_LABELS[c][1],
                            "minutes_30d": round(minutes[c])} for c in top],
        "circle_size": features.get("circle_size"),
        "close_circle_size": features.get("close_circle_size"),
        "circle_onnet_share": features.get("circle_onnet_share"),
        "household_size": features.get("household_size"),
    }


CIRCLE_LISTING_LIMIT = 200  # peers listed, most contacts first: a circle, not a call log


def subscriber_circle(*, subscriber_id: int, snapshot: Snapshot) -> dict:
    """The subscriber's circle in the snapshot's window: each peer with contacts both ways, on-net peers masked,
    off-net ones as their network and pseudonym (never a number), with contacts and seconds; and how many numbers
    only called in (spam, telemarketing, wrong numbers) or were only called."""
    from datetime import timedelta

    from .models import Subscriber
    from .stages.circles import CLOSE_PER_WEEK

    run = snapshot.run
    paths = list(IngestBatch.objects.filter(id__in=run.lake_batches.get("call_records", [])).values_list("lake_path", flat=True))
    start = run.as_of_date - timedelta(days=run.window_days - 1)
    empty = {"window": [str(start), str(run.as_of_date)], "peers": [], "circle_size": 0, "one_way_numbers": 0}
    if not paths:
        return empty
    con = store.reader()
    try:
        rows = con.execute(
            f"SELECT peer, any_value(peer_id), any_value(peer_network), count(*) AS contacts, "
            f"count(*) FILTER (WHERE direction = 'out'), count(*) FILTER (WHERE direction = 'in'), coalesce(sum(seconds), 0) "
            f"FROM read_parquet({store.files_sql(paths)}) WHERE subscriber_id = $id "
            f"AND start_time >= $start::TIMESTAMPTZ AND start_time < $end::TIMESTAMPTZ + INTERVAL 1 DAY GROUP BY peer "
            f"ORDER BY contacts DESC, peer",
            {"id": subscriber_id, "start": str(start), "end": str(run.as_of_date)},
        ).fetchall()
    finally:
        con.close()
    two_way = [r for r in rows if r[4] and r[5]]
    shown = two_way[:CIRCLE_LISTING_LIMIT]
    masked = {s.id: s.msisdn_masked for s in Subscriber.objects.filter(id__in=[r[1] for r in shown if r[1] is not None])}
    close_from = CLOSE_PER_WEEK * run.window_days / 7
    peers = [{
        "peer": masked.get(peer_id, "-") if peer_id is not None else f"{network}:{peer:015x}",
        "on_net": peer_id is not None, "network": network, "contacts": contacts, "outgoing": outgoing,
        "incoming": incoming, "seconds": seconds, "close": contacts >= close_from,
    } for peer, peer_id, network, contacts, outgoing, incoming, seconds in shown]
    return {**empty, "peers": peers, "circle_size": len(two_way), "one_way_numbers": len(rows) - len(two_way),
            "listed": len(peers)}


def revenue_shares(*, snapshot: Snapshot, codes: list[str]) -> dict[str, dict]:
    """Per tag of the snapshot named: its members' share of the active subscribers against their share of the
    monthly revenue (the value stage's), over the whole snapshot: what a segment or tier is worth beside how many
    it is. Empty for a snapshot made before the value stage."""
    from .models import TagSnapshot
    from .services.audiences import run_revenue

    revenue = run_revenue(snapshot.run_id)
    active = snapshot.summary.get("value", {}).get("scored", 0)
    if not active or not revenue.grand_total:
        return {}
    rows = TagSnapshot.objects.filter(snapshot=snapshot, tag__code__in=codes).values_list("tag__code", "bitmap")
    shares = {}
    for code, blob in rows:
        members = BitMap.deserialize(bytes(blob))
        amount = revenue.total(members)
        shares[code] = {"subscribers": len(members), "headcount_share": len(members) / active,
                        "revenue": round(amount), "revenue_share": amount / revenue.grand_total}
    return shares
