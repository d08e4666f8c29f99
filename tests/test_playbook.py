"""The rollout playbook through the real ansible-playbook, modules resolved by their FQCN.

The database is the demo's: a real Django site migrated by the real DOT migrations to 0011, then
broken like field report 004 (0012 half-applied, every token_checksum '') and 000 (pre-squash rows).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = [pytest.mark.sqlite, pytest.mark.slow]


def _env(db):
    env = dict(os.environ)
    env.update(DEMO_DB=str(db), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".cache", "collections"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    return env


def _playbook(db, reports, *extra):
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "demo/inventory.yml",
           "playbooks/repair_oauth.yml", "-e", json.dumps({
               "oauth_repair_db": {"engine": "sqlite", "name": str(db)},
               "oauth_repair_report_dir": str(reports)})] + list(extra)
    return subprocess.run(cmd, cwd=ROOT, env=_env(db), capture_output=True, text=True, timeout=600, check=False)


def _recap(stdout):
    m = re.search(r"demo-site\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", stdout)
    assert m, stdout[-3000:]
    return dict(ok=int(m.group(1)), changed=int(m.group(2)), failed=int(m.group(4)))


def _manage(db, *args):
    return subprocess.run([sys.executable, "manage.py"] + list(args), cwd=os.path.join(ROOT, "demo", "site"),
                          env=_env(db), capture_output=True, text=True, timeout=600, check=False)


def test_playbook_repairs_the_demo_database_and_is_idempotent(tmp_path):
    db = tmp_path / "site.sqlite3"
    reports = tmp_path / "reports"
    reports.mkdir()
    made = subprocess.run([sys.executable, "demo/break_db.py"], cwd=ROOT, env=_env(db), capture_output=True,
                          text=True, timeout=600, check=False)
    assert made.returncode == 0, made.stderr
    tokens = json.loads(made.stdout)["tokens"]
    # Django's own migrate dies on the broken database, as in the field report.
    broken = _manage(db, "migrate", "--noinput")
    assert broken.returncode != 0 and "duplicate column name: token_checksum" in broken.stderr

    # Check mode: a dry run that shows the plan and changes nothing.
    before = db.read_bytes()
    dry = _playbook(db, reports, "--check")
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr
    assert db.read_bytes() == before

    run = _playbook(db, reports)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert _recap(run.stdout)["changed"] >= 2  # the repair, and the migration recorded
    report = json.loads((reports / "demo-site.json").read_text())
    assert "token_checksum_empty" in report["findings_before"]
    assert report["recorded"] == ["0012_add_token_checksum"]
    assert report["healthy"] is True
    assert [f for f in report["findings_after"] if f.startswith("token_checksum")] == []
    assert (reports / "demo-site.json").stat().st_mode & 0o777 == 0o600

    again = _playbook(db, reports)
    assert again.returncode == 0, again.stdout[-3000:]
    assert _recap(again.stdout)["changed"] == 0

    # The real Django now migrates to the end, has nothing to make, and old tokens authenticate.
    done = _manage(db, "migrate", "--noinput")
    assert done.returncode == 0, done.stderr
    check = _manage(db, "makemigrations", "--check", "--dry-run")
    assert check.returncode == 0, check.stdout + check.stderr
    shown = _manage(db, "showmigrations", "oauth2_provider")
    assert "[ ]" not in shown.stdout
    for token in tokens:
        probe = subprocess.run([sys.executable, "-c", (
            "import os, sys; sys.path.insert(0, 'demo/site'); os.environ['DJANGO_SETTINGS_MODULE']='demosite.settings';"
            "import django; django.setup(); from django.test import Client;"
            "print(Client().get('/api/hello/', HTTP_AUTHORIZATION='Bearer ' + sys.argv[1]).status_code)"), token],
            cwd=ROOT, env=_env(db), capture_output=True, text=True, timeout=120, check=False)
        assert probe.stdout.strip() == "200", probe.stderr
