"""The hex API for a whole city at resolution 8, against a bare DuckDB read of the same aggregates.

    python bench/hexes.py [--subscribers 1000000] [--days 7] [--city FOLDER]

Goal (issue 5): GET /api/v1/hexes/?resolution=8 for a user of every district (the whole city) answers
in at most 100 ms median through Django's test client, warm. A full snapshot run (every stage) makes the
aggregates first; the reference is the bare DuckDB query summing the same hex file, in this run.
"""

import shutil
import statistics
from datetime import date

from _setup import Timer, city_arguments, city_folder, django_in_scratch, ingest_city

DATASETS = ["regions", "products", "tac_catalogue", "cells", "subscribers", "subscriptions", "usage_daily",
            "events", "imei_observations", "stays"]


def main() -> None:
    parser = city_arguments()
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    scratch = django_in_scratch("bench-hexes-")

    from django.contrib.auth import get_user_model
    from django.test import Client

    from microarea.stages.aggregates import hexes_path
    from tagging.lake import store
    from tagging.models import Region, Snapshot, StaffProfile
    from tagging.services.accounts import assign_role
    from tagging.services.snapshots import start_snapshot_run
    from tagging.services.tags import install_starting_catalogue

    ingest_city(city_folder(args, scratch, date(2026, 10, 31)), DATASETS, report=False)
    install_starting_catalogue()
    as_of = date(2026, 10, 31)  # the simulated end date (the last night's stays run into the next morning)
    with Timer() as timer:
        run = start_snapshot_run(as_of=as_of, window_days=args.days)  # Celery eager: the whole run, here
    snapshot = Snapshot.objects.get(run=run)
    print(f"snapshot run of {snapshot.subscriber_count:,} subscribers in {timer.seconds:.0f}s", flush=True)

    user = get_user_model().objects.create_user("bench_city", password="unused")
    assign_role(user=user, role=StaffProfile.Role.SALES,
                region_codes=list(Region.objects.filter(level=Region.Level.DISTRICT).values_list("code", flat=True)))
    client = Client()
    client.force_login(user)
    url = "/api/v1/hexes/?resolution=8"
    api, bare = [], []
    path = hexes_path(snapshot.run_id)
    for _ in range(2):  # warm: bitmaps, file metadata and Python code paths loaded
        assert client.get(url).status_code == 200
    for _ in range(args.calls):
        with Timer() as timer:
            response = client.get(url)
        api.append(timer.seconds)
        con = store.connect()
        with Timer() as timer:
            rows = con.execute(f"SELECT h3, sum(value) FROM read_parquet('{path}') WHERE resolution = 8 AND basis = 'home' "
                               f"AND metric = 'subscribers' GROUP BY h3").fetchall()
        bare.append(timer.seconds)
        con.close()
    features = response.json()["features"]
    assert len(features) == len(rows), (len(features), len(rows))
    median_api, median_bare = statistics.median(api) * 1000, statistics.median(bare) * 1000
    print(f"\n{snapshot.subscriber_count:,} subscribers, {len(features):,} res-8 hexes, hex file "
          f"{path.stat().st_size / 1e6:.1f} MB")
    print(f"  bare DuckDB query of the hex file: median {median_bare:.1f} ms")
    print(f"  GET {url} (test client, warm): median {median_api:.1f} ms, p90 "
          f"{sorted(api)[int(0.9 * len(api))] * 1000:.1f} ms (goal: median at most 100 ms)")
    print(f"  ratio to the bare query: {median_api / median_bare:.1f}x", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
