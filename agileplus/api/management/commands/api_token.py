from django.core.management.base import BaseCommand, CommandError

from agileplus.api.services import ROLES, create_api_token
from agileplus.core.errors import DomainError


class Command(BaseCommand):
    help = ("Create or rotate a user's API token with a role (human, agent, ci, admin) and print its key, "
            "once: the database keeps only a digest of it.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLES, default="human")
        parser.add_argument("--agent", default="", help="for --role agent: the harness it acts as")

    def handle(self, *args, **options):
        try:
            key = create_api_token(options["username"], options["role"], agent=options["agent"])
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(key)
