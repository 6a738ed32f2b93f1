from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tagging.lake.schemas import INGEST_ORDER
from tagging.models import IngestBatch
from tagging.services.ingest import ingest_file

from .ingest import report_batch


class Command(BaseCommand):
    help = "Ingest every dataset of a simulated (or delivered) city folder, references first."

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path)

    def handle(self, *args, **options):
        folder = options["folder"]
        for step, dataset in enumerate(INGEST_ORDER, start=1):
            candidates = [folder / f"{dataset}.csv", folder / f"{dataset}.parquet"]
            path = next((p for p in candidates if p.exists()), None)
            if path is None:
                raise CommandError(f"{folder} has no {dataset}.csv or {dataset}.parquet")
            self.stdout.write(f"[{step}/{len(INGEST_ORDER)}] {dataset} <- {path.name}")
            batch = ingest_file(dataset=dataset, path=path)
            report_batch(self, batch)
            if batch.status == IngestBatch.Status.REJECTED:
                raise CommandError(f"{dataset} was rejected; later datasets depend on it, stopping.")
