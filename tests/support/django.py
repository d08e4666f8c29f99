"""Driving the Django test project (tests/django_project) against a test database.

Every call runs ``manage.py`` in a fresh subprocess with this interpreter
(the virtualenv's), with the ``OAR_DB_*`` variables of the target database, so
the real Django 5.2 and django-oauth-toolkit code (migrations included) runs
exactly as it would on a site. ``python=`` runs another interpreter instead,
e.g. one of :func:`tests.support.legacy.legacy_python` (older Django).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

PROJECT_DIR = Path(__file__).resolve().parent.parent / "django_project"
MANAGE_PY = PROJECT_DIR / "manage.py"

#: Value of OAR_APPLICATION_MODEL that swaps in ``swapapp.MyApplication``.
SWAPPED_APPLICATION_MODEL = "swapapp.MyApplication"


class ManageError(subprocess.CalledProcessError):
    """``manage.py`` failed; the message carries its output."""

    def __str__(self) -> str:
        return (f"{' '.join(map(str, self.cmd[1:]))} exited with {self.returncode}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


def manage_env(target, extra_env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment ``manage.py`` runs with for ``target``."""
    env = dict(os.environ)
    # Whatever the calling environment says, the project uses its own settings
    # and only the database/model given here.
    project_vars = ["OAR_APPLICATION_MODEL", "OAR_EXTRA_APPS", "OAR_DEFAULT_AUTO_FIELD"]
    for name in [n for n in env if n.startswith("OAR_DB_")] + project_vars:
        env.pop(name, None)
    env.update(target.django_env())
    env["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if extra_env:
        env.update({k: str(v) for k, v in extra_env.items()})
    return env


def run_manage(target, *args: str, extra_env: Optional[Mapping[str, str]] = None,
               check: bool = True, timeout: float = 600,
               python: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run ``manage.py <args>`` against ``target`` with ``python`` (default: this
    interpreter); return the CompletedProcess (``stdout``/``stderr`` as text).
    With ``check``, a non-zero exit raises :class:`ManageError` showing the output."""
    cmd = [python or sys.executable, str(MANAGE_PY), *map(str, args)]
    proc = subprocess.run(cmd, cwd=PROJECT_DIR, env=manage_env(target, extra_env),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise ManageError(proc.returncode, cmd, proc.stdout, proc.stderr)
    return proc


def migrate(target, app: Optional[str] = None, name: Optional[str] = None,
            extra_env: Optional[Mapping[str, str]] = None,
            python: Optional[str] = None) -> subprocess.CompletedProcess:
    """``manage.py migrate [app [name]]``: everything, one app, or one app up
    (or back) to migration ``name`` (``"zero"`` unapplies the app)."""
    if name is not None and app is None:
        raise ValueError("a migration name needs an app")
    args = ["migrate", "--noinput"] + [a for a in (app, name) if a is not None]
    return run_manage(target, *args, extra_env=extra_env, python=python)


def showmigrations(target, app: str = "oauth2_provider",
                   extra_env: Optional[Mapping[str, str]] = None) -> dict[str, bool]:
    """``{migration name: applied?}`` for ``app``, in order, from ``showmigrations``."""
    out = run_manage(target, "showmigrations", app, extra_env=extra_env).stdout
    result: dict[str, bool] = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("[X]") or line.startswith("[ ]"):
            # "[X] 0001_initial" or, when squashed, "[-] ..." (not used here).
            result[line[4:].split(" ")[0]] = line.startswith("[X]")
    return result


def issue_tokens(target, n: int, *args: str,
                 extra_env: Optional[Mapping[str, str]] = None,
                 python: Optional[str] = None) -> dict[str, Any]:
    """Create a user, a confidential client-credentials application and ``n``
    access tokens with refresh tokens, through DOT's own models (command
    ``make_tokens``). Returns its JSON: ``user_id``, ``username``,
    ``application_id``, ``client_id``, ``client_secret`` (plaintext),
    ``access_tokens``, ``access_token_ids``, ``refresh_tokens``,
    ``refresh_token_ids``, ``expires``. Extra ``args`` go to the command
    (``--expires-in``, ``--scope``, ``--username``, ``--no-refresh``)."""
    out = run_manage(target, "make_tokens", str(n), *args, extra_env=extra_env, python=python).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError("make_tokens printed nothing")
    return json.loads(lines[-1])


def token_authenticates(target, token: str,
                        extra_env: Optional[Mapping[str, str]] = None,
                        python: Optional[str] = None) -> bool:
    """Whether ``GET /api/hello/`` with ``Authorization: Bearer <token>``
    answers 200 (command ``check_token``). Crashes raise rather than read as False."""
    proc = run_manage(target, "check_token", token, extra_env=extra_env, check=False, python=python)
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    status = lines[-1] if lines else ""
    if proc.returncode == 0 and status == "200":
        return True
    if proc.returncode == 1 and status.isdigit():
        return False
    raise ManageError(proc.returncode, proc.args, proc.stdout, proc.stderr)


def token_roundtrip(target, extra_env: Optional[Mapping[str, str]] = None,
                    python: Optional[str] = None) -> dict[str, Any]:
    """Password grant, refresh grant and ``GET /api/hello/`` through DOT's real
    endpoints (command ``token_roundtrip``). Returns its JSON: ``ok``,
    ``password_status``, ``refresh_status``, ``api_status`` (int or None) and
    ``error`` (the exception text or refusal, or None). A failed round trip is
    ``ok`` False, not an exception; :class:`ManageError` only when the command
    printed no JSON (it crashed)."""
    proc = run_manage(target, "token_roundtrip", extra_env=extra_env, check=False, python=python)
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = None
        if isinstance(result, dict) and "ok" in result:
            return result
    raise ManageError(proc.returncode, proc.args, proc.stdout, proc.stderr)


def site_option(target, extra_env: Optional[Mapping[str, str]] = None, python: Optional[str] = None) -> dict:
    """The modules' ``django`` option for the test project on ``target`` (secrets in ``secret_environment``)."""
    env = manage_env(target, extra_env)
    return dict(project_dir=str(PROJECT_DIR), python=python or sys.executable, settings="testproject.settings",
                environment=dict((k, v) for k, v in env.items() if k.startswith("OAR_") and "PASSWORD" not in k),
                secret_environment=dict((k, v) for k, v in env.items() if k.startswith("OAR_") and "PASSWORD" in k))
