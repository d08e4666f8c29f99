"""Bounded waits and refused inputs (issue 13, items 3, 4 and 5).

* Every module bounds its lock waits from the first statement on, reads included: with another session
  holding the token table (MariaDB ``LOCK TABLES ... WRITE``, PostgreSQL ``ACCESS EXCLUSIVE``, SQLite an
  exclusive transaction), ``oauth_info`` - the preflight's first step - fails within its ``lock_timeout``
  plus a few seconds, and the message names the table, the limit and the session holding the lock.
* Numeric options out of range are refused before anything connects, with the valid range in the message;
  ``django_migration`` refuses app labels and names Django could not have written unless ``force``.
* A ``CREATE UNIQUE INDEX CONCURRENTLY`` cancelled by ``lock_timeout`` is reported as what it is (an INVALID
  index left behind, changed), and ``oauth_info`` says the index is INVALID; the next run rebuilds it.
"""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    AT, ENGINES, SERVER_ENGINES, _templates_mysql, _templates_postgresql, _templates_sqlite, make_db,
    drop_unique, token_rows, unique_indexes)
from tests.support.modules import module_utils, run_module


@contextlib.contextmanager
def table_locked(target, table):
    """Another session holds ``table`` so that readers wait; yields that session's id."""
    raw = target.connect()
    try:
        cur = raw.cursor()
        if target.engine == "mysql":
            cur.execute("SELECT CONNECTION_ID()")
            sid = cur.fetchone()[0]
            cur.execute("LOCK TABLES `%s` WRITE" % table)
        elif target.engine == "postgresql":
            sid = raw.execute("SELECT pg_backend_pid()").fetchone()[0]
            raw.execute("BEGIN")
            raw.execute('LOCK TABLE "%s" IN ACCESS EXCLUSIVE MODE' % table)
        else:
            sid = "writer"
            raw.execute("BEGIN EXCLUSIVE")
        yield sid
    finally:
        with contextlib.suppress(Exception):
            if target.engine == "mysql":
                raw.cursor().execute("UNLOCK TABLES")
            else:
                raw.execute("ROLLBACK")
        raw.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_oauth_info_behind_a_lock_fails_within_lock_timeout_naming_table_and_holder(make_db, engine):
    target = make_db(engine, "tokens")
    with table_locked(target, AT) as holder:
        started = time.monotonic()
        result = run_module("oauth_info", dict(target.params, lock_timeout=1500))
        elapsed = time.monotonic() - started
    assert result.get("failed") is True, result
    assert result["changed"] is False
    # MariaDB rounds lock_wait_timeout up to whole seconds; a few seconds of slack for the 2-core machine
    assert elapsed < 1.5 + 5, elapsed
    msg = result["msg"]
    assert "lock_timeout=1500ms" in msg and "nothing of this step was applied" in msg, msg
    assert "statement_timeout" not in msg  # it did not run out, and 0 means no limit
    if engine == "sqlite":
        # SQLite locks the whole file: the message names it and the writer
        assert "could not lock the database within" in msg and "holds the write lock on %s" % target.name in msg, msg
    else:
        assert msg.startswith("could not lock %s within lock_timeout=1500ms (reading)" % AT), msg
        assert "(id %s," % holder in msg, msg
        assert result["object"] == AT
    # once the lock is gone the same call answers
    assert not run_module("oauth_info", dict(target.params, lock_timeout=1500)).get("failed")


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_oauth_repair_behind_a_lock_fails_cleanly_and_changes_nothing(make_db, engine):
    target = make_db(engine, "tokens")
    before = token_rows(target)
    with table_locked(target, AT) as holder:
        started = time.monotonic()
        result = run_module("oauth_repair", dict(target.params, lock_timeout=1000))
        elapsed = time.monotonic() - started
    assert result.get("failed") is True and result["changed"] is False, result
    assert elapsed < 1 + 5, elapsed
    assert AT in result["msg"] and "(id %s," % holder in result["msg"], result["msg"]
    assert token_rows(target) == before


BAD_OPTIONS = [
    ("batch_size", -5, "from 1 to 1000000"),
    ("batch_size", 0, "from 1 to 1000000"),
    ("lock_timeout", -1, "from 1 to 86400000"),
    ("lock_timeout", 0, "from 1 to 86400000"),
    ("statement_timeout", -1, "from 0 to 86400000"),
    ("throttle", -0.5, "from 0 to 3600"),
    ("connect_timeout", 0, "from 1 to 3600"),
]


@pytest.mark.parametrize("module", ["oauth_repair", "db_surrogate_pk", "swap_application_model", "db_fingerprint",
                                    "oauth_info"])
@pytest.mark.parametrize("option,value,expected", BAD_OPTIONS)
def test_out_of_range_options_are_refused_before_connecting(tmp_path, module, option, value, expected):
    # a database that does not exist: had the module connected, the error would be a connection error
    params = dict(engine="sqlite", db=str(tmp_path / "never-created.sqlite3"))
    params.update({"db_surrogate_pk": dict(table="shelf_tag"),
                   "swap_application_model": dict(model="swapapp.MyApplication")}.get(module, {}))
    spec_has = option in ("lock_timeout", "statement_timeout", "connect_timeout") or (
        module in ("oauth_repair", "db_surrogate_pk", "swap_application_model", "db_fingerprint") and option == "batch_size") or (
        module in ("oauth_repair", "db_surrogate_pk", "swap_application_model") and option == "throttle")
    if not spec_has:
        pytest.skip("%s has no option %s" % (module, option))
    params[option] = value
    result = run_module(module, params)
    assert result.get("failed") is True, result
    assert result["changed"] is False
    assert "%s=%s is out of range" % (option, value) in result["msg"] and expected in result["msg"], result["msg"]
    assert result["object"] == option
    assert not (tmp_path / "never-created.sqlite3").exists()


@pytest.mark.parametrize("app,name", [("oauth2_provider.x", "0001_initial"), ("myapp", "0001 initial; DROP")])
def test_django_migration_refuses_names_django_cannot_write(make_db, app, name):
    target = make_db("sqlite", "migrated")

    def rows():
        return target.query("SELECT app, name FROM django_migrations ORDER BY id")

    before = rows()
    result = run_module("django_migration", dict(target.params, app=app, name=[name]))
    assert result.get("failed") is True and result["changed"] is False, result
    assert "nothing was recorded" in result["msg"] and "force" in result["msg"], result["msg"]
    assert rows() == before
    forced = run_module("django_migration", dict(target.params, app=app, name=[name], force=True))
    assert not forced.get("failed"), forced.get("msg")
    assert forced["changed"] is True and forced["warnings"]
    assert (app, name) in rows()


def test_timeout_messages_unit():
    """Pure: which limit ran out, 0 = no limit, and what a cancelled concurrent build leaves."""
    base = module_utils("dialects.base")
    pg = module_utils("dialects.postgresql").PostgreSQLDialect("15.0")

    class Cancelled(Exception):
        def __init__(self, text, sqlstate):
            super().__init__(text)
            self.sqlstate = sqlstate

    lock = Cancelled("canceling statement due to lock timeout", "55P03")
    stmt = Cancelled("canceling statement due to statement timeout", "57014")
    opts = dict(lock_timeout=3000, statement_timeout=0)
    err = base.timeout_error(pg, lock, 'ALTER TABLE "t" ADD COLUMN x int', "t", opts)
    assert "lock_timeout=3000ms" in err.msg and "nothing of this step was applied" in err.msg
    assert err.changed is False and err.obj == "t"
    err = base.timeout_error(pg, stmt, 'UPDATE "t" SET x = 1', "t", opts)
    assert "past statement_timeout" in err.msg and "0ms" not in err.msg
    err = base.timeout_error(pg, lock, 'CREATE UNIQUE INDEX CONCURRENTLY "i" ON "t" ("c")', "t", opts)
    assert "INVALID index" in err.msg and "nothing of this step was applied" not in err.msg
    assert err.changed is True
    assert base.timeout_error(pg, ValueError("other"), "SELECT 1", "t", opts) is None
    support = module_utils("module_support")
    assert support.tables_in('SELECT COUNT(*) FROM "oauth2_provider_accesstoken" a JOIN `x_y` ON a.id = 1') == [
        "oauth2_provider_accesstoken", "x_y"]
    assert support.tables_in("SELECT 1 FROM information_schema.COLUMNS") == []


@pytest.mark.postgresql
def test_cancelled_concurrent_unique_index_is_reported_as_invalid_and_rebuilt(make_db):
    """A concurrent build waits for older transactions; lock_timeout cancels it and leaves an INVALID index."""
    target = make_db("postgresql", "tokens")
    drop_unique(target, AT, ["token_checksum"])
    # an open transaction that has written to the table: CREATE INDEX CONCURRENTLY waits for it to end
    reader = target.connect()
    try:
        reader.execute("BEGIN")
        reader.execute('UPDATE "%s" SET token = token WHERE id = -1' % AT)
        result = run_module("oauth_repair", dict(target.params, lock_timeout=1500))
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert result.get("failed") is True, result
    msg = result["msg"]
    assert "INVALID index" in msg and "nothing of this step was applied" not in msg, msg
    assert result["changed"] is True
    invalid = target.query("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                           "WHERE NOT i.indisvalid")
    assert invalid, "the cancelled build should have left an INVALID index"
    info = run_module("oauth_info", dict(target.params))
    found = [f for f in info["findings"] if f["code"] == "token_checksum_unique_missing"]
    assert found and "INVALID" in found[0]["message"] and found[0]["details"]["invalid_indexes"], info["findings"]
    repaired = run_module("oauth_repair", dict(target.params))
    assert not repaired.get("failed"), repaired.get("msg")
    assert not target.query("SELECT 1 FROM pg_index WHERE NOT indisvalid")
    assert unique_indexes(target, AT)
    assert run_module("oauth_info", dict(target.params))["findings"] == []


@pytest.mark.parametrize("engine", ENGINES)
def test_a_second_run_is_refused_naming_the_first(make_db, engine):
    """Issue 13 item 7: the run lock. The first run is a real connection holding the lock through the same code
    as the modules; a second changing run is refused before it changes anything, check mode still plans."""
    target = make_db(engine, "tokens")
    drop_unique(target, AT, ["token_checksum"])
    connection = module_utils("connection")
    run_lock = module_utils("run_lock")
    first = connection.connect(dict(target.params, lock_timeout=5000, statement_timeout=0))
    try:
        me = run_lock.take(first, "oauth_repair")
        result = run_module("oauth_repair", dict(target.params))
        assert result.get("failed") is True and result["changed"] is False, result
        msg = result["msg"]
        assert "another run of the collection is changing database" in msg, msg
        if engine == "mysql":
            assert "database session %s" % first.scalar("SELECT CONNECTION_ID()") in msg, msg
        else:
            assert "host %s" % me["host"] in msg and "pid %s" % me["pid"] in msg, msg
            assert "started " in msg
        assert frozenset(["token_checksum"]) not in unique_indexes(target, AT)  # the refused run changed nothing
        planned = run_module("oauth_repair", dict(target.params), check_mode=True)
        assert not planned.get("failed"), planned.get("msg")
        assert any(s["status"] == "would_run" for s in planned["plan"])
        refused = run_module("django_migration", dict(target.params, app="oauth2_provider", name=["0001_initial"]))
        assert refused.get("failed") is True and "another run" in refused["msg"]
    finally:
        first.close()
    # the lock ends with the first run's connection: the next run goes through
    repaired = run_module("oauth_repair", dict(target.params))
    assert not repaired.get("failed"), repaired.get("msg")
    assert repaired["changed"] is True
    assert frozenset(["token_checksum"]) in unique_indexes(target, AT)
    if engine == "sqlite":
        assert not os.path.exists(target.name + "-oauth_repair.lock")


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_backup_behind_a_lock_fails_within_lock_timeout(make_db, engine, tmp_path):
    target = make_db(engine, "tokens")
    with table_locked(target, AT) as holder:
        started = time.monotonic()
        result = run_module("db_backup", dict(target.params, backup_dir=str(tmp_path / "b"), lock_timeout=1500))
        elapsed = time.monotonic() - started
    assert result.get("failed") is True and result["changed"] is False, result
    assert elapsed < 1.5 + 8, elapsed
    # the fingerprint read (MariaDB) names the holder; pg_dump's own LOCK TABLE (PostgreSQL) names the table
    assert AT in result["msg"] or "(id %s," % holder in result["msg"], result["msg"]
