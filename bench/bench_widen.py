"""Benchmark: widening a big int foreign key column to bigint (field report 000), with a writer running.

Run from the repository root with the project's virtualenv::

    .venv/bin/python bench/bench_widen.py [--rows 3000000] [--engines mysql,postgresql] [--write-docs]

For each engine it

1. creates a uniquely named scratch database (``oar_t_<hex>``, through tests/support/servers.py; dropped at
   the end, also on error, Ctrl-C or SIGTERM) and makes it the report's legacy site (tests/seed000_legacy.py:
   Django's apps migrated by the real ``manage.py migrate``, DOT's tables from the legacy DDL with int ids),
   except that ``oauth2_provider_accesstoken.application_id`` is an ``int`` with its foreign key to the int
   ``oauth2_provider_application.id``, as an install whose tables were all created by an old Django has it;
   ``oauth2_provider_refreshtoken.application_id`` stays bigint, which is what oauth_info reports as
   ``int_width_mismatch``;
2. inserts ``--rows`` access tokens (set-based, tests/support/data.py) and ANALYZEs;
3. measures three ways of widening ``accesstoken.application_id`` (and the key it references) to bigint, on
   that database, the legacy state restored exactly (untimed, no writer) before each run, while a writer
   thread inserts an access token and updates another one, over and over, and records how long each of its
   statements waited; (a) and (c) run ``--repeat`` times, alternating, (b) once after the first pair, and
   the medians are reported (the machine is shared: single runs vary by a third):

   a. **baseline**: the column's ``MODIFY`` / ``ALTER COLUMN TYPE`` alone (its foreign key dropped
      beforehand, untimed): the least any widening of that table can cost;
   b. **naive**: the report's hand procedure - drop every foreign key that references the application,
      widen ``application.id``, widen each referencing column, re-add each foreign key (checked);
   c. **oauth_repair**: the module (``fix: [int_width_mismatch]``), in-process, through ``run_module``.

It prints a table, writes ``bench/results/widen-<engine>.json`` and, with ``--write-docs``, rewrites its
own section of docs/performance.md (between ``<!-- bench:widen -->`` and ``<!-- /bench:widen -->``).
The target: the writer's total stall under oauth_repair at most 1.5 times the baseline's, with referential
integrity proven (an orphan check) before the foreign key is back. A benchmark, not a test: missing the
target is reported; a wrong end state (a column not widened, a foreign key missing or renamed, rows lost)
is an error (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import secrets
import signal
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

import bench_oauth_info as common  # noqa: E402  (machine facts, docs writing)

from tests.seed000_legacy import APP, AT, build_legacy  # noqa: E402
from tests.support import data, servers  # noqa: E402
from tests.support.modules import run_module  # noqa: E402

ENGINES = ("mysql", "postgresql")
TARGET_RATIO = 1.5
#: a writer statement slower than this counts as stalled (the time it waited is added to the total)
STALL_THRESHOLD = 0.1
FK_NAME = "oauth2_provider_acce_application_id_b22886e1_fk_oauth2_pr"
RESULTS_DIR = os.path.join(ROOT, "bench", "results")
DOCS_FILE = os.path.join(ROOT, "docs", "performance.md")
DOCS_BEGIN = "<!-- bench:widen -->"
DOCS_END = "<!-- /bench:widen -->"


class BenchFailure(AssertionError):
    """The end state is wrong, or the benchmark could not set up its database."""


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def q(target, name):
    return "`%s`" % name if target.engine == "mysql" else '"%s"' % name


# --------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------


def analyze(target):
    if target.engine == "mysql":
        for table in target.tables():
            target.query("ANALYZE TABLE `%s`" % table)
    else:
        target.execute("VACUUM ANALYZE")


def make_source(target, rows):
    """The legacy site with ``rows`` access tokens whose application_id is an int with its foreign key."""
    build_legacy(target, tokens=30)
    at, col, fk = q(target, AT), q(target, "application_id"), q(target, FK_NAME)
    if target.engine == "mysql":
        target.execute("ALTER TABLE %s MODIFY %s int(11) NULL, ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)"
                       % (at, col, fk, col, q(target, APP), q(target, "id")))
    else:
        target.execute("ALTER TABLE %s DROP CONSTRAINT %s, ALTER COLUMN %s TYPE integer, ADD CONSTRAINT %s "
                       "FOREIGN KEY (%s) REFERENCES %s (%s) DEFERRABLE INITIALLY DEFERRED" % (
                           at, fk, col, fk, col, q(target, APP), q(target, "id")))
    started = time.monotonic()
    data.bulk_insert_access_tokens(target, rows - 30, 1, 1, with_checksum=False)
    log("%s: %d access tokens inserted in %.1f s" % (target.engine, rows, time.monotonic() - started))
    analyze(target)


# --------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------


class Writer(threading.Thread):
    """Inserts one access token and updates another, in turn, and records how long each statement took."""

    def __init__(self, target, max_id):
        super().__init__(daemon=True)
        self.target = target
        self.max_id = max_id
        self.stop = threading.Event()
        self.latencies = []  # (start offset s, seconds, kind)
        self.errors = []
        self.started_at = None

    def run(self):
        conn = self.target.connect()
        try:
            cur = conn.cursor()
            ph = self.target.placeholder
            insert = ("INSERT INTO %s (token, expires, scope, application_id, user_id, created, updated) "
                      "VALUES (%s, %s, 'read', 1, 1, %s, %s)" % (q(self.target, AT), ph, ph, ph, ph))
            update = "UPDATE %s SET scope = %s WHERE id = %s" % (q(self.target, AT), ph, ph)
            now = datetime.datetime.now(datetime.timezone.utc)
            if self.target.engine == "mysql":
                now = now.replace(tzinfo=None)
            self.started_at = time.monotonic()
            i = 0
            while not self.stop.is_set():
                i += 1
                if i % 2:
                    sql, params, kind = insert, ("bench-%s" % secrets.token_hex(12), now, now, now), "insert"
                else:
                    sql, params, kind = update, ("read write", 1 + (i * 7919) % self.max_id), "update"
                t0 = time.monotonic()
                try:
                    cur.execute(sql, params)
                except Exception as exc:  # noqa: BLE001 - recorded, the benchmark reports it
                    self.errors.append("%s: %s" % (kind, exc))
                    time.sleep(0.05)
                    continue
                self.latencies.append((t0 - self.started_at, time.monotonic() - t0, kind))
                time.sleep(0.005)
        finally:
            conn.close()

    def summary(self):
        lat = [x[1] for x in self.latencies]
        stalls = [x for x in lat if x > STALL_THRESHOLD]
        return dict(statements=len(lat), max_wait_s=round(max(lat), 3) if lat else None,
                    total_stall_s=round(sum(stalls), 3), stalls=len(stalls),
                    longest=[dict(at_s=round(a, 2), seconds=round(s, 3), kind=k)
                             for a, s, k in sorted(self.latencies, key=lambda x: -x[1])[:5]],
                    errors=self.errors[:5])


@contextlib.contextmanager
def writer_running(target):
    max_id = target.query("SELECT MAX(id) FROM %s" % q(target, AT))[0][0]
    writer = Writer(target, max_id)
    writer.start()
    time.sleep(1.0)  # the writer's normal pace first
    try:
        yield writer
    finally:
        time.sleep(1.0)
        writer.stop.set()
        writer.join(120)


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


def timed_statements(target, statements):
    out = []
    with contextlib.closing(target.connect()) as conn:
        cur = conn.cursor()
        for sql in statements:
            t0 = time.monotonic()
            cur.execute(sql)
            out.append(dict(sql=sql, seconds=round(time.monotonic() - t0, 3)))
    return out


def referencing_fks(target):
    """[(table, name, column, definition for re-adding)] of the foreign keys referencing application.id."""
    if target.engine == "mysql":
        rows = target.query(
            "SELECT k.table_name, k.constraint_name, k.column_name, r.delete_rule, r.update_rule "
            "FROM information_schema.key_column_usage k JOIN information_schema.referential_constraints r "
            "ON r.constraint_schema = k.constraint_schema AND r.constraint_name = k.constraint_name "
            "WHERE k.table_schema = DATABASE() AND k.referenced_table_name = %s", (APP,))
        out = []
        for table, name, column, on_delete, on_update in rows:
            extra = "".join(" ON %s %s" % (a, r) for a, r in (("DELETE", on_delete), ("UPDATE", on_update))
                            if r != "RESTRICT")
            out.append((table, name, column, "FOREIGN KEY (`%s`) REFERENCES `%s` (`id`)%s" % (column, APP, extra)))
        return out
    rows = target.query(
        "SELECT t.relname, con.conname, a.attname, pg_get_constraintdef(con.oid) FROM pg_constraint con "
        "JOIN pg_class t ON t.oid = con.conrelid JOIN pg_class r ON r.oid = con.confrelid "
        "JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1] "
        "WHERE con.contype = 'f' AND r.relname = %s", (APP,))
    return [tuple(r) for r in rows]


def column_is_int(target, table, column):
    if target.engine == "mysql":
        [(dt,)] = target.query("SELECT data_type FROM information_schema.columns WHERE table_schema = DATABASE() "
                               "AND table_name = %s AND column_name = %s", (table, column))
    else:
        [(dt,)] = target.query("SELECT data_type FROM information_schema.columns WHERE table_schema = "
                               "current_schema() AND table_name = %s AND column_name = %s", (table, column))
    return dt in ("int", "integer")


def legacy_state(target):
    """What the restore between scenarios puts back: the foreign keys to application.id and the int columns."""
    fks = referencing_fks(target)
    ints = []
    for table, column in [(APP, "id")] + [(t, c) for t, _n, c, _d in fks]:
        if column_is_int(target, table, column) and (table, column) not in [(x[0], x[1]) for x in ints]:
            nullable = [c for c in data.table_columns(target, table) if c.name == column][0].nullable
            ints.append((table, column, nullable))
    return dict(fks=sorted(fks), ints=sorted(ints))


def restore(target, state):
    """Put the legacy state back (untimed, no writer): the int columns and the original foreign keys, exactly;
    foreign keys the repair created (where InnoDB had refused them) are dropped again. MariaDB re-adds them
    under foreign_key_checks=0 (one copy per table), PostgreSQL in one transaction."""
    mysql = target.engine == "mysql"
    with contextlib.closing(target.connect()) as conn:
        cur = conn.cursor()
        if mysql:
            cur.execute("SET SESSION foreign_key_checks = 0")
        else:
            cur.execute("BEGIN")
        for table, name, _c, _d in referencing_fks(target):
            cur.execute("ALTER TABLE %s %s %s" % (q(target, table), "DROP FOREIGN KEY" if mysql else "DROP CONSTRAINT",
                                                  q(target, name)))
        per_table = {}
        for table, column, nullable in state["ints"]:
            if (table, column) == (APP, "id"):
                if mysql:
                    cur.execute("ALTER TABLE %s MODIFY `id` int(11) NOT NULL AUTO_INCREMENT" % q(target, APP))
                else:
                    cur.execute('ALTER TABLE "%s" ALTER COLUMN "id" TYPE integer' % APP)
                    cur.execute("ALTER SEQUENCE %s_id_seq AS integer" % APP)
                continue
            per_table.setdefault(table, []).append(
                "MODIFY %s int(11) %s" % (q(target, column), "NULL" if nullable else "NOT NULL") if mysql
                else "ALTER COLUMN %s TYPE integer" % q(target, column))
        for table, name, _column, definition in state["fks"]:
            per_table.setdefault(table, []).append("ADD CONSTRAINT %s %s" % (q(target, name), definition))
        for table, clauses in sorted(per_table.items()):
            cur.execute("ALTER TABLE %s %s" % (q(target, table), ", ".join(clauses)))
        if mysql:
            cur.execute("SET SESSION foreign_key_checks = 1")
            cur.execute("DROP TABLE IF EXISTS `django_ops_oauth_repair_state`")
        else:
            cur.execute("COMMIT")
    if legacy_state(target) != state:
        raise BenchFailure("the legacy state could not be restored: %s != %s" % (legacy_state(target), state))


def scenario_baseline(target):
    at, col = q(target, AT), q(target, "application_id")
    if target.engine == "mysql":
        target.execute("ALTER TABLE %s DROP FOREIGN KEY %s" % (at, q(target, FK_NAME)))
        sql = "ALTER TABLE %s MODIFY %s bigint NULL" % (at, col)
    else:
        target.execute("ALTER TABLE %s DROP CONSTRAINT %s" % (at, q(target, FK_NAME)))
        sql = "ALTER TABLE %s ALTER COLUMN %s TYPE bigint" % (at, col)
    with writer_running(target) as writer:
        t0 = time.monotonic()
        steps = timed_statements(target, [sql])
        wall = time.monotonic() - t0
    return dict(wall_s=round(wall, 3), steps=steps, writer=writer.summary())


def scenario_naive(target):
    fks = referencing_fks(target)
    drops, widen, adds = [], [], []
    for table, name, column, definition in fks:
        t = q(target, table)
        drops.append("ALTER TABLE %s %s %s" % (t, "DROP FOREIGN KEY" if target.engine == "mysql"
                                               else "DROP CONSTRAINT", q(target, name)))
        if column_is_int(target, table, column):
            nullable = [c for c in data.table_columns(target, table) if c.name == column][0].nullable
            null_sql = "NULL" if nullable else "NOT NULL"
            if target.engine == "mysql":
                widen.append("ALTER TABLE %s MODIFY %s bigint %s" % (t, q(target, column), null_sql))
            else:
                widen.append("ALTER TABLE %s ALTER COLUMN %s TYPE bigint" % (t, q(target, column)))
        adds.append("ALTER TABLE %s ADD CONSTRAINT %s %s" % (t, q(target, name), definition))
    if target.engine == "mysql":
        pk = ["ALTER TABLE %s MODIFY `id` bigint NOT NULL AUTO_INCREMENT" % q(target, APP)]
    else:
        pk = ['ALTER TABLE "%s" ALTER COLUMN "id" TYPE bigint' % APP,
              "ALTER SEQUENCE %s_id_seq AS bigint" % APP]
    with writer_running(target) as writer:
        t0 = time.monotonic()
        steps = timed_statements(target, drops + pk + widen + adds)
        wall = time.monotonic() - t0
    return dict(wall_s=round(wall, 3), steps=steps, writer=writer.summary())


def scenario_repair(target):
    params = dict(target.params, fix=["int_width_mismatch"], lock_timeout=60000)
    with writer_running(target) as writer:
        t0 = time.monotonic()
        result = run_module("oauth_repair", params)
        wall = time.monotonic() - t0
    if result.get("failed"):
        raise BenchFailure("oauth_repair failed on %s: %s" % (target.engine, result.get("msg")))
    steps = [dict(sql=" | ".join(r["sql"])[:300], step=r["key"], seconds=r.get("seconds"), status=r["status"],
                  lock=r["lock"]) for r in result["plan"]]
    return dict(wall_s=round(wall, 3), steps=steps, writer=writer.summary(),
                orphan_checks=result["report"].get("orphan_checks", []), executed=result["executed_queries"])


def verify(target, rows_before, result, label):
    """The end state: widened, every foreign key to the application present under its name, no row lost."""
    problems = []
    if column_is_int(target, APP, "id") and label != "baseline":
        problems.append("application.id is still int")
    if column_is_int(target, AT, "application_id"):
        problems.append("accesstoken.application_id is still int")
    if label != "baseline" and FK_NAME not in [x[1] for x in referencing_fks(target)]:
        problems.append("foreign key %s missing" % FK_NAME)
    rows = target.query("SELECT COUNT(*) FROM %s" % q(target, AT))[0][0]
    if rows < rows_before:  # the writer only adds rows
        problems.append("rows lost: %d < %d" % (rows, rows_before))
    if target.engine == "postgresql" and label == "repair":
        bad = target.query("SELECT conname FROM pg_constraint WHERE contype = 'f' AND NOT convalidated")
        if bad:
            problems.append("foreign keys left NOT VALID: %s" % bad)
    if label == "repair" and target.engine == "mysql" and "django_ops_oauth_repair_state" in target.tables():
        problems.append("the state table was left behind")
    if result["writer"]["errors"]:
        problems.append("writer errors: %s" % result["writer"]["errors"])
    return problems


SCENARIOS = {"baseline": scenario_baseline, "naive": scenario_naive, "repair": scenario_repair}


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0


def bench_engine(engine, rows, repeat):
    server_cm = servers.mariadb_server() if engine == "mysql" else servers.postgres_server()
    result = dict(benchmark="widen", engine=engine, rows=rows, repeat=repeat, load_average_start=os.getloadavg())
    # (a) and (c) alternate, (b) once in the middle: the same database, the legacy state restored in between
    order = []
    for i in range(repeat):
        order += ["baseline", "repair"]
        if i == 0:
            order.append("naive")
    with server_cm as server:
        log("%s: %s" % (engine, server.describe()))
        with servers.temporary_database(server) as db:
            t0 = time.monotonic()
            make_source(db, rows)
            result["setup_seconds"] = round(time.monotonic() - t0, 1)
            result["server"] = dict(engine=engine, server_version=server.version)
            state = legacy_state(db)
            result["legacy_state"] = state
            runs = dict((k, []) for k in SCENARIOS)
            for n, label in enumerate(order):
                if n:
                    t0 = time.monotonic()
                    restore(db, state)
                    log("%s: legacy state restored in %.1f s" % (engine, time.monotonic() - t0))
                rows_before = db.query("SELECT COUNT(*) FROM %s" % q(db, AT))[0][0]
                log("%s: scenario %s" % (engine, label))
                r = SCENARIOS[label](db)
                r["problems"] = verify(db, rows_before, r, label)
                r["load_average"] = os.getloadavg()
                runs[label].append(r)
                log("%s: %s: wall %.1f s, writer max wait %s s, total stall %s s%s" % (
                    engine, label, r["wall_s"], r["writer"]["max_wait_s"], r["writer"]["total_stall_s"],
                    "; WRONG: %s" % r["problems"] if r["problems"] else ""))
    result["runs"] = runs
    for label, items in runs.items():
        result[label] = dict(
            items[len(items) // 2] if len(items) % 2 else items[-1],
            wall_s=median([x["wall_s"] for x in items]),
            writer=dict(items[-1]["writer"], max_wait_s=median([x["writer"]["max_wait_s"] for x in items]),
                        total_stall_s=median([x["writer"]["total_stall_s"] for x in items])),
            all_total_stall_s=[x["writer"]["total_stall_s"] for x in items],
            problems=[p for x in items for p in x["problems"]])
    base = result["baseline"]["writer"]["total_stall_s"] or None
    for label in ("naive", "repair"):
        stall = result[label]["writer"]["total_stall_s"]
        result[label]["ratio_to_baseline"] = round(stall / base, 2) if base else None
    result["meets_target"] = bool(base) and result["repair"]["ratio_to_baseline"] <= TARGET_RATIO
    result["load_average_end"] = os.getloadavg()
    result["ok"] = not any(result[k]["problems"] for k in SCENARIOS)
    return result


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def fmt(x):
    return "-" if x is None else "%.1f" % x if x >= 10 else "%.2f" % x


def table_rows(results):
    header = ["engine", "server", "rows", "scenario", "wall s", "writer max wait s", "writer total stall s",
              "stall / baseline", "<= %gx" % TARGET_RATIO]
    rows = []
    for r in results:
        if r.get("error"):
            rows.append([r["engine"], "-", "{:,}".format(r["rows"]), "FAILED", "-", "-", "-", "-", "-"])
            continue
        for label, name in (("baseline", "(a) MODIFY / ALTER TYPE alone"), ("naive", "(b) naive drop/modify/re-add"),
                            ("repair", "(c) oauth_repair")):
            s = r[label]
            ratio = s.get("ratio_to_baseline")
            rows.append([r["engine"], r["server"]["server_version"].split("-")[0].split(" ")[0], "{:,}".format(r["rows"]), name,
                         fmt(s["wall_s"]), fmt(s["writer"]["max_wait_s"]), fmt(s["writer"]["total_stall_s"]),
                         "1.00" if label == "baseline" else ("%.2fx" % ratio if ratio is not None else "-"),
                         ("yes" if r["meets_target"] else "NO") if label == "repair" else ""])
    return header, rows


def print_table(results):
    header, rows = table_rows(results)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header] + rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)))
    for r in results:
        if r.get("error"):
            print("\n%s: FAILED: %s" % (r["engine"], r["error"]))
            continue
        print("\n%s statements:" % r["engine"])
        for label in ("baseline", "naive", "repair"):
            for st in r[label]["steps"]:
                print("  %-8s %8s s  %s" % (label, st["seconds"], (st.get("step") or st["sql"])[:140]))
            if r[label]["problems"]:
                print("  %-8s WRONG: %s" % (label, r[label]["problems"]))
        for check in r["repair"].get("orphan_checks", []):
            print("  orphan check %s -> %s (%s): %d orphans, %.3f s" % (
                check["column"], check["references"], check["when"], check["orphans"], check["seconds"]))


def write_json(result):
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, "widen-%s.json" % result["engine"])
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    return path


def docs_section(results, facts, rows):
    header, table = table_rows(results)
    engines = [r["engine"] for r in results]
    lines = [
        DOCS_BEGIN,
        "## Widening a {:,}-row foreign key column from int to bigint".format(rows),
        "",
        "Written by `.venv/bin/python bench/bench_widen.py --rows %d --engines %s --write-docs` on %s. Target: "
        "the writer's total stall under `oauth_repair` at most %gx the column's `MODIFY` / `ALTER COLUMN TYPE` "
        "alone, referential integrity proven before the foreign key is back." % (
            rows, ",".join(engines), datetime.date.today().isoformat(), TARGET_RATIO),
        "",
        "Machine: %s cores (%s), %s GiB RAM, %s; Python %s, %s. Servers: %s, on the same machine, default "
        "configuration (MariaDB's buffer pool is 128 MiB: the table does not fit). **Other work shared the two "
        "cores** (up to six other sessions running tests in the same checkout): load average (1 min) at the start "
        "and the end of each engine's run: %s. Compare the ratios, measured in the same run, rather than the "
        "seconds." % (
            facts["cores"], facts["cpu"] or "unknown CPU", facts["memory_gib"], facts["platform"], facts["python"],
            ", ".join("%s %s" % kv for kv in sorted(facts["packages"].items())),
            "; ".join("%s %s" % (r["engine"], r["server"]["server_version"]) for r in results if r.get("server")),
            ", ".join("%s %.1f-%.1f" % (r["engine"], r["load_average_start"][0], r["load_average_end"][0])
                      for r in results if r.get("load_average_end"))),
        "",
        "The legacy site of field report 000 (int `application.id`) with `accesstoken.application_id` an int "
        "with its foreign key, filled with the access tokens. All runs on that one database, its legacy state "
        "restored exactly (untimed) before each; (a) and (c) %d times each, alternating, (b) once; medians "
        "(all values in the notes below). A writer thread inserts an access token and updates another one in "
        "turn (5 ms apart) the whole time. *writer "
        "max wait*: its slowest statement; *writer total stall*: the sum of its statements that took over %g s. "
        "(a) the column's `MODIFY` (MariaDB) / `ALTER COLUMN TYPE` (PostgreSQL) alone, its foreign key dropped "
        "beforehand; (b) the report's procedure: drop every foreign key to the application, widen "
        "`application.id`, widen each referencing column, re-add each foreign key; (c) `oauth_repair` with "
        "`fix: [int_width_mismatch]`." % (results[0].get("repeat", 1), STALL_THRESHOLD),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in table:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines.append("")
    for r in results:
        if r.get("error"):
            continue
        naive = dict((s["sql"], s["seconds"]) for s in r["naive"]["steps"])
        add_fk = sum(v for k, v in naive.items() if " ADD CONSTRAINT " in k and AT in k)
        big = [s for s in r["repair"]["steps"] if s["seconds"] and s["seconds"] >= 0.5]
        checks = [c for c in r["repair"].get("orphan_checks", []) if c["column"].startswith(AT)]
        lines.append("- %s: writer total stall of each run: (a) %s s, (c) %s s." % (
            r["engine"], ", ".join(fmt(x) for x in r["baseline"]["all_total_stall_s"]),
            ", ".join(fmt(x) for x in r["repair"]["all_total_stall_s"])))
        lines.append("- %s: in (b), re-adding the access token foreign key took %s s of the %s s; in (c) the "
                     "steps over 0.5 s were %s; the orphan check of `accesstoken.application_id` (%s) took %s "
                     "and found %s." % (
                         r["engine"], fmt(add_fk), fmt(r["naive"]["wall_s"]),
                         "; ".join("`%s` %s s" % (s["step"], fmt(s["seconds"])) for s in big) or "none",
                         ("before the foreign key is back, and again after" if r["engine"] == "mysql" else
                          "before VALIDATE CONSTRAINT; the foreign key came back NOT VALID, enforced for new rows, "
                          "when the widening committed"),
                         " + ".join("%.3f s" % c["seconds"] for c in checks) or "-",
                         "no orphan" if checks and not any(c["orphans"] for c in checks) else "orphans"))
    lines.append("")
    lines.append("Raw numbers: `bench/results/widen-<engine>.json` (not committed).")
    lines.append(DOCS_END)
    return "\n".join(lines) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rows", type=int, default=3000000, help="access tokens (default 3000000)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated among mysql, postgresql")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of (a) and (c), alternating (default 2; the median is reported)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the widen section of docs/performance.md")
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not args.engines or any(e not in ENGINES for e in args.engines):
        parser.error("choose engines among %s" % ", ".join(ENGINES))
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    return args


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    signal.signal(signal.SIGTERM, _terminate)
    facts = common.machine_facts()
    results = []
    for engine in args.engines:
        try:
            result = bench_engine(engine, args.rows, args.repeat)
        except Exception as exc:  # noqa: BLE001 - report, go on with the next engine
            traceback.print_exc()
            result = dict(benchmark="widen", engine=engine, rows=args.rows, ok=False,
                          error="%s: %s" % (type(exc).__name__, exc))
        result["machine"] = facts
        results.append(result)
        log("%s: results in %s" % (engine, os.path.relpath(write_json(result), ROOT)))
    print()
    print_table(results)
    failed = [r["engine"] for r in results if not r.get("ok")]
    if args.write_docs:
        if failed:
            log("not writing docs: %s failed or ended wrong" % failed)
        else:
            section = docs_section(results, facts, args.rows)
            log("wrote %s" % os.path.relpath(common.write_docs(section, DOCS_BEGIN, DOCS_END), ROOT))
    missed = [r["engine"] for r in results if r.get("ok") and not r.get("meets_target")]
    if missed:
        print("\nabove the %gx target on: %s" % (TARGET_RATIO, ", ".join(missed)))
    if failed:
        print("\nFAILED on: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
