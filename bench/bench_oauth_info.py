"""Benchmark: ``oauth_info`` on a Django database holding many access tokens.

Run from the repository root with the project's virtualenv::

    .venv/bin/python bench/bench_oauth_info.py [--rows 1000000]
        [--engines mysql,postgresql,sqlite] [--repeat 3] [--write-docs]

For each engine it

1. creates a uniquely named scratch database (``oar_t_<hex>``, through
   tests/support/servers.py; dropped at the end, also on error or Ctrl-C);
2. migrates it with the real django-oauth-toolkit migrations through the Django
   test project (tests/django_project), and creates a user and an application
   through DOT's models;
3. bulk-inserts ``--rows`` access tokens with correct ``token_checksum`` values
   (set-based ``INSERT ... SELECT``, tests/support/data.py), then ANALYZEs;
4. **healthy**: times ``oauth_info`` run in-process (``run_module``) and one
   plain ``SELECT COUNT(*)`` of the token table, each ``--repeat`` times;
5. **broken**: drops the unique index on ``token_checksum``, makes the column
   nullable and breaks ~0.05 % of the rows (``''``, NULL, a wrong checksum, a
   checksum duplicated from the neighbouring row), ANALYZEs, and times the
   diagnosis again, so that the checks that scan the table all run;
6. checks the findings of both runs and fails loudly (exit status 1) when the
   diagnosis is wrong;
7. runs the diagnosis once more with every statement timed (and the slow ones
   EXPLAINed), for the profile in the JSON results.

It prints a table, writes ``bench/results/oauth_info-<engine>.json`` and, with
``--write-docs``, rewrites its own section of docs/performance.md.

It is a benchmark, not a test: missing the 10 s target is reported, not an
error. A wrong diagnosis is an error.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.support import data, servers  # noqa: E402
from tests.support import django as django_project  # noqa: E402
from tests.support.modules import module_utils, run_module  # noqa: E402

TABLE = data.ACCESS_TOKEN_TABLE
ENGINES = ("mysql", "postgresql", "sqlite")
TARGET_SECONDS = 10.0
RESULTS_DIR = os.path.join(ROOT, "bench", "results")
DOCS_FILE = os.path.join(ROOT, "docs", "performance.md")
DOCS_BEGIN = "<!-- bench:oauth_info -->"
DOCS_END = "<!-- /bench:oauth_info -->"
DOCS_INTRO = """# Performance

How long the collection's modules take on big databases. Every section below is
written by a benchmark under `bench/` (see `bench/README.md` for how to run them and
what they measure) between its `<!-- bench:... -->` markers; edit the text outside the
markers only, the benchmark rewrites what is inside.
"""

#: oauth_info's defaults (plugins/module_utils/module_support.py), to predict its choices.
EXACT_COUNT_LIMIT = 2000000
CHECKSUM_FULL_CHECK_LIMIT = 250000

#: Share of the rows the broken scenario breaks, and the kinds of breakage, in turn.
BROKEN_SHARE = 0.0005
MIN_BROKEN_ROWS = 12
BREAKAGE_CYCLE = ("wrong", "empty", "wrong", "null", "wrong", "duplicate")

#: Statements of the profiled run slower than this are EXPLAINed (the 3 slowest always are).
EXPLAIN_THRESHOLD = 0.25


class BenchFailure(AssertionError):
    """The diagnosis is wrong, or the benchmark could not set up its database."""


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Scratch databases
# --------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(engine, workdir):
    """A fresh, uniquely named database on ``engine``, dropped (or deleted) afterwards."""
    if engine == "sqlite":
        with servers.temporary_sqlite(workdir) as target:
            yield target
        return
    server_cm = servers.mariadb_server() if engine == "mysql" else servers.postgres_server()
    with server_cm as server:
        log("%s: %s" % (engine, server.describe()))
        with servers.temporary_database(server) as target:
            log("%s: scratch database %s" % (engine, target.name))
            yield target
        log("%s: dropped %s" % (engine, target.name))


def analyze(target):
    """Fresh planner statistics for every table (PostgreSQL: VACUUM too, see below)."""
    if target.engine == "mysql":
        tables = ", ".join("`%s`" % t for t in target.tables())
        target.query("ANALYZE TABLE %s" % tables)
    elif target.engine == "postgresql":
        # VACUUM as well: a freshly bulk-loaded table has no visibility map, so
        # autovacuum would start on it in the middle of the timed runs. A table in
        # production has been vacuumed; VACUUM ANALYZE puts the scratch one in that state.
        target.execute("VACUUM ANALYZE")
    else:
        target.execute("ANALYZE")


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def count_star_seconds(target):
    """Seconds of one plain ``SELECT COUNT(*)`` of the token table (connection excluded)."""
    with contextlib.closing(target.connect()) as conn:
        cur = conn.cursor()
        start = time.perf_counter()
        cur.execute('SELECT COUNT(*) FROM %s' % data.quote(target, TABLE))
        count = cur.fetchone()[0]
        seconds = time.perf_counter() - start
        cur.close()
    return count, seconds


@contextlib.contextmanager
def transaction(conn, engine):
    """One transaction on a raw autocommit connection of any of the three drivers."""
    if engine == "postgresql":
        with conn.transaction():
            yield
        return
    if engine == "mysql":
        conn.begin()
    else:
        conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        conn.rollback() if engine == "mysql" else conn.execute("ROLLBACK")
        raise
    conn.commit() if engine == "mysql" else conn.execute("COMMIT")


# --------------------------------------------------------------------------
# Breaking the table
# --------------------------------------------------------------------------


def drop_checksum_unique(target):
    """Drop the unique index on token_checksum and make the column nullable, as an
    interrupted DOT 0012 leaves it. Returns the names of what was dropped."""
    engine, table = target.engine, TABLE
    if engine == "mysql":
        names = [r[0] for r in target.query(
            "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY' GROUP BY INDEX_NAME "
            "HAVING GROUP_CONCAT(COLUMN_NAME) = 'token_checksum'", (table,))]
        if not names:
            raise BenchFailure("no unique index on %s.token_checksum to drop" % table)
        drops = ", ".join("DROP INDEX `%s`" % n for n in names)
        target.execute("ALTER TABLE `%s` %s, MODIFY `token_checksum` varchar(64) NULL" % (table, drops))
        return names
    if engine == "postgresql":
        attnum = target.query(
            "SELECT attnum FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'token_checksum'",
            (table,))[0][0]
        constraints = [r[0] for r in target.query(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u' "
            "AND conkey = ARRAY[%s]::int2[]", (table, attnum))]
        indexes = [r[0] for r in target.query(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary "
            "AND i.indkey::int2[] = ARRAY[%s]::int2[] "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
            (table, attnum))]
        if not constraints and not indexes:
            raise BenchFailure("no unique index on %s.token_checksum to drop" % table)
        actions = ["DROP CONSTRAINT \"%s\"" % n for n in constraints]
        actions.append("ALTER COLUMN token_checksum DROP NOT NULL")
        target.execute('ALTER TABLE "%s" %s' % (table, ", ".join(actions)))
        for name in indexes:
            target.execute('DROP INDEX "%s"' % name)
        return constraints + indexes
    # SQLite: Django declares the column inline ("token_checksum" varchar(64) NOT NULL
    # UNIQUE), an automatic index no DROP INDEX can remove. Rebuild the table without
    # it, the way Django's schema editor alters SQLite tables.
    with contextlib.closing(target.connect()) as conn:
        create = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (table,)).fetchone()[0]
        new_sql, n = re.subn(r'("token_checksum"\s+varchar\(\d+\))\s+NOT NULL\s+UNIQUE', r"\1 NULL", create)
        if n != 1:
            raise BenchFailure("cannot find the inline UNIQUE of token_checksum in %r" % create)
        tmp = table + "__oar_bench"
        new_sql = new_sql.replace('CREATE TABLE "%s"' % table, 'CREATE TABLE "%s"' % tmp, 1)
        indexes = [r[0] for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            (table,))]
        conn.execute("PRAGMA foreign_keys = OFF")
        with transaction(conn, "sqlite"):
            conn.execute(new_sql)
            conn.execute('INSERT INTO "%s" SELECT * FROM "%s"' % (tmp, table))
            conn.execute('DROP TABLE "%s"' % table)
            conn.execute('ALTER TABLE "%s" RENAME TO "%s"' % (tmp, table))
            for sql in indexes:
                conn.execute(sql)
    return ["inline UNIQUE (sqlite_autoindex)"]


def break_rows(target, n_rows):
    """Break ~0.05 % of the rows, spread evenly over the table; return what to expect.

    Every ``step``-th row is broken, the kind cycling through BREAKAGE_CYCLE: a wrong
    checksum (the sha256 of something else), '', NULL, or the checksum of the
    previous (healthy) row, which is both a duplicate and a mismatch.
    """
    k = max(MIN_BROKEN_ROWS, int(round(n_rows * BROKEN_SHARE)))
    step = n_rows // k
    if step < 2:
        raise BenchFailure("--rows %d is too small to break %d rows apart from each other" % (n_rows, k))
    q = data.quote(target, TABLE)
    ph = target.placeholder
    with contextlib.closing(target.connect()) as conn:
        cur = conn.cursor()
        # By rank, not by id: ids have gaps (InnoDB reserves auto-increment values
        # for INSERT ... SELECT in growing blocks and drops what a statement leaves).
        cur.execute("SELECT id FROM %s ORDER BY id" % q)
        ids = [r[0] for r in cur.fetchall()]
        if len(ids) != n_rows:
            raise BenchFailure("%s holds %d rows, expected %d" % (TABLE, len(ids), n_rows))
        slots = []  # (kind, row id, id of the previous row)
        for i in range(k):
            rank = i * step + step // 2
            slots.append((BREAKAGE_CYCLE[i % len(BREAKAGE_CYCLE)], ids[rank], ids[rank - 1]))
        del ids
        wanted = sorted(set(prev for kind, _row, prev in slots if kind == "duplicate"))
        tokens = {}
        for first in range(0, len(wanted), 500):
            chunk = wanted[first:first + 500]
            cur.execute("SELECT id, token FROM %s WHERE id IN (%s)" % (q, ", ".join([ph] * len(chunk))),
                        tuple(chunk))
            tokens.update(cur.fetchall())
        cur.close()
        kinds, updates = {}, []
        for kind, row_id, prev_id in slots:
            if kind == "wrong":
                value = hashlib.sha256(("oar-bench-wrong:%d" % row_id).encode()).hexdigest()
            elif kind == "empty":
                value = ""
            elif kind == "null":
                value = None
            else:
                value = data.checksum(tokens[prev_id])
            kinds.setdefault(kind, []).append(row_id)
            updates.append((value, row_id))
        with transaction(conn, target.engine):
            cur = conn.cursor()
            cur.executemany("UPDATE %s SET token_checksum = %s WHERE id = %s" % (q, ph, ph), updates)
            cur.close()
    counts = dict((kind, len(ids)) for kind, ids in kinds.items())
    return dict(rows=k, share=k / n_rows, step=step, counts=counts,
                example_ids=dict((kind, ids[:3]) for kind, ids in kinds.items()))


# --------------------------------------------------------------------------
# Running and checking the diagnosis
# --------------------------------------------------------------------------


def diagnose(target):
    """One in-process oauth_info run: (result, wall seconds)."""
    result, seconds = timed(run_module, "oauth_info", target.params)
    if result.get("failed"):
        raise BenchFailure("oauth_info failed on %s: %s" % (target.engine, result.get("msg")))
    return result, seconds


def findings_by_code(result):
    out = {}
    for f in result["findings"]:
        out.setdefault(f["code"], []).append(f)
    return out


def check(condition, message, problems):
    if not condition:
        problems.append(message)


def check_common(result, n_rows, problems):
    table = result["tables"].get(TABLE)
    check(table is not None, "%s missing from tables" % TABLE, problems)
    if table is None:
        return
    if table["rows_exact"]:
        check(table["rows"] == n_rows, "rows %r reported exact, expected %d" % (table["rows"], n_rows), problems)
    else:
        check(n_rows * 0.5 <= (table["rows"] or 0) <= n_rows * 1.5,
              "estimated rows %r far from %d" % (table["rows"], n_rows), problems)
    if n_rows <= EXACT_COUNT_LIMIT:
        check(table["rows_exact"], "rows should be exact under exact_count_limit", problems)
    cc = result["checksum_checks"].get(TABLE)
    check(cc is not None, "no checksum check of %s" % TABLE, problems)
    if cc is not None:
        expected_method = "full" if n_rows <= CHECKSUM_FULL_CHECK_LIMIT else "sample"
        check(cc["method"] == expected_method,
              "checksum check method %r, expected %r" % (cc["method"], expected_method), problems)


def check_healthy(result, n_rows):
    problems = []
    check_common(result, n_rows, problems)
    codes = findings_by_code(result)
    check(result["summary"]["healthy"], "healthy database reported unhealthy: %s" % sorted(codes), problems)
    bad = [c for c in codes if c.startswith("token_checksum") or c.startswith("migration_half")]
    check(not bad, "healthy database has findings %s" % bad, problems)
    check(not result["migrations"]["oauth2_provider"]["pending"],
          "migrations pending: %s" % result["migrations"]["oauth2_provider"]["pending"], problems)
    cc = result["checksum_checks"].get(TABLE) or {}
    check(cc.get("mismatches") == 0, "checksum mismatches on a healthy table: %r" % cc, problems)
    if cc.get("method") == "full":
        check(cc.get("rows_checked") == n_rows, "full check of %r rows, expected %d" % (cc, n_rows), problems)
    elif cc:
        check(cc.get("rows_checked", 0) > 0, "sample check of no rows: %r" % cc, problems)
    return problems


def check_broken(result, n_rows, broken):
    problems = []
    check_common(result, n_rows, problems)
    counts = broken["counts"]
    codes = findings_by_code(result)
    expected = {"token_checksum_empty", "token_checksum_null", "token_checksum_duplicate",
                "token_checksum_mismatch", "token_checksum_unique_missing", "migration_half_applied"}
    missing = expected - set(codes)
    check(not missing, "broken database: findings %s not reported (got %s)" % (sorted(missing), sorted(codes)),
          problems)
    unexpected = [c for c, fs in codes.items()
                  if c not in expected and any(f["severity"] in ("fatal", "error") for f in fs)]
    check(not unexpected, "broken database: unexpected fatal/error findings %s" % unexpected, problems)
    check(not result["summary"]["healthy"], "broken database reported healthy", problems)

    def detail(code, key):
        fs = codes.get(code) or [{}]
        return fs[0].get("details", {}).get(key)

    check(detail("token_checksum_empty", "rows") == counts["empty"],
          "token_checksum_empty rows %r, expected %d" % (detail("token_checksum_empty", "rows"), counts["empty"]),
          problems)
    check(detail("token_checksum_null", "rows") == counts["null"],
          "token_checksum_null rows %r, expected %d" % (detail("token_checksum_null", "rows"), counts["null"]),
          problems)
    check(detail("token_checksum_duplicate", "groups") == counts["duplicate"],
          "token_checksum_duplicate groups %r, expected %d" % (
              detail("token_checksum_duplicate", "groups"), counts["duplicate"]), problems)
    unique = codes.get("token_checksum_unique_missing") or [{}]
    check(unique[0].get("severity") == "fatal",
          "token_checksum_unique_missing should be fatal (0012 is recorded): %r" % unique[0].get("severity"),
          problems)
    half = [f for f in codes.get("migration_half_applied", [])
            if f["details"].get("migration") == "0012_add_token_checksum"]
    check(bool(half), "migration_half_applied does not name 0012_add_token_checksum", problems)
    mismatching = counts["wrong"] + counts["duplicate"]
    cc = result["checksum_checks"].get(TABLE) or {}
    if cc.get("method") == "full":
        check(cc.get("mismatches") == mismatching,
              "full checksum check found %r mismatches, expected %d" % (cc.get("mismatches"), mismatching),
              problems)
    elif cc:
        # The sample reads runs of consecutive rows; one row in every `step` is
        # broken and 2 in 3 broken rows mismatch, so a sample of thousands of rows
        # misses them all only with negligible probability (< 1e-4 at 1M rows).
        check(1 <= (cc.get("mismatches") or 0) <= min(mismatching, cc.get("rows_checked", 0)),
              "sample checksum check found %r mismatches in %r rows; %d of %d rows mismatch" % (
                  cc.get("mismatches"), cc.get("rows_checked"), mismatching, n_rows), problems)
    return problems


# --------------------------------------------------------------------------
# Profiling
# --------------------------------------------------------------------------


@contextlib.contextmanager
def statement_log():
    """Time every statement the collection's Connection runs (in this process)."""
    conn_mod = module_utils("connection")
    original = conn_mod.Connection.query
    entries = []

    def query(self, sql, params=()):
        start = time.perf_counter()
        rows = original(self, sql, params)
        entries.append(dict(sql=sql, params=list(params), seconds=time.perf_counter() - start, rows=len(rows)))
        return rows

    conn_mod.Connection.query = query
    try:
        yield entries
    finally:
        conn_mod.Connection.query = original


def explain(target, sql, params):
    """The plan of one statement as the collection runs it (PostgreSQL: with actual times)."""
    conn_mod = module_utils("connection")
    conn = conn_mod.connect(target.params)
    try:
        if target.engine == "postgresql":
            prefix = "EXPLAIN (ANALYZE, BUFFERS) "
        elif target.engine == "mysql":
            prefix = "EXPLAIN "
        else:
            prefix = "EXPLAIN QUERY PLAN "
        rows = conn.query(prefix + sql, params)
    finally:
        conn.close()
    if target.engine == "postgresql":
        return [r[0] for r in rows]
    if target.engine == "sqlite":
        return [r[-1] for r in rows]
    return [" | ".join("" if v is None else str(v) for v in r) for r in rows]


def profile(target):
    """One more diagnosis with every statement timed; the slow ones explained."""
    with statement_log() as entries:
        result, seconds = diagnose(target)
    total = sum(e["seconds"] for e in entries)
    slowest = sorted(entries, key=lambda e: -e["seconds"])
    for rank, entry in enumerate(slowest):
        if rank < 3 or entry["seconds"] >= EXPLAIN_THRESHOLD:
            try:
                entry["plan"] = explain(target, entry["sql"], entry["params"])
            except Exception as exc:  # noqa: BLE001 - a plan is a bonus
                entry["plan"] = ["(EXPLAIN failed: %s)" % exc]
    for entry in entries:
        entry["seconds"] = round(entry["seconds"], 4)
    return dict(
        wall_seconds=round(seconds, 3),
        statements=len(entries),
        statement_seconds=round(total, 3),
        outside_statements_seconds=round(seconds - total, 3),
        slowest=[dict(e) for e in slowest[:10]],
        module_duration=result["duration"],
    )


# --------------------------------------------------------------------------
# One engine
# --------------------------------------------------------------------------


def summarize_runs(runs, counts):
    walls = [run[0] for run in runs]
    count_times = list(counts)
    median = statistics.median(walls)
    count_median = statistics.median(count_times)
    last = runs[-1][1]
    table = last["tables"][TABLE]
    cc = last["checksum_checks"].get(TABLE, {})
    return dict(
        wall_seconds=[round(w, 4) for w in walls],
        wall_median=round(median, 4),
        wall_min=round(min(walls), 4),
        wall_max=round(max(walls), 4),
        module_duration=[run[1]["duration"] for run in runs],
        count_star_seconds=[round(s, 4) for s in count_times],
        count_star_median=round(count_median, 4),
        ratio_to_count_star=round(median / count_median, 1) if count_median > 0 else None,
        rows=table["rows"],
        rows_exact=table["rows_exact"],
        checksum_method=cc.get("method"),
        checksum_rows_checked=cc.get("rows_checked"),
        checksum_mismatches=cc.get("mismatches"),
        findings=[dict(code=f["code"], severity=f["severity"], message=f["message"]) for f in last["findings"]],
        healthy=last["summary"]["healthy"],
        under_target=median < TARGET_SECONDS,
    )


def measure(target, n_rows, repeat, label):
    runs, counts = [], []
    for i in range(repeat):
        result, seconds = diagnose(target)
        _count, count_seconds = count_star_seconds(target)
        runs.append((seconds, result))
        counts.append(count_seconds)
        log("%s %s: run %d/%d oauth_info %.3f s (module says %.3f s), COUNT(*) %.3f s" % (
            target.engine, label, i + 1, repeat, seconds, result["duration"], count_seconds))
    return runs, counts


def bench_engine(engine, n_rows, repeat, workdir, do_profile=True):
    out = dict(benchmark="oauth_info", engine=engine, rows_requested=n_rows, repeat=repeat,
               target_seconds=TARGET_SECONDS, started=now_iso(), load_average_start=os.getloadavg())
    with scratch_database(engine, workdir) as target:
        out["database"] = os.path.basename(target.name)
        setup = out["setup_seconds"] = {}
        log("%s: migrating with the real DOT migrations" % engine)
        setup["migrate"] = timed(django_project.migrate, target)[1]
        made, setup["user_and_application"] = timed(
            django_project.issue_tokens, target, 0, "--no-refresh", "--username", "oar-bench")
        log("%s: inserting %d access tokens" % (engine, n_rows))
        setup["insert_tokens"] = timed(data.bulk_insert_access_tokens, target, n_rows,
                                       made["application_id"], made["user_id"], True)[1]
        setup["analyze"] = timed(analyze, target)[1]
        log("%s: seeded in %.1f s" % (engine, setup["insert_tokens"]))

        out["healthy"] = scenario(target, n_rows, repeat, "healthy", check_healthy, do_profile)

        log("%s: breaking ~%.2f%% of the rows, dropping the unique index" % (engine, BROKEN_SHARE * 100))
        dropped, setup["drop_unique"] = timed(drop_checksum_unique, target)
        broken, setup["break_rows"] = timed(break_rows, target, n_rows)
        broken["dropped"] = dropped
        setup["analyze_broken"] = timed(analyze, target)[1]
        out["broken"] = scenario(target, n_rows, repeat, "broken",
                                 lambda result, rows: check_broken(result, rows, broken), do_profile)
        out["broken"]["breakage"] = broken
        out["server"] = out["healthy"].get("server") or out["broken"].get("server")
        for key in setup:
            setup[key] = round(setup[key], 3)
    out["finished"] = now_iso()
    out["load_average_end"] = os.getloadavg()
    out["wrong"] = bool(out["healthy"]["problems"] or out["broken"]["problems"])
    out["ok"] = not (out["wrong"] or out["healthy"].get("error") or out["broken"].get("error"))
    return out


def scenario(target, n_rows, repeat, label, checker, do_profile):
    """Timed runs, checks and profile of one scenario; a failing oauth_info is a problem, not a crash."""
    try:
        runs, counts = measure(target, n_rows, repeat, label)
    except BenchFailure as exc:
        log("%s %s: %s" % (target.engine, label, exc))
        return dict(error=str(exc), problems=[])
    out = summarize_runs(runs, counts)
    out["server"] = runs[-1][1]["server"]
    out["problems"] = checker(runs[-1][1], n_rows)
    for problem in out["problems"]:
        log("%s %s: WRONG: %s" % (target.engine, label, problem))
    if do_profile:
        try:
            out["profile"] = profile(target)
        except BenchFailure as exc:
            out["error"] = "profiled run: %s" % exc
    return out


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def machine_facts():
    cpu = None
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    versions = {}
    for dist in ("Django", "django-oauth-toolkit", "ansible-core", "PyMySQL", "psycopg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return dict(cores=os.cpu_count(), cpu=cpu, memory_gib=mem_gib, platform=platform.platform(),
                python=platform.python_version(), packages=versions)


def short_version(text):
    """'10.11.19-MariaDB-0+deb12u1' -> '10.11.19'; '15.20 (Debian ...)' -> '15.20'."""
    m = re.match(r"\d+(\.\d+)*", text or "")
    return m.group(0) if m else text


def fmt_s(seconds):
    return "%.2f" % seconds if seconds >= 0.1 else "%.3f" % seconds


def fmt_count_s(seconds):
    return "%.3f" % seconds if seconds >= 0.01 else "%.4f" % seconds


def measured(scenario_result):
    return bool(scenario_result) and "wall_median" in scenario_result


def table_rows(results):
    header = ["engine", "server", "rows", "counts", "checksum check", "healthy: oauth_info s",
              "COUNT(*) s", "ratio", "broken: oauth_info s", "COUNT(*) s", "ratio", "< %g s" % TARGET_SECONDS]
    rows = []
    for r in results:
        h, b = r.get("healthy"), r.get("broken")
        server = r.get("server")
        first = h if measured(h) else b if measured(b) else None

        def times(s):
            if not measured(s):
                return ["FAILED" if s else "-", "-", "-"]
            wall = fmt_s(s["wall_median"]) + (" WRONG" if s["problems"] else "")
            return [wall, fmt_count_s(s["count_star_median"]), "%sx" % s["ratio_to_count_star"]]

        under = [s["under_target"] for s in (h, b) if measured(s)]
        rows.append([
            r["engine"],
            "%s %s" % (server["vendor"], short_version(server["server_version"])) if server else "-",
            "{:,}".format(first["rows"]) if first else "-",
            ("exact" if first["rows_exact"] else "estimated") if first else "-",
            "%s, %s rows" % (first["checksum_method"], "{:,}".format(first["checksum_rows_checked"] or 0))
            if first else "-",
        ] + times(h)[:1] + times(h)[1:] + times(b) + [
            "-" if not under else "yes" if all(under) else "NO"])
    return header, rows


def print_table(results):
    header, rows = table_rows(results)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, header))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)))


def print_details(results):
    for r in results:
        if r.get("error"):
            print("\n%s: FAILED: %s" % (r["engine"], r["error"]))
            continue
        print("\n%s (%s), setup: %s" % (r["engine"], (r.get("server") or {}).get("server_version"), ", ".join(
            "%s %.1f s" % (k, v) for k, v in r["setup_seconds"].items())))
        for label in ("healthy", "broken"):
            s = r.get(label)
            if not s:
                continue
            if not measured(s):
                print("  %-7s FAILED: %s" % (label, s.get("error")))
                continue
            print("  %-7s oauth_info runs %s s; COUNT(*) %s s; checksum %s of %s rows, %s mismatch(es); "
                  "findings %s" % (label, s["wall_seconds"], s["count_star_seconds"], s["checksum_method"],
                                   s["checksum_rows_checked"], s["checksum_mismatches"],
                                   sorted(set(f["code"] for f in s["findings"])) or "none"))
            prof = s.get("profile")
            if prof:
                print("          profiled run %.3f s: %d statements %.3f s, outside them %.3f s; slowest:" % (
                    prof["wall_seconds"], prof["statements"], prof["statement_seconds"],
                    prof["outside_statements_seconds"]))
                for e in prof["slowest"][:3]:
                    print("            %7.3f s  %s" % (e["seconds"], shorten(e["sql"], 150)))
            for p in s.get("problems") or []:
                print("          WRONG: %s" % p)
            if s.get("error"):
                print("          FAILED: %s" % s["error"])


def shorten(sql, width):
    sql = " ".join(sql.split())
    return sql if len(sql) <= width else sql[:width - 3] + "..."


def write_json(result):
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, "oauth_info-%s.json" % result["engine"])
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    return path


def docs_section(results, facts, n_rows, repeat):
    date = datetime.date.today().isoformat()
    header, rows = table_rows(results)
    engines = [r["engine"] for r in results]
    lines = [
        DOCS_BEGIN,
        "## oauth_info on {:,} access tokens".format(n_rows),
        "",
        "Written by `.venv/bin/python bench/bench_oauth_info.py --rows %d --engines %s --write-docs` "
        "on %s. Target: under %g s on each engine." % (n_rows, ",".join(engines), date, TARGET_SECONDS),
        "",
        "Machine: %s cores (%s), %s GiB RAM, %s; Python %s, %s." % (
            facts["cores"], facts["cpu"] or "unknown CPU", facts["memory_gib"], facts["platform"],
            facts["python"], ", ".join("%s %s" % kv for kv in sorted(facts["packages"].items()))),
        "Servers: %s. All on the same machine, default configuration, warm caches "
        "(the table was just written and ANALYZEd; PostgreSQL also VACUUMed). Load average "
        "(1 min) at the start and the end of each engine's run: %s." % (
            "; ".join("%s %s" % (r["engine"], r["server"]["server_version"]) for r in results if r.get("server")),
            ", ".join("%s %.1f-%.1f" % (r["engine"], r["load_average_start"][0], r["load_average_end"][0])
                      for r in results if r.get("load_average_end"))),
        "",
        "The times are the median of %d in-process `oauth_info` runs (connection included), "
        "compared with the median of %d plain `SELECT COUNT(*)` of the token table measured in "
        "the same run (*ratio*). *healthy*: every checksum right, the unique index in place. "
        "*broken*: the unique index dropped, the column nullable, and about 0.05 %% of the rows with "
        "a token_checksum that is `''`, NULL, wrong, or a duplicate, so that every check that scans "
        "the table runs; the benchmark verifies the findings of both." % (repeat, repeat),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines.append("")
    lines.append("Slowest statements of the profiled broken run:")
    lines.append("")
    for r in results:
        prof = (r.get("broken") or {}).get("profile")
        if not prof:
            continue
        top = prof["slowest"][:2]
        lines.append("- %s: %s" % (r["engine"], "; ".join(
            # double backticks: MySQL quotes identifiers with backticks
            "%s s `` %s ``" % (fmt_s(e["seconds"]), shorten(e["sql"], 110)) for e in top)))
    failures = ["- %s %s: oauth_info failed: %s" % (r["engine"], label, shorten(r[label]["error"], 300))
                for r in results for label in ("healthy", "broken") if (r.get(label) or {}).get("error")]
    if failures:
        lines.append("")
        lines.append("Failures:")
        lines.append("")
        lines.extend(failures)
    lines.append("")
    lines.append("Raw numbers: `bench/results/oauth_info-<engine>.json` (not committed).")
    lines.append(DOCS_END)
    return "\n".join(lines) + "\n"


def write_docs(section, begin_marker=DOCS_BEGIN, end_marker=DOCS_END):
    """Replace the section between the markers in docs/performance.md (or append it); the other benchmarks
    (bench_widen, bench_checksum) write their own sections through this with their markers."""
    os.makedirs(os.path.dirname(DOCS_FILE), exist_ok=True)
    if os.path.exists(DOCS_FILE):
        with open(DOCS_FILE) as fh:
            text = fh.read()
    else:
        text = DOCS_INTRO
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin != -1 and end != -1 and end > begin:
        end += len(end_marker)
        if text[end:end + 1] == "\n":
            end += 1
        text = text[:begin] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(DOCS_FILE, "w") as fh:
        fh.write(text)
    return DOCS_FILE


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rows", type=int, default=1000000, help="access tokens to insert (default 1000000)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated, among %s (default: all)" % ", ".join(ENGINES))
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per scenario (default 3)")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-statement profiled run")
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite the oauth_info section of docs/performance.md")
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown or not args.engines:
        parser.error("unknown engine(s) %s; choose among %s" % (unknown, ", ".join(ENGINES)))
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _terminate(signum, _frame):
    # Turn SIGTERM into SystemExit so the scratch databases are dropped on the way out.
    raise SystemExit(128 + signum)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    signal.signal(signal.SIGTERM, _terminate)
    facts = machine_facts()
    results, failed = [], False
    workdir = tempfile.mkdtemp(prefix="oar-bench-")
    try:
        for engine in args.engines:
            try:
                result = bench_engine(engine, args.rows, args.repeat, workdir, not args.no_profile)
            except Exception as exc:  # noqa: BLE001 - report, go on with the next engine
                traceback.print_exc()
                result = dict(benchmark="oauth_info", engine=engine, rows_requested=args.rows, ok=False,
                              error="%s: %s" % (type(exc).__name__, exc))
            result["machine"] = facts
            results.append(result)
            log("%s: results in %s" % (engine, os.path.relpath(write_json(result), ROOT)))
            failed = failed or not result["ok"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print("oauth_info on {:,} access tokens ({} cores, {})".format(
        args.rows, facts["cores"], datetime.date.today().isoformat()))
    print()
    print_table(results)
    print_details(results)
    if args.write_docs:
        if any(r.get("wrong") or r.get("error") for r in results):
            log("not writing docs: a diagnosis was wrong or an engine could not be set up")
        else:
            log("wrote %s" % os.path.relpath(write_docs(docs_section(results, facts, args.rows, args.repeat)),
                                             ROOT))
    slow = [r["engine"] for r in results
            if any(measured(r.get(k)) and not r[k]["under_target"] for k in ("healthy", "broken"))]
    if slow:
        print("\nslower than the %g s target on: %s (see the profile in the JSON results)" % (
            TARGET_SECONDS, ", ".join(slow)))
    if failed:
        print("\nFAILED: the diagnosis was wrong or the benchmark could not run (see WRONG / FAILED above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
