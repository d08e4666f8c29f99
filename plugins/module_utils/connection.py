# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One connection layer for every engine.

``connection_argument_spec()`` is the shared argument spec documented by the
``django_ops.oauth_repair.connection`` doc fragment. ``connect()`` opens a
:class:`Connection`, which runs SQL with bound parameters, records every
statement it executes (``executed_queries``) and carries the dialect chosen
from the engine and the server version.

SQL text in this collection always uses ``%s`` for bound parameters and ``%%``
for a literal percent sign; the SQLite driver translates.
"""

from __future__ import annotations

import os
import time

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2
    from urllib import quote
import traceback

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects import get_dialect
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.sqlite import register_functions

try:
    import pymysql
    PYMYSQL_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    pymysql = None
    PYMYSQL_IMPORT_ERROR = traceback.format_exc()

try:
    import psycopg
    PSYCOPG_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    psycopg = None
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

import sqlite3

ENGINES = ("mysql", "postgresql", "sqlite", "mssql")
#: lock_timeout (ms) of a connection opened without the option (internal callers)
OPTION_DEFAULT_LOCK_TIMEOUT = 5000
DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432, "mssql": 1433}


def connection_argument_spec():
    """The connection options every module of the collection accepts."""
    return dict(
        engine=dict(type="str", required=True, choices=list(ENGINES)),
        login_host=dict(type="str", default="127.0.0.1"),
        login_port=dict(type="int"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        login_unix_socket=dict(type="str"),
        db=dict(type="str", required=True, aliases=["database"]),
        connect_timeout=dict(type="int", default=10),
        ssl_mode=dict(type="str", default="prefer",
                      choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
        client_cert=dict(type="path", aliases=["ssl_cert"]),
        client_key=dict(type="path", aliases=["ssl_key"], no_log=False),
        catalog_snapshot=dict(type="path"),
        lock_timeout=dict(type="int", default=5000),
        statement_timeout=dict(type="int", default=0),
    )


#: valid ranges of the numeric options, checked before anything connects: ``{option: (lowest, highest, unit)}``.
#: ``statement_timeout`` 0 means no limit; a lock wait is always bounded (every statement, reads included).
OPTION_RANGES = {
    "connect_timeout": (1, 3600, "seconds"),
    "lock_timeout": (1, 86400000, "milliseconds"),
    "statement_timeout": (0, 86400000, "milliseconds, 0 = no limit"),
    "batch_size": (1, 1000000, "rows"),
    "throttle": (0, 3600, "seconds"),
}


def check_option_ranges(params):
    """Raise OAuthRepairError naming the first numeric option out of its range (see :data:`OPTION_RANGES`)."""
    for name, (low, high, unit) in OPTION_RANGES.items():
        value = params.get(name)
        if value is None:
            continue
        if not low <= value <= high:
            raise OAuthRepairError(
                "%s=%s is out of range: it must be from %s to %s (%s); nothing was done" % (name, value, low, high, unit),
                obj=name, fix="set %s between %s and %s" % (name, low, high), changed=False)


class Connection(object):
    """A DB-API connection in autocommit mode, with its dialect and a log of what ran."""

    def __init__(self, engine, raw, server_version, params):
        self.engine = engine
        self.raw = raw
        self.server_version = server_version
        self.params = params
        self.dialect = get_dialect(engine, server_version)
        self.executed_queries = []
        self.database = params.get("db")
        #: the last statement sent (query or execute): what a lock wait error names
        self.last_statement = None

    def apply_timeouts(self, lock_timeout_ms, statement_timeout_ms):
        """Bound this session's lock waits and statement durations (every statement from now on, reads included)."""
        for statement in self.dialect.session_timeouts(lock_timeout_ms, statement_timeout_ms):
            self.execute(statement, record=False)

    # -- running SQL -------------------------------------------------------
    def _prepare(self, sql):
        if self.engine == "sqlite":
            return sql.replace("%s", "?").replace("%%", "%")
        return sql

    def cursor(self):
        return self.raw.cursor()

    def query(self, sql, params=()):
        """Run a read-only statement and return all rows as tuples. Not logged."""
        self.last_statement = sql
        cur = self.raw.cursor()
        try:
            cur.execute(self._prepare(sql), tuple(params))
            if cur.description is None:
                return []
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def query_one(self, sql, params=()):
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql, params=()):
        row = self.query_one(sql, params)
        return row[0] if row else None

    def execute(self, sql, params=(), record=True):
        """Run a statement that may change something; record it in ``executed_queries``.

        Returns the number of rows the statement affected (-1 when unknown).
        """
        self.last_statement = sql
        cur = self.raw.cursor()
        try:
            cur.execute(self._prepare(sql), tuple(params))
            count = cur.rowcount
        finally:
            cur.close()
        if record:
            self.executed_queries.append(sql)
        return count

    def close(self):
        try:
            self.dialect.release_run_lock(self)
        except Exception:  # pragma: no cover - best effort: the lock ends with the process anyway
            pass
        try:
            self.raw.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass

    def describe(self):
        return {
            "engine": self.engine,
            "vendor": self.dialect.vendor,
            "server_version": self.server_version,
            "database": self.database,
        }


def _where(params):
    if params["engine"] == "sqlite":
        return "SQLite file %s" % params["db"]
    if params.get("login_unix_socket"):
        where = "socket %s" % params["login_unix_socket"]
    else:
        where = "%s:%s" % (params.get("login_host"), params.get("login_port") or DEFAULT_PORTS.get(params["engine"]))
    return "%s database %r at %s as user %r" % (
        params["engine"], params["db"], where, params.get("login_user"))


def _clean_driver_error(exc, params):
    text = str(exc).strip()
    pw = params.get("login_password")
    if pw:
        text = text.replace(pw, "********")
    return text


def connect(params):
    """Open a :class:`Connection` from module parameters; raise OAuthRepairError on failure."""
    engine = params["engine"]
    if engine not in ENGINES:
        raise OAuthRepairError("unknown engine %r" % engine, obj="engine",
                               fix="use one of: %s" % ", ".join(ENGINES))
    if params.get("catalog_snapshot") and engine != "mssql":
        raise OAuthRepairError("catalog_snapshot is only read with engine mssql, not %s" % engine,
                               obj="catalog_snapshot", fix="remove catalog_snapshot, or set engine: mssql")
    check_option_ranges(params)
    try:
        if engine == "mssql":
            return _connect_mssql(params)
        if engine == "mysql":
            conn = _connect_mysql(params)
        elif engine == "postgresql":
            conn = _connect_postgresql(params)
        else:
            conn = _connect_sqlite(params)
        # bounded waits from the first statement on: a diagnosis behind a lock fails after lock_timeout
        conn.apply_timeouts(params.get("lock_timeout") or OPTION_DEFAULT_LOCK_TIMEOUT, params.get("statement_timeout"))
        return conn
    except OAuthRepairError:
        raise
    except Exception as exc:
        raise OAuthRepairError(
            "cannot connect to %s: %s" % (_where(params), _clean_driver_error(exc, params)),
            obj="db", fix="check login_host, login_port, login_user, login_password and db")


def _connect_mysql(params):
    if pymysql is None:
        raise OAuthRepairError("the PyMySQL library is required for engine mysql", obj="engine",
                               fix="pip install PyMySQL on the host that runs the module")
    kwargs = dict(
        user=params.get("login_user") or "root",
        password=params.get("login_password") or "",
        database=params["db"],
        connect_timeout=params.get("connect_timeout") or 10,
        autocommit=True,
        charset="utf8mb4",
    )
    if params.get("login_unix_socket"):
        kwargs["unix_socket"] = params["login_unix_socket"]
    else:
        kwargs["host"] = params.get("login_host") or "127.0.0.1"
        kwargs["port"] = params.get("login_port") or 3306
    ssl_mode = params.get("ssl_mode") or "prefer"
    if ssl_mode not in ("disable", "allow", "prefer") or params.get("ca_cert"):
        ssl = {}
        if params.get("ca_cert"):
            ssl["ca"] = params["ca_cert"]
        if params.get("client_cert"):
            ssl["cert"] = params["client_cert"]
        if params.get("client_key"):
            ssl["key"] = params["client_key"]
        kwargs["ssl"] = ssl
        kwargs["ssl_verify_cert"] = ssl_mode in ("verify-ca", "verify-full")
        kwargs["ssl_verify_identity"] = ssl_mode == "verify-full"
    raw = pymysql.connect(**kwargs)
    cur = raw.cursor()
    cur.execute("SELECT VERSION()")
    version = cur.fetchone()[0]
    cur.close()
    return Connection("mysql", raw, version, params)


def _connect_postgresql(params):
    if psycopg is None:
        raise OAuthRepairError("the psycopg (version 3) library is required for engine postgresql",
                               obj="engine", fix="pip install 'psycopg[binary]' on the host that runs the module")
    kwargs = dict(
        dbname=params["db"],
        connect_timeout=params.get("connect_timeout") or 10,
        autocommit=True,
        sslmode=params.get("ssl_mode") or "prefer",
        application_name="django_ops.oauth_repair",
    )
    if params.get("login_user"):
        kwargs["user"] = params["login_user"]
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    if params.get("login_unix_socket"):
        kwargs["host"] = params["login_unix_socket"]
    else:
        kwargs["host"] = params.get("login_host") or "127.0.0.1"
    if params.get("login_port"):
        kwargs["port"] = params["login_port"]
    for opt, key in (("ca_cert", "sslrootcert"), ("client_cert", "sslcert"), ("client_key", "sslkey")):
        if params.get(opt):
            kwargs[key] = params[opt]
    raw = psycopg.connect(**kwargs)
    version = raw.execute("SHOW server_version").fetchone()[0]
    return Connection("postgresql", raw, version, params)


def _connect_sqlite(params):
    path = params["db"]
    if path != ":memory:" and not os.path.isfile(path):
        raise OAuthRepairError("SQLite database file %s does not exist" % path, obj=path,
                               fix="set db to the path of the site's existing SQLite file (it is never created)")
    uri = "file:%s?mode=rw" % quote(os.path.abspath(path)) if path != ":memory:" else ":memory:"
    raw = sqlite3.connect(uri, uri=path != ":memory:", timeout=params.get("connect_timeout") or 10,
                          isolation_level=None, check_same_thread=False)
    version = raw.execute("SELECT sqlite_version()").fetchone()[0]
    register_functions(raw)
    return Connection("sqlite", raw, version, params)


class CatalogConnection(Connection):
    """Engine ``mssql``: a stand-in for a connection, holding a catalog snapshot; it never runs SQL.

    SQL Server is supported as plans only (docs/sqlserver.md): any attempt to query or execute through this
    object raises, so no code path can believe it changed, or even read, a live SQL Server.
    """

    def __init__(self, catalog, params):  # pylint: disable=super-init-not-called
        from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.mssql import MSSQLDialect
        self.engine = "mssql"
        self.raw = None
        self.catalog = catalog
        self.server_version = catalog.server_version
        self.params = params
        self.dialect = MSSQLDialect(catalog.server_version, catalog.schema)
        self.executed_queries = []
        self.database = catalog.database

    def _refuse(self, *_args, **_kwargs):
        raise OAuthRepairError(
            "engine mssql is plan-only: nothing is run against SQL Server (the catalog comes from %s)" %
            self.catalog.source, obj="engine",
            fix="use oauth_info or oauth_repair with engine mssql, and run the T-SQL of oauth_repair's "
                "tsql_script yourself (docs/sqlserver.md)")

    cursor = query = query_one = scalar = execute = _refuse

    def close(self):
        return None

    def describe(self):
        d = Connection.describe(self)
        d.update(edition=self.catalog.server.get("edition"), schema=self.catalog.schema,
                 catalog_snapshot=self.catalog.source)
        return d


def _connect_mssql(params):
    from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects import mssql
    if params.get("catalog_snapshot"):
        catalog = mssql.load_snapshot(params["catalog_snapshot"])
    else:
        catalog = mssql.live_snapshot(params)  # pymssql; untested here (no SQL Server where the tests run)
    if (params.get("db") or "").lower() != (catalog.database or "").lower():
        raise OAuthRepairError(
            "catalog snapshot %s is of database %r, not of db=%r" % (
                catalog.source, catalog.database, params.get("db")),
            obj=catalog.source,
            fix="set db to the database the snapshot was taken in, or take the snapshot in %r" % params.get("db"))
    return CatalogConnection(catalog, params)


class Timer(object):
    """Measure a duration in seconds (monotonic)."""

    def __init__(self):
        self.start = time.monotonic()

    def elapsed(self):
        return round(time.monotonic() - self.start, 3)
