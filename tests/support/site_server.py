"""The Django test project (tests/django_project) really served over HTTP, for the rollout tests
(tests/test_playbook_live_site.py): the playbook's deploy, maintenance window and verify stages act on it.

One process (its pid in ``pidfile``) serves the project's WSGI application on two ports of 127.0.0.1:

``app_port``
    the application server itself (what a gunicorn/uwsgi socket is on a site): the deploy role's health URL
    and the verify role's smoke request reach it, since both run while the maintenance window is still up;
``front_port``
    the web tier in front of it: answers 503 (the flag file's content) while ``flag_file`` exists - the contract
    of ``maintenance_window_flag_file`` - and passes every other request to the application.

Both answer ``GET /healthz`` (the project has no health view) with ``{"pid": ..., "release": {module: version}}``:
which process answered and which of ``release_modules`` it could import (the release the deploy installed).
Every request to ``/healthz`` or ``/api/hello/`` (path, port, status, User-Agent: Ansible's ``uri`` sends
``ansible-httpget``; the Authorization header is never written) and every command below appends a JSON line to
``events``.

Everything comes from a JSON config file (the same environment as the inventory's
``oauth_repair_django.environment``): ``python`` (the interpreter that serves), ``project_dir``, ``settings``,
``environment``, ``app_port``, ``front_port``, ``pidfile``, ``flag_file``, ``events``, ``log``,
``release_modules``.

Command line (what the inventory's restart/recycle/enter/leave commands run; stdlib only, run by path)::

    python site_server.py serve|start|stop|restart|recycle --config FILE
    python site_server.py mark NAME --config FILE     # an event with what both ports answer now
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from wsgiref import simple_server

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
_events_lock = threading.Lock()


def load(config_path):
    with open(config_path) as f:
        return json.load(f)


def event(config, name, **fields):
    line = json.dumps(dict(event=name, time=time.time(), pid=os.getpid(), **fields), sort_keys=True)
    with _events_lock, open(config["events"], "a") as f:
        f.write(line + "\n")


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


def _release(config):
    out = {}
    for name in config.get("release_modules", []):
        try:
            out[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError:
            out[name] = None
    return out


def healthz(app, config):
    """Answers GET /healthz: the process and the release it imported."""

    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") != "/healthz":
            return app(environ, start_response)
        body = json.dumps({"pid": os.getpid(), "release": _release(config)}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return wrapped


def recorded(app, config, port_name):
    """Records each request to /healthz and /api/hello/: path, port, status, User-Agent (no other header)."""

    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO", "")
        seen = {}

        def recording_start_response(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        result = app(environ, recording_start_response)
        if path in ("/healthz", "/api/hello/"):
            event(config, "request", path=path, port=port_name, status=seen.get("status"),
                  agent=environ.get("HTTP_USER_AGENT", ""))
        return result

    return wrapped


def maintenance(app, config):
    """The web tier: 503 with the flag file's content while it exists."""

    def wrapped(environ, start_response):
        flag = config.get("flag_file")
        if flag and os.path.exists(flag):
            try:
                with open(flag, "rb") as f:
                    body = f.read()
            except FileNotFoundError:  # taken down meanwhile
                return app(environ, start_response)
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Retry-After", "30"),
                                                       ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return wrapped


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


def serve(config):
    for name in [n for n in os.environ if n.startswith("OAR_")]:
        del os.environ[name]
    os.environ.update({k: str(v) for k, v in config["environment"].items()})
    os.environ["DJANGO_SETTINGS_MODULE"] = config["settings"]
    sys.path.insert(0, config["project_dir"])
    from django.core.wsgi import get_wsgi_application
    django_app = get_wsgi_application()
    inner = healthz(django_app, config)
    app = recorded(inner, config, "app")
    front = recorded(maintenance(inner, config), config, "front")
    servers = []
    for port, wsgi in ((config["app_port"], app), (config["front_port"], front)):
        httpd = simple_server.make_server("127.0.0.1", port, wsgi, server_class=_Server, handler_class=_Quiet)
        servers.append(httpd)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for httpd in servers:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    tmp = config["pidfile"] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(tmp, config["pidfile"])
    event(config, "serving", python=sys.executable)
    stop.wait()
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
    event(config, "stopped")


# --------------------------------------------------------------------------
# Control: start, stop, restart (what the inventory's commands run)
# --------------------------------------------------------------------------


def read_pid(config):
    try:
        with open(config["pidfile"]) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid):
    """Whether ``pid`` runs (a zombie nobody reaped yet does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def get(url, timeout=5.0):
    """(status, body) of GET ``url``; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def start(config, config_path):
    """Start the server detached (its own session: the caller may exit at once); wait until it answers."""
    old = read_pid(config)
    if old and alive(old):
        raise SystemExit("already running: pid %d" % old)
    with open(config["log"], "ab") as log:
        proc = subprocess.Popen([config["python"], os.path.abspath(__file__), "serve", "--config", config_path],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                cwd=config["project_dir"], close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited with %s; see %s" % (proc.returncode, config["log"]))
        status, body = get("http://127.0.0.1:%d/healthz" % config["app_port"], timeout=2)
        if status == 200 and json.loads(body)["pid"] == proc.pid and read_pid(config) == proc.pid:
            return proc.pid
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not answer within %ss; see %s" % (START_TIMEOUT, config["log"]))


def stop(config):
    pid = read_pid(config)
    if pid is None or not alive(pid):
        return pid
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT
        time.sleep(0.05)
    os.unlink(config["pidfile"])
    return pid


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("action", choices=["serve", "start", "stop", "restart", "recycle", "mark"])
    parser.add_argument("name", nargs="?", help="mark: the event's name")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config_path = os.path.abspath(args.config)
    config = load(config_path)
    if args.action == "serve":
        serve(config)
    elif args.action == "start":
        event(config, "start", new=start(config, config_path))
    elif args.action == "stop":
        event(config, "stop", old=stop(config))
    elif args.action in ("restart", "recycle"):
        old = stop(config)
        event(config, args.action, old=old, new=start(config, config_path))
    else:
        front = get("http://127.0.0.1:%d/healthz" % config["front_port"])[0]
        app = get("http://127.0.0.1:%d/healthz" % config["app_port"])[0]
        event(config, args.name or "mark", front=front, app=app,
              flag=bool(config.get("flag_file")) and os.path.exists(config["flag_file"]))


if __name__ == "__main__":
    # run by path, its folder is sys.path[0]: tests/support/django.py would shadow Django
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    main()
