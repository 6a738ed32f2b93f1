"""Audience preview over 10 M-subscriber bitmaps (synthetic), through the API's service function.

    python bench/preview.py [--subscribers 10000000] [--repeat 50]

Goal (issue 3): a 5-term expression counted in a median of at most 20 ms, not counting HTTP; since issue 20 the
count includes the audience's monthly revenue (a gather over the value stage's revenue per line). The
reference, measured in the same run, is the same count as a DuckDB scan of a boolean table with one
column per tag (what a warehouse team's script would do). Also timed, with no goal set: the audience's
profile (every other tag's count within it, for the TGI) against DuckDB counting the same over that table.
"""

import argparse
import statistics
import time
from datetime import date

import numpy as np
from _setup import django_in_scratch

EXPRESSION = "high_value and lifecycle_at_risk and not night_active or sms_expert and comm_active"
DENSITIES = {"high_value": 0.13, "lifecycle_at_risk": 0.05, "night_active": 0.06, "sms_expert": 0.05, "comm_active": 0.9}
DISTRICTS = [("440604", "禅城区"), ("440605", "南海区"), ("440606", "顺德区"), ("440607", "三水区"), ("440608", "高明区")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=10_000_000)
    parser.add_argument("--tags", type=int, default=40, help="tags in the snapshot (5 used by the expression)")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    django_in_scratch("bench-preview-")

    import duckdb
    from django.contrib.auth import get_user_model
    from pyroaring import BitMap

    from tagging.models import Region, RegionSnapshot, Snapshot, SnapshotRun, TagDefinition, TagSnapshot, TagVersion
    from tagging.services.accounts import assign_role
    from tagging.services.audiences import preview_audience, profile_audience

    n = args.subscribers
    rng = np.random.default_rng(1)
    print(f"building {args.tags} tag bitmaps over {n:,} subscribers ...", flush=True)
    city = Region.objects.create(code="4406", name="佛山市", level="city")
    regions = [Region.objects.create(code=code, name=name, level="district", parent=city) for code, name in DISTRICTS]
    run = SnapshotRun.objects.create(as_of_date=date(2026, 10, 31), status="succeeded", window_days=30, partition_size=n)
    snapshot = Snapshot.objects.create(run=run, as_of_date=run.as_of_date, is_current=True, subscriber_count=n)
    district_of = rng.integers(0, len(regions), n)
    ids = np.arange(1, n + 1, dtype=np.uint32)
    for index, region in enumerate(regions):
        bitmap = BitMap(ids[district_of == index])
        RegionSnapshot.objects.create(snapshot=snapshot, region=region, subscriber_count=len(bitmap), bitmap=bitmap.serialize())
    densities = {**DENSITIES, **{f"tag_{i:02d}": float(rng.uniform(0.01, 0.6)) for i in range(args.tags - len(DENSITIES))}}
    columns = {}
    for code, density in densities.items():
        tag = TagDefinition.objects.create(code=code, name=code, category="behaviour", expression="true", version=1)
        version = TagVersion.objects.create(tag=tag, number=1, name=code, category="behaviour", kind="rule", enabled=True)
        member = rng.random(n) < density
        columns[code] = member
        bitmap = BitMap(ids[member])
        TagSnapshot.objects.create(snapshot=snapshot, tag=tag, version=version, subscriber_count=len(bitmap),
                                   bitmap=bitmap.serialize())

    # The value stage's revenue per line, which the preview adds up for the audience (a gather over its bitmap).
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tagging.stages import snapshot_dir

    revenue = rng.lognormal(3.8, 0.7, n).round(2)
    (snapshot_dir(run.id) / "value").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"subscriber_id": ids.astype(np.int64), "monthly_revenue": revenue}),
                   snapshot_dir(run.id) / "value" / "part=00000.parquet")

    User = get_user_model()
    admin = User.objects.create_superuser("bench", password="-")
    sales = User.objects.create_user("sales", password="-")
    assign_role(user=sales, role="sales", region_codes=["440604"])

    def timed(function, repeat):
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            result = function()
            times.append((time.perf_counter() - started) * 1000)
        return result, times

    first, cold = timed(lambda: preview_audience(expression=EXPRESSION, user=admin), 1)
    everyone, warm = timed(lambda: preview_audience(expression=EXPRESSION, user=admin), args.repeat)
    district, warm_sales = timed(lambda: preview_audience(expression=EXPRESSION, user=sales), args.repeat)

    con = duckdb.connect()
    con.register("tags", {"subscriber_id": ids, "district": district_of, **columns})
    con.execute("CREATE TABLE t AS SELECT * FROM tags")
    reference_sql = ("SELECT count(*) FROM t WHERE high_value AND lifecycle_at_risk AND NOT night_active "
                     "OR sms_expert AND comm_active")
    (reference_count,), reference = timed(lambda: con.execute(reference_sql).fetchone(), min(args.repeat, 20))
    assert reference_count == everyone["count"], (reference_count, everyone["count"])
    chosen = ((columns["high_value"] & columns["lifecycle_at_risk"] & ~columns["night_active"])
              | (columns["sms_expert"] & columns["comm_active"]))
    assert everyone["monthly_revenue"] == round(revenue[chosen].sum()), (everyone["monthly_revenue"], revenue[chosen].sum())

    profiled, profile_times = timed(lambda: profile_audience(expression=EXPRESSION, user=admin), min(args.repeat, 20))
    audience_sql = "(high_value AND lifecycle_at_risk AND NOT night_active OR sms_expert AND comm_active)"
    others = [code for code in densities if code not in DENSITIES]
    profile_sql = f"SELECT {', '.join(f'count_if({audience_sql} AND {code})' for code in others)} FROM t"
    counted, profile_reference = timed(lambda: con.execute(profile_sql).fetchone(), min(args.repeat, 20))
    assert list(counted) == [row["count"] for row in sorted(profiled["tags"], key=lambda row: row["tag"]) if row["tag"] in others]

    print(f"expression: {EXPRESSION}")
    print(f"count: {everyone['count']:,} of {everyone['subscribers']:,}; one district: {district['count']:,}")
    print(f"first call (bitmaps loaded from the database): {cold[0]:.1f} ms")
    print(f"preview_audience, all regions:  median {statistics.median(warm):.2f} ms, p95 {np.percentile(warm, 95):.2f} ms")
    print(f"preview_audience, one district: median {statistics.median(warm_sales):.2f} ms, p95 {np.percentile(warm_sales, 95):.2f} ms")
    print(f"reference, DuckDB scan of an in-memory boolean table: median {statistics.median(reference):.2f} ms")
    print(f"ratio preview / reference: {statistics.median(warm) / statistics.median(reference):.2f}x "
          f"(goal: median at most 20 ms: {'met' if statistics.median(warm) <= 20 else 'NOT met'})")
    print(f"profile_audience ({len(profiled['tags'])} other tags' shares and TGI), all regions: "
          f"median {statistics.median(profile_times):.1f} ms; reference, DuckDB counting each tag within the audience "
          f"over the boolean table: median {statistics.median(profile_reference):.1f} ms "
          f"({statistics.median(profile_times) / statistics.median(profile_reference):.2f}x; no goal set)")


if __name__ == "__main__":
    main()
