from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tagging.lake.schemas import DATASETS
from tagging.models import IngestBatch
from tagging.services.ingest import ingest_file


class Command(BaseCommand):
    help = "Validate a raw file and ingest it into the lake: all rows or none (exit status 1 when rejected)."

    def add_arguments(self, parser):
        parser.add_argument("dataset", choices=sorted(DATASETS))
        parser.add_argument("file", type=Path)
        parser.add_argument("--encoding", default="utf-8", help="source encoding, e.g. gbk (default utf-8)")

    def handle(self, *args, **options):
        try:
            batch = ingest_file(dataset=options["dataset"], path=options["file"], encoding=options["encoding"])
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        report_batch(self, batch)
        if batch.status == IngestBatch.Status.REJECTED:
            raise CommandError(f"{batch.dataset}: file rejected (batch #{batch.id})")


def report_batch(command: BaseCommand, batch: IngestBatch) -> None:
    style = command.style.SUCCESS if batch.status != IngestBatch.Status.REJECTED else command.style.ERROR
    command.stdout.write(style(f"#{batch.id} {batch.dataset} {batch.get_status_display()}: {batch.message} ({batch.duration_seconds}s)"))
    for error in batch.errors[:20]:
        where = f"line {error['line']}" + (f", column {error['column']}" if error["column"] else "")
        command.stdout.write(f"  {where}: {error['reason']}")
    if batch.report_path:
        command.stdout.write(f"  full report: {batch.report_path}")
