"""Reads of the published hex aggregates, summed over the user's districts."""

from __future__ import annotations

import h3

from tagging.lake import store
from tagging.models import Region, Snapshot

from .aggregates import hexes_path


def hex_metric(*, snapshot: Snapshot, user, resolution: int, metric: str, basis: str = "home",
               product: str | None = None, minimum: int = 5) -> list[dict]:
    """One row per hex with subscribers in the user's districts: h3 (string), subscribers and the metric's
    value; hexes under `minimum` subscribers keep their place with both suppressed (None)."""
    path = hexes_path(snapshot.run_id)
    districts = list(Region.objects.visible_to(user).filter(level=Region.Level.DISTRICT).values_list("code", flat=True))
    if not path.exists() or not districts:
        return []
    wanted = {"subscribers": "subscribers", "five_g_share": "five_g_handsets"}.get(metric, f"users:{product}")
    con = store.connect()
    try:
        rows = con.execute(f"""
            SELECT h3, sum(value) FILTER (WHERE metric = 'subscribers') AS subscribers,
                   coalesce(sum(value) FILTER (WHERE metric = $wanted), 0) AS counted
            FROM read_parquet('{path}')
            WHERE resolution = $resolution AND basis = $basis AND region_code IN (SELECT unnest($districts::VARCHAR[]))
              AND metric IN ('subscribers', $wanted)
            GROUP BY h3 ORDER BY h3
        """, {"wanted": wanted, "resolution": resolution, "basis": basis, "districts": districts}).fetchall()
    finally:
        con.close()
    result = []
    for cell, subscribers, counted in rows:
        subscribers = int(subscribers or 0)
        if subscribers < minimum:
            value, shown = None, None
        elif metric in ("penetration", "five_g_share"):
            value, shown = round(counted / subscribers, 4), subscribers
        else:
            value, shown = int(counted), subscribers
        result.append({"h3": h3.int_to_str(int(cell)), "subscribers": shown, "value": value, "suppressed": value is None})
    return result
