"""Reads that span the lake and the database."""

from __future__ import annotations

from .lake import store
from .models import IngestBatch, Region, Snapshot
from .stages import snapshot_dir


def usage_in_regions(*, snapshot: Snapshot, user) -> dict:
    """The snapshot's usage totals over the subscribers of the user's regions only."""
    codes = list(Region.objects.visible_to(user).values_list("code", flat=True))
    batches = snapshot.run.lake_batches.get("subscribers", [])
    paths = list(IngestBatch.objects.filter(id__in=batches).order_by("id").values_list("lake_path", flat=True))
    empty = {"subscribers": 0, "subscribers_with_usage": 0, "charge_yuan": 0.0, "data_gb": 0.0}
    if not codes or not paths:
        return empty
    totals = snapshot_dir(snapshot.run_id) / "features" / "*.parquet"
    subscribers = store.read_sql("subscribers", paths, columns="subscriber_id, region_code, _batch")
    con = store.connect()
    try:
        row = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE u.active_days > 0), coalesce(sum(u.charge_total), 0), "
            f"coalesce(sum(u.data_mb_total), 0) / 1024 FROM read_parquet('{totals}') u JOIN {subscribers} s USING (subscriber_id) "
            f"WHERE s.region_code IN (SELECT unnest($codes::VARCHAR[]))",
            {"codes": codes},
        ).fetchone()
    finally:
        con.close()
    return {"subscribers": row[0], "subscribers_with_usage": row[1], "charge_yuan": round(row[2], 2), "data_gb": round(row[3], 2)}
