from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from microarea.models import MicroArea
from microarea.services.imports import import_micro_areas
from microarea.services.micro_areas import MicroAreaRefused


class Command(BaseCommand):
    help = "Create micro-areas from a GeoJSON FeatureCollection (properties: name, region_code, optional kind)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--kind", choices=MicroArea.Kind.values, default=MicroArea.Kind.DISTRICT,
                            help="kind for features without their own (default: district)")

    def handle(self, *args, path: Path, kind: str, **options):
        try:
            created, kept = import_micro_areas(path, kind=kind)
        except MicroAreaRefused as exc:
            raise CommandError(f"nothing imported: {exc}") from None
        self.stdout.write(f"Micro-areas: {created} created, {kept} already there.")
