"""Ingest usage_daily (validation included) against DuckDB's bare CSV-to-Parquet copy of the same file.

    python bench/ingest.py [--subscribers 1000000] [--days 7] [--city FOLDER]

Goal (issue 2): at most 2x the bare copy. Both are measured in this run, on this machine.

A second reference does what DESIGN.md requires of every lake file on top of the bare copy (MSISDN to
dense subscriber id, sorted by id so a partition reads only its slice), so the cost of validation itself
can be read apart from the cost of the lake layout.
"""

import argparse
import shutil
from pathlib import Path

from _setup import Timer, django_in_scratch, ingest_city


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--city", type=Path, help="an already simulated city folder (else one is simulated)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scratch = django_in_scratch("bench-ingest-")

    from simulation import CityParameters, simulate_city
    from tagging.lake import store
    from tagging.models import IngestBatch
    from tagging.services.ingest import ingest_file

    city = args.city
    if city is None:
        city = scratch / "city"
        print(f"simulating {args.subscribers:,} subscribers x {args.days} days ...", flush=True)
        simulate_city(CityParameters(subscribers=args.subscribers, days=args.days), city)
    ingest_city(city, ["regions", "products", "subscribers"], report=False)
    usage = city / "usage_daily.csv"
    print(f"usage_daily.csv: {usage.stat().st_size / 1e6:,.0f} MB", flush=True)

    subscribers = IngestBatch.objects.get(dataset="subscribers").lake_path
    bare, laid_out, ours = [], [], []
    for attempt in range(args.repeat):
        target = scratch / f"bare-{attempt}.parquet"
        con = store.connect()
        with Timer() as timer:
            con.execute(f"COPY (SELECT * FROM read_csv('{usage}', header = true)) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        bare.append(timer.seconds)
        with Timer() as timer:
            con.execute(
                f"COPY (SELECT m.subscriber_id, u.* EXCLUDE (msisdn) FROM read_csv('{usage}', header = true) u "
                f"JOIN (SELECT msisdn, subscriber_id FROM read_parquet('{subscribers}')) m USING (msisdn) "
                f"ORDER BY m.subscriber_id, u.date) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
            )
        laid_out.append(timer.seconds)
        con.close()
        target.unlink()
        with Timer() as timer:
            batch = ingest_file(dataset="usage_daily", path=usage)
        assert batch.status == IngestBatch.Status.ACCEPTED, batch.message
        ours.append(timer.seconds)
        rows = batch.rows_accepted
        # Forget the batch so the next attempt ingests the file again rather than skipping it.
        Path(batch.lake_path).unlink()
        batch.delete()
    best_bare, best_laid_out, best_ours = min(bare), min(laid_out), min(ours)

    def runs(times):
        return ", ".join(f"{s:.2f}" for s in times)

    print(f"rows: {rows:,}")
    print(f"bare DuckDB CSV->Parquet copy:                  {best_bare:.2f}s (runs: {runs(bare)})")
    print(f"bare copy + subscriber ids + sort (the layout): {best_laid_out:.2f}s (runs: {runs(laid_out)})")
    print(f"ingest with validation:                         {best_ours:.2f}s (runs: {runs(ours)})")
    print(f"ratio against the bare copy: {best_ours / best_bare:.2f}x (goal: at most 2x)")
    print(f"ratio against the copy with the lake layout: {best_ours / best_laid_out:.2f}x")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
