"""The rollout playbook when the repair's process is killed (issue 13 item 8): a site at DOT 0011 with 12,000
tokens (tests/rollout_sites.seed004_at_0011), repaired asynchronously in small, throttled batches so that the
checksum backfill runs for seconds; the test SIGKILLs the oauth_repair process (its pid is in the progress file)
half-way through the backfill, on real servers.

* PostgreSQL, default ``rollback_on_resumable_failure: resume``: the failure names the step and says the process
  died (no async_wrapper traceback); the data still equals the backup's fingerprint, so the rollback stage
  resumes the repair instead of restoring the dump - only the rows not filled yet are updated - the remaining
  stages run, verify passes, the host succeeds, the report says it was resumed and shows each step's status;
* MariaDB, ``rollback_on_resumable_failure: restore``: the backup is restored, the report's findings after are
  those of the restored database (diagnosed again), and its plan shows the steps that ran before the kill, the
  interrupted backfill and the steps never reached.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests import rollout_sites
from tests.findings_helpers import Databases
from tests.support.modules import run_module
from tests.test_playbook import BIN, ROOT, _env, codes, fingerprint, recap, report, show, write_inventory

pytestmark = [pytest.mark.slow]
BACKFILL = "token_checksum:backfill:oauth2_provider_accesstoken"
RAW = "No start of json char found"


def run_and_kill(inventory, extra, progress_file, min_rows):
    """ansible-playbook, with the oauth_repair process SIGKILLed once its progress file shows ``min_rows`` rows
    of the backfill done. Returns (completed process, progress entry at the kill, pid killed)."""
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), "playbooks/repair_oauth.yml",
           "-e", json.dumps(extra), "-v"]
    out, err = progress_file.parent / "playbook.out", progress_file.parent / "playbook.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:  # files: a pipe nobody reads would stop ansible
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=stdout, stderr=stderr)

    def done():
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read_text(), err.read_text())

    entry = pid = None
    deadline = time.monotonic() + 300
    try:
        while entry is None:
            assert proc.poll() is None, "the playbook ended before the repair could be killed:" + show(done())
            assert time.monotonic() < deadline, "no backfill progress within 300 s:" + show(done())
            try:
                data = json.loads(progress_file.read_text())
            except (OSError, ValueError):
                data = {}
            got = (data.get("steps") or {}).get(BACKFILL)
            if got and min_rows <= got["rows_done"] < got["rows_total"]:
                pid = data["pid"]
                with open("/proc/%d/cmdline" % pid, "rb") as fh:
                    assert b"AnsiballZ_oauth_repair" in fh.read()  # the module's own process, nothing else
                os.kill(pid, signal.SIGKILL)
                entry = got
            else:
                time.sleep(0.02)
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return done(), entry, pid


def statuses(plan):
    return [(s["key"], s["status"]) for s in plan]


@pytest.mark.parametrize("engine,choice", [
    pytest.param("postgresql", "resume", marks=pytest.mark.postgresql, id="postgresql-resume"),
    pytest.param("mysql", "restore", marks=pytest.mark.mysql, id="mysql-restore"),
])
def test_repair_killed_mid_backfill(request, tmp_path, engine, choice):
    server = request.getfixturevalue("mariadb_server" if engine == "mysql" else "postgres_server")
    dbs = Databases(engine, server, tmp_path)
    try:
        target = dbs.empty()
        issued = rollout_sites.seed004_at_0011(target, bulk=12000)
        before, before_codes = fingerprint(target), codes(target)
        assert "token_checksum_preupgrade" in before_codes
        host = rollout_sites.host_vars(target, issued, django=False)
        if choice == "restore":
            host["rollback_on_resumable_failure"] = "restore"
        progress = tmp_path / "progress.json"
        inv = write_inventory(tmp_path, {"staging": {"kill-1": host}, "production": {}},
                              {"backup_dir": str(tmp_path / "backups"), "repair_async_min_rows": 0, "repair_poll": 1,
                               "repair_batch_size": 200, "repair_throttle": 0.05,
                               "repair_progress_file": str(progress)})
        reports = tmp_path / "reports"
        run, entry, pid = run_and_kill(inv, {"oauth_repair_report_dir": str(reports)}, progress, 2000)
        r = report(reports, "kill-1")
        md = (reports / "kill-1.md").read_text()

        # (1) a readable failure: the process died, in the backfill; not async_wrapper's traceback
        texts = [run.stdout, run.stderr] + [p.read_text() for p in reports.rglob("*") if p.is_file()]
        assert not [t for t in texts if RAW in t or "Traceback" in t], show(run)
        assert r["failed_stage"] == "repair", r
        died = "the oauth_repair process (process %d) died before it returned a result" % pid
        assert r["error"].startswith(died), r["error"]
        assert "during step %s at " % BACKFILL in r["error"] and died in run.stdout

        # (3) the plan: the steps before the backfill ran (before the kill), the backfill's fate, then the rest
        plan = statuses(r["plan"])
        keys = [key for key, status in plan]
        at = keys.index(BACKFILL)
        assert at > 0 and plan[0][1] == "ran" and all(status in ("ran", "done_already") for key, status in plan[:at]), plan
        assert "would_run" not in [status for key, status in plan], plan

        if choice == "resume":
            # (4) resumed instead of restored: the host succeeds, healthy, verified
            assert run.returncode == 0, show(run)
            assert recap(run.stdout)["kill-1"]["failed"] == 0
            assert r["outcome"] == "success", r
            rb = r["rollback"]
            assert rb["resumable"] is True and rb["resumed"] is True and rb["restored"] is False, rb
            assert rb["resume"].startswith("resumed: the data equals the fingerprint of the backup"), rb
            assert "(stage repair failed, then the repair was resumed)" in md and "resumed the repair" in md
            assert all(c["ok"] for c in r["verification"]["checks"]), r["verification"]
            assert r["healthy"] is True and r["findings_after"] == codes(target), r["findings_after"]
            assert r["recorded"] == ["0012_add_token_checksum"]
            assert [status for key, status in plan[at:]] == ["ran"] * (len(plan) - at), plan
            step = r["plan"][at]
            assert step["resumed"] is True and not any(s.get("resumed") for s in r["plan"][:at])
            # only the rows the killed run had not reached were filled by the resumed run
            assert entry["rows_done"] <= 12003 - step["progress"]["rows_updated"] < 12003, (entry, step["progress"])
            after = run_module("db_fingerprint", dict(target.params, compare_to=before, exclude_tables=[],
                                                      extra_tables=["django_migrations"],
                                                      ignore=["*.token_checksum", "django_migrations"]))
            assert after["equal"] is True, after["differences"]
        else:
            # restored, as asked: the report's findings after are those of the restored database
            assert run.returncode != 0, show(run)
            assert r["outcome"] == "rolled_back", r
            rb = r["rollback"]
            assert rb["resumable"] is True and rb["resumed"] is False and rb["restored"] is True, rb
            assert rb["resume"] == "not resumed: rollback_on_resumable_failure is restore", rb
            assert fingerprint(target) == before
            assert r["findings_after"] == codes(target) == before_codes
            assert r["healthy"] is run_module("oauth_info", target.params)["summary"]["healthy"]
            assert "Findings after: %s" % ", ".join(before_codes) in md and "Findings after: none" not in md
            assert plan[at][1] == "interrupted" and all(status == "not_run" for key, status in plan[at + 1:]), plan
            assert "interrupted: the repair's process died during this step" in md
    finally:
        dbs.close()
