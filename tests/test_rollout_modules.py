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
from tests.support.modules import run_module


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
