"""Benchmark: what the schema truth (the site's Django models) adds to ``oauth_info`` on a big database.

Run from the repository root with the project's virtualenv::

    .venv/bin/python bench/bench_drift.py [--rows 1000000] [--engines mysql,postgresql,sqlite]
        [--repeat 3] [--write-docs]

For each engine it

1. sets up the database of bench_oauth_info.py, with its own code (imported, not copied): a scratch database
   (``oar_t_<hex>``; SQLite: a file in a temporary directory; dropped at the end, also on error, Ctrl-C or
   SIGTERM) migrated by the real ``manage.py migrate`` of the Django test project (tests/django_project), a
   user and an application made through DOT's models, ``--rows`` access tokens inserted set-based with their
   right ``token_checksum``, then ANALYZE (PostgreSQL: VACUUM ANALYZE);
2. times ``oauth_info`` in-process (``run_module``) ``--repeat`` times each way, alternating:

   a. **baseline**: without the ``django`` option (the schema truth is ``dot``: no probe, no diff);
   b. **django_models**: with ``django`` (the test project's ``project_dir``, ``python``, ``settings`` and
      environment, tests/support/django.py's ``site_option``) and ``expected_schema: django_models``: the
      probe subprocess reads the site's models (plugins/module_utils/truth/), the live catalog of their tables
      is read and diffed (plugins/module_utils/schema/diff.py). In these runs the probe, the catalog read and
      the diff are timed by wrapping the functions the diagnosis calls (in this process, nothing replaced);

3. checks the answer: both ways healthy as bench_oauth_info checks it (no checksum finding, nothing pending,
   the exact row count); with ``django``, the schema truth is ``django_models`` and a fresh ``migrate`` shows
   **zero** ``schema_drift_*`` findings. A wrong answer or a failing module is an error (exit status 1).

Reported: the medians, the **added seconds** (median b - median a; target: under 5 s) and the ratio b / a,
measured in the same run; the probe, catalog and diff seconds. It prints a table, writes
``bench/results/drift-<engine>.json`` and, with ``--write-docs``, rewrites its own section of
docs/performance.md (between ``<!-- bench:drift -->`` and ``<!-- /bench:drift -->``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)

import bench_oauth_info as common  # noqa: E402  (setup, checks, machine facts, docs writing)

from tests.support import data  # noqa: E402
from tests.support import django as django_project  # noqa: E402
from tests.support.modules import module_utils, run_module  # noqa: E402

ENGINES = ("mysql", "postgresql", "sqlite")
TARGET_ADDED_SECONDS = 5.0
RESULTS_DIR = os.path.join(ROOT, "bench", "results")
DOCS_BEGIN = "<!-- bench:drift -->"
DOCS_END = "<!-- /bench:drift -->"


class BenchFailure(AssertionError):
    """The diagnosis is wrong, or the module failed."""


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Setup (bench_oauth_info's)
# --------------------------------------------------------------------------


def seed(target, n_rows):
    """bench_oauth_info's setup: migrate, a user and an application through DOT, the tokens, ANALYZE."""
    setup = {}
    log("%s: migrating with the real DOT migrations" % target.engine)
    setup["migrate"] = common.timed(django_project.migrate, target)[1]
    made, setup["user_and_application"] = common.timed(
        django_project.issue_tokens, target, 0, "--no-refresh", "--username", "oar-bench")
    log("%s: inserting %d access tokens" % (target.engine, n_rows))
    setup["insert_tokens"] = common.timed(data.bulk_insert_access_tokens, target, n_rows,
                                          made["application_id"], made["user_id"], True)[1]
    setup["analyze"] = common.timed(common.analyze, target)[1]
    return dict((k, round(v, 3)) for k, v in setup.items())


# --------------------------------------------------------------------------
# Timing the truth's parts
# --------------------------------------------------------------------------


@contextlib.contextmanager
def truth_timer():
    """Time the probe (``expected_schema_for``), the live catalog read (``load_schema``) and the ``diff`` that
    the diagnosis calls, by wrapping them in this process; the wrapped functions run unchanged."""
    diagnosis = module_utils("diagnosis")
    base = module_utils("dialects.base")
    dialect_cls = [c for c in vars(base).values() if isinstance(c, type) and "load_schema" in vars(c)][0]
    spent = dict(probe=0.0, catalog=0.0, diff=0.0)
    originals = (diagnosis.expected_schema_for, diagnosis.diff, dialect_cls.load_schema)

    def wrap(key, fn):
        def timed_fn(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
        return timed_fn

    diagnosis.expected_schema_for = wrap("probe", originals[0])
    diagnosis.diff = wrap("diff", originals[1])
    dialect_cls.load_schema = wrap("catalog", originals[2])
    try:
        yield spent
    finally:
        diagnosis.expected_schema_for, diagnosis.diff, dialect_cls.load_schema = originals


# --------------------------------------------------------------------------
# Runs and checks
# --------------------------------------------------------------------------


def run_info(params):
    start = time.perf_counter()
    result = run_module("oauth_info", params)
    seconds = time.perf_counter() - start
    if result.get("failed"):
        raise BenchFailure("oauth_info failed: %s" % result.get("msg"))
    return result, seconds


def drift_findings(result):
    return [(f["code"], (f.get("objects") or [""])[0], f["severity"]) for f in result["findings"]
            if f["code"].startswith("schema_drift_")]


def check_run(result, n_rows, with_django):
    problems = common.check_healthy(result, n_rows)
    truth = result.get("schema_truth") or {}
    if with_django:
        if truth.get("source") != "django_models":
            problems.append("schema truth %r, expected django_models" % truth.get("source"))
        if data.ACCESS_TOKEN_TABLE not in (truth.get("tables") or []):
            problems.append("the probe did not read %s (tables %s)" % (data.ACCESS_TOKEN_TABLE, truth.get("tables")))
        found = drift_findings(result)
        if found:
            problems.append("a fresh migrate shows drift: %s" % found)
        if truth.get("differences"):
            problems.append("schema_truth reports %r differences" % truth.get("differences"))
    elif truth.get("source") not in (None, "dot"):
        problems.append("without django the schema truth is %r, expected dot" % truth.get("source"))
    return problems


def median(values):
    return statistics.median(values) if values else None


def bench_engine(engine, n_rows, repeat, workdir):
    out = dict(benchmark="drift", engine=engine, rows=n_rows, repeat=repeat, target_added_seconds=TARGET_ADDED_SECONDS,
               started=common.now_iso(), load_average_start=os.getloadavg())
    with common.scratch_database(engine, workdir) as target:
        out["database"] = os.path.basename(target.name)
        out["setup_seconds"] = seed(target, n_rows)
        log("%s: seeded in %.1f s" % (engine, out["setup_seconds"]["insert_tokens"]))
        base_params = dict(target.params)
        site_params = dict(target.params, django=django_project.site_option(target), expected_schema="django_models")
        runs = dict(baseline=[], django_models=[])
        problems = []
        for i in range(repeat):
            for label, params in (("baseline", base_params), ("django_models", site_params)):
                with truth_timer() as spent:
                    result, seconds = run_info(params)
                run = dict(wall_s=round(seconds, 3), module_duration=result.get("duration"),
                           probe_s=round(spent["probe"], 3), catalog_s=round(spent["catalog"], 3),
                           diff_s=round(spent["diff"], 4), load_average=os.getloadavg()[0])
                found = check_run(result, n_rows, label == "django_models")
                problems.extend("%s run %d: %s" % (label, i + 1, p) for p in found)
                if label == "django_models":
                    truth = result.get("schema_truth") or {}
                    run.update(truth=dict((k, v) for k, v in truth.items() if k != "tables"),
                               truth_tables=len(truth.get("tables") or []))
                run["findings"] = sorted(set(f["code"] for f in result["findings"]))
                runs[label].append(run)
                log("%s %s: run %d/%d %.3f s (probe %.3f s, catalog %.3f s, diff %.4f s)%s" % (
                    engine, label, i + 1, repeat, seconds, spent["probe"], spent["catalog"], spent["diff"],
                    "; WRONG: %s" % found if found else ""))
        out["server"] = result.get("server")
    out["runs"] = runs
    base = median([r["wall_s"] for r in runs["baseline"]])
    with_site = median([r["wall_s"] for r in runs["django_models"]])
    out["baseline_median_s"] = round(base, 3)
    out["django_models_median_s"] = round(with_site, 3)
    out["added_s"] = round(with_site - base, 3)
    out["ratio"] = round(with_site / base, 2) if base else None
    for key in ("probe_s", "catalog_s", "diff_s"):
        out["%s_median" % key[:-2]] = round(median([r[key] for r in runs["django_models"]]), 4)
    last = runs["django_models"][-1]
    out["truth"] = last.get("truth")
    out["truth_tables"] = last.get("truth_tables")
    out["meets_target"] = out["added_s"] < TARGET_ADDED_SECONDS
    out["problems"] = problems
    out["finished"] = common.now_iso()
    out["load_average_end"] = os.getloadavg()
    out["ok"] = not problems
    return out


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def table_rows(results):
    header = ["engine", "server", "rows", "(a) without django s", "(b) django_models s", "added s", "b / a",
              "probe s", "catalog s", "diff s", "drift findings", "added < %g s" % TARGET_ADDED_SECONDS]
    rows = []
    for r in results:
        if r.get("error"):
            rows.append([r["engine"], "-", "{:,}".format(r["rows"]), "FAILED"] + ["-"] * (len(header) - 4))
            continue
        server = r.get("server") or {}
        rows.append([
            r["engine"], "%s %s" % (server.get("vendor", ""), common.short_version(server.get("server_version"))),
            "{:,}".format(r["rows"]), common.fmt_s(r["baseline_median_s"]), common.fmt_s(r["django_models_median_s"]),
            "%.2f" % r["added_s"], "%.2fx" % r["ratio"], common.fmt_s(r["probe_median"]),
            common.fmt_s(r["catalog_median"]), "%.4f" % r["diff_median"],
            "0" if r["ok"] else "WRONG", "yes" if r["meets_target"] else "NO"])
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
        print("\n%s: setup %s" % (r["engine"], ", ".join("%s %.1f s" % kv for kv in r["setup_seconds"].items())))
        for label in ("baseline", "django_models"):
            print("  %-13s runs %s s" % (label, [x["wall_s"] for x in r["runs"][label]]))
        truth = r["truth"] or {}
        print("  probe runs %s s; schema truth %s (Django %s, %s tables, %s differences)" % (
            [x["probe_s"] for x in r["runs"]["django_models"]], truth.get("source"), truth.get("django"),
            r["truth_tables"], truth.get("differences")))
        for p in r["problems"]:
            print("  WRONG: %s" % p)


def write_json(result):
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, "drift-%s.json" % result["engine"])
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    return path


def docs_section(results, facts, n_rows, repeat, note=None):
    header, table = table_rows(results)
    engines = [r["engine"] for r in results]
    lines = [
        DOCS_BEGIN,
        "## The schema truth (django_models) in oauth_info on {:,} access tokens".format(n_rows),
        "",
        "Written by `.venv/bin/python bench/bench_drift.py --rows %d --engines %s --repeat %d --write-docs` on %s. "
        "Target (issue 11): the probe and the diff add under %g s to `oauth_info`." % (
            n_rows, ",".join(engines), repeat, datetime.date.today().isoformat(), TARGET_ADDED_SECONDS),
        "",
        "Machine: %s cores (%s), %s GiB RAM, %s; Python %s, %s. Servers: %s, on the same machine, default "
        "configuration. **Other work shared the two cores** (other sessions running tests): load average (1 min) "
        "at the start and the end of each engine's run: %s. Compare the added seconds and the ratio, measured in "
        "the same run, rather than the seconds." % (
            facts["cores"], facts["cpu"] or "unknown CPU", facts["memory_gib"], facts["platform"], facts["python"],
            ", ".join("%s %s" % kv for kv in sorted(facts["packages"].items())),
            "; ".join("%s %s" % (r["engine"], (r.get("server") or {}).get("server_version")) for r in results
                      if r.get("server")),
            ", ".join("%s %.1f-%.1f" % (r["engine"], r["load_average_start"][0], r["load_average_end"][0])
                      for r in results if r.get("load_average_end"))),
        "",
        "The database of `bench_oauth_info.py` (same setup code): migrated by the real DOT migrations, the access "
        "tokens inserted set-based with their checksums, ANALYZEd. `oauth_info` in-process, %d times each way, "
        "alternating; medians. (a) without the `django` option (schema truth `dot`); (b) with `django` (the test "
        "project) and `expected_schema: django_models`: a probe subprocess with the site's Python reads the "
        "models, then the live catalog of their tables is read and diffed. *probe*, *catalog* and *diff* are "
        "the time (b) spent in each, timed inside the module run. The answer is checked: both healthy, and "
        "zero `schema_drift_*` findings after a fresh `migrate`." % repeat,
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
        lines.append("- %s: (a) %s s, (b) %s s; %s tables in the truth." % (
            r["engine"], ", ".join("%.2f" % x["wall_s"] for x in r["runs"]["baseline"]),
            ", ".join("%.2f" % x["wall_s"] for x in r["runs"]["django_models"]), r["truth_tables"]))
    if note:
        lines.append("")
        lines.append(note)
    lines.append("")
    lines.append("Raw numbers: `bench/results/drift-<engine>.json` (not committed).")
    lines.append(DOCS_END)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rows", type=int, default=1000000, help="access tokens to insert (default 1000000)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated, among %s (default: all)" % ", ".join(ENGINES))
    parser.add_argument("--repeat", type=int, default=3, help="timed runs each way (default 3)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the drift section of docs/performance.md")
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not args.engines or any(e not in ENGINES for e in args.engines):
        parser.error("choose engines among %s" % ", ".join(ENGINES))
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
    results = []
    workdir = tempfile.mkdtemp(prefix="oar-bench-")
    try:
        for engine in args.engines:
            try:
                result = bench_engine(engine, args.rows, args.repeat, workdir)
            except Exception as exc:  # noqa: BLE001 - report, go on with the next engine
                traceback.print_exc()
                result = dict(benchmark="drift", engine=engine, rows=args.rows, ok=False,
                              error="%s: %s" % (type(exc).__name__, exc))
            result["machine"] = facts
            results.append(result)
            log("%s: results in %s" % (engine, os.path.relpath(write_json(result), ROOT)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(results)
    failed = [r["engine"] for r in results if not r.get("ok")]
    if args.write_docs:
        if failed:
            log("not writing docs: %s failed or answered wrong" % failed)
        else:
            section = docs_section(results, facts, args.rows, args.repeat)
            log("wrote %s" % os.path.relpath(common.write_docs(section, DOCS_BEGIN, DOCS_END), ROOT))
    missed = [r["engine"] for r in results if r.get("ok") and not r.get("meets_target")]
    if missed:
        print("\nmore than %g s added on: %s" % (TARGET_ADDED_SECONDS, ", ".join(missed)))
    if failed:
        print("\nFAILED on: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
