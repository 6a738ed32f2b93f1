from django.core.management.base import BaseCommand

from tagging.services.snapshots import resume_stalled_runs


class Command(BaseCommand):
    help = "Send the unfinished partitions of stalled snapshot runs again (what Celery beat does every minute)."

    def handle(self, *args, **options):
        self.stdout.write(f"{resume_stalled_runs()} partitions sent again.")
