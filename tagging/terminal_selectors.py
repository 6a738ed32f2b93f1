"""Reads of the terminal snapshot library: the mix, brand switching and change cycles per the user's
districts (from the published aggregates), and one subscriber's handsets over time (from the lake)."""

from __future__ import annotations

from django.db.models import Sum
from django.utils.translation import gettext_lazy as _

from .lake import store
from .models import HandsetSwitch, Snapshot, TerminalShare, TerminalSummary
from .models.terminals import CYCLE_BINS
from .stages import stage_files
from .stages.terminals import DEVICES

UNREGISTERED = _("Unregistered")  # a TAC the catalogue lacks: no brand to show
MIX_BY = {
    "model": ["brand", "model", "tier", "network", "os"],
    "brand": ["brand"],
    "tier": ["tier"],
    "network": ["network"],
    "os": ["os"],
}


def mask_imei(imei: str | None) -> str | None:
    """The TAC names the model and stays; the serial number is personal and is hidden: 86123456******7."""
    return f"{imei[:8]}******{imei[14:]}" if imei and len(imei) == 15 else imei


def terminal_mix(*, user, snapshot: Snapshot, by: str = "model") -> dict:
    """Subscribers with a handset in the user's districts, by model (or brand, tier, network, OS), with shares."""
    if by not in MIX_BY:
        raise ValueError(f"by must be one of {', '.join(MIX_BY)}, not {by!r}")
    fields = MIX_BY[by]
    rows = list(
        TerminalShare.objects.visible_to(user).filter(snapshot=snapshot).values(*fields)
        .annotate(subscribers=Sum("subscribers"), knockoffs=Sum("knockoffs")).order_by("-subscribers", *fields)
    )
    total = sum(r["subscribers"] for r in rows)
    for row in rows:
        row["share"] = round(row["subscribers"] / total, 4) if total else 0.0
        if "brand" in row and not row["brand"]:
            row["brand"] = str(UNREGISTERED)
    return {"snapshot": str(snapshot.as_of_date), "by": by, "subscribers": total, "rows": rows}


def switching_matrix(*, user, snapshot: Snapshot) -> dict:
    """Brand-to-brand handset changes in the 12 months to the snapshot in the user's districts; per brand
    its retention (changes that stayed with the brand, of all changes away from a handset of it)."""
    flows = (HandsetSwitch.objects.visible_to(user).filter(snapshot=snapshot)
             .values("from_brand", "to_brand").annotate(changes=Sum("changes")))
    volume: dict[str, int] = {}
    cells: dict[tuple[str, str], int] = {}
    for flow in flows:
        before, after = flow["from_brand"] or str(UNREGISTERED), flow["to_brand"] or str(UNREGISTERED)
        cells[before, after] = cells.get((before, after), 0) + flow["changes"]
        volume[before] = volume.get(before, 0) + flow["changes"]
        volume[after] = volume.get(after, 0) + flow["changes"]
    brands = sorted(volume, key=lambda b: (-volume[b], b))
    matrix = [[cells.get((a, b), 0) for b in brands] for a in brands]
    per_brand = []
    for i, brand in enumerate(brands):
        left, arrived = sum(matrix[i]), sum(row[i] for row in matrix)
        stayed = matrix[i][i]
        per_brand.append({"brand": brand, "changes_from": left, "changes_to": arrived, "stayed": stayed,
                          "retention": round(stayed / left, 4) if left else None, "net": arrived - left})
    return {"snapshot": str(snapshot.as_of_date), "period_days": 365, "brands": brands, "matrix": matrix,
            "changes": sum(map(sum, matrix)), "per_brand": per_brand}


def change_cycle_distribution(*, user, snapshot: Snapshot) -> dict:
    """Subscribers by how long they keep a handset, in the user's districts."""
    summaries = list(TerminalSummary.objects.visible_to(user).filter(snapshot=snapshot))
    counts = [sum(s.cycle_bins[i] for s in summaries) for i in range(len(CYCLE_BINS))]
    bounds = CYCLE_BINS + [None]
    bins = [{"from_days": bounds[i], "to_days": bounds[i + 1], "subscribers": n,
             "label": (_("%(low)s-%(high)s days") % {"low": bounds[i], "high": bounds[i + 1]} if bounds[i + 1]
                       else _("%(low)s+ days") % {"low": bounds[i]})}
            for i, n in enumerate(counts)]
    return {
        "snapshot": str(snapshot.as_of_date), "bins": bins,
        "unknown": sum(s.cycle_unknown for s in summaries),
        "with_handset": sum(s.with_handset for s in summaries), "subscribers": sum(s.subscribers for s in summaries),
        "knockoffs": sum(s.knockoffs for s in summaries), "five_g_handsets": sum(s.five_g_handsets for s in summaries),
        "changes_12m": sum(s.changes_12m for s in summaries),
    }


def subscriber_handsets(*, subscriber_id: int, limit: int = 12) -> dict:
    """One subscriber's handset chain as of the current snapshot, its changes (from/to model), and the
    handset in use at each of the last snapshots (IMEIs masked)."""
    snapshots = list(Snapshot.objects.order_by("-as_of_date", "-id")[:limit])[::-1]
    con = store.reader()
    try:
        over_time = []
        for snapshot in snapshots:
            files = stage_files(snapshot.run_id, "terminals")
            if not files:
                continue
            cursor = con.execute(
                f"SELECT handset_brand, handset_model, handset_network, handset_since, handset_days, knockoff_reason "
                f"FROM read_parquet({store.files_sql(files)}) WHERE subscriber_id = $id", {"id": subscriber_id})
            row = cursor.fetchone()
            if row and row[3] is not None:
                brand, model, network, since, days, knockoff = row
                over_time.append({"snapshot": snapshot.id, "as_of_date": str(snapshot.as_of_date), "brand": brand,
                                  "model": model, "network": network, "since": str(since), "days": days,
                                  "knockoff_reason": knockoff})
        chain = []
        current = snapshots[-1] if snapshots else None
        files = stage_files(current.run_id, DEVICES) if current else []
        if files:
            cursor = con.execute(
                f"SELECT position, imei, brand, model, first_seen, last_seen, days_seen, knockoff_reason, "
                f"reported_brand, reported_model FROM read_parquet({store.files_sql(files)}) "
                f"WHERE subscriber_id = $id ORDER BY position", {"id": subscriber_id})
            names = [d[0] for d in cursor.description]
            for values in cursor.fetchall():
                handset = dict(zip(names, values))
                handset["imei"] = mask_imei(handset["imei"])
                handset["first_seen"], handset["last_seen"] = str(handset["first_seen"]), str(handset["last_seen"])
                chain.append(handset)
    finally:
        con.close()
    # Every handset after the first is a change from the one before it.
    changes = [{"date": after["first_seen"], "from_brand": before["brand"], "from_model": before["model"],
                "to_brand": after["brand"], "to_model": after["model"]}
               for before, after in zip(chain, chain[1:])]
    return {"snapshot": str(current.as_of_date) if current else None, "handsets": chain, "changes": changes,
            "over_time": over_time}
