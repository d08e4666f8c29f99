"""``manage.py make_tokens N``: a user, a client and N tokens, made by DOT's models.

Creates (through the ORM, so django-oauth-toolkit computes checksums, hashes the
client secret, and so on) a user, a confidential client-credentials
application and N access tokens, each with a refresh token, then prints one
line of JSON::

    {"user_id": 1, "username": "...", "application_id": 1, "client_id": "...",
     "client_secret": "<plaintext, captured before DOT hashes it>",
     "access_tokens": ["..."], "access_token_ids": [1],
     "refresh_tokens": ["..."], "refresh_token_ids": [1], "expires": "<ISO 8601>"}
"""

import json
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from oauthlib.common import generate_token
from oauth2_provider import models as dot_models
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model


def _assign_token(instance, raw_token):
    """Store the raw token the way DOT itself does (it may redact it at rest)."""
    setter = getattr(dot_models, "set_token_value", None)
    if setter is not None:
        setter(instance, raw_token)
    else:  # older DOT: plain assignment
        instance.token = raw_token


class Command(BaseCommand):
    help = "Create a user, a client-credentials application and N access + refresh tokens."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, help="number of access tokens to create")
        parser.add_argument("--username", default="oar-tester",
                            help="user owning the application and the tokens (created if missing)")
        parser.add_argument("--expires-in", type=int, default=36000,
                            help="access token lifetime in seconds (negative: already expired)")
        parser.add_argument("--scope", default="read write")
        parser.add_argument("--no-refresh", action="store_true",
                            help="do not create refresh tokens")

    def handle(self, *args, count, username, expires_in, scope, no_refresh, **options):
        if count < 0:
            raise CommandError("count must be >= 0")
        Application = get_application_model()
        AccessToken = get_access_token_model()
        RefreshToken = get_refresh_token_model()
        expires = timezone.now() + timedelta(seconds=expires_in)

        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(username=username)
            if created:
                user.set_unusable_password()
                user.save()
            client_secret = generate_client_secret()
            application = Application(
                name=f"oar-test-{generate_token(8)}",
                user=user,
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
                client_secret=client_secret,  # hashed by DOT on save (hash_client_secret)
            )
            application.save()

            access_tokens, access_ids, refresh_tokens, refresh_ids = [], [], [], []
            for _index in range(count):
                raw_access = generate_token()
                access = AccessToken(user=user, application=application, expires=expires, scope=scope)
                _assign_token(access, raw_access)
                access.save()
                access_tokens.append(raw_access)
                access_ids.append(access.pk)
                if no_refresh:
                    continue
                raw_refresh = generate_token()
                refresh = RefreshToken(user=user, application=application, access_token=access)
                _assign_token(refresh, raw_refresh)
                refresh.save()
                refresh_tokens.append(raw_refresh)
                refresh_ids.append(refresh.pk)

        self.stdout.write(json.dumps({
            "user_id": user.pk,
            "username": user.get_username(),
            "application_id": application.pk,
            "client_id": application.client_id,
            "client_secret": client_secret,
            "access_tokens": access_tokens,
            "access_token_ids": access_ids,
            "refresh_tokens": refresh_tokens,
            "refresh_token_ids": refresh_ids,
            "expires": expires.isoformat(),
        }))
