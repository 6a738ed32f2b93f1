from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tagging.models import IngestBatch
from tagging.services.ingest import ingest_folder

from .ingest import report_batch


class Command(BaseCommand):
    help = "Ingest every dataset of a simulated (or delivered) city folder, references first."

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path)

    def handle(self, *args, **options):
        try:
            batches = ingest_folder(options["folder"], on_batch=lambda batch: report_batch(self, batch))
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        if batches[-1].status == IngestBatch.Status.REJECTED:
            raise CommandError(f"{batches[-1].dataset} was rejected; later datasets depend on it, stopping.")
