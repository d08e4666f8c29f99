"""Older Django in a virtualenv of its own, to build sites as older releases left them.

:func:`legacy_python` makes (once) a virtualenv under ``.cache/venvs/`` of the
repository with the given requirements plus the database drivers, and returns
its interpreter, to pass as ``python=`` to :mod:`tests.support.django`.

:func:`build_legacy_uuid_site` migrates the test project with such an
interpreter (Django 4.2, :data:`DJANGO_42`) and issues tokens: on MariaDB
10.7+ its ``UUIDField`` columns are ``char(32)``, where Django 5.0+
creates ``uuid`` columns and sends 36-character values.

:func:`build_legacy_serial_site` makes a site the way one created before
Django 4.1 has it: Django 2.2 with django-oauth-toolkit 1.2.0, then DOT 1.5.0
(:data:`DJANGO_22_HISTORY`), each migrating with ``testproject.legacy_settings``
and creating rows through DOT's models of that release, then (optionally)
today's project upgrading it. On PostgreSQL its ids are ``serial`` columns, not
identity columns, and four of its sequences are owned by no column.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import django

REPO_ROOT = Path(__file__).resolve().parents[2]
VENVS_DIR = REPO_ROOT / ".cache" / "venvs"

#: Added to every legacy virtualenv: the drivers settings.py uses.
DRIVERS = ("PyMySQL==1.2.4", "psycopg[binary]==3.3.9")

#: Django 4.2 LTS (the last before UUIDField became ``uuid`` on MariaDB) with the
#: django-oauth-toolkit of the main virtualenv (3.4.1 still supports Django 4.2),
#: so the legacy site has exactly today's DOT migrations.
DJANGO_42 = ("Django==4.2.30", "django-oauth-toolkit==3.4.1")

#: Django 2.2 LTS with django-oauth-toolkit 1.2.0, the last DOT before 1.3 squashed its migrations. Its 0005
#: turns every id from an AutoField into a BigAutoField, which Django < 4.0 does by dropping the column's
#: sequence and creating a new one that no column owns (no ``OWNED BY``): on sites that installed DOT before
#: 1.3, ``pg_get_serial_sequence`` of application, access token, refresh token and grant ids is NULL to this
#: day. psycopg2-binary 2.9.10: 2.8.x (what Django 2.2 was released with) builds on Python 3.11 but fails at
#: import, so the oldest psycopg2 with 3.11 wheels, to which testproject/legacy_settings.py adapts Django 2.2.
#: oauthlib 3.2.2: one of that era (the 4.x series came long after these DOT releases).
DJANGO_22_DOT_12 = ("Django==2.2.28", "django-oauth-toolkit==1.2.0", "oauthlib==3.2.2", "psycopg2-binary==2.9.10")
#: The same site's next upgrade: django-oauth-toolkit 1.5.0, the last release for Django 2.2 (DOT 1.3's squashed
#: 0001 is recorded already; 0002..0004 run; the idtoken table it creates gets an owned ``serial`` id).
DJANGO_22 = ("Django==2.2.28", "django-oauth-toolkit==1.5.0", "oauthlib==3.2.2", "psycopg2-binary==2.9.10")
#: What :func:`build_legacy_serial_site` migrates with, in order, before today's project.
DJANGO_22_HISTORY = (DJANGO_22_DOT_12, DJANGO_22)
#: The settings legacy virtualenvs run the test project with (only the apps of that time).
LEGACY_SETTINGS = "testproject.legacy_settings"

# Rows created through the models of the installed (old) DOT release, with ``manage.py shell -c``: a user,
# a confidential password-grant application, ``n`` access tokens each with a refresh token, plus one pair
# deleted again (so the sequences stand past the largest ids, as on a site that clears tokens). Prints JSON.
_LEGACY_ROWS = """
import datetime, json
from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model
App, AT, RT = get_application_model(), get_access_token_model(), get_refresh_token_model()
tag, n = %(tag)r, %(n)d
user = get_user_model().objects.create_user("legacy-" + tag, password="legacy-pass-" + tag)
app = App.objects.create(name="legacy " + tag, user=user, client_type=App.CLIENT_CONFIDENTIAL,
                         authorization_grant_type=App.GRANT_PASSWORD, redirect_uris="")
expires = timezone.now() + datetime.timedelta(days=3650)
pairs = []
for i in range(n + 1):
    at = AT.objects.create(user=user, application=app, token="legacy-%%s-at-%%d" %% (tag, i), expires=expires,
                           scope="read write")
    rt = RT.objects.create(user=user, application=app, token="legacy-%%s-rt-%%d" %% (tag, i), access_token=at)
    pairs.append((at, rt))
gone_at, gone_rt = pairs.pop()
gone_rt.delete()
gone_at.delete()
print(json.dumps(dict(user_id=user.pk, username=user.username, application_id=app.pk, client_id=app.client_id,
                      access_tokens=[a.token for a, _r in pairs], access_token_ids=[a.pk for a, _r in pairs],
                      refresh_tokens=[r.token for _a, r in pairs], refresh_token_ids=[r.pk for _a, r in pairs])))
"""

_MARKER = ".oar-complete"


def _fingerprint(requirements: tuple[str, ...]) -> str:
    """What a complete virtualenv's marker file holds."""
    return json.dumps({"requirements": list(requirements), "python": platform.python_version()})


def legacy_python(requirements: tuple[str, ...]) -> str:
    """Path of the python of a virtualenv with ``requirements`` plus :data:`DRIVERS`,
    in ``.cache/venvs/<short sha of that list>``: made on first use (pip, from
    PyPI), reused afterwards. A file lock serialises concurrent callers (xdist
    workers) and is inherited by venv and pip, so it stays held until they exit
    even if the caller dies; a virtualenv without its completion marker (an
    interrupted creation) is made again."""
    full = tuple(requirements) + DRIVERS
    key = hashlib.sha256("\n".join(full).encode("utf-8")).hexdigest()[:12]
    venv = VENVS_DIR / key
    python = venv / "bin" / "python"
    marker = venv / _MARKER
    fingerprint = _fingerprint(full)
    VENVS_DIR.mkdir(parents=True, exist_ok=True)
    with open(VENVS_DIR / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if marker.read_text() == fingerprint and python.exists():
                return str(python)
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], lock.fileno())
        _run([str(python), "-m", "pip", "install", "--quiet", "--no-input",
              "--disable-pip-version-check", *full], lock.fileno())
        partial = venv / f"{_MARKER}.tmp"
        partial.write_text(fingerprint)
        os.replace(partial, marker)
    return str(python)


def _run(cmd: list[str], lock_fd: int) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False,
                          pass_fds=(lock_fd,))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                           f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")


def build_legacy_uuid_site(target, python: str) -> dict[str, Any]:
    """Migrate the test project on ``target`` from zero with ``python`` (e.g.
    ``legacy_python(DJANGO_42)``), issue 3 access tokens with refresh tokens
    (``make_tokens``) and run one token round trip (which stores a refresh
    token family the way that Django does). Returns ``make_tokens``' JSON."""
    django.migrate(target, python=python)
    tokens = django.issue_tokens(target, 3, python=python)
    roundtrip = django.token_roundtrip(target, python=python)
    if not roundtrip["ok"]:
        raise RuntimeError(f"token round trip on the legacy site failed: {roundtrip}")
    return tokens


def legacy_rows(target, python: str, tag: str, tokens: int = 3) -> dict[str, Any]:
    """Create rows on ``target`` through the DOT models of the legacy virtualenv of ``python`` (see
    ``_LEGACY_ROWS``; ``tag`` makes the username and tokens unique). Returns the JSON it prints."""
    out = django.run_manage(target, "shell", "-c", _LEGACY_ROWS % {"tag": tag, "n": tokens},
                            extra_env={"DJANGO_SETTINGS_MODULE": LEGACY_SETTINGS}, python=python).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError("the legacy rows script printed nothing")
    return json.loads(lines[-1])


def build_legacy_serial_site(target, history: tuple[tuple[str, ...], ...] = DJANGO_22_HISTORY, tokens: int = 3,
                             upgrade: bool = True) -> list[dict[str, Any]]:
    """Migrate ``target`` (an empty database) from zero with each requirements set of ``history`` in turn
    (its own virtualenv, ``testproject.legacy_settings``), creating rows after each (:func:`legacy_rows`,
    tags ``h0``, ``h1``...), then, with ``upgrade``, run today's project's ``migrate`` (this interpreter:
    Django 5.2 + DOT 3.4.x). Returns the rows' JSON of each step, in order."""
    made = []
    for step, requirements in enumerate(history):
        python = legacy_python(requirements)
        django.migrate(target, extra_env={"DJANGO_SETTINGS_MODULE": LEGACY_SETTINGS}, python=python)
        made.append(legacy_rows(target, python, "h%d" % step, tokens))
    if upgrade:
        django.migrate(target)
    return made
