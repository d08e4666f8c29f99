"""The rollout playbook (playbooks/repair_oauth.yml) through the real ansible-playbook, modules and roles resolved
by their FQCN, on real databases broken the way the field reports describe, with the real Django + DOT.

* the demo site (SQLite, seeds 004 + pre-squash rows): dry run, run, second run, Django's migrate, old tokens;
* a fleet of SQLite sites where a staging host fails: production is never touched;
* MariaDB and PostgreSQL sites where a failure is injected after the backup / after the verification: the
  backup is restored, the maintenance window left, the report says so;
* a MariaDB site reached by a user with a password, repaired asynchronously (progress shown), deployed
  (the real migrate) and verified: the password appears in no output and no report;
* an SQLite site whose application model is swapped (field report 001) by the repair role;
* ``rollback_mode: stop``: nothing restored, the report says how to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys

import pytest

from tests import rollout_sites
from tests.findings_helpers import Databases
from tests.support.django import token_authenticates
from tests.support.modules import run_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
pytestmark = [pytest.mark.slow]


def _env(db=None):
    env = dict(os.environ)
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".cache", "collections"),
               ANSIBLE_STDOUT_CALLBACK="default", PATH=BIN + os.pathsep + env.get("PATH", ""),
               ANSIBLE_RETRY_FILES_ENABLED="0")
    if db is not None:
        env["DEMO_DB"] = str(db)
    return env


def playbook(inventory, extra, *args, db=None):
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), "playbooks/repair_oauth.yml",
           "-e", json.dumps(extra)] + list(args)
    return subprocess.run(cmd, cwd=ROOT, env=_env(db), capture_output=True, text=True, timeout=900, check=False)


def recap(stdout):
    """{host: {ok, changed, failed, ...}} from the PLAY RECAP."""
    out = {}
    for m in re.finditer(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+"
                         r"skipped=(\d+)\s+rescued=(\d+)", stdout, re.M):
        out[m.group(1)] = dict(ok=int(m.group(2)), changed=int(m.group(3)), failed=int(m.group(5)),
                               rescued=int(m.group(7)))
    assert out, stdout[-3000:]
    return out


def report(reports, host):
    path = reports / ("%s.json" % host)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (reports / ("%s.md" % host)).stat().st_mode & 0o777 == 0o600
    return json.loads(path.read_text())


def write_inventory(tmp_path, groups, common=None):
    path = tmp_path / "inventory.json"  # JSON is YAML
    path.write_text(json.dumps(rollout_sites.inventory(groups, common), indent=1))
    return path


def show(proc):
    return "\n--- stdout ---\n%s\n--- stderr ---\n%s" % (proc.stdout[-6000:], proc.stderr[-3000:])


def fingerprint(target):
    return run_module("db_fingerprint", dict(target.params, extra_tables=["django_migrations"],
                                             exclude_tables=[]))["fingerprint"]


def codes(target):
    return run_module("oauth_info", target.params)["summary"]["codes"]


# --------------------------------------------------------------------------
# The demo site
# --------------------------------------------------------------------------


def _manage(db, *args):
    return subprocess.run([sys.executable, "manage.py"] + list(args), cwd=os.path.join(ROOT, "demo", "site"),
                          env=_env(db), capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.sqlite
def test_demo_dry_run_repair_second_run_and_django(tmp_path):
    db = tmp_path / "site.sqlite3"
    reports = tmp_path / "reports"
    made = subprocess.run([sys.executable, "demo/break_db.py"], cwd=ROOT, env=_env(db), capture_output=True,
                          text=True, timeout=600, check=False)
    assert made.returncode == 0, made.stderr
    tokens = json.loads(made.stdout)["tokens"]
    broken = _manage(db, "migrate", "--noinput")
    # the release being deployed swaps the application model (field report 001): Django stops right away
    assert broken.returncode != 0 and "InconsistentMigrationHistory" in broken.stderr, broken.stderr[-2000:]
    assert "oauth2_provider.0001_initial is applied before its dependency demoapp.0001_initial" in broken.stderr
    with contextlib.closing(sqlite3.connect(str(db))) as conn:
        app_before = conn.execute("SELECT id, client_id, client_secret, name FROM oauth2_provider_application").fetchall()
    extra = {"oauth_repair_db": {"engine": "sqlite", "name": str(db)}, "oauth_repair_report_dir": str(reports)}

    # Check mode: a dry run that shows the plan, with its SQL, and changes nothing.
    before = db.read_bytes()
    dry = playbook("demo/inventory.yml", extra, "--check", db=db)
    assert dry.returncode == 0, show(dry)
    assert db.read_bytes() == before
    assert not (tmp_path / "backups").exists() and not (tmp_path / "maintenance.flag").exists()
    assert "step 3 [would_run] token_checksum:backfill:oauth2_provider_accesstoken" in dry.stdout
    assert 'SQL: UPDATE \\"oauth2_provider_accesstoken\\" SET \\"token_checksum\\"' in dry.stdout  # JSON-quoted
    assert "maintenance window needed" in dry.stdout
    # issue 13.6a: the swap stage repairs the swapped-model findings; the plan does not call them unrepaired
    assert re.search(r"swap the application model to demoapp.DemoApplication \(repairs [^)]*swapped_model_stale_fk",
                     dry.stdout), dry.stdout[-4000:]
    assert "not repaired by this version" not in dry.stdout
    assert "# OAuth repair: demo-site" in dry.stdout  # the playbook prints the host's report by default
    plan = report(reports, "demo-site")
    assert plan["mode"] == "check" and plan["outcome"] == "dry_run"
    assert plan["would_record"] == ["0012_add_token_checksum"] and plan["recorded"] == []
    assert [s["status"] for s in plan["plan"]].count("would_run") >= 3
    assert "swap:create_table:demoapp_demoapplication" in [s["key"] for s in plan["plan"]]

    run = playbook("demo/inventory.yml", dict(extra, oauth_repair_show_report=False), db=db)
    assert run.returncode == 0, show(run)
    assert recap(run.stdout)["demo-site"]["changed"] >= 3  # backup, repair, migrations recorded, migrate
    assert "# OAuth repair: demo-site" not in run.stdout  # issue 13.6e: scripts/demo.sh prints it once, itself
    r = report(reports, "demo-site")
    assert r["outcome"] == "success" and r["mode"] == "apply"
    assert {"token_checksum_empty", "swapped_model_inconsistent_history",
            "swapped_model_stale_fk"} <= set(r["findings_before"])
    assert r["recorded"] == ["0012_add_token_checksum"] and r["not_repaired"] == []
    assert r["swap"]["recorded_migration"] == "demoapp.0001_initial"
    assert r["swap"]["tables"]["new"] == "demoapp_demoapplication"
    md = (reports / "demo-site.md").read_text()
    assert "Not repaired" not in md and "demoapp.0001_initial (by the swap" in md
    with contextlib.closing(sqlite3.connect(str(db))) as conn:
        # every application moved with its id, client id and hashed secret; DOT 3.4's later columns filled as
        # DOT's own migrations fill them; the old table kept for a rollback
        assert conn.execute("SELECT id, client_id, client_secret, name FROM demoapp_demoapplication").fetchall() \
            == app_before
        assert conn.execute("SELECT DISTINCT registration_source, cimd_expires_at, support_email "
                            "FROM demoapp_demoapplication").fetchall() == [("manual", None, "")]
        assert conn.execute("SELECT COUNT(*) FROM oauth2_provider_application_old_swap").fetchone()[0] == 1
        refs = {row[2] for t in ("oauth2_provider_accesstoken", "oauth2_provider_refreshtoken",
                                 "oauth2_provider_grant", "oauth2_provider_idtoken")
                for row in conn.execute("PRAGMA foreign_key_list(%s)" % t) if row[3] == "application_id"}
        assert refs == {"demoapp_demoapplication"}
    assert r["healthy"] is True and r["findings_after"] == []
    assert r["backup"]["verified"] is True and os.stat(r["backup"]["path"]).st_mode & 0o777 == 0o600
    assert r["window"]["entered"] is True and r["window"]["seconds"] > 0
    assert not (tmp_path / "maintenance.flag").exists()  # the window was left
    assert set(r["durations"]) >= {"preflight", "backup", "maintenance_window", "repair", "fake_migration",
                                   "deploy", "verify"}
    assert {c["name"]: c["ok"] for c in r["verification"]["checks"]} == {
        "findings": True, "fingerprints": True, "migrate --check": True, "makemigrations --check": True}
    # issue 13.6c: DOT's 0015 (migrated by the deploy) changes *.token_checksum too, which is said once
    fp_detail = {c["name"]: c["detail"] for c in r["verification"]["checks"]}["fingerprints"]
    assert fp_detail.startswith("equal to the preflight fingerprint, apart from the intended changes to *.token_checksum")
    assert fp_detail.count("*.token_checksum") == 1, fp_detail
    assert "*.token_checksum" in md and "*.token_checksum, *.token_checksum" not in md
    # issue 13.6b: the SQL is labelled per step: the swap and the checksum steps ran
    assert re.search(r"Step \d+, `swap:[^`]+` on `[^`]+`: \*\*ran\*\*", md), md
    assert re.search(r"Step \d+, `token_checksum:[^`]+` on `oauth2_provider_accesstoken`: \*\*ran\*\*", md), md
    assert len(r["deploy"]["migrated"]) == 10  # 0013..0022 by the real migrate
    fleet = json.loads((reports / "fleet.json").read_text())
    assert fleet["complete"] is True and fleet["hosts"]["demo-site"]["outcome"] == "success"
    assert (reports / "fleet.md").stat().st_mode & 0o777 == 0o600

    again = playbook("demo/inventory.yml", extra, db=db)
    assert again.returncode == 0, show(again)
    assert recap(again.stdout)["demo-site"]["changed"] == 0
    assert report(reports, "demo-site")["outcome"] == "unchanged"
    assert len(os.listdir(tmp_path / "backups")) == 3  # no second backup when there is nothing to do

    # The real Django has nothing left to migrate or make, and old tokens authenticate.
    assert "[ ]" not in _manage(db, "showmigrations", "oauth2_provider").stdout
    check = _manage(db, "makemigrations", "--check", "--dry-run")
    assert check.returncode == 0, check.stdout + check.stderr
    for token in tokens:
        probe = subprocess.run([sys.executable, "-c", (
            "import os, sys; sys.path.insert(0, 'demo/site'); os.environ['DJANGO_SETTINGS_MODULE']='demosite.settings';"
            "import django; django.setup(); from django.test import Client;"
            "print(Client().get('/api/hello/', HTTP_AUTHORIZATION='Bearer ' + sys.argv[1]).status_code)"), token],
            cwd=ROOT, env=_env(db), capture_output=True, text=True, timeout=120, check=False)
        assert probe.stdout.strip() == "200", probe.stderr


# --------------------------------------------------------------------------
# A fleet: staging fails, production is never touched
# --------------------------------------------------------------------------


@pytest.mark.sqlite
def test_staging_failure_stops_production(tmp_path):
    template = Databases("sqlite", None, tmp_path / "tpl")
    (tmp_path / "tpl").mkdir()
    try:
        base = template.empty()
        rollout_sites.break_like_seed004(base)
        sites = {}
        for name in ("stage-a", "prod-a", "prod-b"):
            path = tmp_path / ("%s.sqlite3" % name)
            shutil.copyfile(base.name, path)
            sites[name] = rollout_sites.host_vars(rollout_sites.servers.DBTarget("sqlite", str(path)), django=False)
    finally:
        template.close()
    sites["stage-a"]["oauth_repair_inject_failure"] = "repair"
    reports = tmp_path / "reports"
    inv = write_inventory(tmp_path, {"staging": {"stage-a": sites["stage-a"]},
                                     "production": {"prod-a": sites["prod-a"], "prod-b": sites["prod-b"]}},
                          {"backup_dir": str(tmp_path / "backups"),
                           "maintenance_window_flag_file": str(tmp_path / "{{ inventory_hostname }}.flag")})
    prod_bytes = dict((n, (tmp_path / ("%s.sqlite3" % n)).read_bytes()) for n in ("prod-a", "prod-b"))
    stage = rollout_sites.servers.DBTarget("sqlite", str(tmp_path / "stage-a.sqlite3"))
    stage_before = fingerprint(stage)

    run = playbook(inv, {"oauth_repair_report_dir": str(reports)})
    assert run.returncode != 0, show(run)
    assert "PLAY [Repair OAuth databases on production]" not in run.stdout
    for name, content in prod_bytes.items():
        assert (tmp_path / ("%s.sqlite3" % name)).read_bytes() == content, name
        assert not (reports / ("%s.json" % name)).exists()
    r = report(reports, "stage-a")
    assert r["outcome"] == "rolled_back" and r["failed_stage"] == "repair"
    assert "injected failure" in r["error"]
    assert r["rollback"]["restored"] is True and r["rollback"]["equal_to_backup"] is True
    assert r["window"]["entered"] is True and r["window"]["finished"]
    assert not (tmp_path / "stage-a.flag").exists()
    assert fingerprint(stage) == stage_before  # the repair was undone
    fleet = json.loads((reports / "fleet.json").read_text())
    assert {h: v["outcome"] for h, v in fleet["hosts"].items()} == {
        "stage-a": "rolled_back", "prod-a": "not run", "prod-b": "not run"}

    # Production alone (staging not run in this invocation) refuses to start.
    limited = playbook(inv, {"oauth_repair_report_dir": str(reports)}, "--limit", "production")
    assert limited.returncode != 0
    assert "production not started: staging host(s) stage-a did not succeed" in limited.stdout
    for name, content in prod_bytes.items():
        assert (tmp_path / ("%s.sqlite3" % name)).read_bytes() == content, name


# --------------------------------------------------------------------------
# MariaDB and PostgreSQL: failures after the backup are rolled back
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine,inject", [
    pytest.param("mysql", "after_backup", marks=pytest.mark.mysql, id="mysql-after_backup"),
    pytest.param("postgresql", "verify", marks=pytest.mark.postgresql, id="postgresql-verify"),
])
def test_failure_after_backup_restores_and_leaves_the_window(request, tmp_path, engine, inject):
    server = request.getfixturevalue("mariadb_server" if engine == "mysql" else "postgres_server")
    dbs = Databases(engine, server, tmp_path)
    try:
        target = dbs.empty()
        issued = rollout_sites.break_like_seed004(target)
        before, before_codes = fingerprint(target), codes(target)
        assert "token_checksum_empty" in before_codes
        flag = tmp_path / "maintenance.flag"
        host = rollout_sites.host_vars(target, issued)
        host["oauth_repair_inject_failure"] = inject
        # On PostgreSQL every step of this plan is online: the window is asked for, to prove it is left.
        inv = write_inventory(tmp_path, {"staging": {"site-1": host}, "production": {}},
                              {"backup_dir": str(tmp_path / "backups"), "maintenance_window_flag_file": str(flag),
                               "maintenance_window_when": "needed" if engine == "mysql" else "always"})
        reports = tmp_path / "reports"
        run = playbook(inv, {"oauth_repair_report_dir": str(reports)})
        assert run.returncode != 0, show(run)
        assert recap(run.stdout)["site-1"]["failed"] == 1
        r = report(reports, "site-1")
        assert r["outcome"] == "rolled_back", r
        assert r["failed_stage"] == {"after_backup": "maintenance_window", "verify": "verify"}[inject]
        assert r["backup"]["verified"] is True
        assert r["rollback"]["restored"] is True and r["rollback"]["equal_to_backup"] is True
        assert r["window"]["entered"] is True and r["window"]["finished"] and not flag.exists()
        assert r["window"]["reason"] == ("a step blocks the application" if engine == "mysql"
                                         else "maintenance_window_when is always")
        if inject == "verify":
            # the repair, the history and Django's migrate had all run before the failure
            assert r["recorded"] == ["0012_add_token_checksum"] and len(r["deploy"]["migrated"]) == 10
            assert r["rollback"]["dropped_tables"] == ["oauth2_provider_devicegrant"]
        assert fingerprint(target) == before
        assert codes(target) == before_codes
        assert "rolled_back" in (reports / "site-1.md").read_text() and "## Rollback" in (reports / "site-1.md").read_text()
    finally:
        dbs.close()


# --------------------------------------------------------------------------
# MariaDB with a password: async repair with progress, deploy, verify, second run; no password anywhere
# --------------------------------------------------------------------------


@pytest.mark.mysql
def test_mariadb_rollout_with_a_password_async_deploy_verify(request, tmp_path, mariadb_server):
    dbs = Databases("mysql", mariadb_server, tmp_path)
    user = "oar_pb_" + secrets.token_hex(3)
    password = "Pw-" + secrets.token_hex(10)
    try:
        target = dbs.empty()
        issued = rollout_sites.break_like_seed004(target)
        with contextlib.closing(mariadb_server.connect()) as conn:
            cur = conn.cursor()
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            cur.execute("GRANT ALL ON `%s`.* TO '%s'@'%%'" % (target.name, user))
            cur.execute("GRANT ALL ON `oar\\_verify\\_%%`.* TO '%s'@'%%'" % user)
            cur.execute("GRANT PROCESS ON *.* TO '%s'@'%%'" % user)
        target.user, target.password = user, password
        host = rollout_sites.host_vars(target, issued)
        inv = write_inventory(tmp_path, {"staging": {"db-1": host}, "production": {}},
                              {"backup_dir": str(tmp_path / "backups"), "repair_async_min_rows": 0,
                               "repair_poll": 1})
        reports = tmp_path / "reports"
        before = fingerprint(target)

        run = playbook(inv, {"oauth_repair_report_dir": str(reports)}, "-v")
        assert run.returncode == 0, show(run)
        assert "progress token_checksum:backfill:oauth2_provider_accesstoken: 3/3 rows (100%)" in run.stdout
        r = report(reports, "db-1")
        assert r["outcome"] == "success" and r["recorded"] == ["0012_add_token_checksum"]
        assert r["backup"]["verified"] is True and r["healthy"] is True
        assert all(c["ok"] for c in r["verification"]["checks"]) and len(r["verification"]["checks"]) == 4
        for token in issued["access_tokens"]:
            assert token_authenticates(target, token)
        after = run_module("db_fingerprint", dict(target.params, compare_to=before,
                                                  ignore=["*.token_checksum", "django_migrations"]))
        assert after["equal"] is True, after["differences"]

        again = playbook(inv, {"oauth_repair_report_dir": str(reports)}, "-v")
        assert again.returncode == 0, show(again)
        assert recap(again.stdout)["db-1"]["changed"] == 0

        texts = [run.stdout, run.stderr, again.stdout, again.stderr]
        texts += [path.read_text() for path in reports.rglob("*") if path.is_file()]
        assert len(list(reports.rglob("db-1.json"))) == 3  # the latest, and one per run
        texts += [open(os.path.join(tmp_path / "backups", n), errors="replace").read()
                  for n in os.listdir(tmp_path / "backups") if n.endswith(".json")]
        for text in texts:
            assert password not in text
    finally:
        with contextlib.closing(mariadb_server.connect()) as conn:
            conn.cursor().execute("DROP USER IF EXISTS %s@'%%'", (user,))
        dbs.close()


# --------------------------------------------------------------------------
# Field report 001 through the playbook: the application model swapped on a live site
# --------------------------------------------------------------------------


@pytest.mark.sqlite
def test_swapped_application_model_through_the_playbook(tmp_path):
    """The repair role swaps the model (swap_application_model), the deploy runs the real migrate with the new
    setting, verify compares the data with the old table's fingerprint (renamed), old tokens authenticate."""
    target = rollout_sites.servers.DBTarget("sqlite", str(tmp_path / "site.sqlite3"))
    issued = rollout_sites.seed001(target)
    host = rollout_sites.host_vars(target, issued, state="seed001")
    assert host["oauth_repair_application_model"] == "swapapp.MyApplication"
    inv = write_inventory(tmp_path, {"staging": {"swap-1": host}, "production": {}},
                          {"backup_dir": str(tmp_path / "backups")})
    reports = tmp_path / "reports"
    run = playbook(inv, {"oauth_repair_report_dir": str(reports)})
    assert run.returncode == 0, show(run)
    r = report(reports, "swap-1")
    assert r["outcome"] == "success" and r["swap"]["recorded_migration"] == "swapapp.0001_initial"
    assert r["swap"]["tables"]["new"] == "swapapp_myapplication"
    assert any(s["key"].startswith("swap") or "swap" in s["key"] for s in r["plan"]), r["plan"]
    checks = {c["name"]: c for c in r["verification"]["checks"]}
    assert checks["fingerprints"]["ok"] and "swapapp_myapplication.logo_url" in checks["fingerprints"]["detail"]
    assert checks["migrate --check"]["ok"] and checks["makemigrations --check"]["ok"]
    swapped = {"OAR_APPLICATION_MODEL": "swapapp.MyApplication"}
    for token in issued["access_tokens"]:
        assert token_authenticates(target, token, extra_env=swapped)
    again = playbook(inv, {"oauth_repair_report_dir": str(reports)})
    assert again.returncode == 0, show(again)
    assert recap(again.stdout)["swap-1"]["changed"] == 0


@pytest.mark.sqlite
def test_rollback_mode_stop_restores_nothing_and_says_how(tmp_path):
    target = rollout_sites.servers.DBTarget("sqlite", str(tmp_path / "site.sqlite3"))
    rollout_sites.break_like_seed004(target)
    host = rollout_sites.host_vars(target, django=False)
    host.update(oauth_repair_inject_failure="repair", rollback_mode="stop")
    inv = write_inventory(tmp_path, {"staging": {"stop-1": host}, "production": {}},
                          {"backup_dir": str(tmp_path / "backups")})
    run = playbook(inv, {"oauth_repair_report_dir": str(tmp_path / "reports")})
    assert run.returncode != 0, show(run)
    r = report(tmp_path / "reports", "stop-1")
    assert r["outcome"] == "failed" and r["failed_stage"] == "repair"
    assert r["rollback"]["restored"] is False and r["rollback"]["mode"] == "stop"
    assert "state=restored path=%s" % r["backup"]["path"] in r["rollback"]["message"]
    assert "token_checksum_empty" not in codes(target)  # the repair stays: nothing was restored
