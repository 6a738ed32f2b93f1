"""Streaming a campaign's target list as CSV through the API, against a bare DuckDB copy of the same rows.

    python bench/export.py [--subscribers 1000000] [--days 7] [--city FOLDER]

Goal (issue 6): at least 200,000 rows/s through GET /api/v1/campaigns/{id}/targets/?format=csv (Django's
test client, the body read chunk by chunk as a client would), with peak memory growth under 50 MB while
streaming; the reference, a bare DuckDB COPY of the same rows to a CSV file, measured in the same run.
The campaign's audience is everyone, so the list is the whole city less exclusions and a 1% holdout.
"""

import threading
import time
from datetime import date

from _setup import Timer, city_arguments, city_folder, django_in_scratch, ingest_city

DATASETS = ["regions", "products", "tac_catalogue", "cells", "subscribers", "subscriptions", "usage_daily",
            "events", "imei_observations", "stays"]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


class PeakMemory:
    """The largest resident set size seen while the block runs, sampled every 10 ms."""

    def __enter__(self):
        self.before, self.peak, self._running = rss_mb(), rss_mb(), True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def main() -> None:
    parser = city_arguments()
    args = parser.parse_args()
    scratch = django_in_scratch("bench-export-")

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from campaigns.models import Campaign
    from campaigns.services.campaigns import freeze_campaign, targets_path
    from tagging.lake import store
    from tagging.models import Product, Region, StaffProfile
    from tagging.services.accounts import assign_role
    from tagging.services.snapshots import start_snapshot_run
    from tagging.services.tags import install_starting_catalogue

    ingest_city(city_folder(args, scratch, date(2026, 10, 31)), DATASETS, report=False)
    install_starting_catalogue()
    start_snapshot_run(as_of=date(2026, 10, 31), window_days=args.days)
    districts = list(Region.objects.filter(level=Region.Level.DISTRICT).values_list("code", flat=True))
    user = get_user_model().objects.create_user("bench_field", password="unused")
    assign_role(user=user, role=StaffProfile.Role.FIELD, region_codes=districts)
    manager = get_user_model().objects.create_user("bench_manager", password="unused")
    assign_role(user=manager, role=StaffProfile.Role.ADMIN, region_codes=districts)
    # The least-held product: its holders are left out of its campaigns, and the list should be near a million.
    campaign = Campaign.objects.create(name="bench", product=Product.objects.get(code="roaming_pack"),
                                       audience="comm_active or not comm_active", channel="outbound_call",
                                       start_date=date(2026, 11, 1), end_date=date(2026, 11, 30), control_share="0.01",
                                       owner=manager)
    campaign.regions.set(Region.objects.filter(code__in=districts))
    campaign = freeze_campaign(campaign=campaign, user=manager, seed=1)
    rows = campaign.counts["targets"]

    con = store.connect()
    with Timer() as bare:
        con.execute(f"COPY (SELECT t.subscriber_id, s.msisdn, t.region_code, array_to_string(t.reasons, '; ') AS reasons "
                    f"FROM read_parquet('{targets_path(campaign)}') t JOIN {store.current_sql('subscribers')} s "
                    f"USING (subscriber_id) WHERE t.\"group\" = 'target' AND NOT coalesce(s.marketing_opt_out, false) "
                    f"ORDER BY t.subscriber_id) TO '{scratch / 'bare.csv'}' (FORMAT csv, HEADER)")
    con.close()

    client = Client()
    client.force_login(user)
    settings.EXPORT_ROWS_PER_DAY = 10 * rows  # the benchmark exports the list twice

    def export() -> tuple[float, float, int, int]:
        with PeakMemory() as memory, Timer() as api:
            response = client.get(f"/api/v1/campaigns/{campaign.id}/targets/?format=csv")
            size, lines = 0, 0
            for chunk in response.streaming_content:
                size += len(chunk)
                lines += chunk.count(b"\n")
        assert lines - 1 == rows, (lines, rows)
        return api.seconds, memory.peak - memory.before, size, lines

    cold_seconds, cold_memory, size, _ = export()  # the first export in the process
    seconds, memory, _, _ = export()  # as a running server exports
    print(f"\n{rows:,} target rows, {size / 1e6:.1f} MB of CSV")
    print(f"  bare DuckDB COPY of the same rows to CSV: {bare.seconds:.2f}s ({rows / bare.seconds:,.0f} rows/s)")
    print(f"  streamed through the API:                 {seconds:.2f}s ({rows / seconds:,.0f} rows/s; goal at least 200,000)")
    print(f"  ratio: {seconds / bare.seconds:.1f}x the bare copy; peak memory growth while streaming {memory:.1f} MB "
          f"(goal under 50 MB)")
    print(f"  the first export in a fresh process: {cold_seconds:.2f}s, peak memory growth {cold_memory:.1f} MB "
          f"(DuckDB and Python warming up once)", flush=True)


if __name__ == "__main__":
    main()
