"""The rollout judges against the site's own Django (issue 11 item 5), through playbooks/repair_oauth.yml with the
documented inventory (``oauth_repair_django``, ``oauth_repair_drift_apps``, ``oauth_repair_release``).

The site: DOT and the test project's ``shelf`` app migrated to the end (nothing pending), tokens issued, then
drift that only the site's own models know about - DOT's hand-written picture does not know ``shelf`` at all:

* ``shelf_item.slug`` dropped (``schema_drift_missing_column``, fatal: every query of the model fails) and the
  index ``shelf_item_public_copies`` dropped (``schema_drift_missing_index``, warning);

* MariaDB and PostgreSQL: the preflight shows the drift, the repair adds the column (the site's own schema editor's
  SQL) and the index, verify passes, the report lists the drift before (breaking > 0) and after (none); then the
  site's ``migrate``, ``makemigrations --check`` and DOT's token issuance (``/o/token/``) succeed, old tokens
  authenticate;
* PostgreSQL with a release (``oauth_repair_release``: Django 5.2.18, a version other than the one in .venv, DOT,
  psycopg from PyPI): the run creates the release's virtualenv side by side, the diagnosis, the repair, the
  deploy's migrate and verify run with its python (the truth says Django 5.2.18), the site's own environment is
  untouched;
* MariaDB, a breaking drift this version does not repair (``shelf_item.title`` narrower than the model,
  ``schema_drift_column_type`` fatal): the preflight refuses before anything changes; told to go on
  (``preflight_allow_unrepairable``), the repair fixes what it can, verify fails on the drift that remains and
  the backup is restored (``rolled_back``).

On the main branch before this change the roles gave oauth_info/oauth_repair no ``django`` option: the preflight
saw no drift (the site looked healthy, outcome ``unchanged``), so each of these tests fails there.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import rollout_sites
from tests.findings_helpers import Databases
from tests.support import django as dj
from tests.support.modules import run_module
from tests.test_playbook import fingerprint, playbook, recap, report, show, write_inventory

pytestmark = [pytest.mark.slow]

SITE_ENV = {"OAR_EXTRA_APPS": "shelf"}
TABLE = "shelf_item"
INDEX = "shelf_item_public_copies"
RELEASE_DJANGO = "5.2.18"  # not .venv's (5.2.19): the truth's Django version tells which python judged


def q(target, name):
    return ("`%s`" if target.engine == "mysql" else '"%s"') % name


def drifted_site(target, narrow_title=False):
    """Migrated to the end with ``shelf``, tokens issued, then drift only the site's models know about."""
    dj.migrate(target, extra_env=SITE_ENV)
    issued = dj.issue_tokens(target, 3, extra_env=SITE_ENV)
    on = " ON %s" % q(target, TABLE) if target.engine == "mysql" else ""
    target.execute("DROP INDEX %s%s" % (q(target, INDEX), on))
    if narrow_title:
        if target.engine == "mysql":
            target.execute("ALTER TABLE `shelf_item` MODIFY `title` varchar(50) NOT NULL")
        else:
            target.execute('ALTER TABLE "shelf_item" ALTER COLUMN "title" TYPE varchar(50)')
    else:
        target.execute("ALTER TABLE %s DROP COLUMN %s" % (q(target, TABLE), q(target, "slug")))
    return issued


def host_vars(target, issued, **more):
    """The documented inventory of one host: the site's Django (with the shelf app) and its apps compared too."""
    host = rollout_sites.host_vars(target, issued)
    host["oauth_repair_django"]["environment"].update(SITE_ENV)
    host["oauth_repair_drift_apps"] = ["shelf"]
    host.update(more)
    return host


def drift_pairs(findings):
    return sorted((f["code"], f["objects"][0]) for f in findings or [])


def assert_site_works(target, issued):
    dj.migrate(target, extra_env=SITE_ENV)
    dj.run_manage(target, "makemigrations", "--check", "--dry-run", extra_env=SITE_ENV)
    assert all(dj.token_authenticates(target, t, extra_env=SITE_ENV) for t in issued["access_tokens"])
    roundtrip = dj.token_roundtrip(target, extra_env=SITE_ENV)
    assert roundtrip["ok"], roundtrip


def assert_drift_found_and_repaired(run, r, expected_django):
    missing = ("schema_drift_missing_column", "shelf_item.slug")
    index = ("schema_drift_missing_index", "shelf_item.public,copies")
    # the preflight showed the drift
    assert "drift schema_drift_missing_column (fatal): shelf_item.slug does not exist" in run.stdout, show(run)
    assert "schema_drift_missing_index (warning)" in run.stdout
    # the report: drift before, none after; the truth was the site's models
    assert r["outcome"] == "success", r
    before = drift_pairs(r["drift_before"])
    assert missing in before and any(code == index[0] and obj.startswith("shelf_item.") for code, obj in before), before
    assert r["drift_summary"]["before"]["breaking"] >= 2, r["drift_summary"]
    assert r["drift_summary"]["before"]["by_code"]["schema_drift_missing_column"] == 1
    assert r["drift_summary"]["after"] == {"total": 0, "breaking": 0, "by_code": {}}, r["drift_after"]
    assert r["drift_after"] == []
    for when in ("before", "after"):
        assert r["schema_truth"][when]["source"] == "django_models"
        assert r["schema_truth"][when]["django"] == expected_django
        assert "shelf_item" in r["schema_truth"][when]["tables"]
    assert r["schema_truth"]["deferred"] is False and r["schema_truth"]["pending_migrations"] == []
    steps = [s for s in r["plan"] if s["status"] == "ran"]
    assert any(s["table"] == "shelf_item" and "slug" in " ".join(s["sql"]) for s in steps), r["plan"]
    checks = {c["name"]: c for c in r["verification"]["checks"]}
    assert all(c["ok"] for c in checks.values()), checks
    assert "judged against django_models" in checks["findings"]["detail"]
    assert r["backup"]["verified"] is True
    md = (r["_reports"] / ("%s.md" % r["host"])).read_text()
    assert "## Schema drift" in md and "schema_drift_missing_column" in md
    assert "- after: 0 difference(s), 0 breaking" in md


@pytest.mark.parametrize("engine", [
    pytest.param("mysql", marks=pytest.mark.mysql),
    pytest.param("postgresql", marks=pytest.mark.postgresql),
])
def test_drift_only_the_site_knows_is_shown_repaired_and_verified(request, tmp_path, engine):
    server = request.getfixturevalue("mariadb_server" if engine == "mysql" else "postgres_server")
    dbs = Databases(engine, server, tmp_path)
    try:
        target = dbs.empty()
        issued = drifted_site(target)
        # DOT's hand-written picture sees nothing wrong: the drift is the site's models' alone
        assert run_module("oauth_info", target.params)["summary"]["healthy"] is True
        host = host_vars(target, issued)
        inv = write_inventory(tmp_path, {"staging": {"drift-1": host}, "production": {}},
                              {"backup_dir": str(tmp_path / "backups")})
        reports = tmp_path / "reports"
        run = playbook(inv, {"oauth_repair_report_dir": str(reports)}, "-v")
        assert run.returncode == 0, show(run)
        r = dict(report(reports, "drift-1"), _reports=reports)
        assert_drift_found_and_repaired(run, r, "5.2.19")
        assert r["schema_truth"]["before"]["python"] == sys.executable and r["schema_truth"]["release"] is None
        assert_site_works(target, issued)

        # a second run: nothing left to judge, nothing to do
        again = playbook(inv, {"oauth_repair_report_dir": str(reports)})
        assert again.returncode == 0, show(again)
        r2 = report(reports, "drift-1")
        assert r2["outcome"] == "unchanged", r2
        assert r2["drift_summary"]["before"]["breaking"] == 0 and r2["drift_summary"]["after"]["breaking"] == 0
        assert recap(again.stdout)["drift-1"]["failed"] == 0
    finally:
        dbs.close()


@pytest.mark.postgresql
def test_release_is_installed_side_by_side_and_is_the_truth(tmp_path, postgres_server):
    dbs = Databases("postgresql", postgres_server, tmp_path)
    try:
        target = dbs.empty()
        issued = drifted_site(target)
        venv = tmp_path / "release-venv"
        release = {"requirements": ["Django==%s" % RELEASE_DJANGO, "django-oauth-toolkit==3.4.1",
                                    "psycopg[binary]==3.3.9"]}
        host = host_vars(target, issued, oauth_repair_release=release, oauth_repair_release_venv=str(venv))
        inv = write_inventory(tmp_path, {"staging": {"release-1": host}, "production": {}},
                              {"backup_dir": str(tmp_path / "backups")})
        reports = tmp_path / "reports"

        # the dry run: the release is not installed yet, the plan says what it is judged with
        dry = playbook(inv, {"oauth_repair_report_dir": str(reports)}, "--check")
        assert dry.returncode == 0, show(dry)
        assert "the release is not installed yet (check mode): judged with the installed code" in dry.stdout
        assert not venv.exists()

        run = playbook(inv, {"oauth_repair_report_dir": str(reports)}, "-v")
        assert run.returncode == 0, show(run)
        python = str(venv / "bin" / "python")
        assert os.access(python, os.X_OK)
        version = subprocess.run([python, "-c", "import django; print(django.get_version())"], capture_output=True,
                                 text=True, timeout=120, check=True).stdout.strip()
        assert version == RELEASE_DJANGO
        r = dict(report(reports, "release-1"), _reports=reports)
        # judged by the release's python: its Django version, its interpreter
        assert_drift_found_and_repaired(run, r, RELEASE_DJANGO)
        assert r["schema_truth"]["release"] == str(venv)
        assert r["schema_truth"]["before"]["python"] == python and r["schema_truth"]["after"]["python"] == python
        assert "python %s, the release in %s" % (python, venv) in run.stdout
        # the deploy migrated with the release; the site's own environment still has its Django
        assert r["deploy"]["python"] == python and r["deploy"]["release"] == str(venv)
        import django  # pylint: disable=import-outside-toplevel
        assert django.get_version() != RELEASE_DJANGO
        assert_site_works(target, issued)

        # a second run: the release is there already (pip changes nothing), nothing to do
        again = playbook(inv, {"oauth_repair_report_dir": str(reports)})
        assert again.returncode == 0, show(again)
        r2 = report(reports, "release-1")
        assert r2["outcome"] == "unchanged" and r2["schema_truth"]["before"]["django"] == RELEASE_DJANGO, r2
    finally:
        dbs.close()


@pytest.mark.mysql
def test_unrepairable_drift_stops_the_preflight_and_fails_verify(tmp_path, mariadb_server):
    dbs = Databases("mysql", mariadb_server, tmp_path)
    try:
        target = dbs.empty()
        issued = drifted_site(target, narrow_title=True)
        before = fingerprint(target)
        host = host_vars(target, issued)
        inv = write_inventory(tmp_path, {"staging": {"narrow-1": host}, "production": {}},
                              {"backup_dir": str(tmp_path / "backups")})
        reports = tmp_path / "reports"

        # the preflight refuses: schema_drift_column_type is not repaired by this version; nothing changed
        run = playbook(inv, {"oauth_repair_report_dir": str(reports)})
        assert run.returncode != 0, show(run)
        r = report(reports, "narrow-1")
        assert r["outcome"] == "failed" and r["failed_stage"] == "preflight", r
        assert "schema_drift_column_type" in r["error"]
        assert ("schema_drift_column_type", "shelf_item.title") in drift_pairs(r["drift_before"])
        assert fingerprint(target) == before

        # told to go on: the missing index is repaired, the narrow column stays, verify fails, the backup is restored
        run = playbook(inv, {"oauth_repair_report_dir": str(reports), "preflight_allow_unrepairable": True})
        assert run.returncode != 0, show(run)
        assert recap(run.stdout)["narrow-1"]["failed"] == 1
        r = report(reports, "narrow-1")
        assert r["outcome"] == "rolled_back" and r["failed_stage"] == "verify", r
        assert "verification failed: findings: remaining: schema_drift_column_type" in r["error"], r["error"]
        assert "shelf_item.title" in r["error"]
        assert drift_pairs(r["drift_after"]) == [("schema_drift_column_type", "shelf_item.title")]
        assert r["drift_summary"]["after"]["breaking"] == 1
        assert any(s["status"] == "ran" and s["table"] == "shelf_item" for s in r["plan"]), r["plan"]
        assert r["rollback"]["restored"] is True and r["rollback"]["equal_to_backup"] is True
        assert fingerprint(target) == before
        md = (reports / "narrow-1.md").read_text()
        assert "rolled_back" in md and "## Schema drift" in md and "- after: 1 difference(s), 1 breaking" in md
    finally:
        dbs.close()
