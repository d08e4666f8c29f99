"""The test infrastructure itself: servers, per-test databases, the Django
project (real migrations, real DOT token checks) and bulk seeding."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import data, servers
from tests.support.django import (
    SWAPPED_APPLICATION_MODEL,
    issue_tokens,
    migrate,
    run_manage,
    showmigrations,
    token_authenticates,
)

DOT_MIGRATIONS_DIR = Path(__import__("oauth2_provider").__file__).parent / "migrations"
DOT_MIGRATIONS = sorted(p.stem for p in DOT_MIGRATIONS_DIR.glob("0*.py"))
BEFORE_CHECKSUM = "0011_refreshtoken_token_family"  # the last migration without token_checksum


# --------------------------------------------------------------------------
# Servers and databases
# --------------------------------------------------------------------------


@pytest.mark.mysql
@pytest.mark.postgresql
def test_session_servers_follow_force_flag(request):
    """With OAR_TEST_FORCE_THROWAWAY=1 the session servers are throwaway ones."""
    for fixture in ("mariadb_server", "postgres_server"):
        server = request.getfixturevalue(fixture)
        assert server.version
        if servers.force_throwaway():
            assert server.throwaway, server.describe()


def test_db_fixture_gives_fresh_database(any_db):
    assert any_db.engine in servers.ENGINES
    if any_db.engine == "sqlite":
        assert any_db.params == {"engine": "sqlite", "db": any_db.name}
        assert Path(any_db.name).name.startswith(servers.TEST_DB_PREFIX)
    else:
        assert servers.TEST_DB_NAME_RE.match(any_db.name)
        assert any_db.exists()
        assert set(any_db.params) == {"engine", "login_host", "login_port", "login_user",
                                      "login_password", "db"}
        assert any_db.params["db"] == any_db.name
    assert any_db.tables() == []
    env = any_db.django_env()
    assert env["OAR_DB_ENGINE"] == any_db.engine and env["OAR_DB_NAME"] == str(any_db.name)

    any_db.execute_script("CREATE TABLE t (a INTEGER, b VARCHAR(10));\n"
                          "INSERT INTO t VALUES (1, 'x');\n"
                          "INSERT INTO t VALUES (2, '100%');")
    ph = any_db.placeholder
    assert any_db.query(f"SELECT a, b FROM t WHERE a > {ph} ORDER BY a", (0,)) == [
        (1, "x"), (2, "100%")]
    assert any_db.query("SELECT COUNT(*) FROM t WHERE b LIKE '%0%'") == [(1,)]
    assert any_db.execute(f"DELETE FROM t WHERE a = {ph}", (1,)) == 1
    with contextlib.closing(any_db.connect()) as conn:  # autocommit: visible elsewhere
        conn.cursor().execute("INSERT INTO t VALUES (3, 'y')")
    assert any_db.query("SELECT COUNT(*) FROM t") == [(2,)]


@pytest.mark.parametrize("engine", [pytest.param("mysql", marks=pytest.mark.mysql),
                                    pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_temporary_database_is_dropped(request, engine):
    """The per-test database context (what mysql_db/pg_db use) drops its database,
    also when the test fails."""
    server = request.getfixturevalue("mariadb_server" if engine == "mysql" else "postgres_server")
    with servers.temporary_database(server) as target:
        target.execute_script("CREATE TABLE t (a INTEGER)")
        assert server.database_exists(target.name)
    assert not server.database_exists(target.name)

    with pytest.raises(ZeroDivisionError):
        with servers.temporary_database(server) as target:
            # An open session must not stop the drop (PostgreSQL: WITH (FORCE)).
            lingering = target.connect()
            1 / 0
    assert not server.database_exists(target.name)
    with contextlib.suppress(Exception):
        lingering.close()


def test_refuses_foreign_database_names(mariadb_server, postgres_server):
    for server in (mariadb_server, postgres_server):
        for name in ("test", "postgres", "mysql", "oar_t_1234", "oar_t_12345678; x"):
            with pytest.raises(ValueError):
                server.drop_database(name)


def test_sqlite_file_removed(tmp_path):
    with servers.temporary_sqlite(tmp_path) as target:
        target.execute_script("CREATE TABLE t (a INTEGER);")
        assert Path(target.name).exists()
    assert not Path(target.name).exists()


@pytest.mark.slow
@pytest.mark.parametrize("cls", [
    pytest.param(servers.ThrowawayMariaDB, marks=pytest.mark.mysql, id="mysql"),
    pytest.param(servers.ThrowawayPostgres, marks=pytest.mark.postgresql, id="postgresql"),
])
def test_throwaway_server(cls):
    """A fresh machine without database services: start, use, stop, clean up."""
    throwaway = cls()
    server = throwaway.start()
    base = throwaway.base
    try:
        assert server.throwaway and server.port not in (3306, 5432)
        with servers.temporary_database(server) as target:
            target.execute_script("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (7);")
            assert target.query("SELECT a FROM t") == [(7,)]
    finally:
        throwaway.stop()
    assert not base.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


# --------------------------------------------------------------------------
# The Django project: real migrations, real token checks
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_migrate_issue_and_check_tokens(any_db):
    migrate(any_db)
    applied = showmigrations(any_db, "oauth2_provider")
    assert list(applied) == DOT_MIGRATIONS
    assert all(applied.values()), applied

    issued = issue_tokens(any_db, 2)
    assert len(issued["access_tokens"]) == 2 and len(issued["refresh_tokens"]) == 2
    assert token_authenticates(any_db, issued["access_tokens"][0])
    assert not token_authenticates(any_db, "bogus-" + issued["access_tokens"][0])

    # DOT stored the client secret hashed; we got the plaintext.
    ph = any_db.placeholder
    [(stored_secret,)] = any_db.query(
        f"SELECT client_secret FROM oauth2_provider_application WHERE id = {ph}",
        (issued["application_id"],))
    assert stored_secret != issued["client_secret"]
    assert stored_secret.startswith("pbkdf2_sha256$")

    # Raw-SQL seeding writes rows DOT accepts: the checksum matches DOT's.
    seeded = data.bulk_insert_access_tokens(any_db, 1000, issued["application_id"],
                                            issued["user_id"], with_checksum=True)
    assert data.count_rows(any_db) == 1002
    assert token_authenticates(any_db, seeded.token(500))
    with pytest.raises(ValueError):
        data.bulk_insert_access_tokens(any_db, 1, issued["application_id"], None,
                                       with_checksum=False)  # column is NOT NULL now


@pytest.mark.slow
def test_seed_before_checksum_then_migrate(any_db):
    """Seed at DOT 0011 (no token_checksum column yet); DOT's 0012 backfills it."""
    migrate(any_db, "oauth2_provider", BEFORE_CHECKSUM)
    applied = showmigrations(any_db, "oauth2_provider")
    assert [name for name, done in applied.items() if done][-1] == BEFORE_CHECKSUM
    columns = [c.name for c in data.table_columns(any_db, data.ACCESS_TOKEN_TABLE)]
    assert "token_checksum" not in columns and "resource" not in columns

    # DOT 3.4.1's models expect later columns, so the rows come from raw SQL.
    user_id = data.create_user(any_db)
    application_id = data.create_application(any_db, user_id)
    seeded = data.bulk_insert_access_tokens(any_db, 1000, application_id, user_id,
                                            with_checksum=False, batch_size=300)
    assert data.count_rows(any_db) == 1000
    with pytest.raises(ValueError):
        data.bulk_insert_access_tokens(any_db, 1, application_id, user_id, with_checksum=True)

    migrate(any_db)
    assert all(showmigrations(any_db, "oauth2_provider").values())
    ph = any_db.placeholder
    [(stored,)] = any_db.query(
        f"SELECT token_checksum FROM oauth2_provider_accesstoken WHERE token = {ph}",
        (seeded.token(1000),))
    assert stored == data.checksum(seeded.token(1000))
    assert token_authenticates(any_db, seeded.token(1000))


@pytest.mark.slow
def test_swapped_application_model(sqlite_db):
    env = {"OAR_APPLICATION_MODEL": SWAPPED_APPLICATION_MODEL}
    migrate(sqlite_db, extra_env=env)
    tables = sqlite_db.tables()
    assert "swapapp_myapplication" in tables
    assert "oauth2_provider_application" not in tables
    issued = issue_tokens(sqlite_db, 1, extra_env=env)
    assert token_authenticates(sqlite_db, issued["access_tokens"][0], extra_env=env)
    assert run_manage(sqlite_db, "makemigrations", "--check", "--dry-run",
                      extra_env=env).returncode == 0


# --------------------------------------------------------------------------
# Bulk seeding speed
# --------------------------------------------------------------------------

SEED_ROWS = int(os.environ.get("OAR_TEST_SEED_ROWS", "100000"))


@pytest.mark.slow
def test_bulk_seed_speed(any_db, record_property):
    """``OAR_TEST_SEED_ROWS=1000000`` for the full-size benchmark (< 60 s wanted)."""
    migrate(any_db, "oauth2_provider")
    user_id = data.create_user(any_db)
    application_id = data.create_application(any_db, user_id)
    started = time.monotonic()
    seeded = data.bulk_insert_access_tokens(any_db, SEED_ROWS, application_id, user_id,
                                            with_checksum=True)
    elapsed = time.monotonic() - started
    record_property("seed_seconds", round(elapsed, 2))
    print(f"\n{any_db.engine}: {SEED_ROWS} access tokens in {elapsed:.1f}s")
    assert data.count_rows(any_db) == SEED_ROWS
    assert any_db.query(f"SELECT token_checksum FROM oauth2_provider_accesstoken "
                        f"WHERE token = {any_db.placeholder}", (seeded.token(SEED_ROWS),)) == [
        (data.checksum(seeded.token(SEED_ROWS)),)]
    assert elapsed < 60


def test_orphaned_databases_are_swept(mariadb_server, postgres_server):
    """A test database whose creator died (killed pytest) is dropped by the next
    session on the same machine; the databases of live processes are not."""
    code = ("import json, sys; from tests.support import servers; "
            "s = servers.Server(**json.loads(sys.argv[1])); "
            "n = servers.new_database_name(); s.create_database(n); print(n)")
    for server in (mariadb_server, postgres_server):
        orphan = subprocess.run(
            [sys.executable, "-c", code, json.dumps(dataclasses.asdict(server))],
            cwd=Path(__file__).parent.parent, capture_output=True, text=True, check=True,
        ).stdout.strip()
        with servers.temporary_database(server) as mine:
            assert server.database_exists(orphan)
            assert orphan in server.sweep_orphans()
            assert not server.database_exists(orphan)
            assert mine.exists()
