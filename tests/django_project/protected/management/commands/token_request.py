"""``manage.py token_request <client_id>``: a client_credentials token request to DOT's /o/token/.

The client secret is read from the environment variable ``OAR_CLIENT_SECRET`` (never from the command
line, where ``ps`` would show it). The request goes through Django's test client, so it exercises DOT's
real token endpoint, client authentication (the hashed secret is checked) and token creation.

Prints one line of JSON: ``{"status": <HTTP status>, "access_token": "<token or null>",
"application_id": <id of the application the new token belongs to, or null>}``; exits 0 on 200, 1 otherwise.
"""

import base64
import hashlib
import json
import os
from urllib.parse import quote

from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from oauth2_provider.models import get_access_token_model


class Command(BaseCommand):
    help = "POST grant_type=client_credentials to /o/token/ with HTTP Basic client authentication."

    def add_arguments(self, parser):
        parser.add_argument("client_id", help="the application's client id")
        parser.add_argument("--scope", default="read")

    def handle(self, *args, client_id, scope, **options):
        secret = os.environ.get("OAR_CLIENT_SECRET")
        if secret is None:
            raise CommandError("set OAR_CLIENT_SECRET to the client secret")
        # RFC 6749 2.3.1: the id and secret are form-urlencoded before the Basic encoding
        credentials = "%s:%s" % (quote(client_id, safe=""), quote(secret, safe=""))
        auth = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        response = Client().post("/o/token/", {"grant_type": "client_credentials", "scope": scope},
                                 HTTP_AUTHORIZATION=auth)
        token = None
        application_id = None
        if response.status_code == 200:
            token = json.loads(response.content)["access_token"]
            checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
            application_id = get_access_token_model().objects.get(token_checksum=checksum).application_id
        self.stdout.write(json.dumps({"status": response.status_code, "access_token": token,
                                      "application_id": application_id}))
        if response.status_code != 200:
            raise SystemExit(1)
