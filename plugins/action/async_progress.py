# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for an async job and show the progress its module writes to a JSON file (see the module's doc)."""

from __future__ import annotations

import base64
import json
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
        lines = []
        pause = min(0.5, args["poll"])
        while True:
            status = self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                          module_args=dict(jid=args["jid"], mode="status", _async_dir=async_dir))
            if args["progress_file"]:
                line = self._progress(args["progress_file"], task_vars)
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
        for key in ("ansible_job_id", "results_file", "started", "finished", "stdout_lines", "stderr_lines"):
            status.pop(key, None)
        result.update(status)
        result["progress_lines"] = lines
        return result

    def _progress(self, path, task_vars):
        res = self._execute_module(module_name="ansible.legacy.slurp", task_vars=task_vars, module_args=dict(src=path))
        if res.get("failed") or "content" not in res:
            return None
        try:
            return progress_line(json.loads(base64.b64decode(res["content"]).decode("utf-8")))
        except ValueError:
            return None
