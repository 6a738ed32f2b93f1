"""simulate_city for 1 M subscribers x 7 days (issue 2: "in minutes on this 2-core machine").

    python bench/simulate.py [--subscribers 1000000] [--days 7]

Reference, measured in the same run: DuckDB reading every CSV the simulator wrote and copying it to
Parquet, i.e. moving the same rows through a fast columnar engine once. The ratio says how much the
simulation itself costs beyond producing that many rows.
"""

import argparse
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
    args = parser.parse_args()

    import duckdb

    from simulation import CityParameters, simulate_city

    scratch = Path(tempfile.mkdtemp(prefix="bench-simulate-"))
    with Timer() as simulate:
        summary = simulate_city(CityParameters(subscribers=args.subscribers, days=args.days), scratch / "city")
    rows = sum(summary["rows"].values())
    con = duckdb.connect()
    with Timer() as reference:
        for csv in sorted((scratch / "city").glob("*.csv")):
            con.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{scratch / (csv.stem + '.parquet')}' (FORMAT parquet)")
    print(f"subscribers x days: {args.subscribers:,} x {args.days}; rows written: {rows:,}")
    print(f"simulate_city:                      {simulate.seconds:.1f}s ({simulate.seconds / 60:.1f} min)")
    print(f"reference, DuckDB CSV->Parquet of the same files: {reference.seconds:.1f}s")
    print(f"ratio: {simulate.seconds / reference.seconds:.2f}x (requirement: minutes; took {simulate.seconds / 60:.1f} min)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
