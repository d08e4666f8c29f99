"""Fixtures: real database servers and one fresh database per test.

Session fixtures (started lazily, only when a test needs them):

``mariadb_server``, ``postgres_server``
    :class:`tests.support.servers.Server` objects: the running servers on
    127.0.0.1 when reachable, else throwaway ones (also with
    ``OAR_TEST_FORCE_THROWAWAY=1``), stopped at the end of the session.

Per-test fixtures, each yielding a :class:`tests.support.servers.DBTarget`
whose database is created for the test and dropped after it:

``mysql_db``, ``pg_db``, ``sqlite_db``
    One engine each (``sqlite_db`` is a file in ``tmp_path``, not created yet).
``any_db``
    Parametrized over the three (ids ``mysql``, ``postgresql``, ``sqlite``).

Tests using these fixtures get the ``mysql`` / ``postgresql`` / ``sqlite``
marker automatically, so ``-m "not mysql"`` and the like work.
"""

from __future__ import annotations

import pytest

from tests.support import servers

_ENGINE_FIXTURES = {"mysql": "mysql_db", "postgresql": "pg_db", "sqlite": "sqlite_db"}
_FIXTURE_MARKERS = {
    "mysql_db": "mysql", "mariadb_server": "mysql",
    "pg_db": "postgresql", "postgres_server": "postgresql",
    "sqlite_db": "sqlite",
}


def _session_server(context_factory, engine: str):
    try:
        with context_factory() as server:
            yield server
    except servers.ServerUnavailable as exc:  # raised only while starting
        pytest.fail(f"no usable {engine} server: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def mariadb_server():
    """The MariaDB/MySQL server of this test session."""
    yield from _session_server(servers.mariadb_server, "MariaDB")


@pytest.fixture(scope="session")
def postgres_server():
    """The PostgreSQL server of this test session."""
    yield from _session_server(servers.postgres_server, "PostgreSQL")


@pytest.fixture
def mysql_db(mariadb_server):
    """A fresh MariaDB database ``oar_t_<hex>``, dropped after the test."""
    with servers.temporary_database(mariadb_server) as target:
        yield target


@pytest.fixture
def pg_db(postgres_server):
    """A fresh PostgreSQL database ``oar_t_<hex>``, dropped (WITH FORCE) after the test."""
    with servers.temporary_database(postgres_server) as target:
        yield target


@pytest.fixture
def sqlite_db(tmp_path):
    """A fresh SQLite database file path in ``tmp_path``, removed after the test."""
    with servers.temporary_sqlite(tmp_path) as target:
        yield target


@pytest.fixture(params=[
    pytest.param("mysql", marks=pytest.mark.mysql, id="mysql"),
    pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql"),
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
])
def any_db(request):
    """A fresh database on each engine in turn."""
    return request.getfixturevalue(_ENGINE_FIXTURES[request.param])


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()) and marker not in item.keywords:
                item.add_marker(marker)


def pytest_report_header(config):
    if servers.force_throwaway():
        return f"database servers: throwaway ({servers.FORCE_THROWAWAY_ENV} is set)"
    return "database servers: running ones on 127.0.0.1 if reachable, else throwaway"
