"""Shared start-up for benchmarks: a throw-away DATA_DIR and database, Django configured."""

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def django_in_scratch(prefix: str) -> Path:
    """Point DATA_DIR (and the embedded SQLite database) at a fresh folder, then set Django up."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["DATA_DIR"] = str(scratch)
    os.environ.setdefault("DEBUG", "1")  # production is the default; a benchmark is development
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return scratch


class Timer:
    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started


def city_arguments(*, days: int = 7) -> argparse.ArgumentParser:
    """The options every city benchmark takes: its size, or an already simulated city to reuse."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=days)
    parser.add_argument("--city", type=Path, help="an already simulated city of --subscribers x --days")
    return parser


def city_folder(args, scratch: Path, end_date: date | None = None) -> Path:
    """--city, or a city of --subscribers x --days simulated into the scratch folder."""
    if args.city is not None:
        return args.city
    from simulation import CityParameters, simulate_city

    city = scratch / "city"
    print(f"simulating {args.subscribers:,} subscribers x {args.days} days ...", flush=True)
    simulate_city(CityParameters(subscribers=args.subscribers, days=args.days,
                                 **({"end_date": end_date} if end_date else {})), city)
    return city


def ingest_city(city: Path, datasets: list[str], *, report: bool = True) -> None:
    """Ingest the city's files of these datasets, in order, each accepted or the benchmark stops."""
    from tagging.models import IngestBatch
    from tagging.services.ingest import ingest_folder

    def reported(batch) -> None:
        if report:
            print(f"ingested {batch.dataset}: {batch.rows_accepted:,} rows in {batch.duration_seconds}s", flush=True)

    last = ingest_folder(city, datasets, on_batch=reported)[-1]
    assert last.status in (IngestBatch.Status.ACCEPTED, IngestBatch.Status.UNCHANGED), last.message
