import logging
import sys
import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from tagging.models import SnapshotPartition, SnapshotRun
from tagging.services.snapshots import SnapshotRefused, start_snapshot_run
from tagging.stages import ordered_stages


class Command(BaseCommand):
    help = "Compute a snapshot as of a date (stage by stage over subscriber-id partitions) and publish it."

    def add_arguments(self, parser):
        parser.add_argument("--date", required=True, type=date.fromisoformat, help="as-of date, YYYY-MM-DD")
        parser.add_argument("--partition-size", type=int, default=None, help="subscriber ids per partition")
        parser.add_argument("--window-days", type=int, default=None)
        parser.add_argument("--churn-window-days", type=int, default=None,
                            help="days after an earlier snapshot the churn model counts leavers in (CHURN_WINDOW_DAYS)")
        parser.add_argument("--no-wait", action="store_true", help="enqueue and return without waiting")
        parser.add_argument("--timeout", type=int, default=6 * 3600, help="seconds to wait for workers")

    def handle(self, *args, **options):
        # With eager tasks the run happens inside start_snapshot_run: show each partition as it finishes.
        handler = logging.StreamHandler(self.stdout)
        handler.setFormatter(logging.Formatter("  %(message)s"))
        log = logging.getLogger("tagging.snapshots")
        log.addHandler(handler)
        log.propagate = False
        try:
            run = start_snapshot_run(
                as_of=options["date"], partition_size=options["partition_size"], window_days=options["window_days"],
                churn_window_days=options["churn_window_days"],
            )
        except SnapshotRefused as exc:
            raise CommandError(str(exc)) from None
        if options["no_wait"]:
            self.stdout.write(f"run #{run.id} enqueued")
            return
        deadline = time.monotonic() + options["timeout"]
        while True:
            run.refresh_from_db()
            done = run.partitions.filter(status=SnapshotPartition.Status.DONE).count()
            total = run.partition_count * len(ordered_stages())  # later stages' partitions are created as it goes
            if sys.stdout.isatty() or run.status != SnapshotRun.Status.RUNNING:
                width = 30
                filled = int(width * done / total) if total else 0
                self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {run.stage or run.status}", ending="")
            if run.status != SnapshotRun.Status.RUNNING:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"run #{run.id} still {run.status} after {options['timeout']}s")
            time.sleep(1)
        self.stdout.write("")
        if run.status in (SnapshotRun.Status.FAILED, SnapshotRun.Status.CANCELLED):
            raise CommandError(f"run #{run.id} {run.status}: {run.error}; the previous snapshot stays current")
        snapshot = run.snapshot
        self.stdout.write(self.style.SUCCESS(
            f"run #{run.id} published snapshot as of {snapshot.as_of_date}: {snapshot.subscriber_count:,} subscribers"
            + ("" if snapshot.is_current else " (history: a later snapshot stays current)")
        ))
