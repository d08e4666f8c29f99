"""Shared helpers of the tests/test_findings_*.py modules.

* :func:`info` runs ``oauth_info`` in-process, asserts it read only (``changed`` false,
  ``executed_queries`` empty) and that check mode returns the very same findings.
* ``make_db`` (fixture) hands out throwaway copies of real, Django-migrated template
  databases. The templates are built once per test session (per xdist worker) by the real
  ``manage.py migrate`` of the test project, lazily, and dropped at the end:

  ``migrated``  every DOT 3.4.1 migration applied, no tokens;
  ``tokens``    ``migrated`` + a user, a client and 5 access/refresh tokens issued by DOT's models;
  ``at_0011``   ``oauth2_provider`` migrated up to 0011 only (before token_checksum).

  Copies are cheap: an SQLite file copy, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL, and on
  MariaDB ``SHOW CREATE TABLE`` + ``INSERT ... SELECT`` from the template schema. Every copy has
  a fresh ``oar_t_<hex>`` name and is dropped after its test.
* Small SQL helpers that break a database the way it breaks in the field (drop a unique
  index on any engine, rebuild an SQLite table with edited DDL, copy a row with overrides).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from tests.support import data, servers
from tests.support.django import issue_tokens, migrate
from tests.support.modules import run_module

DATA_DIR = Path(__file__).resolve().parent / "data"

AT = "oauth2_provider_accesstoken"
RT = "oauth2_provider_refreshtoken"
APP = "oauth2_provider_application"
GRANT = "oauth2_provider_grant"
IDT = "oauth2_provider_idtoken"

M0001 = "0001_initial"
M0004 = "0004_auto_20200902_2022"
M0010 = "0010_application_allowed_origins"
M0011 = "0011_refreshtoken_token_family"
M0012 = "0012_add_token_checksum"
M0015 = "0015_refreshtoken_token_checksum"
M0022 = "0022_refreshtoken_token_family_index"

PRE_SQUASH_SEED000 = ["0002_08_updates", "0003_auto_20160316_1503", "0004_auto_20160525_1623",
                      "0005_auto_20170514_1141", "0006_auto_20171214_2232"]

ENGINES = [
    pytest.param("mysql", marks=pytest.mark.mysql, id="mysql"),
    pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql"),
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
]
SERVER_ENGINES = ENGINES[:2]
_SERVER_FIXTURE = {"mysql": "mariadb_server", "postgresql": "postgres_server"}


def sha(text):
    """DOT's token_checksum of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------
# Running oauth_info
# --------------------------------------------------------------------------


def info(target, check_mode_too=True, **options):
    """``oauth_info`` on ``target``; asserts success, read-only, and same findings in check mode."""
    params = dict(target.params)
    params.update(options)
    result = run_module("oauth_info", params)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert result["executed_queries"] == []
    if check_mode_too:
        checked = run_module("oauth_info", params, check_mode=True)
        assert not checked.get("failed"), checked.get("msg")
        assert checked["changed"] is False
        assert checked["executed_queries"] == []
        assert checked["findings"] == result["findings"]
    return result


def info_fails(target_params, **options):
    """``oauth_info`` expected to fail; returns the result."""
    params = dict(target_params)
    params.update(options)
    result = run_module("oauth_info", params)
    assert result.get("failed") is True, json.dumps(result)[:2000]
    assert result.get("changed") is False
    assert result.get("executed_queries", []) == []
    return result


def codes(result):
    return sorted(set(f["code"] for f in result["findings"]))


def all_of(result, code):
    return [f for f in result["findings"] if f["code"] == code]


def one(result, code):
    found = all_of(result, code)
    assert len(found) == 1, "expected one %s finding, got %s" % (code, json.dumps(result["findings"], indent=1))
    return found[0]


def assert_codes(result, *expected):
    """The set of finding codes is exactly ``expected``."""
    assert codes(result) == sorted(set(expected)), json.dumps(result["findings"], indent=1)


def migration_state(result, name):
    for entry in result["migrations"]["oauth2_provider"]["state"]:
        if entry["name"] == name:
            return entry
    raise KeyError(name)


# --------------------------------------------------------------------------
# SQL helpers
# --------------------------------------------------------------------------


def qi(target, name):
    """Quote an identifier for ``target``'s engine."""
    return "`%s`" % name if target.engine == "mysql" else '"%s"' % name


def ph(target):
    return target.placeholder


def record_migration(target, app, name, applied="2024-01-01 00:00:00"):
    target.execute("INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)".replace(
        "%s", ph(target)), (app, name, applied))


def unrecord_migration(target, app, name):
    target.execute("DELETE FROM django_migrations WHERE app = {0} AND name = {0}".format(ph(target)), (app, name))


def drop_column(target, table, column):
    target.execute("ALTER TABLE %s DROP COLUMN %s" % (qi(target, table), qi(target, column)))


def copy_row(target, table, row_id, **overrides):
    """Insert a copy of row ``row_id`` of ``table`` with some columns overridden; returns the new id."""
    cols = [c for c in data.table_columns(target, table) if not c.auto]
    exprs, params = [], []
    for c in cols:
        if c.name in overrides:
            exprs.append("CAST(%s AS %s)" % (ph(target), c.data_type) if target.engine == "postgresql"
                         else ph(target))
            params.append(overrides[c.name])
        else:
            exprs.append(qi(target, c.name))
    sql = "INSERT INTO %s (%s) SELECT %s FROM %s WHERE id = %s" % (
        qi(target, table), ", ".join(qi(target, c.name) for c in cols), ", ".join(exprs),
        qi(target, table), ph(target))
    with contextlib.closing(target.connect()) as conn:
        cur = conn.cursor()
        if target.engine == "postgresql":
            cur.execute(sql + " RETURNING id", tuple(params) + (row_id,))
            return cur.fetchone()[0]
        cur.execute(sql, tuple(params) + (row_id,))
        assert cur.rowcount == 1
        return cur.lastrowid


def set_checksums(target, table, pairs):
    """UPDATE token_checksum for many (id, checksum) pairs over one connection."""
    sql = "UPDATE %s SET token_checksum = %s WHERE id = %s" % (qi(target, table), ph(target), ph(target))
    with contextlib.closing(target.connect()) as conn:
        cur = conn.cursor()
        if target.engine == "sqlite":
            cur.execute("BEGIN")
        cur.executemany(sql, [(value, row_id) for row_id, value in pairs])
        if target.engine == "sqlite":
            cur.execute("COMMIT")
        cur.close()


def token_rows(target, table=AT):
    """[(id, token, token_checksum)] ordered by id."""
    return target.query("SELECT id, token, token_checksum FROM %s ORDER BY id" % qi(target, table))


def unique_indexes(target, table):
    """{frozenset(columns): name} of the non-primary unique indexes/constraints of ``table``."""
    out = {}
    if target.engine == "mysql":
        rows = target.query(
            "SELECT index_name, column_name FROM information_schema.statistics WHERE table_schema = DATABASE() "
            "AND table_name = %s AND non_unique = 0 AND index_name <> 'PRIMARY' ORDER BY index_name, seq_in_index",
            (table,))
    elif target.engine == "postgresql":
        rows = target.query(
            "SELECT ic.relname, a.attname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_attribute a ON a.attrelid = t.oid "
            "AND a.attnum = ANY(i.indkey) WHERE t.relname = %s AND i.indisunique AND NOT i.indisprimary",
            (table,))
    else:
        rows = []
        for _seq, name, unique, origin, _partial in target.query(
                "SELECT seq, name, \"unique\", origin, partial FROM pragma_index_list(?)", (table,)):
            if unique and origin != "pk":
                rows += [(name, r[0]) for r in target.query("SELECT name FROM pragma_index_info(?)", (name,))]
    cols = {}
    for name, col in rows:
        cols.setdefault(name, []).append(col)
    for name, c in cols.items():
        out[frozenset(c)] = name
    return out


def drop_unique(target, table, columns):
    """Drop the unique index/constraint of ``table`` on exactly ``columns`` (as a failed/partial
    migration or a hand "fix" leaves it), whatever the engine spells it."""
    name = unique_indexes(target, table).get(frozenset(columns))
    assert name, "no unique index on %s(%s)" % (table, columns)
    if target.engine == "mysql":
        target.execute("ALTER TABLE `%s` DROP INDEX `%s`" % (table, name))
    elif target.engine == "postgresql":
        is_constraint = target.query("SELECT 1 FROM pg_constraint WHERE conname = %s", (name,))
        if is_constraint:
            target.execute('ALTER TABLE "%s" DROP CONSTRAINT "%s"' % (table, name))
        else:
            target.execute('DROP INDEX "%s"' % name)
    elif name.startswith("sqlite_autoindex_"):
        # An inline UNIQUE of the CREATE TABLE: SQLite can only rebuild the table without it.
        assert len(columns) == 1
        col = re.escape(columns[0])
        sqlite_rebuild(target, table, lambda sql: re.sub(r'("%s" [^,]*?) UNIQUE' % col, r"\1", sql, count=1))
    else:
        target.execute('DROP INDEX "%s"' % name)
    assert frozenset(columns) not in unique_indexes(target, table)


def sqlite_rebuild(target, table, transform):
    """Rebuild an SQLite table from its edited CREATE TABLE (SQLite's documented 12-step ALTER),
    keeping its rows, its indexes and every foreign key pointing at it."""
    assert target.engine == "sqlite"
    conn = sqlite3.connect(target.name, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN")
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()[0]
        indexes = [r[0] for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))]
        new_sql = transform(sql)
        assert new_sql != sql, "the transform changed nothing"
        tmp = table + "__oar_new"
        conn.execute(new_sql.replace('CREATE TABLE "%s"' % table, 'CREATE TABLE "%s"' % tmp, 1))
        cols = ", ".join('"%s"' % r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", (table,)))
        conn.execute('INSERT INTO "%s" (%s) SELECT %s FROM "%s"' % (tmp, cols, cols, table))
        conn.execute('DROP TABLE "%s"' % table)
        conn.execute('ALTER TABLE "%s" RENAME TO "%s"' % (tmp, table))
        for idx in indexes:
            conn.execute(idx)
        assert not conn.execute("PRAGMA foreign_key_check").fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()


def tables_and_counts(target):
    """{table: row count}: a cheap fingerprint to prove a failed module changed nothing."""
    return dict((t, target.query("SELECT COUNT(*) FROM %s" % qi(target, t))[0][0])
                for t in target.tables() if not t.startswith("sqlite_"))


# --------------------------------------------------------------------------
# Template databases and their copies
# --------------------------------------------------------------------------


def _mysql_copy(server, src, dst):
    with contextlib.closing(server.connect(dst)) as conn:
        cur = conn.cursor()
        cur.execute("SET FOREIGN_KEY_CHECKS = 0")
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_type = 'BASE TABLE' ORDER BY table_name", (src,))
        for (table,) in cur.fetchall():
            cur.execute("SHOW CREATE TABLE `%s`.`%s`" % (src, table))
            cur.execute(cur.fetchone()[1])
            cur.execute("INSERT INTO `%s` SELECT * FROM `%s`.`%s`" % (table, src, table))


def _pg_copy(server, src, dst):
    servers._check_test_db_name(dst)
    for attempt in range(100):
        try:
            server._admin('CREATE DATABASE "%s" TEMPLATE "%s"' % (dst, src))
            return
        except psycopg.errors.ObjectInUse:  # a session on the template is still closing
            if attempt == 99:
                raise
            time.sleep(0.1)


class Databases(object):
    """Creates databases of one engine (empty, or copies of templates) and drops them on :meth:`close`."""

    def __init__(self, engine, server, tmpdir):
        self.engine = engine
        self.server = server
        self.tmpdir = Path(tmpdir)
        self.created = []

    def _target(self, name):
        if self.engine == "sqlite":
            return servers.DBTarget("sqlite", name)
        s = self.server
        return servers.DBTarget(self.engine, name, s.host, s.port, s.user, s.password, server=s)

    def empty(self, create_sqlite=False):
        """A new empty database (for SQLite a path, created only with ``create_sqlite``)."""
        name = servers.new_database_name()
        if self.engine == "sqlite":
            path = str(self.tmpdir / (name + ".sqlite3"))
            self.created.append(path)
            if create_sqlite:
                sqlite3.connect(path).close()
            return self._target(path)
        self.server.create_database(name)
        self.created.append(name)
        return self._target(name)

    def copy(self, template):
        assert template.engine == self.engine
        name = servers.new_database_name()
        if self.engine == "sqlite":
            path = str(self.tmpdir / (name + ".sqlite3"))
            self.created.append(path)
            shutil.copyfile(template.name, path)
            return self._target(path)
        self.created.append(name)
        if self.engine == "postgresql":
            _pg_copy(self.server, template.name, name)
        else:
            self.server.create_database(name)
            _mysql_copy(self.server, template.name, name)
        return self._target(name)

    def close(self):
        while self.created:
            name = self.created.pop()
            if self.engine == "sqlite":
                for suffix in ("", "-journal", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name + suffix)
            else:
                self.server.drop_database(name)


class Templates(object):
    """Lazily built, Django-migrated template databases of one engine."""

    def __init__(self, dbs):
        self.dbs = dbs
        self.cache = {}

    def get(self, kind="migrated"):
        if kind not in self.cache:
            if kind == "migrated":
                target = self.dbs.empty()
                migrate(target)
            elif kind == "tokens":
                target = self.dbs.copy(self.get("migrated"))
                issue_tokens(target, 5)
            elif kind == "at_0011":
                target = self.dbs.empty()
                migrate(target, "oauth2_provider", M0011)
            else:
                raise ValueError(kind)
            self.cache[kind] = target
        return self.cache[kind]


def _templates(engine, server, tmp_path_factory):
    dbs = Databases(engine, server, tmp_path_factory.mktemp("oar_tpl_" + engine))
    try:
        yield Templates(dbs)
    finally:
        dbs.close()


# One session fixture per engine, depending on its server fixture, so that templates are dropped
# before a throwaway server stops.
@pytest.fixture(scope="session")
def _templates_mysql(mariadb_server, tmp_path_factory):
    yield from _templates("mysql", mariadb_server, tmp_path_factory)


@pytest.fixture(scope="session")
def _templates_postgresql(postgres_server, tmp_path_factory):
    yield from _templates("postgresql", postgres_server, tmp_path_factory)


@pytest.fixture(scope="session")
def _templates_sqlite(tmp_path_factory):
    yield from _templates("sqlite", None, tmp_path_factory)


class _Maker(object):
    def __init__(self, request, tmp_path):
        self.request = request
        self.tmp_path = tmp_path
        self.dbs = {}

    def _dbs(self, engine):
        if engine not in self.dbs:
            server = None if engine == "sqlite" else self.request.getfixturevalue(_SERVER_FIXTURE[engine])
            self.dbs[engine] = Databases(engine, server, self.tmp_path)
        return self.dbs[engine]

    def templates(self, engine):
        return self.request.getfixturevalue("_templates_" + engine)

    def __call__(self, engine, kind="migrated", create_sqlite=False):
        if kind is None:
            return self._dbs(engine).empty(create_sqlite=create_sqlite)
        return self._dbs(engine).copy(self.templates(engine).get(kind))

    def close(self):
        for dbs in self.dbs.values():
            dbs.close()


@pytest.fixture
def make_db(request, tmp_path):
    """``make_db(engine, kind="migrated")``: a private copy of a template (see the module doc);
    ``make_db(engine, None)``: an empty database (``create_sqlite=True`` also creates the file)."""
    maker = _Maker(request, tmp_path)
    try:
        yield maker
    finally:
        maker.close()


@pytest.fixture
def template(request):
    """``template(engine, kind="migrated")``: the shared template itself, for tests that only read."""
    return lambda engine, kind="migrated": request.getfixturevalue("_templates_" + engine).get(kind)
