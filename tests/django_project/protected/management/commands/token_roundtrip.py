"""``manage.py token_roundtrip``: DOT issues and refreshes tokens through /o/token/.

Gets or creates the user ``oar_roundtrip`` (new random password each run) and a
confidential password-grant application (through ``get_application_model()``,
so a swapped model works; new client secret each run), then through Django's
test client:

1. ``POST /o/token/`` ``grant_type=password``: 200 with an access and a refresh token;
2. ``POST /o/token/`` ``grant_type=refresh_token``: 200 with new ones;
3. ``GET /api/hello/`` with the new access token: 200.

Prints one line of JSON, never a token or secret::

    {"ok": true, "password_status": 200, "refresh_status": 200, "api_status": 200, "error": null}

A status is null when its request was not made or raised; ``error`` is the
text of the exception a request raised (e.g. a database error) or why a
response was refused. Exits 0 when ok, 1 otherwise.
"""

import base64
import json
import secrets
from urllib.parse import quote

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.test import Client
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_application_model

USERNAME = "oar_roundtrip"
APPLICATION_NAME = "oar-roundtrip"


class _Failed(Exception):
    """A step of the round trip went wrong; the message says how."""


def _request(result, key, send):
    """Make one request; record its status under ``key``. Exceptions raised
    while the request was handled become :class:`_Failed` with their text."""
    try:
        response = send()
    except Exception as exc:  # the test client re-raises the view's exception
        raise _Failed(f"{type(exc).__name__}: {exc}") from exc
    result[key] = response.status_code
    return response


def _tokens(response, step):
    """The access and refresh token of a 200 token response."""
    if response.status_code != 200:
        try:
            reason = json.loads(response.content).get("error")
        except ValueError:
            reason = None
        raise _Failed(f"{step} answered {response.status_code}" + (f": {reason}" if reason else ""))
    body = json.loads(response.content)
    if not body.get("access_token") or not body.get("refresh_token"):
        raise _Failed(f"{step} answered 200 without " + " and ".join(
            k for k in ("access_token", "refresh_token") if not body.get(k)))
    return body["access_token"], body["refresh_token"]


class Command(BaseCommand):
    help = "Password grant, refresh grant and an API call through DOT's real endpoints; one line of JSON."

    def handle(self, *args, **options):
        result = {"ok": False, "password_status": None, "refresh_status": None,
                  "api_status": None, "error": None}
        try:
            self._roundtrip(result)
            result["ok"] = True
        except _Failed as exc:
            result["error"] = str(exc)
        self.stdout.write(json.dumps(result))
        if not result["ok"]:
            raise SystemExit(1)

    def _roundtrip(self, result):
        password = secrets.token_urlsafe(24)
        user, _created = get_user_model().objects.get_or_create(username=USERNAME)
        user.set_password(password)
        user.save()

        Application = get_application_model()
        client_secret = generate_client_secret()  # plaintext; DOT hashes it on save
        application = Application.objects.filter(name=APPLICATION_NAME).first()
        if application is None:
            application = Application(
                name=APPLICATION_NAME,
                user=user,
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_PASSWORD,
            )
        application.client_secret = client_secret
        application.save()

        # RFC 6749 2.3.1: the id and secret are form-urlencoded before the Basic encoding
        credentials = "%s:%s" % (quote(application.client_id, safe=""), quote(client_secret, safe=""))
        basic = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        client = Client(raise_request_exception=True)  # a view's exception reaches _request

        response = _request(result, "password_status", lambda: client.post(
            "/o/token/", {"grant_type": "password", "username": USERNAME, "password": password},
            HTTP_AUTHORIZATION=basic))
        access, refresh = _tokens(response, "password grant")

        response = _request(result, "refresh_status", lambda: client.post(
            "/o/token/", {"grant_type": "refresh_token", "refresh_token": refresh},
            HTTP_AUTHORIZATION=basic))
        new_access, new_refresh = _tokens(response, "refresh grant")
        if new_access == access or new_refresh == refresh:
            raise _Failed("refresh grant answered the same tokens again")

        response = _request(result, "api_status", lambda: client.get(
            "/api/hello/", HTTP_AUTHORIZATION=f"Bearer {new_access}"))
        if response.status_code != 200:
            raise _Failed(f"GET /api/hello/ answered {response.status_code}")
