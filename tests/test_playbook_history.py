"""The rollout playbook (playbooks/repair_oauth.yml) on a common ``django_migrations`` history that Django itself
refuses to fake on: ``0012_add_token_checksum`` missing while 0013-0022 are recorded (someone faked around the
failed 0012, or cleaned the table by hand), ``token_checksum`` ``''`` in every row and no unique index (issue 13).

``manage.py migrate oauth2_provider 0012_add_token_checksum --fake`` raises ``InconsistentMigrationHistory`` on
this history, so the ``fake_migration`` role's ``auto`` method must record 0012 with the ``django_migration``
module, and its dry run must say so. Built with the real Django + DOT test project (tests/django_project) on
MariaDB and PostgreSQL, run with the default inventory (tests/rollout_sites.host_vars: the Django project given, no
``fake_migration_method``); afterwards Django's ``migrate`` and ``makemigrations --check`` have nothing to do, the
tokens issued before the breakage authenticate and DOT issues new ones.
"""

from __future__ import annotations

import pytest

from tests import rollout_sites
from tests.findings_helpers import AT, M0012, SERVER_ENGINES, Databases, drop_unique
from tests.support.django import (PROJECT_DIR, issue_tokens, manage_env, migrate, run_manage, showmigrations,
                                  token_authenticates, token_roundtrip)
from tests.support.modules import run_module
from tests.test_playbook import codes, playbook, recap, report, show, write_inventory

DOT = "oauth2_provider"
pytestmark = [pytest.mark.slow]


def break_0012_unrecorded_later_recorded(target, tokens=3):
    """Every DOT migration applied and tokens issued, then 0012's row deleted from django_migrations, the unique
    index on token_checksum dropped and every checksum emptied. Returns make_tokens' JSON."""
    migrate(target)
    issued = issue_tokens(target, tokens)
    ph = target.placeholder
    target.execute("DELETE FROM django_migrations WHERE app = %s AND name = %s" % (ph, ph), (DOT, M0012))
    drop_unique(target, AT, ["token_checksum"])
    target.execute("UPDATE %s SET token_checksum = ''" % rollout_sites.qi(target, AT))
    return issued


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_0012_unrecorded_after_later_migrations_default_rollout(request, tmp_path, engine):
    server = request.getfixturevalue("mariadb_server" if engine == "mysql" else "postgres_server")
    dbs = Databases(engine, server, tmp_path)
    try:
        target = dbs.empty()
        issued = break_0012_unrecorded_later_recorded(target)
        recorded = showmigrations(target)
        assert recorded[M0012] is False and all(v for k, v in recorded.items() if k != M0012), recorded
        # Django refuses this history: faking 0012 (and any migrate) stops on it. django_manage says so in one
        # readable message (Django's error, the command, a fix), not a traceback.
        refused = run_module("django_manage", dict(
            project_dir=str(PROJECT_DIR), settings="testproject.settings",
            environment={k: v for k, v in manage_env(target).items() if k.startswith("OAR_DB_")},
            command=["migrate", DOT, M0012, "--fake", "--noinput"]))
        assert refused["failed"] is True and refused["rc"] == 1 and refused["applied"] == []
        assert refused["msg"].startswith(
            "manage.py migrate oauth2_provider 0012_add_token_checksum --fake --noinput exited with 1: "
            "InconsistentMigrationHistory: Migration oauth2_provider.0013_"), refused["msg"]
        assert "is applied before its dependency oauth2_provider.0012_add_token_checksum" in refused["msg"]
        assert " manage.py migrate oauth2_provider 0012_add_token_checksum --fake --noinput (in %s). Fix: " % (
            PROJECT_DIR) in refused["msg"]
        assert "Traceback" not in refused["msg"] and " | " not in refused["msg"]
        assert "Traceback (most recent call last)" in refused["stderr"]  # the whole output is still returned
        assert "token_checksum_empty" in codes(target)

        host = rollout_sites.host_vars(target, issued)
        assert "fake_migration_method" not in host and "oauth_repair_django" in host
        inv = write_inventory(tmp_path, {"staging": {"site-1": host}, "production": {}},
                              {"backup_dir": str(tmp_path / "backups"),
                               "maintenance_window_flag_file": str(tmp_path / "maintenance.flag")})
        reports = tmp_path / "reports"

        # The dry run predicts the real run: 0012 recorded by the module, not by manage.py --fake.
        dry = playbook(inv, {"oauth_repair_report_dir": str(reports)}, "--check")
        assert dry.returncode == 0, show(dry)
        assert "would record as applied: 0012_add_token_checksum with django_migration (method module:" in dry.stdout, \
            show(dry)
        assert "InconsistentMigrationHistory" in dry.stdout, show(dry)  # the reason
        plan = report(reports, "site-1")
        assert plan["outcome"] == "dry_run" and plan["would_record"] == [M0012]
        # Asked for manage.py on this history, the dry run fails where the real run would, saying why.
        forced = playbook(inv, {"oauth_repair_report_dir": str(reports), "fake_migration_method": "manage"}, "--check")
        assert forced.returncode != 0, show(forced)
        forced_report = report(reports, "site-1")
        assert forced_report["outcome"] == "failed" and forced_report["failed_stage"] == "fake_migration"
        assert forced_report["error"].startswith(
            "site-1: fake_migration_method is manage, but manage.py migrate --fake would raise "
            "InconsistentMigrationHistory: oauth2_provider.0013_"), forced_report["error"]
        assert "Fix: set fake_migration_method to auto or module" in forced_report["error"]

        run = playbook(inv, {"oauth_repair_report_dir": str(reports)})
        assert run.returncode == 0, show(run)
        assert "recorded as applied (module): 0012_add_token_checksum" in run.stdout, show(run)
        assert recap(run.stdout)["site-1"]["failed"] == 0
        r = report(reports, "site-1")
        assert r["outcome"] == "success" and r["recorded"] == [M0012], r
        assert r["healthy"] is True and r["findings_after"] == []
        assert r["deploy"]["migrated"] == []  # 0013-0022 were recorded already
        assert all(c["ok"] for c in r["verification"]["checks"]), r["verification"]

        # The real Django: nothing left to migrate or to make, old tokens authenticate, DOT issues new ones.
        assert all(showmigrations(target).values())
        migrated = run_manage(target, "migrate", "--noinput")
        assert "No migrations to apply." in migrated.stdout, migrated.stdout
        made = run_manage(target, "makemigrations", "--check", "--dry-run", check=False)
        assert made.returncode == 0, made.stdout + made.stderr
        for token in issued["access_tokens"]:
            assert token_authenticates(target, token)
        roundtrip = token_roundtrip(target)
        assert roundtrip["ok"] is True, roundtrip
    finally:
        dbs.close()
