# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repair plans: ordered lists of small, idempotent steps.

Every step knows how to tell from the *live* catalog whether it is already
done (``done``), the SQL it runs, and its lock profile. Executing a plan walks
the steps in order, skips the ones already done, runs the others under lock
and statement timeouts, and checks after each one that it is now done. A run
killed anywhere converges when run again: nothing is remembered between runs
but the database itself.
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError

DURATIONS = ("instant", "batched", "proportional")


class Step(object):
    """One idempotent unit of a repair.

    ``sql`` lists the statements, in order, that ``run`` executes (for a batched
    step: the statement run once per batch, with ``%s`` placeholders).
    ``done(live)`` answers from the live catalog; ``run(ctx)`` does the work
    (by default executes ``sql`` one statement at a time).
    """

    def __init__(self, key, finding, description, table, lock, duration="instant", online=True,
                 sql=(), done=None, run=None, migration=None, changes_type=False):
        if duration not in DURATIONS:
            raise ValueError("duration must be one of %s" % ", ".join(DURATIONS))
        self.key = key
        self.finding = finding
        self.description = description
        self.table = table
        self.lock = lock
        self.duration = duration
        self.online = online
        self.sql = list(sql)
        self._done = done
        self._run = run
        self.migration = migration
        self.changes_type = changes_type

    def done(self, live):
        return bool(self._done(live)) if self._done else False

    def run(self, ctx):
        if self._run is not None:
            return self._run(ctx)
        for statement in self.sql:
            ctx.ddl(statement, table=self.table)
        return None

    def describe(self):
        return dict(key=self.key, finding=self.finding, description=self.description, table=self.table,
                    lock=self.lock, duration=self.duration, online=self.online, sql=list(self.sql),
                    migration=self.migration, changes_type=self.changes_type)


class Live(object):
    """Fresh catalog reads for ``done`` checks (cached until ``invalidate``)."""

    def __init__(self, conn):
        self.conn = conn
        self.dialect = conn.dialect
        self._cache = {}

    def table(self, name):
        if name not in self._cache:
            self._cache[name] = self.dialect.load_tables(self.conn, [name]).get(name)
        return self._cache[name]

    def invalidate(self):
        self._cache = {}

    def scalar(self, sql, params=()):
        return self.conn.scalar(sql, params)


class Progress(object):
    """Progress of a batched step: rows done / total, rate, ETA; optionally mirrored to a JSON file.

    The file also holds the process id and, once a plan runs, every step with its status so far (``running``
    for the one under way, ``pending`` for those after it): what a killed run had done.
    """

    def __init__(self, path=None):
        self.path = path
        self.steps = {}
        self.plan = None

    def update(self, key, done, total, started, updated_rows=None):
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = done / elapsed
        remaining = max(total - done, 0)
        entry = dict(step=key, rows_done=done, rows_total=total, rows_updated=updated_rows,
                     rate_rows_per_s=round(rate, 1), elapsed_s=round(elapsed, 2),
                     eta_s=round(remaining / rate, 1) if rate > 0 else None,
                     percent=round(100.0 * done / total, 1) if total else 100.0)
        self.steps[key] = entry
        self._write()
        return entry

    def plan_status(self, reports, pending=()):
        """Mirror the step reports so far and the steps still to come to the file."""
        if self.path:
            self.plan = list(reports) + list(pending)
            self._write()

    def _write(self):
        if not self.path:
            return
        tmp = "%s.%d.tmp" % (self.path, os.getpid())  # two writers never share a temporary file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(dict(updated=time.time(), pid=os.getpid(), steps=self.steps, plan=self.plan), fh, default=str)
        os.replace(tmp, self.path)


class Context(object):
    """What a running step may use: the connection, options, timeouts, progress."""

    def __init__(self, conn, options, progress):
        self.conn = conn
        self.dialect = conn.dialect
        self.options = options
        self.progress = progress
        self.live = Live(conn)
        self.report = {}
        self._timeouts_set = False

    def apply_timeouts(self):
        if self._timeouts_set:
            return
        self.conn.apply_timeouts(self.options.get("lock_timeout"), self.options.get("statement_timeout"))
        self._timeouts_set = True

    def ddl(self, statement, params=(), table=None):
        """Run one DDL/DML statement under the session timeouts, with a clear error on lock timeout."""
        self.apply_timeouts()
        try:
            return self.conn.execute(statement, params)
        except Exception as exc:
            raise self.dialect.translate_error(exc, statement, table, self.options)

    def throttle(self):
        pause = float(self.options.get("throttle") or 0)
        if pause > 0:
            time.sleep(pause)


class Plan(object):
    def __init__(self, steps=None):
        self.steps = []
        self._keys = set()
        for step in steps or []:
            self.add(step)

    def add(self, step):
        if step.key in self._keys:
            return
        self._keys.add(step.key)
        self.steps.append(step)

    def extend(self, steps):
        for step in steps:
            self.add(step)

    def execute(self, ctx, check_mode=False):
        """Run (or, in check mode, only list) the steps not yet done. Returns step reports."""
        reports = []
        for index, step in enumerate(self.steps):
            report = step.describe()
            ctx.live.invalidate()
            if step.done(ctx.live):
                report.update(status="done_already", changed=False)
                reports.append(report)
                continue
            if check_mode:
                report.update(status="would_run", changed=True)
                reports.append(report)
                continue
            ctx.progress.plan_status(reports + [dict(report, status="running")],
                                     [dict(later.describe(), status="pending") for later in self.steps[index + 1:]])
            started = time.monotonic()
            before = len(ctx.conn.executed_queries)
            try:
                step.run(ctx)
            except OAuthRepairError as exc:
                report.update(status="failed", changed=len(ctx.conn.executed_queries) > before,
                              error=exc.full_message(), seconds=round(time.monotonic() - started, 3))
                reports.append(report)
                exc.reports = reports
                raise
            ctx.live.invalidate()
            if not step.done(ctx.live):
                exc = OAuthRepairError("step %s ran but the catalog does not show it done" % step.key,
                                       obj=step.table, fix="inspect the table; re-run to retry the step",
                                       changed=True)
                report.update(status="failed", changed=True, error=exc.full_message())
                reports.append(report)
                exc.reports = reports
                raise exc
            report.update(status="ran", changed=True, seconds=round(time.monotonic() - started, 3))
            if step.key in ctx.progress.steps:
                report["progress"] = ctx.progress.steps[step.key]
            reports.append(report)
        if not check_mode:
            ctx.progress.plan_status(reports)
        return reports
