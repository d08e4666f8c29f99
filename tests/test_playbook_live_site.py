"""The rollout playbook against a site that is really served over HTTP (tests/support/site_server.py): the parts
of the deploy, maintenance_window and verify roles that act on a running site.

* SQLite, seed 004: the release (two hand-built wheels: ``deploy_requirements`` and ``deploy_requirements_file``)
  installed by pip into the site's own throwaway virtualenv, the window's enter/leave commands and flag file, the
  restart command (a new server process, which imports the release), the health URL after the restart, the
  smoke request with a token issued before the repair; old tokens authenticate over HTTP afterwards; a second
  run changes nothing and restarts nothing; no recycle (no column type changed); the token in no output;
* PostgreSQL, seed 004: ``token`` varchar -> text is a column type change, so the workers are recycled (the
  recycle commands, no restart configured); the smoke request with a wrong token (403 from the recycled process) fails verify, so the backup
  is restored and the window left; the token in no output (one playbook run for both: each run costs ~30s).

The served site has two ports (see tests/support/site_server.py): the web tier (``front``), which answers 503
while the flag file exists, and the application server (``app``). The health URL and the smoke request point at
``app``: the deploy and verify stages run inside the maintenance window, where ``front`` answers 503.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
import zipfile

import pytest

from tests import rollout_sites
from tests.findings_helpers import Databases
from tests.support import site_server
from tests.support.django import PROJECT_DIR
from tests.test_playbook import codes, fingerprint, playbook, recap, report, show, write_inventory

SITE_SERVER = os.path.abspath(site_server.__file__)
ANSIBLE_AGENT = "ansible-httpget"
pytestmark = [pytest.mark.slow]


# --------------------------------------------------------------------------
# The site's own virtualenv and a release to install into it
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site_python(tmp_path_factory):
    """The python of a throwaway virtualenv (with its own pip) that sees this one's packages (Django, DOT)
    through a .pth file: the deploy installs the release there, never into .venv."""
    folder = tmp_path_factory.mktemp("site-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300, capture_output=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    with open(os.path.join(purelib, "zz_oar_test_main_venv.pth"), "w") as f:
        f.write("import site; site.addsitedir(%r)\n" % ours)
    probe = subprocess.run([str(python), "-c", "import django, oauth2_provider, sys; print(sys.prefix)"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert probe.returncode == 0 and probe.stdout.strip() == str(folder), probe.stderr
    return str(python)


def make_wheel(folder, name, version):
    """A pure-Python wheel of one package ``name`` (``__version__ = version``), no dependencies."""
    dist = "%s-%s" % (name, version)
    files = {
        "%s/__init__.py" % name: "__version__ = %r\n" % version,
        "%s.dist-info/METADATA" % dist: "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: a test release\n"
                                        % (name, version),
        "%s.dist-info/WHEEL" % dist: "Wheel-Version: 1.0\nGenerator: oar-tests\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(text.encode())))
    record.append("%s.dist-info/RECORD,," % dist)
    files["%s.dist-info/RECORD" % dist] = "\n".join(record) + "\n"
    path = os.path.join(str(folder), "%s-py3-none-any.whl" % dist)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for name_in_zip, text in files.items():
            whl.writestr(name_in_zip, text)
    return path


def imported_versions(python, modules):
    code = "import importlib, json, sys; print(json.dumps({m: importlib.import_module(m).__version__ " \
           "for m in sys.argv[1:]}))"
    proc = subprocess.run([python, "-c", code] + list(modules), capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------
# The served site
# --------------------------------------------------------------------------


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Site(object):
    """A served site: its config, the commands the inventory runs, what it answers, its events."""

    def __init__(self, tmp_path, python, environment, release_modules=()):
        self.dir = tmp_path / "site"
        self.dir.mkdir()
        self.python = python
        self.config = dict(python=python, project_dir=str(PROJECT_DIR), settings="testproject.settings",
                           environment=dict(environment), app_port=free_port(), front_port=free_port(),
                           pidfile=str(self.dir / "site.pid"), flag_file=str(tmp_path / "maintenance.flag"),
                           events=str(self.dir / "events.jsonl"), log=str(self.dir / "site.log"),
                           release_modules=list(release_modules))
        self.config_path = self.dir / "site.json"
        self.config_path.write_text(json.dumps(self.config, indent=1))
        self.flag = tmp_path / "maintenance.flag"

    def command(self, *args):
        """An argument list the inventory runs (maintenance_window_*_commands, deploy_*_commands)."""
        return [self.python, SITE_SERVER] + list(args) + ["--config", str(self.config_path)]

    def command_line(self, *args):
        """The same as one command line (the string form the roles accept too)."""
        return " ".join(self.command(*args))

    def url(self, path, port="app"):
        return "http://127.0.0.1:%d%s" % (self.config["%s_port" % port], path)

    def control(self, action):
        proc = subprocess.run(self.command(action), capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr + self.log()

    def pid(self):
        return site_server.read_pid(self.config)

    def log(self):
        return self.dir.joinpath("site.log").read_text() if self.dir.joinpath("site.log").exists() else ""

    def events(self):
        path = self.dir / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def health(self, port="front"):
        status, body = site_server.get(self.url("/healthz", port))
        return status, (json.loads(body) if status == 200 else None)

    def hello(self, token, port="front"):
        """Status of GET /api/hello/ with ``Authorization: Bearer <token>``: a real request to the served site."""
        req = urllib.request.Request(self.url("/api/hello/", port), headers={"Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self):
        pid = self.pid()
        with contextlib.suppress(Exception):
            self.control("stop")
        if pid and site_server.alive(pid):  # the stop command failed: never leave a server behind
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def served(tmp_path, python, environment, release_modules=()):
    site = Site(tmp_path, python, environment, release_modules)
    try:
        site.control("start")
        yield site
    finally:
        site.stop()


def named(events, name, **match):
    return [e for e in events if e["event"] == name and all(e.get(k) == v for k, v in match.items())]


def by_ansible(events, path, **match):
    """The requests Ansible's uri module made (the deploy's health check, verify's smoke request) to ``path``."""
    return named(events, "request", path=path, agent=ANSIBLE_AGENT, **match)


def index(events, event):
    return events.index(event)


def assert_secret_nowhere(secret, procs, reports):
    texts = [p.stdout for p in procs] + [p.stderr for p in procs]
    texts += [path.read_text() for path in reports.rglob("*") if path.is_file()]
    assert len(texts) > 2 * len(procs)
    for text in texts:
        assert secret not in text


@pytest.fixture
def pip_offline(monkeypatch):
    """pip installs the wheels from their paths: no index, no version check (the machine may be offline)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_NO_INPUT", "1")


def window_vars(site):
    return {"maintenance_window_flag_file": str(site.flag),
            "maintenance_window_enter_commands": [site.command("mark", "enter")],
            "maintenance_window_leave_commands": [site.command_line("mark", "leave")]}


def deploy_vars(site, token):
    return {"deploy_restart_commands": [site.command("restart")],
            "deploy_recycle_commands": [site.command("recycle")],
            "deploy_health_url": site.url("/healthz"), "deploy_health_retries": 5, "deploy_health_delay": 1,
            "verify_smoke_url": site.url("/api/hello/"), "verify_smoke_token": token}


# --------------------------------------------------------------------------
# SQLite: release, window, restart, health, smoke; second run
# --------------------------------------------------------------------------


@pytest.mark.sqlite
def test_live_site_release_window_restart_health_smoke_and_second_run(tmp_path, site_python, pip_offline):
    target = rollout_sites.servers.DBTarget("sqlite", str(tmp_path / "site.sqlite3"))
    issued = rollout_sites.break_like_seed004(target)
    tokens = issued["access_tokens"]
    host = rollout_sites.host_vars(target, issued)
    host["oauth_repair_django"]["python"] = site_python
    suffix = secrets.token_hex(4)
    release = ["oar_release_%s" % suffix, "oar_release_req_%s" % suffix]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = make_wheel(wheels, release[0], "1.0.%d" % int(suffix[:2], 16))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(make_wheel(wheels, release[1], "2.0.0") + "\n")
    reports = tmp_path / "reports"

    with served(tmp_path, site_python, host["oauth_repair_django"]["environment"], release) as site:
        first_pid = site.pid()
        assert site.health() == (200, {"pid": first_pid, "release": {release[0]: None, release[1]: None}})
        assert site.hello(tokens[0]) == 500  # broken: DOT 3.4's code reads columns of migrations not applied yet
        host.update(window_vars(site), **deploy_vars(site, tokens[0]))
        host.update(deploy_requirements=[wheel], deploy_requirements_file=str(requirements))
        inv = write_inventory(tmp_path, {"staging": {"live-1": host}, "production": {}},
                              {"backup_dir": str(tmp_path / "backups")})

        run = playbook(inv, {"oauth_repair_report_dir": str(reports)}, "-v")
        assert run.returncode == 0, show(run) + site.log()
        r = report(reports, "live-1")
        assert r["outcome"] == "success", r
        events = site.events()

        # The release: installed by pip into the site's virtualenv (both the specifier and the file), not .venv.
        assert r["deploy"]["installed"] is True
        assert imported_versions(site_python, release) == {release[0]: "1.0.%d" % int(suffix[:2], 16),
                                                           release[1]: "2.0.0"}
        assert subprocess.run([sys.executable, "-c", "import %s" % release[0]], capture_output=True,
                              check=False).returncode != 0

        # The window: flag file up before the enter commands (the web tier answered 503, the app server 200),
        # the leave commands after everything else, the flag taken down.
        assert r["window"]["entered"] is True and r["window"]["finished"]
        assert r["window"]["mechanisms"] == ["flag file %s" % site.flag, "enter/leave commands"]
        enter, = named(events, "enter")
        leave, = named(events, "leave")
        assert (enter["flag"], enter["front"], enter["app"]) == (True, 503, 200)
        assert (leave["flag"], leave["front"], leave["app"]) == (True, 503, 200)  # the flag goes last
        assert not site.flag.exists()

        # The restart: a new process, after the repair, inside the window; the health check asked it after.
        restart, = named(events, "restart")
        assert restart["old"] == first_pid and restart["new"] != first_pid
        new_pid = restart["new"]
        assert index(events, enter) < index(events, restart) < index(events, leave)
        assert r["deploy"]["health"] == 200
        health = by_ansible(events, "/healthz", port="app", status=200, pid=new_pid)
        assert health and index(events, restart) < index(events, health[0]) < index(events, leave)
        assert not named(events, "recycle") and r["deploy"]["type_changed"] is False  # SQLite: no type change
        assert r["deploy"]["recycled"] is False
        assert r["deploy"]["restarted"] == [] and r["deploy"]["restart_commands"] == 1  # no units; one command

        # The smoke request: the old token, to the restarted application server, answered 200.
        smoke = by_ansible(events, "/api/hello/", port="app", pid=new_pid)
        assert [e["status"] for e in smoke] == [200]
        assert index(events, health[0]) < index(events, smoke[0]) < index(events, leave)
        checks = {c["name"]: c for c in r["verification"]["checks"]}
        assert checks["smoke request"]["ok"] is True
        assert checks["smoke request"]["detail"] == "%s answered 200" % site.url("/api/hello/")
        assert all(c["ok"] for c in checks.values()) and len(checks) == 5, checks

        # After the run: the web tier serves again, from the restarted process with the release imported, and
        # every old token authenticates.
        assert site.health() == (200, {"pid": new_pid, "release": {release[0]: "1.0.%d" % int(suffix[:2], 16),
                                                                   release[1]: "2.0.0"}})
        assert site.pid() == new_pid
        for token in tokens:
            assert site.hello(token) == 200
        assert site.hello("not-" + tokens[0]) == 403

        # A second run: nothing to do, nothing installed, no window, no restart, still healthy and smoke-tested.
        seen = len(site.events())
        again = playbook(inv, {"oauth_repair_report_dir": str(reports)})
        assert again.returncode == 0, show(again) + site.log()
        assert recap(again.stdout)["live-1"]["changed"] == 0
        r2 = report(reports, "live-1")
        assert r2["outcome"] == "unchanged"
        assert r2["deploy"]["installed"] is False and r2["deploy"]["restarted"] == []
        assert r2["deploy"]["health"] == 200 and r2["window"]["entered"] is False
        later = site.events()[seen:]
        assert {e["event"] for e in later} == {"request"}, later  # no enter, leave, restart or recycle
        assert {(e["path"], e["port"], e["status"], e["pid"], e["agent"]) for e in later} == {
            ("/healthz", "app", 200, new_pid, ANSIBLE_AGENT), ("/api/hello/", "app", 200, new_pid, ANSIBLE_AGENT)}
        assert {c["name"]: c["ok"] for c in r2["verification"]["checks"]}["smoke request"] is True
        assert site.pid() == new_pid and not site.flag.exists()

        # The smoke token is a secret: in no output and no report.
        assert_secret_nowhere(tokens[0], [run, again], reports)


# --------------------------------------------------------------------------
# PostgreSQL: a column type change recycles the workers; a wrong smoke token fails verify: rolled back
# --------------------------------------------------------------------------


@pytest.mark.postgresql
def test_live_site_type_change_recycles_then_failed_smoke_request_rolls_back(tmp_path, site_python,
                                                                             postgres_server):
    """token varchar -> text: the workers are recycled by the recycle commands; the smoke request with a wrong token
    (403) fails verify, so the backup is restored and the window (asked for: every step is online here) left."""
    dbs = Databases("postgresql", postgres_server, tmp_path)
    try:
        target = dbs.empty()
        issued = rollout_sites.break_like_seed004(target)
        before, before_codes = fingerprint(target), codes(target)
        host = rollout_sites.host_vars(target, issued)
        host["oauth_repair_django"]["python"] = site_python
        wrong = "not-a-token-" + secrets.token_hex(6)
        reports = tmp_path / "reports"
        with served(tmp_path, site_python, host["oauth_repair_django"]["environment"]) as site:
            first_pid = site.pid()
            host.update(window_vars(site), **deploy_vars(site, wrong))
            # no restart commands: the recycle commands alone replace the workers (after a restart they are
            # skipped: the restart replaced them already)
            host["deploy_restart_commands"] = []
            host["maintenance_window_when"] = "always"
            inv = write_inventory(tmp_path, {"staging": {"live-pg": host}, "production": {}},
                                  {"backup_dir": str(tmp_path / "backups")})
            run = playbook(inv, {"oauth_repair_report_dir": str(reports)}, "-v")
            assert run.returncode != 0, show(run)
            assert recap(run.stdout)["live-pg"]["failed"] == 1
            r = report(reports, "live-pg")

            # The type change: the plan's token_text step ran, the deploy recycled the workers after restarting.
            typed = [s["key"] for s in r["plan"] if s.get("changes_type") and s["status"] == "ran"]
            assert any(":token_text:" in k for k in typed), r["plan"]
            assert r["deploy"]["type_changed"] is True and r["deploy"]["recycled"] is True
            assert r["deploy"]["restart_commands"] == 0
            events = site.events()
            enter, = named(events, "enter")
            recycle, = named(events, "recycle")
            leave, = named(events, "leave")
            assert not named(events, "restart")
            assert recycle["old"] == first_pid != recycle["new"]
            health = by_ansible(events, "/healthz", port="app", status=200, pid=recycle["new"])
            smoke, = by_ansible(events, "/api/hello/", port="app")
            assert health and (smoke["status"], smoke["pid"]) == (403, recycle["new"])
            assert (index(events, enter) < index(events, recycle) < index(events, health[0])
                    < index(events, smoke) < index(events, leave))
            assert r["deploy"]["health"] == 200

            # The failed smoke request: verify failed, the backup was restored, the window left.
            assert r["outcome"] == "rolled_back" and r["failed_stage"] == "verify", r
            assert "verification failed: smoke request: %s answered 403" % site.url("/api/hello/") in r["error"]
            checks = {c["name"]: c["ok"] for c in r["verification"]["checks"]}
            assert checks == {"findings": True, "fingerprints": True, "migrate --check": True,
                              "makemigrations --check": True, "smoke request": False}
            assert r["backup"]["verified"] is True
            assert r["rollback"]["restored"] is True and r["rollback"]["equal_to_backup"] is True
            assert r["rollback"]["dropped_tables"] == ["oauth2_provider_devicegrant"]
            assert r["window"]["entered"] is True and r["window"]["finished"] and not site.flag.exists()
            assert r["window"]["reason"] == "maintenance_window_when is always"
            assert fingerprint(target) == before and codes(target) == before_codes
            assert "rolled_back" in (reports / "live-pg.md").read_text()

            # The web tier answers again - for the database the backup put back, which the running code (DOT
            # 3.4) cannot read, as before the run (rollback_commands would put the previous release back).
            assert site.health() == (200, {"pid": recycle["new"], "release": {}})
            assert site.hello(issued["access_tokens"][0]) == 500
            assert_secret_nowhere(wrong, [run], reports)
    finally:
        dbs.close()
