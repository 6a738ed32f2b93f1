import time
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from simulation import CityParameters, simulate_city
from simulation.city import DEFAULT_END_DATE


class Command(BaseCommand):
    help = "Write every raw dataset of a simulated operator city, with its ground truth, to a folder."

    def add_arguments(self, parser):
        parser.add_argument("--subscribers", type=int, default=50_000)
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--end-date", type=date.fromisoformat, default=DEFAULT_END_DATE, help="YYYY-MM-DD")
        parser.add_argument("--sites", type=int, default=None, help="base-station sites (default: by size)")
        parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
        parser.add_argument("--out", type=Path, default=None, help="default: DATA_DIR/city")
        parser.add_argument("--no-signalling", action="store_true",
                            help="leave out stays, events and IMEI observations (a usage-only city)")

    def handle(self, *args, **options):
        out = options["out"] or settings.DATA_DIR / "city"
        params = CityParameters(
            subscribers=options["subscribers"], days=options["days"], seed=options["seed"],
            end_date=options["end_date"], sites=options["sites"], file_format=options["format"],
            signalling=not options["no_signalling"],
        )
        started = time.monotonic()
        steps, done = 10 if params.signalling else 8, 0

        def progress(step: str) -> None:
            nonlocal done
            done += 1
            self.stdout.write(f"[{'#' * done}{'.' * (steps - done)}] {done}/{steps} {step} ({time.monotonic() - started:.1f}s)")

        try:
            summary = simulate_city(params, Path(out), progress=progress)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        rows = ", ".join(f"{name} {count:,}" for name, count in summary["rows"].items())
        self.stdout.write(self.style.SUCCESS(f"City written to {out} in {summary['seconds']}s: {rows}"))
