# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports of a rollout: one JSON and one Markdown file per host, and a fleet summary."""

from __future__ import annotations

import datetime
import json
import os
import stat

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.backup import write_private
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import redact
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dot import APP as DOT_APP

STAGES = ("preflight", "backup", "maintenance_window", "repair", "fake_migration", "deploy", "verify", "rollback")
FLEET_NAME = "fleet"
RUNS = "runs"
KEEP_RUNS = 30
NOT_RUN = "not run"
DIR_MODE, FILE_MODE = 0o700, 0o600
REPORT_SUFFIXES = (".json", ".md")


def parse_time(text):
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def seconds_between(start, end):
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return None
    return round((b - a).total_seconds(), 3)


def complete_host_report(report):
    """Add what can be computed: stage durations, total duration, window length; slim the findings."""
    report = dict(report)
    marks = report.get("stages") or {}
    starts = sorted(((stage, parse_time(t)) for stage, t in marks.items() if parse_time(t) is not None),
                    key=lambda item: item[1])
    end = parse_time(report.get("finished"))
    durations = {}
    for i, (stage, start) in enumerate(starts):
        stop = starts[i + 1][1] if i + 1 < len(starts) else end
        if stop is not None:
            durations[stage] = round((stop - start).total_seconds(), 3)
    report["durations"] = durations
    report["duration"] = seconds_between(report.get("started"), report.get("finished"))
    window = dict(report.get("window") or {})
    if window.get("entered"):
        window["seconds"] = seconds_between(window.get("started"), window.get("finished"))
    report["window"] = window
    keep = ("code", "severity", "objects", "message", "seed", "repair")
    report["findings_before_detail"] = [dict((k, f.get(k)) for k in keep)
                                        for f in report.get("findings_before_detail") or [] if isinstance(f, dict)]
    for key in ("drift_before", "drift_after"):
        if report.get(key) is not None:
            report[key] = [dict((k, f.get(k)) for k in DRIFT_KEEP) for f in report[key] if isinstance(f, dict)]
    report["drift_summary"] = dict((when, drift_counts(report.get("drift_" + when))) for when in ("before", "after"))
    return report


#: what a report keeps of each schema_drift_* finding
DRIFT_KEEP = ("code", "severity", "objects", "message")
#: drift of these severities breaks the site (verify fails on it); info drift never does
BREAKING = ("fatal", "error", "warning")


def drift_counts(drift):
    """Counts of a list of drift findings: total, breaking, and by code; None when the drift was not judged."""
    if drift is None:
        return None
    by_code = {}
    for f in drift:
        by_code[f.get("code")] = by_code.get(f.get("code"), 0) + 1
    return dict(total=len(drift), breaking=sum(1 for f in drift if f.get("severity") in BREAKING), by_code=by_code)


def drift_markdown(r):
    """The report's section on schema drift (the site's own models as the truth), or nothing when not judged."""
    truth = r.get("schema_truth") or {}
    before, after = truth.get("before") or {}, truth.get("after") or {}
    if before.get("source") in (None, "dot") and after.get("source") in (None, "dot"):
        return []
    out = ["", "## Schema drift", ""]
    for when, t in (("before", before), ("after", after)):
        if t.get("source"):
            python = t.get("python") or "of the modules"
            out.append("- %s: against `%s` (Django %s, python `%s`)" % (when, t.get("source"), t.get("django"), python))
    if truth.get("release"):
        out.append("- release installed side by side in `%s`" % truth["release"])
    if truth.get("deferred"):
        pending = ", ".join(truth.get("pending_migrations") or []) or "see manage.py migrate --plan"
        out.append("- migrations not applied at the preflight (%s): the repair was planned without the drift, "
                   "verify judged it after the deploy's migrate" % pending)
    summary = r.get("drift_summary") or {}
    for when in ("before", "after"):
        counts = summary.get(when)
        out.append("- %s: %s" % (when, "not judged" if counts is None else "%d difference(s), %d breaking%s" % (
            counts["total"], counts["breaking"], (" (%s)" % ", ".join("%s %d" % kv for kv in sorted(
                counts["by_code"].items()))) if counts["by_code"] else "")))
    for when in ("before", "after"):
        rows = [(f.get("code"), f.get("severity"), f.get("objects")) for f in r.get("drift_" + when) or []]
        if rows:
            out += ["", "Drift %s:" % when, ""] + _table(["code", "severity", "objects"], rows)
    return out


def _table(headers, rows):
    def cell(v):
        text = "" if v is None else (", ".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v))
        return text.replace("|", "\\|").replace("\n", " ")
    lines = ["| %s |" % " | ".join(headers), "|%s|" % "|".join(["---"] * len(headers))]
    lines += ["| %s |" % " | ".join(cell(value) for value in row) for row in rows]
    return lines


STEP_STATUS = {
    "ran": "ran",
    "failed": "failed (it may have run in part; see the error above)",
    "done_already": "already done, not run",
    "interrupted": "interrupted: the repair's process died during this step (it may have run in part)",
    "not_run": "not run (the repair stopped before it)",
}


def step_status_label(status, mode=None):
    """What a plan step's ``status`` means in a report, in words: the SQL shown ran, would run, or did not run."""
    if status == "would_run":
        return "would run (dry run: nothing was run)" if mode == "check" else "planned, not run (the repair stage did not run)"
    return STEP_STATUS.get(status, "not run (%s)" % (status or "no status"))


def plan_sql_markdown(plan, mode=None):
    """The SQL of the plan, one block per step, each labelled with its step and what happened to it."""
    out = []
    for i, step in enumerate(plan):
        sql = step.get("sql") or []
        if not sql:
            continue
        if not out:
            out += ["", "### SQL by step", ""]
        out += ["Step %d, `%s`%s: **%s**" % (i + 1, step.get("key"), " on `%s`" % step["table"] if step.get("table") else "",
                                             step_status_label(step.get("status"), mode)),
                "", "```sql"] + ["%s;" % q.rstrip().rstrip(";") for q in sql] + ["```", ""]
    return out[:-1] if out else out


def host_markdown(r):
    if r.get("outcome") == NOT_RUN:
        return not_run_markdown(r)
    out = ["# OAuth repair: %s" % r.get("host"), ""]
    db = r.get("database") or {}
    stage = " (stage %s)" % r["failed_stage"] if r.get("failed_stage") else ""
    if stage and r.get("outcome") == "success" and (r.get("rollback") or {}).get("resumed"):
        stage = " (stage %s failed, then the repair was resumed)" % r["failed_stage"]
    out += [
        "- **outcome**: %s%s" % (r.get("outcome"), stage),
        "- **mode**: %s, run `%s`, group `%s`" % (r.get("mode"), r.get("run_id"), r.get("group")),
        "- **database**: %s `%s`%s" % (db.get("engine"), db.get("name"), " on %s" % db["host"] if db.get("host") else ""),
        "- **started** %s, **finished** %s (%ss)" % (r.get("started"), r.get("finished"), r.get("duration")),
    ]
    if r.get("error"):
        out.append("- **error**: %s" % r["error"])
    out += ["", "## Findings before", ""]
    detail = r.get("findings_before_detail") or []
    rows = [(f.get("code"), f.get("severity"), f.get("objects")) for f in detail]
    out += _table(["code", "severity", "objects"], rows) if rows else ["none"]
    plan = r.get("plan") or []
    out += ["", "## Plan", ""]
    if plan:
        out += _table(["#", "step", "table", "lock", "duration", "online", "status", "seconds"],
                      [(i + 1, s.get("key"), s.get("table"), s.get("lock"), s.get("duration"), s.get("online"),
                        s.get("status"), s.get("seconds")) for i, s in enumerate(plan)])
        out += plan_sql_markdown(plan, r.get("mode"))
    else:
        out.append("nothing to do")
    if r.get("not_repaired"):
        out += ["", "Not repaired by this version: %s" % ", ".join(f.get("code", "?") for f in r["not_repaired"])]
    out += drift_markdown(r)
    out += ["", "## Stages", ""]
    out += _table(["stage", "seconds"], sorted((r.get("durations") or {}).items(),
                                               key=lambda kv: STAGES.index(kv[0]) if kv[0] in STAGES else 99))
    w = r.get("window") or {}
    out += ["", "## Maintenance window", ""]
    if w.get("entered"):
        out.append("- entered %s, left %s: **%ss** (%s)" % (
            w.get("started"), w.get("finished"), w.get("seconds"), ", ".join(w.get("mechanisms") or []) or "no mechanism"))
        if w.get("sessions_waited") is not None:
            out.append("- waited %ss for the application's sessions to drain" % w["sessions_waited"])
    else:
        out.append("- not entered: %s" % (w.get("reason") or "not needed"))
    b = r.get("backup") or {}
    out += ["", "## Backup", ""]
    if b.get("path"):
        out.append("- `%s` (sha256 `%s`, %s bytes)" % (b.get("path"), b.get("sha256"), b.get("size")))
        out.append("- verified: **%s**%s" % (b.get("verified"), " - %s" % b["method"] if b.get("method") else ""))
    else:
        out.append("- none: %s" % (b.get("reason") or "not taken"))
    recorded = ["%s.%s" % (DOT_APP, name) if "." not in name else name for name in r.get("recorded") or []]
    swapped = (r.get("swap") or {}).get("recorded_migration")
    if swapped:
        recorded.append("%s (by the swap of the application model)" % swapped)
    out += ["", "## Migrations recorded", "", ", ".join(recorded) or "none"]
    v = r.get("verification") or {}
    out += ["", "## Verification", ""]
    checks = v.get("checks") or []
    out += _table(["check", "ok", "detail"], [(c.get("name"), c.get("ok"), c.get("detail")) for c in checks]) \
        if checks else ["not run"]
    after = r.get("findings_after")
    out += ["", "Findings after: %s" % ((", ".join(after) or "none") if after is not None else "not diagnosed after the %s"
                                        % ("failure" if r.get("failed_stage") else "run")),
            "Healthy: **%s**" % r.get("healthy")]
    rb = r.get("rollback") or {}
    if rb:
        out += ["", "## Rollback", ""]
        out += ["- %s: %s" % (k, v) for k, v in sorted(rb.items())]
    return "\n".join(out) + "\n"


def run_dir(report_dir, run_id):
    """Where the reports of one run are kept (the top-level files are the latest run's)."""
    return os.path.join(report_dir, RUNS, safe_name(run_id))


def safe_name(text):
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(text))


def write_host_report(report_dir, report, secrets=(), keep_runs=KEEP_RUNS):
    """Write ``<host>.json`` and ``<host>.md`` (mode 0600), in ``report_dir`` (the latest) and in the run's own
    directory ``runs/<run_id>/``; returns (report, paths, changed)."""
    report = redact(complete_host_report(report), secrets)
    tighten_reports(report_dir)
    name = safe_name(report["host"])
    json_text, md_text = json.dumps(report, indent=2, default=str) + "\n", host_markdown(report)
    paths, changed = _write_pair(os.path.join(_mkdir(report_dir), name), json_text, md_text)
    if report.get("run_id"):
        more, changed_too = _write_pair(os.path.join(_mkdir(run_dir(report_dir, report["run_id"])), name),
                                        json_text, md_text)
        paths += more
        changed = changed or changed_too
        prune_runs(report_dir, keep_runs)
    return report, (paths, changed)


def _mkdir(path):
    return private_dir(path)


def _tighten(path, mode):
    """Set ``path``'s mode to ``mode`` when it differs (not through a symbolic link; best effort: a path owned by
    another user is left as it is)."""
    try:
        if not os.path.islink(path) and stat.S_IMODE(os.stat(path).st_mode) != mode:
            os.chmod(path, mode)
    except OSError:
        pass


def private_dir(path):
    """Make ``path`` a directory of mode 0700: created so (missing parents too), or tightened when it exists."""
    if not os.path.isdir(path):
        parent = os.path.dirname(os.path.abspath(path))
        if parent and not os.path.isdir(parent):
            private_dir(parent)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            pass
    _tighten(path, DIR_MODE)
    return path


def tighten_reports(report_dir):
    """Bring a report directory written by an older version to the documented modes: the directory,
    ``runs/`` and every run's directory 0700, the reports (``*.json``, ``*.md``) and every file of a run 0600."""
    private_dir(report_dir)
    for name in os.listdir(report_dir):
        path = os.path.join(report_dir, name)
        if name.endswith(REPORT_SUFFIXES) and os.path.isfile(path):
            _tighten(path, FILE_MODE)
    root = os.path.join(report_dir, RUNS)
    if not os.path.isdir(root):
        return
    _tighten(root, DIR_MODE)
    for run in os.listdir(root):
        folder = os.path.join(root, run)
        if os.path.islink(folder) or not os.path.isdir(folder):
            continue
        _tighten(folder, DIR_MODE)
        for name in os.listdir(folder):
            if os.path.isfile(os.path.join(folder, name)):
                _tighten(os.path.join(folder, name), FILE_MODE)


def prune_runs(report_dir, keep):
    """Keep the reports of the ``keep`` newest runs (run ids sort by time)."""
    root = os.path.join(report_dir, RUNS)
    if not keep or not os.path.isdir(root):
        return []
    runs = sorted(os.listdir(root), reverse=True)
    removed = []
    for name in runs[keep:]:
        folder = os.path.join(root, name)
        for f in os.listdir(folder):
            os.unlink(os.path.join(folder, f))
        os.rmdir(folder)
        removed.append(folder)
    return removed


def _write_pair(base, json_text, md_text):
    paths, changed = [], False
    for path, text in ((base + ".json", json_text), (base + ".md", md_text)):
        old = None
        if os.path.exists(path):
            with open(path) as f:
                old = f.read()
        if old != text or (os.stat(path).st_mode & 0o777) != 0o600:
            write_private(path, text)
            changed = True
        paths.append(path)
    return paths, changed


def fleet_summary(report_dir, run_id, groups, complete=False):
    """The summary of every host of ``groups`` (``{group: [hosts]}``) for run ``run_id``."""
    hosts = {}
    for group, names in groups.items():
        for name in names:
            path = os.path.join(run_dir(report_dir, run_id), "%s.json" % safe_name(name))
            entry = dict(group=group, outcome=NOT_RUN, report=None)
            if os.path.exists(path):
                with open(path) as f:
                    r = json.load(f)
                if r.get("run_id") == run_id:
                    entry = dict(group=group, outcome=r.get("outcome"), report=path, started=r.get("started"),
                                 finished=r.get("finished"), duration=r.get("duration"),
                                 findings_before=r.get("findings_before"), findings_after=r.get("findings_after"),
                                 healthy=r.get("healthy"), window_seconds=(r.get("window") or {}).get("seconds"),
                                 backup=(r.get("backup") or {}).get("path"),
                                 backup_verified=(r.get("backup") or {}).get("verified"),
                                 recorded=r.get("recorded"), failed_stage=r.get("failed_stage"),
                                 error=r.get("error"))
            hosts[name] = entry
    staging_end = [parse_time(h.get("finished")) for h in hosts.values() if h["group"] == "staging" and h.get("finished")]
    prod_start = [parse_time(h.get("started")) for h in hosts.values()
                  if h["group"] == "production" and h.get("started")]
    order_ok = None
    if staging_end and prod_start:
        order_ok = max(staging_end) <= min(prod_start)
    counts = {}
    for h in hosts.values():
        counts[h["outcome"]] = counts.get(h["outcome"], 0) + 1
    return dict(run_id=run_id, complete=complete, generated=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                groups=groups, hosts=hosts, counts=counts, staging_finished_before_production=order_ok)


def fleet_markdown(s):
    out = ["# OAuth repair: fleet summary", "",
           "- run `%s`%s, generated %s" % (s["run_id"], "" if s["complete"] else " (in progress or stopped)",
                                           s["generated"]),
           "- outcomes: %s" % ", ".join("%s %s" % (v, k) for k, v in sorted(s["counts"].items())),
           "- every staging host finished before any production host started: %s"
           % s["staging_finished_before_production"], ""]
    rows = []
    for group in ("staging", "production"):
        for name in s["groups"].get(group, []):
            h = s["hosts"][name]
            rows.append((name, group, h["outcome"], h.get("started"), h.get("finished"),
                         h.get("findings_before"), h.get("findings_after"), h.get("window_seconds"),
                         h.get("backup_verified")))
    out += _table(["host", "group", "outcome", "started", "finished", "findings before", "findings after",
                   "window s", "backup verified"], rows)
    return "\n".join(out) + "\n"


def write_fleet_summary(report_dir, run_id, groups, complete=False):
    """Write ``fleet.json`` and ``fleet.md`` in ``report_dir`` and in the run's directory."""
    tighten_reports(report_dir)
    summary = fleet_summary(report_dir, run_id, groups, complete)
    paths, changed = mark_not_run(report_dir, summary)
    for folder in (report_dir, run_dir(report_dir, run_id)):
        base = os.path.join(_mkdir(folder), FLEET_NAME)
        old = None
        if os.path.exists(base + ".json"):
            with open(base + ".json") as f:
                try:
                    old = dict(json.load(f), generated=None)
                except ValueError:
                    old = None
        if old == json.loads(json.dumps(dict(summary, generated=None), default=str)) and os.path.exists(base + ".md"):
            paths += [base + ".json", base + ".md"]
            continue
        more, written = _write_pair(base, json.dumps(summary, indent=2, default=str) + "\n", fleet_markdown(summary))
        paths += more
        changed = changed or written
    return summary, paths, changed


def _read_json(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def mark_not_run(report_dir, summary):
    """Hosts of the fleet ``summary`` without a report of its run whose top-level ``<host>.json``/``.md`` are an
    earlier run's: replace them by a report saying that the host did not run in this run, noted when, naming the
    earlier report (kept in ``runs/<its run id>/``). A host never reported gets nothing. Returns (paths, changed)."""
    run_id, complete = summary["run_id"], bool(summary["complete"])
    paths, changed = [], False
    for name, entry in sorted(summary["hosts"].items()):
        if entry["outcome"] != NOT_RUN:
            continue
        base = os.path.join(report_dir, safe_name(name))
        if not os.path.exists(base + ".json") and not os.path.exists(base + ".md"):
            continue
        old = _read_json(base + ".json") or {}
        if old.get("run_id") == run_id and (old.get("outcome") != NOT_RUN or bool(old.get("complete")) == complete):
            continue  # this run's own report, or already marked so
        if old.get("outcome") == NOT_RUN:
            previous = old.get("previous")
        elif old.get("run_id"):
            folder = run_dir(report_dir, old["run_id"])
            previous = dict(run_id=old["run_id"], outcome=old.get("outcome"), mode=old.get("mode"),
                            started=old.get("started"), finished=old.get("finished"),
                            report=os.path.join(RUNS, os.path.basename(folder), safe_name(name) + ".md")
                            if os.path.exists(os.path.join(folder, safe_name(name) + ".md")) else None)
        else:
            previous = None
        marker = dict(host=name, group=entry.get("group"), run_id=run_id, outcome=NOT_RUN, complete=complete,
                      noted=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                      previous=previous)
        more, written = _write_pair(base, json.dumps(marker, indent=2, default=str) + "\n", not_run_markdown(marker))
        paths += more
        changed = changed or written
    return paths, changed


def not_run_markdown(r):
    """The Markdown of a host that did not run in run ``r["run_id"]``."""
    if r.get("complete"):
        what = "**not run** in run `%s`: the rollout ended without running this host (an earlier host failed, " \
               "or the host was not selected, e.g. by `--limit`)" % r.get("run_id")
    else:
        what = "**not run (yet)** in run `%s`: the run is still going, or stopped before this host" % r.get("run_id")
    out = ["# OAuth repair: %s" % r.get("host"), "",
           "- **outcome**: %s" % what,
           "- **noted**: %s" % r.get("noted"),
           ]
    prev = r.get("previous") or {}
    if prev.get("run_id"):
        out.append("- **previous report**: run `%s`, %s, outcome %s, started %s, finished %s%s" % (
            prev["run_id"], prev.get("mode"), prev.get("outcome"), prev.get("started"), prev.get("finished"),
            ": `%s`" % prev["report"] if prev.get("report") else " (its report is no longer kept)"))
    else:
        out.append("- **previous report**: none readable")
    if r.get("complete"):
        out += ["", "Nothing was done to this host's database in run `%s`." % r.get("run_id")]
    return "\n".join(out) + "\n"
