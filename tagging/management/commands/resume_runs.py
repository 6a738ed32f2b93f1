from django.core.management.base import BaseCommand

from tagging.services.ingest import sweep_abandoned_ingests
from tagging.services.snapshots import resume_stalled_runs


class Command(BaseCommand):
    help = ("Send the unfinished partitions of stalled snapshot runs again, and close the ingest batches a killed "
            "process left running, removing their files (what Celery beat does every few minutes).")

    def handle(self, *args, **options):
        self.stdout.write(f"{resume_stalled_runs()} partitions sent again.")
        self.stdout.write(f"{sweep_abandoned_ingests()} abandoned ingest batches closed.")
