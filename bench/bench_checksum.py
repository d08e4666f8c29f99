"""Benchmark: DOT's migration 0012 (token_checksum) on a big access token table, three ways.

Run from the repository root with the project's virtualenv::

    .venv/bin/python bench/bench_checksum.py [--rows 300000,1000000]
        [--engines mysql,postgresql] [--repeat 1] [--quick] [--write-docs]

For each engine and each row count it

1. builds a *template* database (``oar_t_<hex>``, through tests/support/servers.py):
   ``manage.py migrate oauth2_provider 0011`` of the Django test project (real Django,
   real django-oauth-toolkit migrations), a user and an application, then ``--rows``
   access tokens inserted set-based (tests/support/data.py: 40 random-looking hex
   digits each, no ``token_checksum`` yet: the table is at 0011), then ANALYZE
   (PostgreSQL: VACUUM ANALYZE);
2. runs three scenarios, each on a fresh copy of the template (PostgreSQL:
   ``CREATE DATABASE ... TEMPLATE``; MariaDB: ``SHOW CREATE TABLE`` + ``INSERT ...
   SELECT`` of every table, then ANALYZE), the copying not timed:

   * **dot**: django-oauth-toolkit's own ``manage.py migrate oauth2_provider 0012``
     (its Python backfill, ``bulk_update`` of 1,000 rows at a time);
   * **floor**: the same DDL as DOT's 0012 (taken from ``manage.py sqlmigrate
     oauth2_provider 0012``, in one transaction on PostgreSQL as Django runs it),
     with the Python backfill replaced by one set-based ``UPDATE ... SET
     token_checksum = sha256(token)``: the whole 0012 work done naively set-based;
   * **repair**: ``oauth_repair`` with its default options (``checksum_mode:
     complete``), run in-process through tests/support/modules.py's ``run_module``:
     the whole 0012 work (column, token -> text, batched backfill, NOT NULL, unique
     index) plus the module's diagnosis before and after;

3. while each scenario runs, a **reader** (``SELECT`` of a random token row by primary
   key) and a **writer** (``INSERT`` of a new token with its checksum, and an
   ``UPDATE`` of a random existing row) loop on their own connections, each
   statement timed: the longest single statement is the *max wait* (the target for
   the repair: 1 s). A sampler watches the table's identity (MariaDB: InnoDB
   ``TABLE_ID``; PostgreSQL: ``relfilenode``) to count table rebuilds; the floor's
   and the repair's statements are timed one by one, so each DDL is reported with
   its duration, whether it rebuilt (copied) the table, and the longest reader and
   writer wait during it;
4. checks every scenario's result (a wrong result makes the run fail, exit status 1):
   row count (template rows + the writer's inserts), every ``token_checksum`` equal
   to Python's ``hashlib.sha256(token.encode('utf-8')).hexdigest()``, the access
   token table's schema (columns, types, nullability, defaults, indexes and
   constraints with their names) equal to the one DOT's own migrations build, and
   the real ``manage.py migrate oauth2_provider 0012 --fake`` then completing (for
   the floor and the repair; the repair must also report 0012 as completed).

It prints a table, writes ``bench/results/checksum-<engine>-<rows>.json`` and, with
``--write-docs``, rewrites its own section of docs/performance.md (between
``<!-- bench:checksum -->`` and ``<!-- /bench:checksum -->``).

It is a benchmark, not a test: a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import random
import re
import secrets
import signal
import statistics
import sys
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)

import psycopg  # noqa: E402

import bench_oauth_info as common  # noqa: E402  (machine facts, docs writing, formatting)
from tests.support import data, servers  # noqa: E402
from tests.support import django as django_project  # noqa: E402
from tests.support.modules import module_utils, run_module  # noqa: E402

TABLE = data.ACCESS_TOKEN_TABLE
APP = "oauth2_provider"
M0011 = "0011_refreshtoken_token_family"
M0012 = "0012_add_token_checksum"
ENGINES = ("mysql", "postgresql")
DEFAULT_ROWS = (300000, 1000000)
QUICK_ROWS = (20000,)
SCENARIOS = ("dot", "floor", "repair")
LABELS = {"dot": "DOT 0012", "floor": "set-based floor", "repair": "oauth_repair"}

#: Targets of issue 3 (the repair against DOT and against the floor, and the probes' max wait).
SPEEDUP_TARGET = 10.0
FLOOR_RATIO_TARGET = 1.5
MAX_WAIT_TARGET = 1.0

RESULTS_DIR = os.path.join(ROOT, "bench", "results")
DOCS_FILE = common.DOCS_FILE
DOCS_BEGIN = "<!-- bench:checksum -->"
DOCS_END = "<!-- /bench:checksum -->"

#: Rows per INSERT ... SELECT when copying the token table of a MariaDB template.
COPY_CHUNK = 100000
#: Probe pacing: pause between two iterations of the reader / writer loops, and of the sampler.
PROBE_PAUSE = 0.01
SAMPLER_PAUSE = 0.1
#: Pause between two token lookups (by token, then by checksum) of the lookup probe.
LOOKUP_PAUSE = 0.5
#: Seconds the probes run before the scenario starts and after it ends.
PROBE_MARGIN = 0.5
#: Statements of the floor / repair shorter than this are not listed one by one.
LIST_THRESHOLD = 0.2
#: Probe statements at least this long are listed in the JSON results.
SLOW_PROBE = 0.5


class BenchFailure(AssertionError):
    """A scenario gave a wrong result, or the benchmark could not set up its databases."""


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def q(engine, name):
    return "`%s`" % name if engine == "mysql" else '"%s"' % name


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------
# Scratch databases: templates and their copies
# --------------------------------------------------------------------------


class Databases(object):
    """Creates ``oar_t_*`` databases on one server (empty ones and copies) and drops them all on
    :meth:`close` (also on error, Ctrl-C or SIGTERM, through the caller's ``finally``)."""

    def __init__(self, server):
        self.server = server
        self.created = []

    def _target(self, name):
        s = self.server
        return servers.DBTarget(s.engine, name, s.host, s.port, s.user, s.password, server=s)

    def empty(self):
        name = servers.new_database_name()
        self.server.create_database(name)
        self.created.append(name)
        return self._target(name)

    def copy(self, template):
        """A copy of ``template`` (tables, rows, indexes, foreign keys, auto-increment counters)."""
        name = servers.new_database_name()
        if self.server.engine == "postgresql":
            self.created.append(name)
            for attempt in range(100):
                try:
                    self.server._admin('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, template.name))
                    break
                except psycopg.errors.ObjectInUse:  # a session on the template is still closing
                    if attempt == 99:
                        raise
                    time.sleep(0.1)
            # the owner tag (for the orphan sweep) is not copied with the template
            self.server._admin('COMMENT ON DATABASE "%s" IS \'%s\'' % (name, servers.owner_tag()))
            return self._target(name)
        self.server.create_database(name)
        self.created.append(name)
        target = self._target(name)
        with contextlib.closing(self.server.connect(name)) as conn:
            cur = conn.cursor()
            cur.execute("SET SESSION foreign_key_checks = 0")
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                        "AND table_type = 'BASE TABLE' ORDER BY table_name", (template.name,))
            tables = [r[0] for r in cur.fetchall()]
            for table in tables:
                cur.execute("SHOW CREATE TABLE `%s`.`%s`" % (template.name, table))
                cur.execute(cur.fetchone()[1])
                cur.execute("SELECT MIN(id), MAX(id) FROM `%s`.`%s`" % (template.name, table)
                            if table == TABLE else "SELECT NULL, NULL")
                lo, hi = cur.fetchone()
                if lo is None:
                    cur.execute("INSERT INTO `%s` SELECT * FROM `%s`.`%s`" % (table, template.name, table))
                    continue
                for start in range(int(lo), int(hi) + 1, COPY_CHUNK):  # short transactions: faster than one
                    cur.execute("INSERT INTO `%s` SELECT * FROM `%s`.`%s` WHERE id >= %%s AND id < %%s ORDER BY id"
                                % (table, template.name, table), (start, start + COPY_CHUNK))
            cur.execute("ANALYZE TABLE %s" % ", ".join("`%s`" % t for t in tables))
            cur.fetchall()
        return target

    def drop(self, target):
        if target.name in self.created:
            self.created.remove(target.name)
        self.server.drop_database(target.name)

    def close(self):
        while self.created:
            name = self.created.pop()
            with contextlib.suppress(Exception):
                self.server.drop_database(name)


def analyze(target):
    if target.engine == "postgresql":
        # a production table has been vacuumed: no autovacuum starting on the fresh load mid-run
        target.execute("VACUUM ANALYZE")
    else:
        target.query("ANALYZE TABLE %s" % ", ".join("`%s`" % t for t in target.tables()))


def build_template(dbs, n_rows):
    """A database at DOT 0011 holding ``n_rows`` access tokens; returns (target, seeded, setup seconds)."""
    setup = {}
    target = dbs.empty()
    started = time.perf_counter()
    django_project.migrate(target, APP, M0011)
    setup["migrate_0011"] = time.perf_counter() - started
    applied = [r[0] for r in target.query("SELECT name FROM django_migrations WHERE app = %s" % (
        target.placeholder,), (APP,))]
    if M0011 not in applied or M0012 in applied:
        raise BenchFailure("template not at %s: %s" % (M0011, applied))
    user_id = data.create_user(target, "oar-bench-%s" % secrets.token_hex(3))
    application_id = data.create_application(target, user_id)
    started = time.perf_counter()
    seeded = data.bulk_insert_access_tokens(target, n_rows, application_id, user_id, with_checksum=False)
    setup["insert_tokens"] = time.perf_counter() - started
    started = time.perf_counter()
    analyze(target)
    setup["analyze"] = time.perf_counter() - started
    return target, dict(seeded=seeded, application_id=application_id, user_id=user_id), setup


# --------------------------------------------------------------------------
# Schema fingerprint of the access token table (compared with DOT's own 0012)
# --------------------------------------------------------------------------


def table_schema(target, table=TABLE):
    """Columns, indexes and constraints of ``table`` with their names, independent of their order."""
    out = dict(columns=[], indexes=[], constraints=[])
    if target.engine == "mysql":
        for row in target.query(
                "SELECT column_name, column_type, is_nullable, column_default, extra, character_set_name, "
                "collation_name FROM information_schema.columns WHERE table_schema = DATABASE() "
                "AND table_name = %s", (table,)):
            out["columns"].append(row)
        idx = {}
        for name, non_unique, column, sub_part in target.query(
                "SELECT index_name, non_unique, column_name, sub_part FROM information_schema.statistics "
                "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY index_name, seq_in_index",
                (table,)):
            idx.setdefault((name, int(non_unique)), []).append((column, sub_part))
        out["indexes"] = [(name, nu, tuple(cols)) for (name, nu), cols in idx.items()]
        out["constraints"] = target.query(
            "SELECT constraint_name, constraint_type FROM information_schema.table_constraints "
            "WHERE table_schema = DATABASE() AND table_name = %s", (table,))
    else:
        rel = "c.relname = %s AND c.relnamespace = current_schema()::regnamespace"
        out["columns"] = target.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid), a.attidentity FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
            "AND d.adnum = a.attnum WHERE %s AND a.attnum > 0 AND NOT a.attisdropped" % rel, (table,))
        out["indexes"] = target.query(
            "SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisunique FROM pg_index i "
            "JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid WHERE %s" % rel,
            (table,))
        out["constraints"] = target.query(
            "SELECT k.conname, k.contype, pg_get_constraintdef(k.oid), k.condeferrable, k.convalidated "
            "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE %s" % rel, (table,))
    return dict((k, sorted(repr(tuple(r)) for r in v)) for k, v in out.items())


def schema_differences(actual, expected):
    problems = []
    for part in ("columns", "indexes", "constraints"):
        only_a = sorted(set(actual[part]) - set(expected[part]))
        only_e = sorted(set(expected[part]) - set(actual[part]))
        if only_a or only_e:
            problems.append("%s %s differ from DOT's: only here %s; only in DOT's %s" % (TABLE, part, only_a, only_e))
    return problems


def reference_schema(dbs):
    """The access token table as DOT's own migrations leave it at 0012 (an empty database)."""
    target = dbs.empty()
    try:
        django_project.migrate(target, APP, M0012)
        return table_schema(target)
    finally:
        dbs.drop(target)


# --------------------------------------------------------------------------
# Concurrent probes: reader, writer, table identity sampler
# --------------------------------------------------------------------------


class Probes(object):
    """Reader and writer loops on their own connections, and a sampler of the table's identity.

    Every probe statement is recorded as (kind, start, seconds, error) with ``start`` relative
    to :attr:`t0`, the moment the scenario starts (set by :meth:`mark_start`).
    """

    def __init__(self, target, id_range, application_id, user_id, tokens, rows):
        self.target = target
        self.engine = target.engine
        self.lo, self.hi = id_range
        self.application_id = application_id
        self.user_id = user_id
        self.t0 = time.perf_counter()
        self.stop_event = threading.Event()
        self.ops = []  # (kind, start, seconds, error)
        self.identity = []  # (time, identity) at every change
        self.inserted = []  # tokens the writer inserted (committed)
        self.insert_mode = None  # "with_checksum" or "without"
        self.errors = []
        self._lock = threading.Lock()
        self.tokens = tokens  # callable: i -> the i-th seeded token
        self.rows = rows
        self._identity_conn = None
        self.threads = [threading.Thread(target=self._guard, args=(fn,), name=fn.__name__, daemon=True)
                        for fn in (self._reader, self._writer, self._sampler, self._lookup)]

    # -- plumbing -------------------------------------------------------------
    def _connect(self):
        conn = self.target.connect()
        if self.engine == "mysql":
            cur = conn.cursor()
            # wait as long as it takes: the wait is what is measured
            cur.execute("SET SESSION innodb_lock_wait_timeout = 3600")
            cur.execute("SET SESSION lock_wait_timeout = 3600")
            cur.close()
        return conn

    def _guard(self, fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported with the results
            self.errors.append("%s: %s: %s" % (fn.__name__, type(exc).__name__, exc))

    def now(self):
        return time.perf_counter() - self.t0

    def _timed(self, kind, conn, sql, params=None):
        start = time.perf_counter()
        error = None
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            if cur.description:
                cur.fetchall()
            count = cur.rowcount
            cur.close()
        except Exception as exc:  # noqa: BLE001 - a failed probe is recorded, the loop goes on
            error = "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:200])
            count = None
            if self.engine == "postgresql" and not conn.closed:
                with contextlib.suppress(Exception):
                    conn.rollback()
        seconds = time.perf_counter() - start
        with self._lock:
            self.ops.append((kind, start - self.t0, seconds, error))
        return error, count

    def start(self):
        for t in self.threads:
            t.start()
        time.sleep(PROBE_MARGIN)

    def mark_start(self):
        """Offsets are measured from now on (the probes have been running for PROBE_MARGIN)."""
        shift = time.perf_counter() - self.t0
        with self._lock:
            self.ops = [(k, s - shift, d, e) for k, s, d, e in self.ops]
            self.identity = [(s - shift, v) for s, v in self.identity]
            self.t0 += shift

    def stop(self):
        time.sleep(PROBE_MARGIN)
        self.stop_event.set()
        for t in self.threads:
            t.join(120)
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            self.errors.append("probe thread(s) still blocked after the scenario: %s" % alive)
        if self._identity_conn is not None:
            with contextlib.suppress(Exception):
                self._identity_conn.close()
            self._identity_conn = None

    def identity_now(self):
        """The table's identity right now (InnoDB table id / relfilenode), on a connection of the caller's."""
        if self._identity_conn is None:
            self._identity_conn = self._connect()
        sql, params = self._identity_sql()
        cur = self._identity_conn.cursor()
        cur.execute(sql, params)
        row = cur.fetchone()
        cur.close()
        return row[0] if row else None

    # -- the loops ------------------------------------------------------------
    def _reader(self):
        ph = self.target.placeholder
        sql = "SELECT * FROM %s WHERE id = %s" % (q(self.engine, TABLE), ph)
        with contextlib.closing(self._connect()) as conn:
            rnd = random.Random(1)
            while not self.stop_event.is_set():
                self._timed("read", conn, sql, (rnd.randint(self.lo, self.hi),))
                time.sleep(PROBE_PAUSE)

    def _lookup(self):
        """The application's lookups of a token, by token (old code) and by checksum (new code), once a second:
        they show when no index serves them (a full scan), which locks alone do not."""
        ph = self.target.placeholder
        by_token = "SELECT id FROM %s WHERE token = %s" % (q(self.engine, TABLE), ph)
        by_checksum = "SELECT id FROM %s WHERE token_checksum = %s" % (q(self.engine, TABLE), ph)
        with contextlib.closing(self._connect()) as conn:
            rnd = random.Random(3)
            while not self.stop_event.wait(LOOKUP_PAUSE):
                token = self.tokens(rnd.randint(1, self.rows))
                self._timed("lookup_token", conn, by_token, (token,))
                if self.stop_event.wait(LOOKUP_PAUSE):
                    break
                self._timed("lookup_checksum", conn, by_checksum, (sha(token),))

    def _insert_sql(self, with_checksum):
        cols = ["token", "expires", "scope", "application_id", "user_id", "created", "updated"]
        if with_checksum:
            cols.append("token_checksum")
        return "INSERT INTO %s (%s) VALUES (%s)" % (
            q(self.engine, TABLE), ", ".join(q(self.engine, c) for c in cols),
            ", ".join([self.target.placeholder] * len(cols)))

    def _writer(self):
        """New code's writes: a new token with its checksum (without it while the column does not exist
        yet), and an update of an existing row."""
        ph = self.target.placeholder
        update = "UPDATE %s SET updated = %s WHERE id = %s" % (q(self.engine, TABLE), ph, ph)
        with contextlib.closing(self._connect()) as conn:
            rnd = random.Random(2)
            while not self.stop_event.is_set():
                token = "oar-bench-w-%s" % secrets.token_hex(16)
                now = datetime.datetime.now(datetime.timezone.utc)
                stamp = now if self.engine == "postgresql" else now.replace(tzinfo=None)
                row = [token, stamp + datetime.timedelta(days=30), "read write", self.application_id,
                       self.user_id, stamp, stamp]
                error, _n = self._timed("insert", conn, self._insert_sql(True), tuple(row + [sha(token)]))
                mode = "with_checksum"
                if error and "token_checksum" in error:
                    # the column is not there (yet): insert as the old code does
                    error, _n = self._timed("insert", conn, self._insert_sql(False), tuple(row))
                    mode = "without"
                if not error:
                    with self._lock:
                        self.inserted.append(token)
                        self.insert_mode = mode
                self._timed("update", conn, update, (stamp, rnd.randint(self.lo, self.hi)))
                time.sleep(PROBE_PAUSE)

    def _identity_sql(self):
        if self.engine == "mysql":
            return ("SELECT TABLE_ID FROM information_schema.INNODB_SYS_TABLES WHERE NAME = %s",
                    ("%s/%s" % (self.target.name, TABLE),))
        return ("SELECT relfilenode FROM pg_class WHERE oid = to_regclass(%s)", (TABLE,))

    def _sampler(self):
        sql, params = self._identity_sql()
        with contextlib.closing(self._connect()) as conn:
            last = None
            while not self.stop_event.is_set():
                cur = conn.cursor()
                cur.execute(sql, params)
                row = cur.fetchone()
                cur.close()
                value = row[0] if row else None
                if value is not None and value != last:
                    with self._lock:
                        self.identity.append((self.now(), value))
                    last = value
                time.sleep(SAMPLER_PAUSE)

    # -- results --------------------------------------------------------------
    def rebuild_times(self):
        """Moments the table got a new identity (a rebuild/copy completed)."""
        return [t for t, _v in self.identity[1:]]

    def summary(self, duration):
        out = {}
        for role, kinds in (("reader", ("read",)), ("writer", ("insert", "update"))):
            ops = [o for o in self.ops if o[0] in kinds]
            during = [o for o in ops if o[1] < duration and o[1] + o[2] > 0]
            waits = sorted(o[2] for o in during)
            worst = max(during, key=lambda o: o[2]) if during else None
            out[role] = dict(
                statements=len(during),
                max_wait=round(worst[2], 3) if worst else None,
                max_wait_kind=worst[0] if worst else None,
                max_wait_at=round(worst[1], 2) if worst else None,
                p50=round(waits[len(waits) // 2], 4) if waits else None,
                p99=round(waits[min(len(waits) - 1, int(len(waits) * 0.99))], 4) if waits else None,
                over_1s=sum(1 for w in waits if w > 1.0),
                errors=sorted(set(o[3] for o in during if o[3]))[:5],
                slow=[dict(kind=k, at=round(s, 2), seconds=round(d, 3)) for k, s, d, _e in during
                      if d >= SLOW_PROBE][:50],
            )
        for kind in ("lookup_token", "lookup_checksum"):
            ops = [o for o in self.ops if o[0] == kind and o[1] < duration and o[1] + o[2] > 0 and not o[3]]
            out[kind] = dict(statements=len(ops), max_seconds=round(max(o[2] for o in ops), 3) if ops else None,
                             over_50ms=sum(1 for o in ops if o[2] > 0.05))
        out["writer"]["inserted"] = len(self.inserted)
        out["writer"]["insert_mode_last"] = self.insert_mode
        out["rebuilds"] = len(self.rebuild_times())
        out["rebuilt_at"] = [round(t, 2) for t in self.rebuild_times()]
        out["probe_errors"] = self.errors
        return out

    def max_wait_between(self, start, end, kinds):
        """Longest probe statement of ``kinds`` that overlapped [start, end]."""
        waits = [d for k, s, d, _e in self.ops if k in kinds and s < end and s + d > start]
        return round(max(waits), 3) if waits else 0.0


# --------------------------------------------------------------------------
# Statement timelines (floor and repair)
# --------------------------------------------------------------------------


DDL_RE = re.compile(r"\s*(ALTER|CREATE|DROP)\b", re.I)


class Timeline(object):
    """Statements with their start/end (relative to the scenario's start); each DDL with the table's identity
    read just before and just after it, so that a rebuild (copy) is attributed to its statement exactly."""

    def __init__(self, t0, identity):
        self.t0 = t0
        self.identity = identity
        self.entries = []  # dict(sql, start, end, kind, rebuilt)

    def run(self, sql, fn, kind="execute"):
        ddl = bool(DDL_RE.match(sql))
        before = self.identity() if ddl else None
        start = time.perf_counter()
        try:
            return fn()
        finally:
            end = time.perf_counter()
            rebuilt = ddl and self.identity() != before
            if kind == "execute" or end - start >= 0.05:  # catalog reads are many and short: only scans
                self.entries.append(dict(sql=sql, start=start - self.t0, end=end - self.t0, kind=kind,
                                         rebuilt=rebuilt))

    def grouped(self):
        """Consecutive runs of the same statement (the batches of a backfill) folded into one entry."""
        out = []
        for e in self.entries:
            if out and out[-1]["sql"] == e["sql"] and out[-1]["kind"] == e["kind"] == "execute" \
                    and not e["rebuilt"]:
                last = out[-1]
                last["end"] = e["end"]
                last["count"] += 1
                last["longest"] = max(last["longest"], e["end"] - e["start"])
                last["busy"] += e["end"] - e["start"]
            else:
                out.append(dict(e, count=1, longest=e["end"] - e["start"], busy=e["end"] - e["start"]))
        return out


@contextlib.contextmanager
def collection_statement_log(timeline):
    """Time every statement the collection's Connection runs in this process."""
    conn_mod = module_utils("connection")
    original_execute, original_query = conn_mod.Connection.execute, conn_mod.Connection.query

    def execute(self, sql, params=(), record=True):
        return timeline.run(sql, lambda: original_execute(self, sql, params, record))

    def query(self, sql, params=()):
        return timeline.run(sql, lambda: original_query(self, sql, params), kind="query")

    conn_mod.Connection.execute, conn_mod.Connection.query = execute, query
    try:
        yield timeline
    finally:
        conn_mod.Connection.execute, conn_mod.Connection.query = original_execute, original_query


def describe_statements(timeline, probes):
    """The statements worth listing, each with its duration, rebuild and the probes' longest waits."""
    out = []
    for e in timeline.grouped():
        seconds = e["end"] - e["start"]
        if seconds < LIST_THRESHOLD and not (DDL_RE.match(e["sql"]) and seconds >= 0.05) and not e["rebuilt"]:
            continue
        out.append(dict(
            sql=common.shorten(re.sub(r"\s+", " ", e["sql"]), 200),
            kind=e["kind"],
            start=round(e["start"], 2),
            seconds=round(seconds, 3),
            count=e["count"],
            longest=round(e["longest"], 3),
            rebuilt_table=e["rebuilt"],
            reader_max_wait=probes.max_wait_between(e["start"], e["end"], ("read",)),
            writer_max_wait=probes.max_wait_between(e["start"], e["end"], ("insert", "update")),
        ))
    return out


# --------------------------------------------------------------------------
# The three scenarios
# --------------------------------------------------------------------------


def dot_statements(sqlmigrate_text, update_sql):
    """DOT's 0012 as SQL (``sqlmigrate``), the RunPython backfill replaced by ``update_sql``."""
    statements, current = [], []
    for line in sqlmigrate_text.splitlines():
        stripped = line.strip()
        if "THIS OPERATION CANNOT BE WRITTEN AS SQL" in stripped:
            statements.append(update_sql)
            continue
        if not stripped or stripped.startswith("--"):
            continue
        current.append(stripped)
        if stripped.endswith(";"):
            statements.append(" ".join(current)[:-1].strip())
            current = []
    if update_sql not in statements:
        raise BenchFailure("no RunPython placeholder in sqlmigrate's output:\n%s" % sqlmigrate_text)
    return statements


def run_dot(target, ctx, probes, timeline):
    django_project.run_manage(target, "migrate", "--noinput", APP, M0012, timeout=3600)
    return {}


def run_floor(target, ctx, probes, timeline):
    with contextlib.closing(target.connect()) as conn:
        cur = conn.cursor()
        for sql in ctx["floor_sql"]:
            timeline.run(sql, lambda: cur.execute(sql))  # noqa: B023 - called at once
        cur.close()
    return {}


def run_repair(target, ctx, probes, timeline):
    params = dict(target.params)
    if ctx["rows"] < 10000:
        params["preupgrade_min_rows"] = 1  # below the default, the diagnosis does not propose the work
    plan_mod = module_utils("plan")
    original_execute = plan_mod.Plan.execute
    plan_time = []

    def execute(self, ctx, check_mode=False):
        start = time.perf_counter()
        try:
            return original_execute(self, ctx, check_mode)
        finally:
            plan_time.append(time.perf_counter() - start)

    plan_mod.Plan.execute = execute
    try:
        with collection_statement_log(timeline):
            result = run_module("oauth_repair", params)
    finally:
        plan_mod.Plan.execute = original_execute
    if result.get("failed"):
        raise BenchFailure("oauth_repair failed: %s" % result.get("msg"))
    steps = [dict(key=r["key"], status=r["status"], seconds=r.get("seconds"), lock=r.get("lock"))
             for r in result["plan"]]
    # the plan's execution (steps and their live-catalog checks); the rest is the diagnosis before and after
    return dict(plan_seconds=round(sum(plan_time), 3), module_result=dict(
        changed=result["changed"], completed_migrations=result["completed_migrations"],
        findings_before=result["findings_before"], findings_after=[f["code"] for f in result["findings"]],
        steps=steps, progress=result.get("progress"), report=result.get("report")))


RUNNERS = {"dot": run_dot, "floor": run_floor, "repair": run_repair}


# --------------------------------------------------------------------------
# Checking a scenario's result
# --------------------------------------------------------------------------


def check_checksums(target):
    """(rows, NULL checksums, wrong checksums, example ids) over the whole table, in id order."""
    ph = target.placeholder
    sql = "SELECT id, token, token_checksum FROM %s WHERE id > %s ORDER BY id LIMIT 50000" % (
        q(target.engine, TABLE), ph)
    rows = nulls = wrong = 0
    examples = []
    last = -1
    with contextlib.closing(target.connect()) as conn:
        while True:
            cur = conn.cursor()
            cur.execute(sql, (last,))
            chunk = cur.fetchall()
            cur.close()
            if not chunk:
                break
            for row_id, token, checksum in chunk:
                if checksum is None:
                    nulls += 1
                elif checksum != sha(token):
                    wrong += 1
                else:
                    continue
                if len(examples) < 5:
                    examples.append(row_id)
            rows += len(chunk)
            last = chunk[-1][0]
    return rows, nulls, wrong, examples


def verify(kind, target, ctx, probes, details):
    problems = []
    expected_rows = ctx["rows"] + len(probes.inserted)
    rows, nulls, wrong, examples = check_checksums(target)
    if rows != expected_rows:
        problems.append("%d rows, expected %d (%d seeded + %d inserted by the writer)" % (
            rows, expected_rows, ctx["rows"], len(probes.inserted)))
    if nulls or wrong:
        problems.append("%d NULL and %d wrong token_checksum values (e.g. ids %s)" % (nulls, wrong, examples))
    problems.extend(schema_differences(table_schema(target), ctx["reference_schema"]))
    if kind != "dot":
        django_project.run_manage(target, "migrate", "--noinput", "--fake", APP, M0012)
    shown = django_project.showmigrations(target)
    if not shown.get(M0012):
        problems.append("%s not applied after the scenario: %s" % (M0012, shown))
    if kind == "repair":
        mr = details["module_result"]
        if mr["completed_migrations"] != [M0012]:
            problems.append("oauth_repair completed_migrations %r, expected [%r]" % (
                mr["completed_migrations"], M0012))
        left = [c for c in mr["findings_after"] if c.startswith("token_checksum")]
        if left:
            problems.append("findings left after the repair: %s" % left)
    return dict(rows=rows, null_checksums=nulls, wrong_checksums=wrong), problems


# --------------------------------------------------------------------------
# One scenario, one engine
# --------------------------------------------------------------------------


def run_scenario(kind, dbs, template, ctx):
    log("%s %s rows: %s: copying the template" % (template.engine, "{:,}".format(ctx["rows"]), kind))
    started = time.perf_counter()
    target = dbs.copy(template)
    copy_seconds = time.perf_counter() - started
    try:
        lo, hi = target.query("SELECT MIN(id), MAX(id) FROM %s" % q(target.engine, TABLE))[0]
        probes = Probes(target, (int(lo), int(hi)), ctx["application_id"], ctx["user_id"], ctx["token"],
                        ctx["rows"])
        probes.start()
        timeline = None
        error = None
        load_start = os.getloadavg()[0]
        try:
            probes.mark_start()
            t0 = time.perf_counter()
            timeline = Timeline(t0, probes.identity_now)
            details = RUNNERS[kind](target, ctx, probes, timeline)
            seconds = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - a failing scenario is reported, not fatal
            seconds = time.perf_counter() - t0
            details = {}
            error = "%s: %s" % (type(exc).__name__, exc)
            traceback.print_exc()
        finally:
            probes.stop()
        out = dict(scenario=kind, seconds=round(seconds, 3), copy_seconds=round(copy_seconds, 2),
                   load_average_1m_start=load_start, load_average_1m_end=os.getloadavg()[0], error=error)
        out.update(details)
        out["probes"] = probes.summary(seconds)
        out["statements"] = describe_statements(timeline, probes) if timeline is not None else []
        # floor and repair: DDL statements whose table identity changed; DOT (a subprocess): the sampler's count
        out["rebuilds"] = (sum(1 for st in out["statements"] if st["rebuilt_table"]) if kind != "dot"
                           else out["probes"]["rebuilds"])
        # the longest probe statement that did not overlap a table copy (MariaDB's copy blocks writes by design)
        copies = [(st["start"], st["start"] + st["seconds"]) for st in out["statements"] if st["rebuilt_table"]]
        outside = [d for k, st0, d, _e in probes.ops if k in ("read", "insert", "update") and st0 < seconds
                   and st0 + d > 0 and not any(st0 < b and st0 + d > a for a, b in copies)]
        out["max_wait_outside_copies"] = round(max(outside), 3) if outside else None
        if error:
            out["problems"] = [error]
        else:
            out["check"], out["problems"] = verify(kind, target, ctx, probes, details)
        for p in out["problems"]:
            log("%s %s: WRONG: %s" % (target.engine, kind, p))
        log("%s %s rows: %s: %.2f s; max wait reader %.3f s, writer %.3f s; %d rebuild(s)%s" % (
            target.engine, "{:,}".format(ctx["rows"]), kind, seconds, out["probes"]["reader"]["max_wait"] or 0,
            out["probes"]["writer"]["max_wait"] or 0, out["rebuilds"],
            "; PROBLEMS" if out["problems"] else ""))
        return out
    finally:
        dbs.drop(target)


def median_of(runs, key="seconds"):
    values = [r[key] for r in runs if not r.get("problems") and r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def bench_size(engine, server, n_rows, repeat, dot_repeat, scenarios, sqlmigrate_text, reference):
    out = dict(benchmark="checksum", engine=engine, rows=n_rows, repeat=repeat, dot_repeat=dot_repeat,
               started=common.now_iso(),
               server=dict(version=server.version), load_average_start=os.getloadavg())
    dbs = Databases(server)
    try:
        log("%s: template with %s access tokens at %s" % (engine, "{:,}".format(n_rows), M0011))
        template, made, setup = build_template(dbs, n_rows)
        out["setup_seconds"] = dict((k, round(v, 2)) for k, v in setup.items())
        ctx = dict(rows=n_rows, application_id=made["application_id"], user_id=made["user_id"],
                   reference_schema=reference, token=made["seeded"].token)
        # the same in-database sha256 expression as the repair's (dialects/*.py)
        expr = module_utils("dialects").get_dialect(engine, server.version).sha256_hex(q(engine, "token"))
        update = "UPDATE %s SET %s = %s" % (q(engine, TABLE), q(engine, "token_checksum"), expr)
        ctx["floor_sql"] = dot_statements(sqlmigrate_text, update)
        out["floor_sql"] = ctx["floor_sql"]
        runs = dict((k, []) for k in scenarios)
        for i in range(repeat):
            for kind in scenarios:
                if kind == "dot" and i >= dot_repeat:
                    continue
                run = run_scenario(kind, dbs, template, ctx)
                run["run"] = i + 1
                runs[kind].append(run)
        out["runs"] = runs
        out["medians"] = dict((k, median_of(v)) for k, v in runs.items())
    finally:
        dbs.close()
    out["finished"] = common.now_iso()
    out["load_average_end"] = os.getloadavg()
    out["summary"] = summarize(out)
    out["wrong"] = any(r.get("problems") for rs in out.get("runs", {}).values() for r in rs)
    return out


def summarize(out):
    m = out.get("medians") or {}
    runs = out.get("runs") or {}

    def worst(kind, role):
        waits = [r["probes"][role]["max_wait"] for r in runs.get(kind, []) if r["probes"][role]["max_wait"]]
        return max(waits) if waits else None

    s = dict(seconds=m)
    dot, floor, repair = m.get("dot"), m.get("floor"), m.get("repair")
    s["speedup_vs_dot"] = round(dot / repair, 1) if dot and repair else None
    s["ratio_to_floor"] = round(repair / floor, 2) if floor and repair else None
    s["max_wait"] = dict((k, dict(reader=worst(k, "reader"), writer=worst(k, "writer"))) for k in runs)
    rep = runs.get("repair") or []
    if rep:
        last = rep[-1]
        s["repair_plan_seconds"] = median_of(rep, "plan_seconds")
        s["repair_rebuilding_statements"] = [st for st in last["statements"] if st["rebuilt_table"]]
        outside = [r["max_wait_outside_copies"] for r in rep if r.get("max_wait_outside_copies") is not None]
        s["repair_max_wait_outside_rebuilds"] = max(outside) if outside else None
        copies = [st for r in rep for st in r["statements"] if st["rebuilt_table"]]
        s["repair_copy_writer_wait"] = max((st["writer_max_wait"] for st in copies), default=None)
        s["repair_copy_seconds"] = [st["seconds"] for st in copies]
    for kind in SCENARIOS:
        if runs.get(kind):
            s["%s_rebuilds" % kind] = runs[kind][-1]["rebuilds"]
    targets = {}
    if s["speedup_vs_dot"] is not None:
        targets["speedup_vs_dot"] = s["speedup_vs_dot"] >= SPEEDUP_TARGET
    if s["ratio_to_floor"] is not None:
        targets["ratio_to_floor"] = s["ratio_to_floor"] <= FLOOR_RATIO_TARGET
    waits = s["max_wait"].get("repair")
    if waits and waits["reader"] is not None and waits["writer"] is not None:
        targets["max_wait"] = max(waits["reader"], waits["writer"]) <= MAX_WAIT_TARGET
    s["targets_met"] = targets
    return s


def bench_engine(engine, rows_list, repeat, dot_repeat, scenarios):
    server_cm = servers.mariadb_server() if engine == "mysql" else servers.postgres_server()
    results = []
    with server_cm as server:
        log("%s: %s" % (engine, server.describe()))
        dbs = Databases(server)
        try:
            reference = reference_schema(dbs)
            probe = dbs.empty()
            django_project.migrate(probe, APP, M0011)
            sqlmigrate_text = django_project.run_manage(probe, "sqlmigrate", APP, M0012).stdout
            dbs.drop(probe)
        finally:
            dbs.close()
        for n_rows in rows_list:
            try:
                result = bench_size(engine, server, n_rows, repeat, dot_repeat, scenarios, sqlmigrate_text,
                                    reference)
            except Exception as exc:  # noqa: BLE001 - report, go on with the next size
                traceback.print_exc()
                result = dict(benchmark="checksum", engine=engine, rows=n_rows, error="%s: %s" % (
                    type(exc).__name__, exc), wrong=False)
            results.append(result)
    return results


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def fmt(v, digits=1):
    if v is None:
        return "-"
    return ("%%.%df" % digits) % v


def write_json(result):
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, "checksum-%s-%d.json" % (result["engine"], result["rows"]))
    with open(path, "w") as fh:
        json.dump(result, fh, indent=1, default=str)
    return path


def server_name(r):
    version = (r.get("server") or {}).get("version", "")
    name = "mariadb" if "mariadb" in version.lower() else ("mysql" if r["engine"] == "mysql" else "postgresql")
    return "%s %s" % (name, common.short_version(version))


def table_lines(results):
    header = ["engine", "rows", "DOT 0012 s", "floor s", "oauth_repair s", "its steps s", "DOT / repair",
              "repair / floor", "max wait DOT (read / write)", "max wait floor", "max wait repair",
              "table rebuilds DOT / floor / repair"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        if r.get("error"):
            lines.append("| %s | %s | FAILED: %s |" % (r["engine"], "{:,}".format(r["rows"]),  # noqa
                                                      common.shorten(r["error"], 150)))
            continue
        s = r["summary"]
        sec = s["seconds"]

        def waits(kind):
            w = s["max_wait"].get(kind)
            if not w:
                return "-"
            return "%s / %s" % (fmt(w["reader"], 2), fmt(w["writer"], 2))

        def mark(key):
            met = s["targets_met"].get(key)
            return "" if met is None else (" ✓" if met else " ✗")

        wrong = dict((k, " WRONG" if any(x.get("problems") for x in r["runs"].get(k, [])) else "")
                     for k in SCENARIOS)
        lines.append("| " + " | ".join([
            r["engine"] + " (" + server_name(r) + ")", "{:,}".format(r["rows"]),
            fmt(sec.get("dot")) + wrong["dot"], fmt(sec.get("floor")) + wrong["floor"],
            fmt(sec.get("repair")) + wrong["repair"], fmt(s.get("repair_plan_seconds")),
            (fmt(s["speedup_vs_dot"]) + "x" + mark("speedup_vs_dot")) if s["speedup_vs_dot"] else "-",
            (fmt(s["ratio_to_floor"], 2) + "x" + mark("ratio_to_floor")) if s["ratio_to_floor"] else "-",
            waits("dot"), waits("floor"), waits("repair") + mark("max_wait"),
            "%s / %s / %s" % (s.get("dot_rebuilds", "-"), s.get("floor_rebuilds", "-"),
                              s.get("repair_rebuilds", "-")),
        ]) + " |")
    return lines


def statement_lines(results, kind):
    """Per engine (largest size), the floor's or the repair's statements that took time."""
    lines = []
    for r in results:
        runs = (r.get("runs") or {}).get(kind)
        if not runs:
            continue
        last = runs[-1]
        lines.append("- %s, %s rows:" % (r["engine"], "{:,}".format(r["rows"])))
        for st in last["statements"]:
            what = st["sql"] if st["count"] == 1 else "%s (x%d, longest %.2f s)" % (
                st["sql"], st["count"], st["longest"])
            lines.append("  - %s s%s, waits read %s / write %s s: `` %s ``" % (
                fmt(st["seconds"], 2), ", **rebuilt the table**" if st["rebuilt_table"] else "",
                fmt(st["reader_max_wait"], 2), fmt(st["writer_max_wait"], 2), common.shorten(what, 170)))
    return lines


def print_results(results, facts):
    print()
    print("token_checksum (DOT 0012) on access tokens, %s cores, %s" % (facts["cores"], datetime.date.today()))
    print()
    for line in table_lines(results):
        print(line)
    for kind in ("floor", "repair"):
        lines = statement_lines(results, kind)
        if lines:
            print()
            print("%s statements:" % LABELS[kind])
            for line in lines:
                print(line)
    problems = ["%s %s %s run %d: %s" % (r["engine"], r["rows"], k, x["run"], p)
                for r in results for k, rs in (r.get("runs") or {}).items() for x in rs for p in x["problems"]]
    if problems:
        print()
        print("WRONG:")
        for p in problems:
            print("  " + p)


def docs_section(results, facts, args):
    load = ", ".join("%s %s rows %.1f-%.1f" % (r["engine"], "{:,}".format(r["rows"]), r["load_average_start"][0],
                                               r["load_average_end"][0])
                     for r in results if r.get("load_average_end"))
    sizes = sorted(set(r["rows"] for r in results))
    largest = [r for r in results if r["rows"] == sizes[-1]]
    rows_arg = ",".join(str(n) for n in args.rows)
    lines = [
        DOCS_BEGIN,
        "## token_checksum (DOT migration 0012) on %s access tokens" % " and ".join(
            "{:,}".format(n) for n in sizes),
        "",
        "Written by `.venv/bin/python bench/bench_checksum.py --rows %s --engines %s --repeat %d%s --write-docs` "
        "on %s. Targets (issue 3): `oauth_repair` at least %gx faster than DOT's own "
        "`migrate oauth2_provider 0012`, at most %gx the set-based floor, and no concurrent read or write "
        "waiting more than %g s." % (
            rows_arg, ",".join(args.engines), args.repeat,
            " --dot-repeat %d" % args.dot_repeat if args.dot_repeat else "",
            datetime.date.today().isoformat(), SPEEDUP_TARGET, FLOOR_RATIO_TARGET, MAX_WAIT_TARGET),
        "",
        "Machine: %s cores (%s), %s GiB RAM, **shared with other work while this ran** (load average, 1 min, "
        "at the start and end of each size: %s), so absolute times are noisy and the ratios, measured in the "
        "same run, are what to compare; %s; Python %s, %s. Servers: %s, default configuration (MariaDB: "
        "128 MiB buffer pool, `innodb_flush_log_at_trx_commit=1`; PostgreSQL: 128 MB shared_buffers, "
        "`fsync=on`)." % (
            facts["cores"], facts["cpu"], facts["memory_gib"], load, facts["platform"], facts["python"],
            ", ".join("%s %s" % kv for kv in sorted(facts["packages"].items())),
            "; ".join(sorted(set(server_name(r) for r in results if r.get("server"))))),
        "",
        "Each scenario runs on its own copy of a database migrated by the real Django project to `%s` and "
        "filled with the tokens (the copying is not timed): **DOT 0012** is django-oauth-toolkit's own "
        "`manage.py migrate oauth2_provider 0012` (a Python loop and `bulk_update` of 1,000 rows); the "
        "**floor** is the DDL of DOT's 0012 (from `sqlmigrate`; one transaction on PostgreSQL, as Django runs "
        "it) with the Python loop replaced by one `UPDATE ... SET token_checksum = sha256(token)`; "
        "**oauth_repair** is the module with its default options, diagnosis before and after included "
        "(*its steps s*: the part spent in its plan, the steps and their live-catalog checks). Times are the "
        "median of %d run(s) per scenario (DOT's: %d); the ratios compare medians of the same run. Every result "
        "is checked: all checksums equal Python's `hashlib.sha256`, the table's schema (names included) equals "
        "the one DOT's own migrations build, and `manage.py migrate oauth2_provider 0012 --fake` completes."
        % (M0011, args.repeat, args.dot_repeat or args.repeat),
        "",
        "*Max wait*: the longest single statement of a concurrent reader (`SELECT` of a random token row by "
        "primary key) and writer (`INSERT` of a new token with its checksum, `UPDATE` of a random row), "
        "each looping on its own connection during the whole scenario. *Table rebuilds*: how many times the "
        "table got a new identity (InnoDB table id, PostgreSQL relfilenode), i.e. was copied.",
        "",
    ]
    lines.extend(table_lines(results))
    lines.append("")
    lines.extend(findings_text(results))
    lines.append("The statements that took time at %s rows, in the last run of each (*rebuilt the table* = a "
                 "copy; the backfill's batches are one line; *waits*: the longest probe statement during it):"
                 % "{:,}".format(sizes[-1]))
    lines.append("")
    for kind in ("floor", "repair"):
        lines.append("%s:" % LABELS[kind])
        lines.append("")
        lines.extend(statement_lines(largest, kind))
        lines.append("")
    failures = ["- %s %s rows %s: %s" % (r["engine"], "{:,}".format(r["rows"]), k, common.shorten(p, 300))
                for r in results for k, rs in (r.get("runs") or {}).items() for x in rs for p in x["problems"]]
    failures += ["- %s %s rows: %s" % (r["engine"], "{:,}".format(r["rows"]), r["error"])
                 for r in results if r.get("error")]
    if failures:
        lines.append("Failures:")
        lines.append("")
        lines.extend(failures)
        lines.append("")
    lines.append("Raw numbers: `bench/results/checksum-<engine>-<rows>.json` (not committed).")
    lines.append(DOCS_END)
    return "\n".join(lines) + "\n"


def _range(values, digits=1, suffix=""):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    if fmt(lo, digits) == fmt(hi, digits):
        return fmt(lo, digits) + suffix
    return "%s-%s%s" % (fmt(lo, digits), fmt(hi, digits), suffix)


def findings_text(results):
    """What the table shows, engine by engine, and every target missed with its reason."""
    ok = [r for r in results if not r.get("error") and r.get("summary")]
    by_engine = dict((e, [r for r in ok if r["engine"] == e]) for e in ENGINES)
    lines = []
    my, pg = by_engine["mysql"], by_engine["postgresql"]

    def wait(r, kind, role):
        return (r["summary"]["max_wait"].get(kind) or {}).get(role)

    def ratio_dot_floor(r):
        sec = r["summary"]["seconds"]
        return sec["dot"] / sec["floor"] if sec.get("dot") and sec.get("floor") else None

    if pg:
        lines.append(
            "- **PostgreSQL.** DOT's migration and the floor run in one transaction that holds `ACCESS EXCLUSIVE` "
            "on the table from its first `ALTER`: every read and write of the table waited for the whole run "
            "(max wait %s s for DOT, %s s for the floor). `oauth_repair` rewrites nothing (`ADD COLUMN` and "
            "varchar -> text are catalog changes), backfills in batches of 10,000 rows (row locks of one batch), "
            "checks for duplicates by building the unique index with `CREATE UNIQUE INDEX CONCURRENTLY` (no "
            "`GROUP BY` over the table), makes the column NOT NULL through a `NOT VALID` CHECK validated online, "
            "and builds the `_like` index concurrently: max wait %s s (reader) / %s s (writer)." % (
                _range([wait(r, "dot", "reader") for r in pg]), _range([wait(r, "floor", "reader") for r in pg]),
                _range([wait(r, "repair", "reader") for r in pg], 2),
                _range([wait(r, "repair", "writer") for r in pg], 2)))
    if my:
        copy_stall = "; ".join("up to %s s at %s rows (the copy took %s s)" % (
            fmt(r["summary"].get("repair_copy_writer_wait"), 2), "{:,}".format(r["rows"]),
            _range(r["summary"].get("repair_copy_seconds") or [], 1)) for r in my)
        outside = [r["summary"].get("repair_max_wait_outside_rebuilds") for r in my]
        lines.append(
            "- **MariaDB.** `token` varchar -> longtext can only be done by copying the table, and MariaDB 10.11 "
            "copies with `LOCK=SHARED`: reads go on, **writes wait for the whole copy**. DOT's DDL rebuilds the "
            "table twice (`MODIFY token longtext`, a copy; `MODIFY token_checksum ... NOT NULL`, a rebuild); "
            "`oauth_repair` once: its first `ALTER` adds the column `NOT NULL DEFAULT ''` together with the "
            "token change, on the table still without checksums (the smallest it will be), so that NOT NULL "
            "and the unique index at the end are metadata plus an online index build (`ALGORITHM=INPLACE, "
            "LOCK=NONE`, no rebuild). The writer waited during that copy: %s. Outside it, no reader or writer "
            "waited more than %s s in any run. DOT's own migration also "
            "locks every row it updates until its end (Django runs `RunPython` in one transaction on a backend "
            "without transactional DDL): a writer updating an existing token waited up to %s s." % (
                copy_stall, _range(outside, 2), _range([wait(r, "dot", "writer") for r in my])))
    for r in ok:
        s = r["summary"]
        missed = [k for k, met in s["targets_met"].items() if not met]
        if not missed:
            continue
        parts = []
        if "speedup_vs_dot" in missed:
            parts.append("%.1fx faster than DOT, not %gx (the set-based floor itself is only %.1fx faster than "
                         "DOT here, and the repair takes %sx the floor)" % (
                             s["speedup_vs_dot"], SPEEDUP_TARGET, ratio_dot_floor(r) or float("nan"),
                             fmt(s["ratio_to_floor"], 2)))
        if "ratio_to_floor" in missed:
            parts.append("%.2fx the floor, not %gx" % (s["ratio_to_floor"], FLOOR_RATIO_TARGET))
        if "max_wait" in missed:
            w = s["max_wait"]["repair"]
            if r["engine"] == "mysql" and s.get("repair_rebuilding_statements"):
                parts.append("max wait %.2f s (writer), not %g s: MariaDB 10.11 cannot change the column type "
                             "without blocking writes (MariaDB 11.2+ could copy with `LOCK=NONE`; not used "
                             "here); outside the copy %s s"
                             % (w["writer"], MAX_WAIT_TARGET, fmt(s.get("repair_max_wait_outside_rebuilds"), 2)))
            else:
                parts.append("max wait %.2f s (reader) / %.2f s (writer), not %g s" % (
                    w["reader"], w["writer"], MAX_WAIT_TARGET))
        lines.append("- Target missed on %s, %s rows: %s." % (
            r["engine"], "{:,}".format(r["rows"]), "; ".join(parts)))
    if lines:
        lines.append("")
    return lines


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rows", default=None,
                        help="comma-separated access token counts (default %s)" % ",".join(map(str, DEFAULT_ROWS)))
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated, among %s (default: both)" % ", ".join(ENGINES))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated, among %s (default: all; ratios need all three)" % ", ".join(SCENARIOS))
    parser.add_argument("--repeat", type=int, default=1, help="runs of each scenario (median; default 1)")
    parser.add_argument("--dot-repeat", type=int, default=None,
                        help="runs of DOT's migration, the long one (default: --repeat)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: %s rows unless --rows is given" % ",".join(map(str, QUICK_ROWS)))
    parser.add_argument("--write-docs", action="store_true", help="rewrite the checksum section of docs/performance.md")
    parser.add_argument("--docs-from-results", action="store_true",
                        help="run nothing: rewrite the docs section from bench/results/checksum-*.json of the "
                             "given --rows/--engines (same options as the run that wrote them)")
    args = parser.parse_args(argv)
    if args.rows:
        try:
            args.rows = [int(x.replace("_", "")) for x in args.rows.split(",") if x.strip()]
        except ValueError:
            parser.error("--rows takes comma-separated integers")
    else:
        args.rows = list(QUICK_ROWS if args.quick else DEFAULT_ROWS)
    if not args.rows or min(args.rows) < 1000:
        parser.error("--rows must be at least 1000")
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown or not args.engines:
        parser.error("unknown engine(s) %s; choose among %s" % (unknown, ", ".join(ENGINES)))
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not args.scenarios or [s for s in args.scenarios if s not in SCENARIOS]:
        parser.error("--scenarios: choose among %s" % ", ".join(SCENARIOS))
    args.scenarios = [s for s in SCENARIOS if s in args.scenarios]
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.dot_repeat is not None and not 1 <= args.dot_repeat <= args.repeat:
        parser.error("--dot-repeat must be between 1 and --repeat")
    return args


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    signal.signal(signal.SIGTERM, _terminate)
    facts = common.machine_facts()
    if args.docs_from_results:
        results = []
        for engine in args.engines:
            for n in args.rows:
                with open(os.path.join(RESULTS_DIR, "checksum-%s-%d.json" % (engine, n))) as fh:
                    result = json.load(fh)
                if result.get("runs"):
                    result["summary"] = summarize(result)
                results.append(result)
        print_results(results, results[0].get("machine") or facts)
        section = docs_section(results, results[0].get("machine") or facts, args)
        log("wrote %s" % os.path.relpath(common.write_docs(section, DOCS_BEGIN, DOCS_END), ROOT))
        return 0
    results = []
    for engine in args.engines:
        try:
            engine_results = bench_engine(engine, args.rows, args.repeat, args.dot_repeat or args.repeat,
                                          args.scenarios)
        except Exception as exc:  # noqa: BLE001 - report, go on with the next engine
            traceback.print_exc()
            engine_results = [dict(benchmark="checksum", engine=engine, rows=n, wrong=False,
                                   error="%s: %s" % (type(exc).__name__, exc)) for n in args.rows]
        for result in engine_results:
            result["machine"] = facts
            log("%s %s rows: results in %s" % (engine, "{:,}".format(result["rows"]),
                                               os.path.relpath(write_json(result), ROOT)))
        results.extend(engine_results)
    print_results(results, facts)
    wrong = [r for r in results if r.get("wrong")]
    errors = [r for r in results if r.get("error")]
    if args.write_docs:
        if wrong or errors or args.scenarios != list(SCENARIOS):
            log("not writing docs: a result was wrong, a size could not run, or scenarios were left out")
        else:
            section = docs_section(results, facts, args)
            log("wrote %s" % os.path.relpath(common.write_docs(section, DOCS_BEGIN, DOCS_END), ROOT))
    if wrong or errors:
        print("\nFAILED: a scenario gave a wrong result or could not run (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
