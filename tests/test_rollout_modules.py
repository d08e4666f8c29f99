"""rollout_report (per-host and fleet reports) and django_manage (manage.py with secrets kept out of the output),
run in-process like Ansible runs them; django_manage drives the real Django test project on a real database."""

from __future__ import annotations

import json
import os

import pytest

from tests.findings_helpers import M0011
# pytest fixtures, found by name:
from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    _templates_mysql, _templates_postgresql, _templates_sqlite, make_db)
from tests.support.django import PROJECT_DIR, manage_env
from tests.support.modules import module_utils, run_module


def host_report(host, group, run_id, started, finished, **extra):
    report = dict(host=host, group=group, run_id=run_id, mode="apply", outcome="success", started=started,
                  finished=finished, stages={"preflight": started, "repair": started[:-10] + "05.000000Z"},
                  findings_before=["token_checksum_empty"], findings_before_detail=[
                      {"code": "token_checksum_empty", "severity": "error", "objects": ["t.c"], "message": "m",
                       "details": {"big": "dropped"}}],
                  plan=[{"key": "token_checksum:backfill:t", "table": "t", "lock": "row locks", "duration": "batched",
                         "online": True, "status": "ran", "seconds": 1.5, "sql": ["UPDATE t SET c = %s"]}],
                  window={"entered": True, "started": started, "finished": finished},
                  backup={"path": "/b/x.sql", "verified": True}, recorded=["0012_add_token_checksum"])
    report.update(extra)
    return report


def test_host_and_fleet_reports(tmp_path):
    folder = tmp_path / "reports"
    secret = "S3cr3t-pw-value"
    r = host_report("stage-1", "staging", "RUN1", "2026-01-01T10:00:00.000000Z", "2026-01-01T10:00:10.500000Z",
                    error="could not connect with %s" % secret, database={"engine": "mysql", "password": "x"})
    dry = run_module("rollout_report", dict(report_dir=str(folder), report=r, secrets=[secret]), check_mode=True)
    assert not dry.get("failed") and not folder.exists()

    res = run_module("rollout_report", dict(report_dir=str(folder), report=r, secrets=[secret]))
    assert not res.get("failed"), res
    assert res["changed"] is True
    written = json.loads((folder / "stage-1.json").read_text())
    assert written["duration"] == 10.5 and written["window"]["seconds"] == 10.5
    assert written["durations"] == {"preflight": 5.0, "repair": 5.5}
    assert written["findings_before_detail"] == [
        {"code": "token_checksum_empty", "severity": "error", "objects": ["t.c"], "message": "m", "seed": None,
         "repair": None}]
    for name in ("stage-1.json", "stage-1.md", "runs/RUN1/stage-1.json", "runs/RUN1/stage-1.md"):
        text = (folder / name).read_text()
        assert secret not in text and "********" in text
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    assert written["database"]["password"] == "********"
    md = (folder / "stage-1.md").read_text()
    assert "# OAuth repair: stage-1" in md and "UPDATE t SET c = %s;" in md and "**10.5s**" in md
    again = run_module("rollout_report", dict(report_dir=str(folder), report=r, secrets=[secret]))
    assert again["changed"] is False

    run_module("rollout_report", dict(report_dir=str(folder), report=host_report(
        "prod-1", "production", "RUN1", "2026-01-01T10:00:11.000000Z", "2026-01-01T10:00:20.000000Z")))
    # a report of another run is not this run's
    run_module("rollout_report", dict(report_dir=str(folder), report=host_report(
        "prod-2", "production", "RUN0", "2025-12-01T10:00:00.000000Z", "2025-12-01T10:00:05.000000Z")))
    groups = {"staging": ["stage-1"], "production": ["prod-1", "prod-2"]}
    fleet = run_module("rollout_report", dict(state="fleet", report_dir=str(folder), run_id="RUN1", groups=groups,
                                              complete=True))
    assert not fleet.get("failed"), fleet
    summary = json.loads((folder / "fleet.json").read_text())
    assert summary == json.loads((folder / "runs" / "RUN1" / "fleet.json").read_text())
    assert {h: v["outcome"] for h, v in summary["hosts"].items()} == {
        "stage-1": "success", "prod-1": "success", "prod-2": "not run"}
    assert summary["staging_finished_before_production"] is True and summary["complete"] is True
    assert "| prod-2 | production | not run |" in (folder / "fleet.md").read_text()

    # production starting before staging finished is told
    run_module("rollout_report", dict(report_dir=str(folder), report=host_report(
        "prod-1", "production", "RUN1", "2026-01-01T10:00:09.000000Z", "2026-01-01T10:00:20.000000Z")))
    summary = run_module("rollout_report", dict(state="fleet", report_dir=str(folder), run_id="RUN1",
                                                groups=groups))["summary"]
    assert summary["staging_finished_before_production"] is False


def test_report_runs_are_pruned(tmp_path):
    for i in range(4):
        run_module("rollout_report", dict(report_dir=str(tmp_path), keep_runs=2, report=host_report(
            "h", "staging", "RUN%d" % i, "2026-01-01T10:00:00.000000Z", "2026-01-01T10:00:01.000000Z")))
    assert sorted(os.listdir(tmp_path / "runs")) == ["RUN2", "RUN3"]


def test_report_sql_is_labelled_per_step_and_status():
    """Issue 13.6b: the SQL of steps that ran, would run and were already done is never one unlabelled block."""
    reports = module_utils("reports")
    plan = [
        {"key": "widen:app", "table": "app", "status": "done_already", "sql": ["ALTER TABLE app MODIFY id bigint"]},
        {"key": "checksum:add", "table": "tok", "status": "ran", "sql": ["ALTER TABLE tok ADD c varchar(64)"]},
        {"key": "history:clean", "table": "django_migrations", "status": "done_already", "sql": []},
        {"key": "checksum:index", "table": "tok", "status": "failed", "sql": ["CREATE UNIQUE INDEX i ON tok (c);"]},
    ]
    md = reports.host_markdown(reports.complete_host_report(dict(host="h", mode="apply", plan=plan)))
    sections = md.split("Step ")[1:]
    assert len(sections) == 3  # a step without SQL gets no block
    assert sections[0].startswith("1, `widen:app` on `app`: **already done, not run**")
    assert "ALTER TABLE app MODIFY id bigint;" in sections[0]
    assert sections[1].startswith("2, `checksum:add` on `tok`: **ran**") and "ADD c varchar(64);" in sections[1]
    assert sections[2].startswith("4, `checksum:index` on `tok`: **failed") and "ON tok (c);\n" in sections[2]
    assert "ALTER TABLE app MODIFY id bigint" not in sections[1] + sections[2]

    dry = [dict(step, status="would_run") for step in plan[1:2]] + [plan[0]]
    md = reports.host_markdown(reports.complete_host_report(dict(host="h", mode="check", plan=dry)))
    assert "Step 1, `checksum:add` on `tok`: **would run (dry run: nothing was run)**" in md
    assert "Step 2, `widen:app` on `app`: **already done, not run**" in md
    # in a run whose repair stage did not run, the preflight's plan is shown as planned, not as run
    md = reports.host_markdown(reports.complete_host_report(dict(host="h", mode="apply", plan=dry)))
    assert "**planned, not run (the repair stage did not run)**" in md


def test_host_not_run_in_this_run_says_so(tmp_path):
    """Issue 13.6d: a host without a report of this run no longer shows an earlier run's outcome as its latest."""
    folder = tmp_path / "reports"
    groups = {"staging": ["stage-1"], "production": ["prod-1", "prod-2"]}
    run_module("rollout_report", dict(report_dir=str(folder), report=host_report(
        "prod-1", "production", "RUN0", "2026-01-01T09:00:00.000000Z", "2026-01-01T09:00:05.000000Z")))
    assert "**outcome**: success" in (folder / "prod-1.md").read_text()

    # RUN1: the staging host reports (and updates the fleet summary): prod-1 has not run yet
    res = run_module("rollout_report", dict(report_dir=str(folder), groups=groups, report=host_report(
        "stage-1", "staging", "RUN1", "2026-01-01T10:00:00.000000Z", "2026-01-01T10:00:10.000000Z",
        outcome="rolled_back")))
    assert not res.get("failed"), res
    md = (folder / "prod-1.md").read_text()
    assert "**not run (yet)** in run `RUN1`" in md and "**outcome**: success" not in md
    # the rollout ends there
    fleet = run_module("rollout_report", dict(state="fleet", report_dir=str(folder), run_id="RUN1", groups=groups,
                                              complete=True))
    assert fleet["changed"] is True and str(folder / "prod-1.md") in fleet["paths"]
    md = (folder / "prod-1.md").read_text()
    assert "- **outcome**: **not run** in run `RUN1`" in md
    assert "- **noted**: 20" in md
    assert "run `RUN0`, apply, outcome success, started 2026-01-01T09:00:00.000000Z" in md
    assert "`runs/RUN0/prod-1.md`" in md and "Nothing was done to this host's database in run `RUN1`" in md
    latest = json.loads((folder / "prod-1.json").read_text())
    assert latest["outcome"] == "not run" and latest["run_id"] == "RUN1" and latest["complete"] is True
    assert latest["previous"]["run_id"] == "RUN0" and latest["previous"]["outcome"] == "success"
    assert (folder / "prod-1.md").stat().st_mode & 0o777 == 0o600
    assert "**outcome**: success" in (folder / "runs" / "RUN0" / "prod-1.md").read_text()  # kept
    assert not (folder / "runs" / "RUN1" / "prod-1.json").exists()
    assert not (folder / "prod-2.md").exists() and not (folder / "prod-2.json").exists()  # never reported
    summary = json.loads((folder / "fleet.json").read_text())
    assert summary["hosts"]["prod-1"]["outcome"] == "not run"
    again = run_module("rollout_report", dict(state="fleet", report_dir=str(folder), run_id="RUN1", groups=groups,
                                              complete=True))
    assert again["changed"] is False and json.loads((folder / "prod-1.json").read_text()) == latest

    # RUN2 does not run it either: the last report it points at is still RUN0's
    run_module("rollout_report", dict(state="fleet", report_dir=str(folder), run_id="RUN2", groups=groups,
                                      complete=True))
    assert json.loads((folder / "prod-1.json").read_text())["previous"]["run_id"] == "RUN0"
    assert "in run `RUN2`" in (folder / "prod-1.md").read_text()

    # when the host runs, its own report replaces the notice
    run_module("rollout_report", dict(report_dir=str(folder), groups=groups, report=host_report(
        "prod-1", "production", "RUN3", "2026-01-02T10:00:00.000000Z", "2026-01-02T10:00:05.000000Z")))
    assert "**outcome**: success" in (folder / "prod-1.md").read_text()
    assert "in run `RUN" not in (folder / "prod-1.md").read_text()
    assert json.loads((folder / "stage-1.json").read_text())["run_id"] == "RUN3"  # stage-1: marked as not run
    assert json.loads((folder / "stage-1.json").read_text())["previous"]["outcome"] == "rolled_back"


def _modes(folder):
    return {str(p.relative_to(folder)): p.stat().st_mode & 0o777 for p in [folder] + sorted(folder.rglob("*"))}


def test_report_directories_are_private(tmp_path):
    """Issue 13.6f: docs/rollout.md promises directories 0700 and files 0600, runs/ included, and an existing
    directory is tightened."""
    old_umask = os.umask(0o022)
    try:
        folder = tmp_path / "a" / "reports"
        r = host_report("h", "staging", "RUN1", "2026-01-01T10:00:00.000000Z", "2026-01-01T10:00:01.000000Z")
        assert not run_module("rollout_report", dict(report_dir=str(folder), report=r)).get("failed")
        modes = _modes(folder)
        assert modes == {".": 0o700, "h.json": 0o600, "h.md": 0o600, "runs": 0o700, "runs/RUN1": 0o700,
                         "runs/RUN1/h.json": 0o600, "runs/RUN1/h.md": 0o600}, modes
        assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700  # a missing parent is created private too

        # a report directory left readable by an older version is tightened, the reports too
        for path in [folder] + list(folder.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (folder / "runs" / "RUN0").mkdir(mode=0o755)
        (folder / "runs" / "RUN0" / "h.md").write_text("old\n")
        (folder / "runs" / "RUN0" / "h.md").chmod(0o644)
        run_module("rollout_report", dict(report_dir=str(folder), report=r))
        modes = _modes(folder)
        assert set(modes.values()) == {0o700, 0o600}, modes
        assert modes["runs/RUN0"] == 0o700 and modes["runs/RUN0/h.md"] == 0o600

        # the fleet summary alone, on a new directory, and on an existing one left open
        fleet_dir = tmp_path / "fleet-only"
        run_module("rollout_report", dict(state="fleet", report_dir=str(fleet_dir), run_id="RUN1",
                                          groups={"staging": ["h"]}))
        assert set(_modes(fleet_dir).values()) == {0o700, 0o600}, _modes(fleet_dir)
        for path in [fleet_dir] + list(fleet_dir.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        run_module("rollout_report", dict(state="fleet", report_dir=str(fleet_dir), run_id="RUN1",
                                          groups={"staging": ["h"]}))
        assert set(_modes(fleet_dir).values()) == {0o700, 0o600}, _modes(fleet_dir)
    finally:
        os.umask(old_umask)


@pytest.mark.sqlite
def test_django_manage_check_mode_rc_and_secret_environment(make_db):
    target = make_db("sqlite", "at_0011")
    env = manage_env(target)
    base = dict(project_dir=str(PROJECT_DIR), settings="testproject.settings",
                environment={k: v for k, v in env.items() if k.startswith("OAR_DB_")})
    shown = run_module("django_manage", dict(base, command=["showmigrations", "oauth2_provider"]), check_mode=True)
    assert shown["failed"] is False and shown["rc"] == 0 and shown["skipped_in_check_mode"] is False
    assert "[ ] 0012_add_token_checksum" in shown["stdout"] and shown["changed"] is False

    skipped = run_module("django_manage", dict(base, command=["migrate", "--noinput"]), check_mode=True)
    assert skipped["skipped_in_check_mode"] is True and skipped["failed"] is False and skipped["rc"] is None
    assert target.query("SELECT COUNT(*) FROM django_migrations WHERE name = '0012_add_token_checksum'") == [(0,)]

    pending = run_module("django_manage", dict(base, command=["migrate", "--check"], fail_on_error=False))
    assert pending["rc"] == 1 and pending["failed"] is False and pending["changed"] is False
    failing = run_module("django_manage", dict(base, command=["migrate", "--check"]))
    assert failing["failed"] is True and "exited with 1" in failing["msg"]

    secret = "very-secret-value-123"
    printed = run_module("django_manage", dict(base, secret_environment={"OAR_TEST_SECRET": secret}, command=[
        "shell", "-c", "import os; print('the secret is', os.environ['OAR_TEST_SECRET'])"]))
    assert printed["rc"] == 0 and "the secret is ********" in printed["stdout"]
    assert secret not in json.dumps(printed)

    migrated = run_module("django_manage", dict(base, command=["migrate", "--noinput", "oauth2_provider", "0012"]))
    assert migrated["changed"] is True and migrated["applied"] == ["oauth2_provider.0012_add_token_checksum"]
    assert run_module("django_manage", dict(base, command=["migrate", "--noinput", "oauth2_provider",
                                                           "0012"]))["changed"] is False
    assert M0011 in shown["stdout"]
    missing = run_module("django_manage", dict(base, project_dir=str(PROJECT_DIR.parent), command=["check"]))
    assert missing["failed"] is True and "no manage.py" in missing["msg"]
