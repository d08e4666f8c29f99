"""``manage.py check_token <token>``: does this access token open /api/hello/?

Prints the HTTP status code of ``GET /api/hello/`` made with
``Authorization: Bearer <token>``; exits 0 on 200, 1 otherwise.
"""

from django.core.management.base import BaseCommand
from django.test import Client


class Command(BaseCommand):
    help = "GET /api/hello/ with the given Bearer token; exit 0 on HTTP 200, 1 otherwise."

    def add_arguments(self, parser):
        parser.add_argument("token", help="the access token to present")

    def handle(self, *args, token, **options):
        response = Client().get("/api/hello/", HTTP_AUTHORIZATION=f"Bearer {token}")
        self.stdout.write(str(response.status_code))
        if response.status_code != 200:
            raise SystemExit(1)
