"""Older Django in a virtualenv of its own, to build sites as older releases left them.

:func:`legacy_python` makes (once) a virtualenv under ``.cache/venvs/`` of the
repository with the given requirements plus the database drivers, and returns
its interpreter, to pass as ``python=`` to :mod:`tests.support.django`.

:func:`build_legacy_uuid_site` migrates the test project with such an
interpreter (Django 4.2, :data:`DJANGO_42`) and issues tokens: on MariaDB
10.7+ its ``UUIDField`` columns are ``char(32)``, where Django 5.0+
creates ``uuid`` columns and sends 36-character values.
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
