"""simulate_city for 1 M subscribers x 7 days (issue 2: "in minutes on this 2-core machine"), and its peak memory
(issue 19: 1 M x 30 days and 10 M x 7 days fit in 24 GiB).

    python bench/simulate.py [--subscribers 1000000] [--days 7] [--format csv|parquet]

Reference, measured in the same run: DuckDB reading every raw file the simulator wrote and copying it to
Parquet, i.e. moving the same rows through a fast columnar engine once. The ratio says how much the
simulation itself costs beyond producing that many rows. Peak memory is this process's resident high-water mark
after simulating (before the reference runs).
"""

import argparse
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from _setup import ROOT, Timer

sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    args = parser.parse_args()

    import duckdb

    from simulation import CityParameters, simulate_city

    scratch = Path(tempfile.mkdtemp(prefix="bench-simulate-"))
    with Timer() as simulate:
        summary = simulate_city(CityParameters(subscribers=args.subscribers, days=args.days, file_format=args.format), scratch / "city")
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    rows = sum(summary["rows"].values())
    con = duckdb.connect()
    with Timer() as reference:
        for raw in sorted((scratch / "city").glob(f"*.{args.format}")):
            reader = "read_csv" if args.format == "csv" else "read_parquet"
            con.execute(f"COPY (SELECT * FROM {reader}('{raw}')) TO '{scratch / (raw.stem + '.copy.parquet')}' (FORMAT parquet)")
    print(f"subscribers x days: {args.subscribers:,} x {args.days}; rows written: {rows:,}")
    print(f"simulate_city:                      {simulate.seconds:.1f}s ({simulate.seconds / 60:.1f} min)")
    print(f"peak resident memory while simulating: {peak_gib:.1f} GiB (goal: under 24 GiB)")
    print(f"reference, DuckDB {args.format}->Parquet of the same files: {reference.seconds:.1f}s")
    print(f"ratio: {simulate.seconds / reference.seconds:.2f}x (requirement: minutes; took {simulate.seconds / 60:.1f} min)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
