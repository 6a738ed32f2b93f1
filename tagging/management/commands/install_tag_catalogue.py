from django.core.management.base import BaseCommand, CommandError

from tagging.expressions import ExpressionError
from tagging.models import TagDefinition
from tagging.services.tags import install_starting_catalogue


class Command(BaseCommand):
    help = "Add the starting tag catalogue's missing tags (an admin's edits are never overwritten)."

    def handle(self, *args, **options):
        try:
            added = install_starting_catalogue()
        except ExpressionError as exc:
            raise CommandError(f"{exc}: ingest the products file first, the catalogue uses product features") from None
        self.stdout.write(f"Tag catalogue: {added} tags added, {TagDefinition.objects.count()} in the library.")
