from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from demo.accounts import create_demo_accounts


class Command(BaseCommand):
    help = "Create (or reset) one demo account per staff role and print how to log in."

    def handle(self, *args, **options):
        try:
            accounts = create_demo_accounts()
        except ValueError as exc:
            raise CommandError(f"{exc}: ingest the regions file first") from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("Demo accounts (username / password / role):")
        for account in accounts:
            self.stdout.write(f"  {account.username:<16} {account.password:<18} {account.description}")
