# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for an async job and show the progress its module writes to a JSON file (see the module's doc)."""

from __future__ import annotations

import base64
import json
import re
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


def progress_line(data):
    """One readable line from oauth_repair's progress file (``step``, ``rows_done``, ``rows_total``, rate, ETA)."""
    if not isinstance(data, dict):
        return None
    entries = data.get("steps") if isinstance(data.get("steps"), dict) else None
    entry = data
    if entries:
        entry = list(entries.values())[-1]
    if "rows_done" not in entry:
        return None
    total = entry.get("rows_total") or 0
    pct = " (%d%%)" % (100 * entry["rows_done"] // total) if total else ""
    eta = entry.get("eta_s")
    return "%s: %s/%s rows%s, %s rows/s%s" % (
        entry.get("step", "?"), entry["rows_done"], total, pct, entry.get("rate_rows_per_s", "?"),
        ", ETA %ss" % eta if eta is not None else "")


def died(status):
    """How the job's process ended without a result, or None: async_wrapper found no JSON in its output (the
    process was killed - kill -9, out of memory, a reboot - or crashed), or its time limit killed it."""
    if not status.get("failed"):
        return None
    msg = str(status.get("msg") or "")
    if msg == "Timeout exceeded" and "child_pid" in status:
        return "was killed by the job's time limit (async)"
    if "data" in status and "stderr" in status and msg.startswith("Traceback") and "json char found" in msg:
        return "died before it returned a result (killed - kill -9, out of memory, a reboot - or crashed)"
    return None


def interrupted_plan(data):
    """The plan a killed oauth_repair left in its progress file: the step under way ``interrupted``, those after
    it ``not_run``."""
    plan = data.get("plan") if isinstance(data, dict) else None
    if not isinstance(plan, list):
        return []
    renamed = {"running": "interrupted", "pending": "not_run"}
    return [dict(step, status=renamed.get(step.get("status"), step.get("status"))) for step in plan
            if isinstance(step, dict)]


def died_message(status, how, data):
    """A readable message for a job whose process died: which module, its process, the step it was in."""
    match = re.search(r"AnsiballZ_(\w+)\.py", str(status.get("cmd") or ""))
    module = match.group(1) if match else "job's"
    pid = " (process %s)" % data["pid"] if isinstance(data, dict) and data.get("pid") else ""
    plan = interrupted_plan(data)
    running = [s["key"] for s in plan if s.get("status") == "interrupted"]
    done = [s["key"] for s in plan if s.get("status") == "ran"]
    where = ""
    if running:
        progress = ((data.get("steps") or {}).get(running[0])) or {}
        rows = " at %s of %s rows" % (progress["rows_done"], progress.get("rows_total")) if "rows_done" in progress else ""
        where = " during step %s%s" % (running[0], rows)
    elif data:
        last = progress_line(data)
        where = " after its last progress (%s)" % last if last else ""
    ran = (", after the steps %s" % ", ".join(done)) if done else ""
    return ("the %s process%s %s%s%s; the database is as the process left it (the interrupted step may have run in "
            "part)" % (module, pid, how, where, ran))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("jid", "progress_file", "poll", "timeout"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _valid, args = self.validate_argument_spec(argument_spec=dict(
            jid=dict(type="str", required=True),
            progress_file=dict(type="str"),
            poll=dict(type="float", default=5.0),
            timeout=dict(type="int", default=7200),
        ))
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        host = task_vars.get("inventory_hostname", "?") if task_vars else "?"
        deadline = time.monotonic() + args["timeout"]
        shown = None
        data = None
        lines = []
        pause = min(0.5, args["poll"])
        while True:
            status = self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                          module_args=dict(jid=args["jid"], mode="status", _async_dir=async_dir))
            if args["progress_file"]:
                data = self._progress(args["progress_file"], task_vars) or data
                line = progress_line(data)
                if line and line != shown:
                    shown = line
                    lines.append(line)
                    display.display("  [%s] progress %s" % (host, line))
            if status.get("finished") or (status.get("failed") and not status.get("started")):
                break
            if time.monotonic() > deadline:
                raise AnsibleActionFail("job %s did not finish within %s seconds; it may still be running on %s. "
                                        "Fix: wait for it (async_status) before retrying, or raise the timeout"
                                        % (args["jid"], args["timeout"], host))
            time.sleep(pause)
            pause = min(pause * 2, args["poll"])
        self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                             module_args=dict(jid=args["jid"], mode="cleanup", _async_dir=async_dir))
        how = died(status)
        if how:  # async_wrapper's own traceback says nothing useful: say what happened and where
            stderr = status.get("stderr")
            status = dict(failed=True, changed=True, died=True, msg=died_message(status, how, data),
                          plan=interrupted_plan(data), progress=(data or {}).get("steps") or {},
                          pid=(data or {}).get("pid"))
            if stderr:
                status["module_stderr"] = stderr
        for key in ("ansible_job_id", "results_file", "started", "finished", "stdout_lines", "stderr_lines"):
            status.pop(key, None)
        result.update(status)
        result["progress_lines"] = lines
        return result

    def _progress(self, path, task_vars):
        """The progress file's content (a dict), or None."""
        res = self._execute_module(module_name="ansible.legacy.slurp", task_vars=task_vars, module_args=dict(src=path))
        if res.get("failed") or "content" not in res:
            return None
        try:
            data = json.loads(base64.b64decode(res["content"]).decode("utf-8"))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
