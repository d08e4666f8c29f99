"""Benchmark: the char(32) -> uuid conversion of a big refresh token table on MariaDB, with a writer running.

Run from the repository root with the project's virtualenv::

    .venv/bin/python bench/bench_uuid.py [--rows 1000000] [--repeat 1] [--write-docs]

MariaDB only: a site migrated under Django < 5.0 has its ``UUIDField`` columns as ``char(32)``
(``oauth2_provider_refreshtoken.token_family``); ``oauth_info`` with the site's models as the schema truth reports
``schema_drift_uuid_char32`` and ``oauth_repair`` converts the column to MariaDB's ``uuid``
(plugins/module_utils/repairs/from_drift.py: a value check, ``ALTER TABLE ... MODIFY ... uuid``, a fingerprint of
the values before and after). It

1. builds a template database (``oar_t_<hex>``, like every scratch database here dropped at the end, also on error,
   Ctrl-C or SIGTERM): migrated by the real ``manage.py migrate`` of the Django test project, a user and an
   application made through DOT's models, ``token_family`` made ``char(32)`` (what Django 4.2 created), then
   ``--rows`` access tokens and as many refresh tokens, one per access token, inserted set-based (100,000 rows a
   statement), each with a ``token_family`` of 32 lowercase hex digits (a version 4 UUID, as ``uuid4().hex``);
   ANALYZE. ``oauth_info`` with the ``django`` option must report ``schema_drift_uuid_char32`` on it;
2. for each of ``--repeat`` rounds makes two copies of the template (``SHOW CREATE TABLE`` + ``INSERT ... SELECT``,
   bench_checksum.py's copies) and, on each copy, runs a writer thread (one refresh token inserted, one updated,
   in turn, 5 ms apart, each statement timed) while

   a. **baseline** (copy A): ``ALTER TABLE `oauth2_provider_refreshtoken` MODIFY `token_family` uuid NULL`` runs
      alone - the statement oauth_repair runs (checked against its plan);
   b. **oauth_repair** (copy B): the module, in-process (``run_module``), with ``fix: [schema_drift_uuid_char32]``
      and the ``django`` option of the test project: the diagnosis with the probe, the value check, the ALTER, the
      fingerprints, the diagnosis again;

   the writer's *longest stall* is its slowest statement among those that overlapped the ALTER (a) / the module run
   (b); the target is (b) <= 1.5 x (a);
3. checks the answer on both copies (exit status 1 when wrong): the column is ``uuid``; every value is the same
   UUID (a checksum of ``id`` and the value as 32 hex digits, before, equals the one of ``id`` and
   ``REPLACE(token_family, '-', '')`` after), no row lost (the seeded rows all there, plus exactly the writer's
   inserts, with their families); ``oauth_info`` with ``django`` then shows no ``schema_drift_*`` finding; the
   repair reports the values equal and no ``schema_drift_uuid_char32`` left.

It prints a table, writes ``bench/results/uuid-mysql.json`` and, with ``--write-docs``, rewrites its own section of
docs/performance.md (between ``<!-- bench:uuid -->`` and ``<!-- /bench:uuid -->``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import secrets
import signal
import statistics
import sys
import threading
import time
import traceback
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)

import bench_checksum  # noqa: E402  (copies of a template database)
import bench_oauth_info as common  # noqa: E402  (machine facts, docs writing)

from tests.support import data, servers  # noqa: E402
from tests.support import django as django_project  # noqa: E402
from tests.support.modules import module_utils, run_module  # noqa: E402

AT = data.ACCESS_TOKEN_TABLE
RT = data.REFRESH_TOKEN_TABLE
COLUMN = "token_family"
FINDING = "schema_drift_uuid_char32"
#: exactly what from_drift._uuid_step emits for DOT's nullable token_family
ALTER_SQL = "ALTER TABLE `%s` MODIFY `%s` uuid NULL" % (RT, COLUMN)
TARGET_RATIO = 1.5
BATCH = data.DEFAULT_BATCH_SIZE
#: a writer statement slower than this counts as stalled (for the total stall)
STALL_THRESHOLD = 0.1
WRITER_PAUSE = 0.005
RESULTS_DIR = os.path.join(ROOT, "bench", "results")
DOCS_BEGIN = "<!-- bench:uuid -->"
DOCS_END = "<!-- /bench:uuid -->"
#: 32 hex digits of a version 4 UUID made from an MD5 (``h``): version nibble 4, variant 8-b
UUID4_HEX_SQL = ("CONCAT(SUBSTR({h}, 1, 12), '4', SUBSTR({h}, 14, 3), "
                 "ELT(1 + (CONV(SUBSTR({h}, 17, 1), 16, 10) & 3), '8', '9', 'a', 'b'), SUBSTR({h}, 18, 15))")


class BenchFailure(AssertionError):
    """The end state is wrong, the module failed, or the benchmark could not set up its database."""


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# The template: a Django < 5.0 site's refresh tokens
# --------------------------------------------------------------------------


def insert_refresh_tokens(target, salt):
    """One refresh token per access token, set-based (``BATCH`` access token ids a statement), each with a
    ``token_family`` of 32 hex digits (a v4 UUID); returns the rows inserted."""
    known = {"token", "token_checksum", "access_token_id", "application_id", "user_id", "created", "updated",
             "resource", COLUMN}
    columns = data.table_columns(target, RT)
    unknown = [c.name for c in columns if c.name not in known and not (c.auto or c.nullable or c.has_default)]
    if unknown:
        raise BenchFailure("do not know what to put in %s.%s" % (RT, unknown))
    tok = "LEFT(SHA2(CONCAT('%s:', a.id), 256), 40)" % salt
    exprs = dict(token=tok, token_checksum="SHA2(%s, 256)" % tok, access_token_id="a.id",
                 application_id="a.application_id", user_id="a.user_id", created="a.created", updated="a.created",
                 resource="'[]'", token_family=UUID4_HEX_SQL.format(h="MD5(CONCAT('%s:family:', a.id))" % salt))
    names = [c.name for c in columns if c.name in known]
    sql = "INSERT INTO `%s` (%s) SELECT %s FROM `%s` a WHERE a.id >= %%s AND a.id < %%s ORDER BY a.id" % (
        RT, ", ".join("`%s`" % n for n in names), ", ".join(exprs[n] for n in names), AT)
    lo, hi = target.query("SELECT MIN(id), MAX(id) FROM `%s`" % AT)[0]
    inserted = 0
    with contextlib.closing(target.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET SESSION foreign_key_checks = 0")
        for start in range(int(lo), int(hi) + 1, BATCH):
            cur.execute(sql, (start, start + BATCH))
            inserted += cur.rowcount
    return inserted


def build_template(dbs, rows):
    setup = {}
    target = dbs.empty()
    log("template %s: migrating with the real DOT migrations" % target.name)
    setup["migrate"] = common.timed(django_project.migrate, target)[1]
    made, setup["user_and_application"] = common.timed(
        django_project.issue_tokens, target, 0, "--no-refresh", "--username", "oar-bench")
    # what Django < 5.0 created for a UUIDField on MariaDB (the table is empty: instant)
    target.execute("ALTER TABLE `%s` MODIFY `%s` char(32) NULL" % (RT, COLUMN))
    log("template: inserting %d access tokens" % rows)
    setup["insert_access_tokens"] = common.timed(data.bulk_insert_access_tokens, target, rows,
                                                 made["application_id"], made["user_id"], True)[1]
    log("template: inserting %d refresh tokens" % rows)
    inserted, setup["insert_refresh_tokens"] = common.timed(insert_refresh_tokens, target, secrets.token_hex(8))
    if inserted != rows:
        raise BenchFailure("inserted %d refresh tokens, expected %d" % (inserted, rows))
    setup["analyze"] = common.timed(common.analyze, target)[1]
    bad = target.query("SELECT COUNT(*) FROM `%s` WHERE `%s` IS NULL OR `%s` NOT REGEXP '^[0-9a-f]{32}$'"
                       % (RT, COLUMN, COLUMN))[0][0]
    if bad:
        raise BenchFailure("%d token families are not 32 lowercase hex digits" % bad)
    log("template: seeded in %.1f s + %.1f s" % (setup["insert_access_tokens"], setup["insert_refresh_tokens"]))
    return target, made, dict((k, round(v, 3)) for k, v in setup.items())


def column_type(target):
    return target.query("SELECT column_type FROM information_schema.columns WHERE table_schema = DATABASE() "
                        "AND table_name = %s AND column_name = %s", (RT, COLUMN))[0][0].lower()


def site_params(target):
    return dict(target.params, django=django_project.site_option(target), expected_schema="django_models")


def drift_of(result):
    return sorted((f["code"], (f.get("objects") or [""])[0]) for f in result.get("findings") or []
                  if f["code"].startswith("schema_drift_"))


def info_drift(target):
    result = run_module("oauth_info", site_params(target))
    if result.get("failed"):
        raise BenchFailure("oauth_info failed: %s" % result.get("msg"))
    return drift_of(result)


# --------------------------------------------------------------------------
# The values
# --------------------------------------------------------------------------


def values_checksum(target, max_id, after):
    """(rows, non-NULL values, checksum) of the seeded rows (id <= max_id): each row's id and token_family as 32
    lowercase hex digits, hashed together (a value that moved to another row changes it too)."""
    value = "REPLACE(CAST(`%s` AS CHAR), '-', '')" % COLUMN if after else "LOWER(`%s`)" % COLUMN
    row = target.query(
        "SELECT COUNT(*), COUNT(`{c}`), COALESCE(SUM(CAST(CONV(SUBSTR(MD5(CONCAT(id, ':', COALESCE({v}, 'NULL'))), 1, 15), "
        "16, 10) AS UNSIGNED)), 0) FROM `{t}` WHERE id <= %s".format(c=COLUMN, v=value, t=RT), (max_id,))[0]
    return int(row[0]), int(row[1]), str(row[2])


# --------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------


class Writer(threading.Thread):
    """Inserts a refresh token (its family 32 hex digits) and updates another one, in turn, 5 ms apart; records
    each statement's start (monotonic) and duration."""

    def __init__(self, target, made, max_id, inserts=True):
        super().__init__(daemon=True)
        self.inserts = inserts
        self.target = target
        self.made = made
        self.max_id = max_id
        self.stop = threading.Event()
        self.latencies = []  # (monotonic start, seconds, kind)
        self.inserted = {}  # token -> family (32 hex)
        self.errors = []

    def run(self):
        conn = self.target.connect()
        try:
            cur = conn.cursor()
            insert = ("INSERT INTO `%s` (token, token_checksum, application_id, user_id, created, updated, resource, "
                      "token_family) VALUES (%%s, %%s, %%s, %%s, %%s, %%s, '[]', %%s)" % RT)
            update = "UPDATE `%s` SET updated = %%s WHERE id = %%s" % RT
            i = 0
            while not self.stop.is_set():
                i += 1
                now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
                if i % 2 and self.inserts:
                    token, family = "bench-%s" % secrets.token_hex(12), uuid.uuid4().hex
                    sql, params, kind = insert, (token, hashlib.sha256(token.encode()).hexdigest(),
                                                 self.made["application_id"], self.made["user_id"], now, now,
                                                 family), "insert"
                else:
                    sql, params, kind = update, (now, 1 + (i * 7919) % self.max_id), "update"
                t0 = time.monotonic()
                try:
                    cur.execute(sql, params)
                except Exception as exc:  # noqa: BLE001 - recorded, the benchmark reports it
                    self.errors.append("%s: %s" % (kind, exc))
                    time.sleep(0.05)
                    continue
                self.latencies.append((t0, time.monotonic() - t0, kind))
                if kind == "insert":
                    self.inserted[token] = family
                time.sleep(WRITER_PAUSE)
        finally:
            conn.close()

    def summary(self, start, end):
        """The statements that overlapped [start, end]: their count, the longest stall, the total stall."""
        during = [(t0, s, k) for t0, s, k in self.latencies if t0 < end and t0 + s > start]
        lat = [s for _t0, s, _k in during]
        longest = sorted(during, key=lambda x: -x[1])[:5]
        return dict(statements=len(lat), statements_all=len(self.latencies),
                    longest_stall_s=round(max(lat), 3) if lat else None,
                    total_stall_s=round(sum(x for x in lat if x > STALL_THRESHOLD), 3),
                    stalls=len([x for x in lat if x > STALL_THRESHOLD]),
                    longest=[dict(at_s=round(t0 - start, 2), seconds=round(s, 3), kind=k) for t0, s, k in longest],
                    max_all_s=round(max(x[1] for x in self.latencies), 3) if self.latencies else None,
                    inserts=len(self.inserted), errors=self.errors[:5])


@contextlib.contextmanager
def writer_running(target, made, max_id, inserts):
    writer = Writer(target, made, max_id, inserts)
    writer.start()
    time.sleep(1.0)  # its normal pace first
    try:
        yield writer
    finally:
        time.sleep(1.0)
        writer.stop.set()
        writer.join(120)


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


@contextlib.contextmanager
def statement_log():
    """Time every statement of the collection's connections in this process (``Connection.query`` and
    ``execute`` wrapped; they run unchanged): yields a list of (monotonic start, seconds, sql)."""
    cls = module_utils("connection").Connection
    originals = (cls.query, cls.execute)
    entries = []

    def wrap(fn):
        def timed_fn(self, sql, *args, **kwargs):
            start = time.monotonic()
            try:
                return fn(self, sql, *args, **kwargs)
            finally:
                entries.append((start, time.monotonic() - start, sql))
        return timed_fn

    cls.query, cls.execute = wrap(originals[0]), wrap(originals[1])
    try:
        yield entries
    finally:
        cls.query, cls.execute = originals


def scenario_baseline(target, made, max_id, inserts):
    with writer_running(target, made, max_id, inserts) as writer:
        with contextlib.closing(target.connect()) as conn:
            cur = conn.cursor()
            start = time.monotonic()
            cur.execute(ALTER_SQL)
            end = time.monotonic()
    return dict(wall_s=round(end - start, 3), alter_s=round(end - start, 3), writer=writer.summary(start, end),
                statements=[dict(sql=ALTER_SQL, seconds=round(end - start, 3))]), writer


def scenario_repair(target, made, max_id, inserts):
    params = dict(site_params(target), fix=[FINDING], lock_timeout=60000)
    with writer_running(target, made, max_id, inserts) as writer:
        with statement_log() as entries:
            start = time.monotonic()
            result = run_module("oauth_repair", params)
            end = time.monotonic()
    steps = [dict(step=s["key"], sql=s.get("sql"), seconds=s.get("seconds"), status=s["status"])
             for s in result.get("plan") or []]
    alter = [s for s in steps if s["step"] == "schema_drift:uuid:%s.%s" % (RT, COLUMN)]
    alter_runs = [x for x in entries if x[2] == ALTER_SQL]
    slow = [dict(at_s=round(t0 - start, 2), seconds=round(sec, 3), sql=" ".join(sql.split())[:200])
            for t0, sec, sql in entries if sec >= 0.1]
    out = dict(wall_s=round(end - start, 3), module_duration=result.get("duration"), writer=writer.summary(start, end),
               statements=steps, step_s=alter[0]["seconds"] if alter else None, slow_statements=slow,
               alter_s=round(alter_runs[0][1], 3) if alter_runs else None,
               uuid_conversions=(result.get("report") or {}).get("uuid_conversions"),
               findings_after=drift_of(result), changed=result.get("changed"))
    out["problems"] = []
    if result.get("failed"):
        # a module failure: written down (the docs show it under "Failures"), exit status 1
        out["module_failure"] = result.get("msg")
        out["findings_after"] = None
        return out, writer
    if not alter or alter[0]["status"] != "ran":
        out["problems"].append("the uuid step did not run: %s" % steps)
    elif [ALTER_SQL] != list(alter[0]["sql"] or []):
        out["problems"].append("the repair ran %r, the baseline %r: not the same DDL" % (alter[0]["sql"], ALTER_SQL))
    conv = (out["uuid_conversions"] or {}).get("%s.%s" % (RT, COLUMN)) or {}
    if not conv.get("values_equal"):
        out["problems"].append("the repair does not report the values equal: %r" % conv)
    if (FINDING, "%s.%s" % (RT, COLUMN)) in out["findings_after"]:
        out["problems"].append("%s still reported after the repair" % FINDING)
    return out, writer


def verify(target, before, max_id, writer):
    """The end state of either scenario: uuid, every value the same UUID on its row, no row lost."""
    problems = []
    kind = column_type(target)
    if kind != "uuid":
        problems.append("%s.%s is %s, not uuid" % (RT, COLUMN, kind))
    after = values_checksum(target, max_id, after=True)
    if after != before:
        problems.append("values differ: (rows, values, checksum) %s before, %s after" % (before, after))
    new = dict(target.query("SELECT token, REPLACE(CAST(`%s` AS CHAR), '-', '') FROM `%s` WHERE id > %%s"
                            % (COLUMN, RT), (max_id,)))
    if new != writer.inserted:
        problems.append("the writer inserted %d refresh tokens, %d are there, %d with their family" % (
            len(writer.inserted), len(new), len([t for t, f in writer.inserted.items() if new.get(t) == f])))
    if writer.errors:
        problems.append("writer errors: %s" % writer.errors[:3])
    drift = info_drift(target)
    if drift:
        problems.append("oauth_info still finds drift: %s" % drift)
    return problems


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def bench(rows, repeat, inserts=True):
    result = dict(benchmark="uuid", engine="mysql", rows=rows, repeat=repeat, target_ratio=TARGET_RATIO,
                  writer="insert+update" if inserts else "update",
                  started=common.now_iso(), load_average_start=os.getloadavg(), alter_sql=ALTER_SQL)
    runs = dict(baseline=[], repair=[])
    with servers.mariadb_server() as server:
        log("mysql: %s" % server.describe())
        result["server"] = dict(engine="mysql", server_version=server.version)
        dbs = bench_checksum.Databases(server)
        try:
            template, made, result["setup_seconds"] = build_template(dbs, rows)
            max_id = template.query("SELECT MAX(id) FROM `%s`" % RT)[0][0]
            before = values_checksum(template, max_id, after=False)
            result["before"] = dict(rows=before[0], values=before[1], checksum=before[2])
            drift = info_drift(template)
            result["drift_before"] = drift
            if drift != [(FINDING, "%s.%s" % (RT, COLUMN))]:
                raise BenchFailure("oauth_info on the template finds %s, expected only %s on %s.%s" % (
                    drift, FINDING, RT, COLUMN))
            for i in range(repeat):
                for label, fn in (("baseline", scenario_baseline), ("repair", scenario_repair)):
                    started = time.monotonic()
                    copy = dbs.copy(template)
                    copy_s = time.monotonic() - started
                    log("round %d: %s on the copy %s (made in %.1f s)" % (i + 1, label, copy.name, copy_s))
                    if values_checksum(copy, max_id, after=False) != before or column_type(copy) != "char(32)":
                        raise BenchFailure("the copy %s differs from the template" % copy.name)
                    run, writer = fn(copy, made, max_id, inserts)
                    run["copy_s"] = round(copy_s, 1)
                    run["problems"] = run.get("problems", []) + verify(copy, before, max_id, writer)
                    run["load_average"] = os.getloadavg()
                    runs[label].append(run)
                    w = run["writer"]
                    log("round %d: %s: wall %.1f s, ALTER %s s, writer longest stall %s s (of %d statements), "
                        "total stall %s s%s%s" % (
                            i + 1, label, run["wall_s"], run["alter_s"], w["longest_stall_s"], w["statements"],
                            w["total_stall_s"], "; WRONG: %s" % run["problems"] if run["problems"] else "",
                            "; MODULE FAILED: %s" % run["module_failure"] if run.get("module_failure") else ""))
                    dbs.drop(copy)
        finally:
            dbs.close()
    result["runs"] = runs
    for label, items in runs.items():
        result[label] = dict(
            wall_s=median([x["wall_s"] for x in items]), alter_s=median([x["alter_s"] for x in items]),
            longest_stall_s=median([x["writer"]["longest_stall_s"] for x in items]),
            total_stall_s=median([x["writer"]["total_stall_s"] for x in items]),
            problems=[p for x in items for p in x["problems"]])
    base = result["baseline"]["longest_stall_s"]
    stall = result["repair"]["longest_stall_s"]
    result["ratio"] = round(stall / base, 2) if base and stall is not None else None
    result["meets_target"] = result["ratio"] is not None and result["ratio"] <= TARGET_RATIO
    result["finished"] = common.now_iso()
    result["load_average_end"] = os.getloadavg()
    result["module_failures"] = [x["module_failure"] for x in runs["repair"] if x.get("module_failure")]
    result["wrong"] = bool(result["baseline"]["problems"] or result["repair"]["problems"])
    result["ok"] = not (result["wrong"] or result["module_failures"])
    return result


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def fmt(x):
    return "-" if x is None else "%.1f" % x if x >= 10 else "%.2f" % x


def table_rows(result):
    header = ["server", "rows", "scenario", "wall s", "ALTER s", "writer longest stall s", "writer total stall s",
              "stall / baseline", "<= %gx" % TARGET_RATIO]
    if result.get("error"):
        return header, [["-", "{:,}".format(result["rows"]), "FAILED"] + ["-"] * (len(header) - 3)]
    rows = []
    server = common.short_version(result["server"]["server_version"])
    for label, name in (("baseline", "(a) ALTER ... MODIFY uuid alone"), ("repair", "(b) oauth_repair")):
        s = result[label]
        rows.append(["MariaDB %s" % server, "{:,}".format(result["rows"]), name, fmt(s["wall_s"]), fmt(s["alter_s"]),
                     fmt(s["longest_stall_s"]), fmt(s["total_stall_s"]),
                     "1.00" if label == "baseline" else ("%.2fx" % result["ratio"] if result["ratio"] else "-"),
                     ("yes" if result["meets_target"] else "NO") if label == "repair" else ""])
    return header, rows


def print_table(result):
    header, rows = table_rows(result)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header] + rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)))
    if result.get("error"):
        print("\nFAILED: %s" % result["error"])
        return
    print("\nsetup: %s" % ", ".join("%s %.1f s" % kv for kv in result["setup_seconds"].items()))
    for label in ("baseline", "repair"):
        for n, run in enumerate(result["runs"][label]):
            print("  %-8s round %d: wall %s s, writer longest stall %s s, longest statements %s" % (
                label, n + 1, run["wall_s"], run["writer"]["longest_stall_s"], run["writer"]["longest"][:3]))
            for st in run["statements"]:
                if st.get("seconds"):
                    print("           %8s s  step %s (%s)" % (st["seconds"], st.get("step") or st["sql"], st.get("status", "ran")))
            for st in run.get("slow_statements") or []:
                print("           %8s s  at %6.2f s  %s" % (st["seconds"], st["at_s"], st["sql"][:120]))
            for p in run["problems"]:
                print("           WRONG: %s" % p)


def write_json(result):
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, "uuid-mysql%s.json" % ("-update-only" if result.get("writer") == "update" else ""))
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    return path


def docs_section(result, facts, note=None):
    header, table = table_rows(result)
    lines = [
        DOCS_BEGIN,
        "## Converting {:,} refresh tokens' token_family from char(32) to uuid (MariaDB)".format(result["rows"]),
        "",
        "Written by `.venv/bin/python bench/bench_uuid.py --rows %d --repeat %d%s --write-docs` on %s. Target "
        "(issue 11): the writer's longest stall under `oauth_repair` at most %gx the one under the column's "
        "`MODIFY` alone, every value kept." % (
            result["rows"], result["repeat"], " --writer update" if result["writer"] == "update" else "",
            datetime.date.today().isoformat(), TARGET_RATIO),
        "",
        "Machine: %s cores (%s), %s GiB RAM, %s; Python %s, %s. Server: MariaDB %s on the same machine, default "
        "configuration (a 128 MiB buffer pool). **Other work shared the two cores** (other sessions running "
        "tests): load average (1 min) %.1f at the start, %.1f at the end. Compare the ratio, measured in the same "
        "run, rather than the seconds." % (
            facts["cores"], facts["cpu"] or "unknown CPU", facts["memory_gib"], facts["platform"], facts["python"],
            ", ".join("%s %s" % kv for kv in sorted(facts["packages"].items())), result["server"]["server_version"],
            result["load_average_start"][0], result["load_average_end"][0]),
        "",
        "A database migrated by the real DOT migrations with `token_family` made `char(32)` (what Django < 5.0 "
        "created), filled set-based with the access tokens and one refresh token each, every `token_family` 32 hex "
        "digits; `oauth_info` with the `django` option reports `schema_drift_uuid_char32` on it. Each scenario on "
        "its own copy (%d round(s); medians), with a writer thread %s, 5 ms apart, each statement timed. (a) `%s` alone, the statement the repair runs; (b) "
        "`oauth_repair` with `fix: [schema_drift_uuid_char32]` and the test project as `django`: the diagnosis "
        "(probe included), the value check, the same `ALTER`, the fingerprints before and after, the diagnosis "
        "again. *writer longest stall*: its slowest statement among those that overlapped (a) the `ALTER`, (b) "
        "the module run; *total stall*: the sum of those over %g s. Checked on both copies: the column is `uuid`, "
        "a checksum of each row's id and value as 32 hex digits is the same before and after "
        "(`REPLACE(token_family, '-', '')`), no row lost (the writer's inserts there with their families), and "
        "`oauth_info` then finds no drift." % (
            result["repeat"], "updating refresh tokens (`updated`)" if result["writer"] == "update" else
            "inserting a refresh token (its family 32 hex digits) and updating another in turn",
            ALTER_SQL.replace("`", ""), STALL_THRESHOLD),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in table:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines.append("")
    rep = result["runs"]["repair"][-1]
    slow = rep.get("slow_statements") or []
    lines.append("- Writer longest stall of each round: (a) %s s, (b) %s s." % (
        ", ".join(fmt(x["writer"]["longest_stall_s"]) for x in result["runs"]["baseline"]),
        ", ".join(fmt(x["writer"]["longest_stall_s"]) for x in result["runs"]["repair"])))
    lines.append("- (b), last round: the module ran %s s, its uuid step %s s; its statements over 0.1 s (timed in "
                 "the benchmark's process), from the module's start: %s." % (
                     fmt(rep["wall_s"]), fmt(rep.get("step_s")),
                     "; ".join("at %s s, %s s: `` %s ``" % (fmt(s["at_s"]), fmt(s["seconds"]), s["sql"][:110])
                               for s in slow) or "none"))
    if result.get("module_failures"):
        lines.append("")
        lines.append("Failures:")
        lines.append("")
        lines.extend("- `oauth_repair` failed (round %d): %s" % (n + 1, " ".join(msg.split()))
                     for n, msg in enumerate(result["module_failures"]))
    if note:
        lines.append("")
        lines.append(note)
    lines.append("")
    lines.append("Raw numbers: `bench/results/uuid-mysql.json` (not committed).")
    lines.append(DOCS_END)
    return "\n".join(lines) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rows", type=int, default=1000000, help="refresh tokens (and access tokens; default 1000000)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (a) and (b), each on fresh copies (default 1)")
    parser.add_argument("--writer", choices=("insert+update", "update"), default="insert+update",
                        help="what the writer does: insert a refresh token and update another in turn (default), "
                             "or only update (no token_family written while the column changes)")
    parser.add_argument("--note", help="a sentence added to the docs section (e.g. why --rows is smaller)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the uuid section of docs/performance.md")
    args = parser.parse_args(argv)
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _terminate(signum, _frame):
    # SIGTERM -> SystemExit, so the scratch databases are dropped on the way out
    raise SystemExit(128 + signum)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    signal.signal(signal.SIGTERM, _terminate)
    facts = common.machine_facts()
    try:
        result = bench(args.rows, args.repeat, args.writer == "insert+update")
    except Exception as exc:  # noqa: BLE001 - reported, exit status 1
        traceback.print_exc()
        result = dict(benchmark="uuid", engine="mysql", rows=args.rows, repeat=args.repeat, ok=False,
                      error="%s: %s" % (type(exc).__name__, exc))
    result["machine"] = facts
    log("results in %s" % os.path.relpath(write_json(result), ROOT))
    print()
    print_table(result)
    if args.write_docs:
        if result.get("error") or result.get("wrong"):
            log("not writing docs: the benchmark could not run or an end state was wrong")
        else:
            section = docs_section(result, facts, args.note)
            log("wrote %s" % os.path.relpath(common.write_docs(section, DOCS_BEGIN, DOCS_END), ROOT))
    if result.get("ratio") is not None and not result.get("meets_target"):
        print("\nabove the %gx target" % TARGET_RATIO)
    if not result.get("ok"):
        failures = result.get("module_failures")
        print("\nFAILED%s" % (": oauth_repair failed: %s" % failures if failures else ""))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
