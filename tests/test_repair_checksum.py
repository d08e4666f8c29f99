"""oauth_repair on field report 004 (DOT 3.0.0's token_checksum), end to end on real servers.

Every broken state is built the way it arises on a live site, from databases migrated, filled with
tokens and migrated back by the real Django 5.2 + django-oauth-toolkit 3.4.1 test project:

* the template of each engine is ``manage.py migrate`` (all of DOT, whose schema is kept as the reference
  of what DOT's own migrations build), ``make_tokens 3`` (tokens, refresh tokens, a client, issued by
  DOT's models) and ``manage.py migrate oauth2_provider 0011`` (back to before token_checksum); each test
  works on a private copy of it;
* then the failure of the report is re-enacted on the copy (the failed 0012 of DOT 3.0.0 on MariaDB, a
  backfill killed with SIGKILL, a concurrent index build that failed, duplicate tokens, ...);
* ``oauth_repair`` repairs it, ``django_migration`` (plugins/modules/django_migration.py) records what the
  repair completed, and the real ``manage.py migrate`` must then run to the end, ``makemigrations --check``
  be clean, ``showmigrations`` list nothing unapplied, the row counts and a content hash of every
  ``oauth2_provider_*`` table be unchanged, the schema equal the one DOT's own migrations build, and tokens
  issued before the repair authenticate on a view protected by DOT.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.findings_helpers import Databases, copy_row, drop_unique, unique_indexes
from tests.support import data
from tests.support.django import issue_tokens, migrate, run_manage, token_authenticates
from tests.support.modules import ROOT, module_utils, run_module

AT = "oauth2_provider_accesstoken"
RT = "oauth2_provider_refreshtoken"
DOT = "oauth2_provider"
M0011 = "0011_refreshtoken_token_family"
M0012 = "0012_add_token_checksum"

MYSQL = pytest.param("mysql", marks=pytest.mark.mysql, id="mysql")
POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql")
SQLITE = pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite")
ENGINES = [MYSQL, POSTGRESQL, SQLITE]
SERVER_ENGINES = [MYSQL, POSTGRESQL]

NON_ASCII = ["tøkén-ü-€-日本", "ключ-доступа-Ω", "emoji-🔑-token"]
LATIN1_TOKEN = "tøkén-ü"


def sha(text):
    """DOT's token_checksum: sha256 of the token's UTF-8 bytes, in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def qi(target, name):
    return "`%s`" % name if target.engine == "mysql" else '"%s"' % name


def ok(result):
    assert not result.get("failed"), json.dumps(result, indent=1, default=str)[:6000]
    return result


def repair(target, check_mode=False, diff=False, **options):
    return run_module("oauth_repair", dict(target.params, **options), check_mode=check_mode, diff=diff)


def info(target, **options):
    return ok(run_module("oauth_info", dict(target.params, **options)))


def codes(result):
    return sorted(set(f["code"] for f in result["findings"]))


def statuses(result):
    """{step kind: status}, e.g. {"add_column": "ran", "backfill": "done_already", ...}."""
    return dict((r["key"].split(":")[1], r["status"]) for r in result["plan"])


# --------------------------------------------------------------------------
# Fingerprints: schema, content, tokens
# --------------------------------------------------------------------------


def oauth_tables(target):
    return sorted(t for t in target.tables() if t.startswith(DOT + "_"))


def schema(target):
    """{table: {columns, indexes, constraints}} of every oauth2_provider_* table, as the catalog tells it,
    independent of column order (Django adds and drops columns at the end)."""
    tables = oauth_tables(target)
    parts = dict((t, dict(columns=[], indexes=[], constraints=[])) for t in tables)
    like = DOT + "\\_%"
    if target.engine == "mysql":
        for row in target.query(
                "SELECT table_name, column_name, column_type, is_nullable, column_default, extra, "
                "character_set_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name LIKE %s", (like,)):
            parts[row[0]]["columns"].append(row[1:])
        idx = {}
        for table, name, non_unique, column, sub_part in target.query(
                "SELECT table_name, index_name, non_unique, column_name, sub_part FROM information_schema.statistics "
                "WHERE table_schema = DATABASE() AND table_name LIKE %s ORDER BY table_name, index_name, "
                "seq_in_index", (like,)):
            idx.setdefault((table, name, int(non_unique)), []).append((column, sub_part))
        for (table, name, non_unique), cols in idx.items():
            parts[table]["indexes"].append((name, non_unique, tuple(cols)))
        for row in target.query(
                "SELECT k.table_name, k.constraint_name, k.column_name, k.referenced_table_name, "
                "k.referenced_column_name, r.delete_rule FROM information_schema.key_column_usage k JOIN "
                "information_schema.referential_constraints r ON r.constraint_schema = k.constraint_schema "
                "AND r.constraint_name = k.constraint_name AND r.table_name = k.table_name "
                "WHERE k.table_schema = DATABASE() AND k.table_name LIKE %s", (like,)):
            parts[row[0]]["constraints"].append(row[1:])
    elif target.engine == "postgresql":
        mine = "c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND c.relname LIKE %s"
        for row in target.query(
                "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, "
                "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE %s AND a.attnum > 0 AND NOT a.attisdropped" % mine, (like,)):
            parts[row[0]]["columns"].append(row[1:])
        for row in target.query(
                "SELECT c.relname, ic.relname, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisunique "
                "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid "
                "WHERE %s" % mine, (like,)):
            parts[row[0]]["indexes"].append(row[1:])
        for row in target.query(
                "SELECT c.relname, conname, contype, pg_get_constraintdef(k.oid), condeferrable, condeferred, "
                "convalidated FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE %s" % mine,
                (like,)):
            parts[row[0]]["constraints"].append(row[1:])
    else:
        for table in tables:
            parts[table]["columns"] = [r[1:6] for r in target.query("SELECT * FROM pragma_table_xinfo(?)", (table,))]
            for _seq, name, unique, origin, partial in target.query(
                    "SELECT seq, name, \"unique\", origin, partial FROM pragma_index_list(?)", (table,)):
                cols = tuple(r[0] for r in target.query("SELECT name FROM pragma_index_info(?) ORDER BY seqno",
                                                        (name,)))
                # sqlite_autoindex_<table>_<n>: n is the position among inline constraints, not a name
                shown = "sqlite_autoindex" if name.startswith("sqlite_autoindex_") else name
                parts[table]["indexes"].append((shown, unique, origin, partial, cols))
            parts[table]["constraints"] = [r[2:] for r in target.query(
                "SELECT * FROM pragma_foreign_key_list(?)", (table,))]
    return dict((t, dict((k, sorted(map(repr, v))) for k, v in p.items())) for t, p in parts.items())


def assert_same_schema(actual, expected):
    problems = []
    for table in sorted(set(actual) | set(expected)):
        a, e = actual.get(table), expected.get(table)
        if a is None or e is None:
            problems.append("%s: %s" % (table, "missing" if a is None else "unexpected"))
            continue
        for part in ("columns", "indexes", "constraints"):
            only_a = sorted(set(a[part]) - set(e[part]))
            only_e = sorted(set(e[part]) - set(a[part]))
            if only_a or only_e:
                problems.append("%s %s:\n    repaired only: %s\n    DOT only:      %s" % (table, part, only_a, only_e))
    assert not problems, "schema differs from the one DOT's own migrations build:\n" + "\n".join(problems)


def _norm(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value


def content(target, columns=None, exclude=("token_checksum",)):
    """{table: (row count, sha256 of the sorted rows, columns)} for every oauth2_provider_* table, over
    ``columns`` (default: the table's current columns but token_checksum)."""
    out = {}
    for table in sorted(columns) if columns else oauth_tables(target):
        cols = columns[table][2] if columns else [
            c.name for c in data.table_columns(target, table) if c.name not in exclude]
        rows = target.query("SELECT %s FROM %s" % (", ".join(qi(target, c) for c in cols), qi(target, table)))
        normalized = sorted(repr(tuple(_norm(v) for v in row)) for row in rows)
        out[table] = (len(rows), hashlib.sha256("\n".join(normalized).encode("utf-8")).hexdigest(), cols)
    return out


def assert_content_unchanged(target, before):
    after = content(target, columns=before)
    changed = dict((t, (before[t][:2], after[t][:2])) for t in before if after[t][:2] != before[t][:2])
    assert not changed, "row counts / content hashes changed: %s" % changed


def token_rows(target, table=AT):
    return target.query("SELECT id, token, token_checksum FROM %s ORDER BY id" % qi(target, table))


def assert_checksums_right(target, table=AT):
    rows = token_rows(target, table)
    wrong = [(i, t) for i, t, c in rows if c != sha(t)]
    assert rows and not wrong, "%d of %d rows of %s have a wrong token_checksum, e.g. ids %s" % (
        len(wrong), len(rows), table, [w[0] for w in wrong[:5]])


def null_and_filled(target):
    """(rows without a checksum yet, rows with one). Without one is NULL, or '' on MariaDB once the repair's
    one table copy has added the column NOT NULL DEFAULT '' (repair_checksum.py)."""
    return target.query("SELECT SUM(CASE WHEN token_checksum IS NULL OR token_checksum = '' THEN 1 ELSE 0 END), "
                        "SUM(CASE WHEN token_checksum <> '' THEN 1 ELSE 0 END) FROM %s" % qi(target, AT))[0]


def column_nullable(target, table, column):
    return [c for c in data.table_columns(target, table) if c.name == column][0].nullable


def has_unique_on(target, table, columns):
    return frozenset(columns) in unique_indexes(target, table)


# --------------------------------------------------------------------------
# Templates: Django-migrated, tokens issued by DOT, migrated back to 0011
# --------------------------------------------------------------------------


class Template(object):
    def __init__(self, target, reference, issued):
        self.target = target
        self.reference = reference  # schema() of the database migrated by DOT's own migrations
        self.issued = issued  # make_tokens' JSON: tokens, ids, client


def _build_template(dbs):
    target = dbs.empty()
    migrate(target)
    reference = schema(target)
    issued = issue_tokens(target, 3)
    migrate(target, DOT, M0011)
    assert target.query("SELECT MAX(name) FROM django_migrations WHERE app = 'oauth2_provider'") == [(M0011,)]
    return Template(target, reference, issued)


def _template_fixture(engine, server, tmp_path_factory):
    dbs = Databases(engine, server, tmp_path_factory.mktemp("oar_rc_tpl_" + engine))
    cache = []

    def get():
        if not cache:
            cache.append(_build_template(dbs))
        return cache[0]

    try:
        yield get
    finally:
        dbs.close()


@pytest.fixture(scope="session")
def _rc_tpl_mysql(mariadb_server, tmp_path_factory):
    yield from _template_fixture("mysql", mariadb_server, tmp_path_factory)


@pytest.fixture(scope="session")
def _rc_tpl_postgresql(postgres_server, tmp_path_factory):
    yield from _template_fixture("postgresql", postgres_server, tmp_path_factory)


@pytest.fixture(scope="session")
def _rc_tpl_sqlite(tmp_path_factory):
    yield from _template_fixture("sqlite", None, tmp_path_factory)


class Site(object):
    """A private copy of the template: ``db`` (a DBTarget), ``issued`` (DOT-issued tokens), ``reference``."""

    def __init__(self, template, db):
        self.db = db
        self.issued = template.issued
        self.reference = template.reference


class _Sites(object):
    def __init__(self, request, tmp_path):
        self.request = request
        self.tmp_path = tmp_path
        self.dbs = {}

    def __call__(self, engine):
        template = self.request.getfixturevalue("_rc_tpl_" + engine)()
        if engine not in self.dbs:
            server = None if engine == "sqlite" else self.request.getfixturevalue(
                {"mysql": "mariadb_server", "postgresql": "postgres_server"}[engine])
            self.dbs[engine] = Databases(engine, server, self.tmp_path)
        return Site(template, self.dbs[engine].copy(template.target))

    def copy(self, site):
        """Another private copy of a site's database as it is now."""
        return Site(site, self.dbs[site.db.engine].copy(site.db))

    def close(self):
        for dbs in self.dbs.values():
            dbs.close()


@pytest.fixture
def site(request, tmp_path):
    """``site(engine)``: a private copy of the engine's template (DOT at 0011, 3 tokens issued by DOT)."""
    sites = _Sites(request, tmp_path)
    try:
        yield sites
    finally:
        sites.close()


def bulk_tokens(s, n):
    return data.bulk_insert_access_tokens(s.db, n, s.issued["application_id"], s.issued["user_id"],
                                          with_checksum=False, batch_size=10000)


def insert_token(s, token):
    """One access token row by plain SQL, as code that knows nothing of token_checksum inserts it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return data.insert_row(s.db, AT, dict(token=token, application_id=s.issued["application_id"],
                                          user_id=s.issued["user_id"], scope="read write",
                                          expires=now + datetime.timedelta(days=30), created=now, updated=now))


def finish_with_django(s, completed, tokens):
    """Record what the repair completed (django_migration), run the real migrate to the end, and check
    makemigrations, showmigrations and that ``tokens`` authenticate on DOT's protected view."""
    assert completed == [M0012]
    recorded = ok(run_module("django_migration", dict(s.db.params, app=DOT, names=completed)))
    assert recorded["changed"] and recorded["added"] == [M0012]
    migrate(s.db)
    run_manage(s.db, "makemigrations", "--check", "--dry-run")
    shown = run_manage(s.db, "showmigrations").stdout
    marks = re.findall(r"^ \[(.)\] (\S+)", shown, re.M)
    assert ("X", "0022_refreshtoken_token_family_index") in marks
    assert marks and all(mark == "X" for mark, _name in marks), shown
    for token in tokens:
        assert token_authenticates(s.db, token), token


# --------------------------------------------------------------------------
# 1. Seed 004 as it arises on MariaDB
# --------------------------------------------------------------------------


def break_like_dot_300_on_mariadb(db, keep_default=False):
    """What DOT 3.0.0's 0012 does to a MariaDB site with tokens.

    Its AddField is ``token_checksum varchar(64) DEFAULT '' NOT NULL UNIQUE`` in one ALTER, which MariaDB
    refuses (every existing row gets '', a duplicate: the report's IntegrityError). The state the report
    describes - every old token with checksum '' and no unique index - is what is left once the column is
    added without its unique, as Django's AddField does it (add it with the empty default, then drop the
    default), e.g. by an operator getting past the error; DDL is not transactional on MariaDB, nothing rolls
    it back, and 0012 stays unrecorded. ``keep_default`` leaves the DEFAULT '' in place.
    """
    t, c = qi(db, AT), qi(db, "token_checksum")
    with pytest.raises(Exception) as failed:
        db.execute("ALTER TABLE %s ADD COLUMN %s varchar(64) DEFAULT '' NOT NULL UNIQUE" % (t, c))
    assert "Duplicate entry ''" in str(failed.value)
    assert "token_checksum" not in [x.name for x in data.table_columns(db, AT)]
    db.execute("ALTER TABLE %s ADD COLUMN %s varchar(64) DEFAULT '' NOT NULL" % (t, c))
    if not keep_default:
        db.execute("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT" % (t, c))


@pytest.mark.slow
@pytest.mark.mysql
def test_seed004_mariadb_failed_0012_repaired_end_to_end(site):
    s = site("mysql")
    bulk = bulk_tokens(s, 200)
    break_like_dot_300_on_mariadb(s.db)
    assert set(c for _i, _t, c in token_rows(s.db)) == {""}
    before_content = content(s.db)

    found = info(s.db)
    assert codes(found) == ["migration_half_applied", "token_checksum_empty", "token_checksum_unique_missing"]
    half = [f for f in found["findings"] if f["code"] == "migration_half_applied"][0]
    assert half["details"]["migration"] == M0012 and half["details"]["recorded"] is False

    result = ok(repair(s.db, fix=["all"]))
    assert result["changed"] is True
    assert statuses(result) == {"add_column": "done_already", "token_text": "ran", "backfill": "ran",
                                "duplicates": "done_already", "unique": "ran"}
    assert result["findings_before"] == codes(found)
    # what is left is the record: 0012's work is complete, its django_migrations row is not there yet
    assert [f["code"] for f in result["findings"]] == ["migration_half_applied"]
    assert result["findings"][0]["details"]["missing"] == [] and result["not_repaired"] == []
    assert result["completed_migrations"] == [M0012]
    assert_checksums_right(s.db)
    assert_content_unchanged(s.db, before_content)

    finish_with_django(s, result["completed_migrations"], [s.issued["access_tokens"][0], bulk.token(117)])
    assert_content_unchanged(s.db, before_content)
    assert_checksums_right(s.db)
    assert_same_schema(schema(s.db), s.reference)
    assert info(s.db)["findings"] == []


@pytest.mark.mysql
def test_seed004_mariadb_leftover_default_is_dropped(site):
    s = site("mysql")
    break_like_dot_300_on_mariadb(s.db, keep_default=True)
    ok(repair(s.db))
    [(default,)] = s.db.query("SELECT column_default FROM information_schema.columns WHERE table_schema = "
                              "DATABASE() AND table_name = %s AND column_name = 'token_checksum'", (AT,))
    assert default in (None, "NULL")


# --------------------------------------------------------------------------
# 2. Killed runs converge
# --------------------------------------------------------------------------

_RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.support.modules import run_module
print(json.dumps(run_module("oauth_repair", json.loads(sys.argv[2]))))
"""


def kill_mid_backfill(db, progress_file, total, **options):
    """Run oauth_repair in a subprocess (batches of 50 rows, 10 ms apart) and SIGKILL it once the progress
    file shows part of the backfill done."""
    params = dict(db.params, batch_size=50, throttle=0.01, progress_file=str(progress_file),
                  preupgrade_min_rows=1, **options)
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, ROOT, json.dumps(params)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    key = "token_checksum:backfill:%s" % AT
    deadline = time.monotonic() + 60
    try:
        while True:
            assert proc.poll() is None, "oauth_repair ended before it could be killed: %s" % (
                proc.communicate()[0][-2000:],)
            assert time.monotonic() < deadline, "no backfill progress within 60 s"
            try:
                with open(progress_file) as fh:
                    entry = json.load(fh)["steps"].get(key)
            except (OSError, ValueError):
                entry = None
            if entry and entry["rows_done"] >= total // 5:
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return entry


@pytest.mark.slow
@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_backfill_killed_by_sigkill_converges(site, engine, tmp_path):
    s = site(engine)
    bulk_tokens(s, 4000)
    total = data.count_rows(s.db)
    twin = site.copy(s)  # the same rows, repaired without interruption
    before_content = content(s.db)

    entry = kill_mid_backfill(s.db, tmp_path / "progress.json", total)
    assert 0 < entry["rows_done"] < entry["rows_total"]
    nulls, filled = null_and_filled(s.db)
    assert nulls > 0 and filled > 0, (nulls, filled)
    # MariaDB: the column came NOT NULL DEFAULT '' with the table copy; the rows not reached yet hold ''
    assert column_nullable(s.db, AT, "token_checksum") is (engine != "mysql")
    assert not has_unique_on(s.db, AT, ["token_checksum"])
    missing = "token_checksum_empty" if engine == "mysql" else "token_checksum_null"
    assert {missing, "token_checksum_unique_missing", "migration_half_applied"} <= set(codes(info(s.db)))

    resumed = ok(repair(s.db, diff=True, preupgrade_min_rows=1, batch_size=500))
    assert resumed["changed"] is True
    assert statuses(resumed)["add_column"] == "done_already"
    assert statuses(resumed)["token_text"] == "done_already"
    assert statuses(resumed)["backfill"] == "ran"
    # only the rows the killed run had not reached were updated
    assert resumed["progress"]["token_checksum:backfill:%s" % AT]["rows_updated"] == nulls

    straight = ok(repair(twin.db, diff=True, preupgrade_min_rows=1, batch_size=500))
    assert resumed["diff"]["after"] == straight["diff"]["after"]
    assert resumed["completed_migrations"] == straight["completed_migrations"] == [M0012]
    assert token_rows(s.db) == token_rows(twin.db)
    assert_checksums_right(s.db)
    assert schema(s.db) == schema(twin.db)
    assert_content_unchanged(s.db, before_content)
    again = ok(repair(s.db))
    assert again["changed"] is False and again["executed_queries"] == []


@pytest.mark.parametrize("engine", ENGINES)
def test_killed_between_steps_converges(site, engine):
    """The run died after its first steps (column, token -> text) committed, before the backfill: the steps
    done are skipped, the rest runs, and the end state is the uninterrupted run's."""
    s = site(engine)
    bulk_tokens(s, 300)
    twin = site.copy(s)
    planned = ok(repair(s.db, check_mode=True, preupgrade_min_rows=1))
    first = [r for r in planned["plan"] if r["key"].split(":")[1] in ("add_column", "token_text")]
    assert [r["status"] for r in first] == ["would_run"] * len(first)
    for step in first:
        for statement in step["sql"]:
            s.db.execute(statement)
    assert null_and_filled(s.db)[1] == 0
    if engine == "postgresql":
        # and a CREATE UNIQUE INDEX CONCURRENTLY that failed (a duplicate at the time): left INVALID
        ph = s.db.placeholder
        s.db.execute("UPDATE %s SET token_checksum = 'x' WHERE id IN (1, 2)" % AT)
        with pytest.raises(Exception):
            s.db.execute('CREATE UNIQUE INDEX CONCURRENTLY "%s" ON "%s" ("token_checksum")' % (
                "oauth2_provider_accesstoken_token_checksum_85319a26_uniq", AT))
        assert s.db.query("SELECT indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                          "WHERE c.relname = %s" % ph, ("oauth2_provider_accesstoken_token_checksum_85319a26_uniq",)
                          ) == [(False,)]
        s.db.execute("UPDATE %s SET token_checksum = NULL WHERE id IN (1, 2)" % AT)

    resumed = ok(repair(s.db, diff=True, preupgrade_min_rows=1))
    st = statuses(resumed)
    assert st["add_column"] == "done_already"
    if engine != "sqlite":
        assert st["token_text"] == "done_already"
    assert st["backfill"] == "ran"
    if engine == "postgresql":
        assert 'DROP INDEX CONCURRENTLY "oauth2_provider_accesstoken_token_checksum_85319a26_uniq"' in \
            resumed["executed_queries"]
    straight = ok(repair(twin.db, diff=True, preupgrade_min_rows=1))
    assert resumed["diff"]["after"] == straight["diff"]["after"]
    assert resumed["completed_migrations"] == straight["completed_migrations"] == [M0012]
    assert token_rows(s.db) == token_rows(twin.db)
    assert schema(s.db) == schema(twin.db)
    assert_checksums_right(s.db)
    assert ok(repair(s.db))["changed"] is False


def table_identity(db, table=AT):
    """What changes when the table is rebuilt (copied): InnoDB's table id, PostgreSQL's relfilenode."""
    if db.engine == "mysql":
        return db.query("SELECT TABLE_ID FROM information_schema.INNODB_SYS_TABLES WHERE NAME = %s",
                        ("%s/%s" % (db.name, table),))[0][0]
    return db.query("SELECT relfilenode FROM pg_class WHERE oid = to_regclass(%s)", (table,))[0][0]


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_complete_at_0011_copies_the_table_at_most_once(site, engine, monkeypatch):
    """All of 0012 on a table still at 0011 (bench/bench_checksum.py's case at scale). MariaDB copies the table
    once: the column comes NOT NULL DEFAULT '' in the same ALTER that makes token longtext, so NOT NULL and the
    unique index need no second rebuild. PostgreSQL rewrites nothing, and its duplicate check is the concurrent
    build of the unique index. The end state is DOT's; the real migrate then runs to the end."""
    s = site(engine)
    bulk = bulk_tokens(s, 500)
    before_content = content(s.db)
    rebuilt_by = []
    connection = module_utils("connection")
    original = connection.Connection.execute

    def execute(self, sql, params=(), record=True):
        before = table_identity(s.db)
        try:
            return original(self, sql, params, record)
        finally:
            if table_identity(s.db) != before:
                rebuilt_by.append(sql)

    monkeypatch.setattr(connection.Connection, "execute", execute)
    result = ok(repair(s.db, preupgrade_min_rows=1))
    monkeypatch.undo()

    st = statuses(result)
    assert st["add_column"] == "ran" and st["backfill"] == "ran" and st["unique"] == "ran"
    creates = [q for q in result["executed_queries"] if q.startswith("CREATE UNIQUE INDEX")]
    if engine == "mysql":
        assert st["token_text"] == "done_already" and st["duplicates"] == "done_already"
        # the old unique index is `token` on a site migrated forward, Django's hashed name after migrating back
        assert len(rebuilt_by) == 1 and re.fullmatch(
            r"ALTER TABLE `%s` ADD COLUMN `token_checksum` varchar\(64\) NOT NULL DEFAULT '', "
            r"DROP INDEX `\w+`, MODIFY `token` longtext NOT NULL" % AT, rebuilt_by[0]), rebuilt_by
        assert creates == []
    else:
        assert st["token_text"] == "ran" and st["duplicates"] == "ran"
        assert rebuilt_by == []
        assert creates == ['CREATE UNIQUE INDEX CONCURRENTLY "%s_token_checksum_85319a26_uniq" ON "%s" '
                           '("token_checksum")' % (AT, AT)]
    assert result["completed_migrations"] == [M0012]
    assert_checksums_right(s.db)
    assert_content_unchanged(s.db, before_content)
    finish_with_django(s, result["completed_migrations"], [s.issued["access_tokens"][0], bulk.token(250)])
    assert_same_schema(schema(s.db), s.reference)


# --------------------------------------------------------------------------
# 3. Online pre-upgrade at 0011, then the upgrade
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", [POSTGRESQL, SQLITE])
def test_preupgrade_then_complete_then_upgrade(site, engine):
    s = site(engine)
    bulk = bulk_tokens(s, 20000)
    total = data.count_rows(s.db)
    before_content = content(s.db)
    assert "token_checksum_preupgrade" in codes(info(s.db))

    pre = ok(repair(s.db, checksum_mode="preupgrade", fix=["token_checksum_preupgrade"], batch_size=5000))
    assert pre["changed"] is True and pre["completed_migrations"] == []
    st = statuses(pre)
    assert "token_text" not in st  # token stays varchar(255) with its unique index for the old code
    if engine == "postgresql":
        assert "not_null" not in st and "like_index" not in st
    assert pre["progress"]["token_checksum:backfill:%s" % AT]["rows_updated"] == total
    assert column_nullable(s.db, AT, "token_checksum")
    assert has_unique_on(s.db, AT, ["token_checksum"])
    assert has_unique_on(s.db, AT, ["token"])  # the old code's schema is untouched
    assert_checksums_right(s.db)
    assert_content_unchanged(s.db, before_content)

    # the application still runs the old code: it inserts tokens without token_checksum
    late = ["late-token-%s" % secrets.token_hex(8) for _index in range(2)]
    for token in late:
        insert_token(s, token)
    assert null_and_filled(s.db) == (2, total)
    assert ok(repair(s.db, checksum_mode="preupgrade"))["changed"] is True  # picks up the late rows too
    insert_token(s, "later-%s" % secrets.token_hex(8))
    before_content = content(s.db)

    done = ok(repair(s.db, checksum_mode="complete"))
    assert done["changed"] is True and done["completed_migrations"] == [M0012]
    st = statuses(done)
    assert st["add_column"] == "done_already"
    assert st["backfill"] == "ran"  # the row inserted after the last pre-upgrade run
    assert not column_nullable(s.db, AT, "token_checksum")
    assert_checksums_right(s.db)

    finish_with_django(s, done["completed_migrations"],
                       [s.issued["access_tokens"][0], bulk.token(20000), late[0]])
    assert_content_unchanged(s.db, before_content)
    assert_same_schema(schema(s.db), s.reference)


# --------------------------------------------------------------------------
# 4. Non-ASCII tokens
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_non_ascii_tokens_hash_like_dot(site, engine):
    s = site(engine)
    for token in NON_ASCII:
        insert_token(s, token)
    ok(repair(s.db, preupgrade_min_rows=1))
    ph = s.db.placeholder
    for token in NON_ASCII:
        [(stored, checksum)] = s.db.query("SELECT token, token_checksum FROM %s WHERE token = %s" % (AT, ph),
                                          (token,))
        assert stored == token and checksum == sha(token)
    assert_checksums_right(s.db)


@pytest.mark.mysql
def test_latin1_token_column_hashes_utf8_bytes(site):
    s = site("mysql")
    s.db.execute("ALTER TABLE %s MODIFY token varchar(255) CHARACTER SET latin1 NOT NULL" % AT)
    insert_token(s, LATIN1_TOKEN)
    [(raw,)] = s.db.query("SELECT HEX(token) FROM %s WHERE token = %%s" % AT, (LATIN1_TOKEN,))
    assert bytes.fromhex(raw) == LATIN1_TOKEN.encode("latin1")  # really stored as latin1
    # pre-upgrade: the backfill runs while token is still latin1
    ok(repair(s.db, checksum_mode="preupgrade", preupgrade_min_rows=1))
    [(checksum,)] = s.db.query("SELECT token_checksum FROM %s WHERE token = %%s" % AT, (LATIN1_TOKEN,))
    assert checksum == sha(LATIN1_TOKEN) != hashlib.sha256(LATIN1_TOKEN.encode("latin1")).hexdigest()
    done = ok(repair(s.db))
    assert done["completed_migrations"] == [M0012]
    [(checksum,)] = s.db.query("SELECT token_checksum FROM %s WHERE token = %%s" % AT, (LATIN1_TOKEN,))
    assert checksum == sha(LATIN1_TOKEN)
    assert_checksums_right(s.db)


# --------------------------------------------------------------------------
# 5. Duplicate tokens
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicates_reported_then_keep_newest(site, engine):
    s = site(engine)
    bulk_tokens(s, 20)
    drop_unique(s.db, AT, ["token"])
    [(older,)] = s.db.query("SELECT MAX(id) FROM %s" % AT)
    newer = copy_row(s.db, AT, older)
    count = data.count_rows(s.db)

    failed = repair(s.db, preupgrade_min_rows=1)
    assert failed["failed"] is True
    assert AT in failed["msg"] and "%s,%s" % (older, newer) in failed["msg"]
    assert "checksum_duplicates=keep_newest" in failed["msg"]
    assert data.count_rows(s.db) == count  # nothing deleted
    st = statuses(failed)
    assert st["duplicates"] == "failed"
    assert st["add_column"] == "ran" and st["backfill"] == "ran"
    assert failed["changed"] is True  # the column and the backfill did run
    assert failed["report"]["checksum_duplicates"][0]["ids"] == [older, newer]
    assert not has_unique_on(s.db, AT, ["token_checksum"])

    fixed = ok(repair(s.db, preupgrade_min_rows=1, checksum_duplicates="keep_newest"))
    assert fixed["report"]["deleted_duplicates"] == {AT: [older]}
    assert data.count_rows(s.db) == count - 1
    assert [r[0] for r in s.db.query("SELECT id FROM %s WHERE id IN (%d, %d)" % (AT, older, newer))] == [newer]
    assert has_unique_on(s.db, AT, ["token_checksum"])
    assert fixed["completed_migrations"] == [M0012]


@pytest.mark.parametrize("engine", ENGINES)
def test_keep_newest_with_a_refresh_token_on_the_older_row(site, engine):
    """The older of two rows with the same token is the one DOT issued a refresh token for."""
    s = site(engine)
    drop_unique(s.db, AT, ["token"])
    older = s.issued["access_token_ids"][0]
    newer = copy_row(s.db, AT, older)
    refresh_before = data.count_rows(s.db, RT)

    fixed = ok(repair(s.db, preupgrade_min_rows=1, checksum_duplicates="keep_newest"))
    assert fixed["report"]["deleted_duplicates"] == {AT: [older]}
    assert [r[0] for r in s.db.query("SELECT id FROM %s WHERE id IN (%d, %d)" % (AT, older, newer))] == [newer]
    assert data.count_rows(s.db, RT) == refresh_before  # refresh tokens are not deleted with it
    orphans = s.db.query("SELECT r.id FROM %s r LEFT JOIN %s a ON a.id = r.access_token_id "
                         "WHERE r.access_token_id IS NOT NULL AND a.id IS NULL" % (RT, AT))
    assert orphans == [], "refresh tokens pointing at a deleted access token: %s" % orphans


# --------------------------------------------------------------------------
# 6. Idempotence, check mode, diff mode, lock timeout
# --------------------------------------------------------------------------


def half_applied_0012(db):
    """DOT's own 0012 killed during its RunPython: nullable column, nothing filled (MariaDB keeps the DDL)."""
    db.execute("ALTER TABLE %s ADD COLUMN %s varchar(64) NULL" % (qi(db, AT), qi(db, "token_checksum")))


@pytest.mark.parametrize("engine", ENGINES)
def test_check_mode_diff_and_second_run(site, engine):
    s = site(engine)
    bulk_tokens(s, 50)
    half_applied_0012(s.db)
    schema_before, content_before = schema(s.db), content(s.db, exclude=())

    checked = ok(repair(s.db, check_mode=True, diff=True))
    assert checked["changed"] is True
    assert schema(s.db) == schema_before and content(s.db, exclude=()) == content_before
    planned_sql = [q for r in checked["plan"] if r["status"] == "would_run" for q in r["sql"]]
    assert checked["executed_queries"] == planned_sql and planned_sql
    assert checked["completed_migrations"] == [M0012]
    assert checked["diff"]["before"] != checked["diff"]["after"]
    # token varchar -> text is a type change the deploy role recycles workers on (PostgreSQL's cached plans);
    # SQLite re-prepares its statements after a schema change, and its final rebuild claims none
    type_steps = [r["key"] for r in checked["plan"] if r["changes_type"]]
    if engine == "sqlite":
        assert type_steps == []
    else:
        assert type_steps and all(":token_text:" in k or ":add_column:" in k for k in type_steps)

    ran = ok(repair(s.db, diff=True))
    assert ran["changed"] is True
    if engine != "sqlite":  # SQLite's plan shows its table rebuild as one line
        assert ran["executed_queries"] == planned_sql
    before, after = ran["diff"]["before"], ran["diff"]["after"]
    assert before == checked["diff"]["before"]
    assert re.search(r"^  token_checksum varchar\(64\)$", before, re.M)
    assert re.search(r"^  token_checksum varchar\(64\) NOT NULL$", after, re.M)
    assert re.search(r"^  token varchar\(255\) NOT NULL$", before, re.M)
    assert re.search(r"^  token text NOT NULL$", after, re.M)
    assert not re.search(r"UNIQUE \S+ \(token_checksum\)", before)
    assert re.search(r"UNIQUE \S+ \(token_checksum\)", after)
    assert not re.search(r"UNIQUE \S+ \(token\)", after)

    again = ok(repair(s.db, diff=True))
    assert again["changed"] is False and again["executed_queries"] == []
    assert again["plan"] and all(r["status"] == "done_already" and not r["changed"] for r in again["plan"])
    assert again["diff"]["before"] == again["diff"]["after"] == after
    assert again["completed_migrations"] == [M0012]
    checked_again = ok(repair(s.db, check_mode=True))
    assert checked_again["changed"] is False and checked_again["executed_queries"] == []


@contextlib.contextmanager
def lock_holder(db, how):
    """Hold a lock on the access token table from another connection (released on exit)."""
    conn = db.connect()
    try:
        if db.engine == "sqlite":
            conn.execute("BEGIN IMMEDIATE")  # the database write lock; readers go on
        else:
            cur = conn.cursor()
            if db.engine == "postgresql":
                cur.execute("BEGIN")
                cur.execute("LOCK TABLE %s IN %s MODE" % (AT, how))
            else:
                cur.execute("START TRANSACTION")
                cur.execute("SELECT id FROM %s LIMIT 1 FOR UPDATE" % AT)  # a metadata lock until COMMIT
                cur.fetchall()
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.rollback() if db.engine != "sqlite" else conn.execute("ROLLBACK")
        conn.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_lock_timeout_fails_fast_and_applies_nothing(site, engine):
    s = site(engine)
    half_applied_0012(s.db)
    schema_before, content_before = schema(s.db), content(s.db, exclude=())
    with lock_holder(s.db, "SHARE"):
        started = time.monotonic()
        failed = repair(s.db, lock_timeout=500)
        elapsed = time.monotonic() - started
    assert failed["failed"] is True, failed
    assert elapsed < 10
    assert "could not lock %s within lock_timeout=500ms" % AT in failed["msg"]
    assert "Fix: re-run when traffic is lower, or raise lock_timeout" in failed["msg"]
    assert failed["object"] == AT
    assert [r["status"] for r in failed["plan"]][-1] == "failed"
    assert failed["plan"][-1]["changed"] is False
    assert schema(s.db) == schema_before and content(s.db, exclude=()) == content_before
    assert failed["changed"] is False
    # once the lock is gone the same run goes through
    assert ok(repair(s.db, lock_timeout=500))["completed_migrations"] == [M0012]


@pytest.mark.postgresql
def test_lock_timeout_bounds_the_diagnosis_too(site):
    """ACCESS EXCLUSIVE held by another session blocks even reads of the table: the module must still give
    up after lock_timeout (with the table and the fix in its message) rather than hang."""
    s = site("postgresql")
    half_applied_0012(s.db)
    schema_before = schema(s.db)
    outcome = {}

    def run():
        outcome["result"] = repair(s.db, lock_timeout=500)

    with lock_holder(s.db, "ACCESS EXCLUSIVE"):
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(5)
        hung = worker.is_alive()
        if hung:
            # the module is stuck on the lock: stop it before it can run anything once the lock goes
            ph = s.db.placeholder
            s.db.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND application_name LIKE %s" % ph, ("django_ops.oauth_repair%",))
    worker.join(30)
    assert not hung, "oauth_repair still waited on the locked table after 5 s with lock_timeout=500"
    result = outcome["result"]
    assert result["failed"] is True and "lock_timeout" in result["msg"] and "Fix:" in result["msg"], result["msg"]
    assert schema(s.db) == schema_before


# --------------------------------------------------------------------------
# 7. Secrets
# --------------------------------------------------------------------------


@pytest.fixture
def mysql_user(site):
    """A site on MariaDB and a user with a password that may use only its database."""
    s = site("mysql")
    name = "oar_rc_%s" % secrets.token_hex(4)
    password = "S3cr3t-%s-pw" % secrets.token_hex(8)
    hosts = ("127.0.0.1", "localhost", "%")
    admin = s.db.server
    for host in hosts:
        admin._admin("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'" % (name, host, password))
        admin._admin("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%s'" % (s.db.name, name, host))
    try:
        yield s, dict(s.db.params, login_user=name, login_password=password), password
    finally:
        for host in hosts:
            admin._admin("DROP USER IF EXISTS '%s'@'%s'" % (name, host))


@pytest.mark.mysql
def test_password_and_tokens_never_in_results(mysql_user):
    s, params, password = mysql_user
    bulk = bulk_tokens(s, 30)
    for token in NON_ASCII:
        insert_token(s, token)
    drop_unique(s.db, AT, ["token"])
    [(older,)] = s.db.query("SELECT MAX(id) FROM %s" % AT)
    copy_row(s.db, AT, older)
    break_like_dot_300_on_mariadb(s.db)
    tokens = s.issued["access_tokens"] + s.issued["refresh_tokens"] + [s.issued["client_secret"]] + \
        [bulk.token(i) for i in range(1, 31)] + NON_ASCII

    results = [
        run_module("oauth_info", params),
        run_module("oauth_repair", params, check_mode=True, diff=True),
        run_module("oauth_repair", params, diff=True),  # fails on the duplicate
        run_module("oauth_repair", dict(params, checksum_duplicates="keep_newest"), diff=True),
        run_module("oauth_repair", params, diff=True),  # nothing left to do
        run_module("oauth_repair", dict(params, db="oar_t_00000000")),  # cannot connect: no such database
        run_module("oauth_repair", dict(params, login_password=password + "x")),  # wrong password
    ]
    assert [bool(r.get("failed")) for r in results] == [False, False, True, False, False, True, True]
    assert results[3]["completed_migrations"] == [M0012]
    for result in results:
        dumped = json.dumps(result, ensure_ascii=False, default=str)
        assert password not in dumped and password not in json.dumps(result, default=str)
        leaked = [t for t in tokens if t in dumped or json.dumps(t)[1:-1] in dumped]
        assert not leaked, "token values in the result: %s" % leaked
