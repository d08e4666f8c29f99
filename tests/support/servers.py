"""Real database servers and throwaway per-test databases.

The suite runs against real servers, never mocks:

* MariaDB/MySQL: the server already running on 127.0.0.1:3306 (user ``root``,
  empty password) when it answers; otherwise a throwaway ``mariadbd`` started
  from the installed binaries in a temporary directory on a free port.
* PostgreSQL: the server already running on 127.0.0.1:5432 (user ``root``,
  trust authentication, database ``postgres``) when it answers; otherwise a
  throwaway cluster made with ``initdb`` from ``/usr/lib/postgresql/*/bin``.
  PostgreSQL refuses to run as root, so when the tests run as root the cluster
  belongs to (and runs as) the ``postgres`` system user.

Environment variables:

``OAR_TEST_FORCE_THROWAWAY=1``
    Ignore running servers and always start throwaway ones (this is what a
    fresh machine without database services does).
``OAR_TEST_MYSQL_HOST`` / ``_PORT`` / ``_USER`` / ``_PASSWORD``
``OAR_TEST_PG_HOST`` / ``_PORT`` / ``_USER`` / ``_PASSWORD``
    Where to look for the running servers (defaults as above).
``OAR_TEST_PG_OS_USER``
    The unprivileged system user a throwaway PostgreSQL runs as when the
    tests run as root (default ``postgres``).

Every test database is named ``oar_t_<8 random hex digits>``, created for one
test and dropped after it; the helpers here refuse to drop any other name, so
sharing a server with other users (or with other pytest-xdist workers) is safe.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import psycopg
import pymysql
from pymysql.constants import CLIENT

FORCE_THROWAWAY_ENV = "OAR_TEST_FORCE_THROWAWAY"

#: Names of the databases the suite creates; nothing else is ever dropped.
TEST_DB_PREFIX = "oar_t_"
TEST_DB_NAME_RE = re.compile(r"^oar_t_[0-9a-f]{8}$")

ENGINES = ("mysql", "postgresql", "sqlite")

# How long a throwaway server may take to accept connections.
STARTUP_TIMEOUT = 90.0


class ServerUnavailable(RuntimeError):
    """No running server answered and no throwaway one could be started."""


def force_throwaway() -> bool:
    """True when ``OAR_TEST_FORCE_THROWAWAY`` asks to ignore running servers."""
    return os.environ.get(FORCE_THROWAWAY_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def new_database_name() -> str:
    """A fresh test database name, ``oar_t_`` + 8 random hex digits."""
    return TEST_DB_PREFIX + secrets.token_hex(4)


def _check_test_db_name(name: str) -> None:
    if not TEST_DB_NAME_RE.match(name):
        raise ValueError(f"refusing to touch database {name!r}: not a test database name")


def _namespace_id() -> str:
    """This machine (boot) and PID namespace: where a PID means something."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return socket.gethostname()
    return f"{boot}/{pidns}"


def owner_tag() -> str:
    """Comment stored on each test database: who created it, to find orphans."""
    return f"oar-test pid={os.getpid()} ns={_namespace_id()}"


def _orphaned(tag: str) -> bool:
    match = re.fullmatch(r"oar-test pid=(\d+) ns=(\S+)", tag or "")
    if not match or match.group(2) != _namespace_id():
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


# --------------------------------------------------------------------------
# Raw connections
# --------------------------------------------------------------------------


def connect_mysql(host, port, user, password="", database=None, unix_socket=None,
                  multi_statements=False, connect_timeout=10):
    """A PyMySQL connection in autocommit mode (utf8mb4)."""
    return pymysql.connect(
        host=host,
        port=int(port) if port else 3306,
        user=user,
        password=password or "",
        database=database,
        unix_socket=unix_socket,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=connect_timeout,
        client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0,
    )


def connect_postgres(host, port, user, password="", database="postgres", connect_timeout=10):
    """A psycopg 3 connection in autocommit mode."""
    return psycopg.connect(
        host=host,
        port=int(port) if port else 5432,
        user=user,
        password=password or None,
        dbname=database,
        autocommit=True,
        connect_timeout=connect_timeout,
    )


def connect_sqlite(path):
    """An sqlite3 connection in autocommit mode (no implicit transactions)."""
    return sqlite3.connect(str(path), isolation_level=None)


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


@dataclass
class Server:
    """A database server the tests may create and drop their own databases on."""

    engine: str  # "mysql" or "postgresql"
    host: str
    port: int
    user: str
    password: str = ""
    #: True for a server this process started (and will stop).
    throwaway: bool = False
    version: str = ""

    def connect(self, database: Optional[str] = None):
        """A raw autocommit connection; without ``database`` a server-level one
        (no default schema on MariaDB, the ``postgres`` database on PostgreSQL)."""
        if self.engine == "mysql":
            return connect_mysql(self.host, self.port, self.user, self.password, database)
        return connect_postgres(self.host, self.port, self.user, self.password, database or "postgres")

    def _admin(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with contextlib.closing(self.connect()) as conn:
            cur = conn.cursor()
            cur.execute(sql, params or None)
            return list(cur.fetchall()) if cur.description else []

    def database_exists(self, name: str) -> bool:
        if self.engine == "mysql":
            sql = "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s"
        else:
            sql = "SELECT 1 FROM pg_database WHERE datname = %s"
        return bool(self._admin(sql, (name,)))

    def create_database(self, name: str) -> None:
        """Create the (test-named) database, tagged with its creator (see
        :func:`owner_tag`); fails if it already exists."""
        _check_test_db_name(name)
        tag = owner_tag()
        if self.engine == "mysql":
            comment = f" COMMENT '{tag}'" if "mariadb" in self.version.lower() else ""
            self._admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                        f"COLLATE utf8mb4_unicode_ci{comment}")
        else:
            # template0: nobody is ever connected to it, so concurrent CREATE
            # DATABASE calls (other xdist workers) cannot collide on the template.
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
            self._admin(f'COMMENT ON DATABASE "{name}" IS \'{tag}\'')

    def test_databases(self) -> dict[str, str]:
        """``{name: owner tag or ""}`` of the ``oar_t_*`` databases on the server."""
        if self.engine == "mysql":
            sql = ("SELECT schema_name, COALESCE(schema_comment, '') "
                   if "mariadb" in self.version.lower() else "SELECT schema_name, '' ")
            sql += "FROM information_schema.schemata WHERE schema_name LIKE 'oar\\_t\\_%'"
        else:
            sql = ("SELECT datname, COALESCE(shobj_description(oid, 'pg_database'), '') "
                   "FROM pg_database WHERE datname LIKE 'oar\\_t\\_%'")
        return {name: tag for name, tag in self._admin(sql, ()) if TEST_DB_NAME_RE.match(name)}

    def sweep_orphans(self) -> list[str]:
        """Drop the test databases that a test process of *this* machine created
        and that outlived it (pytest killed before its teardown ran). Databases of
        live processes, of other machines or containers, and untagged ones are
        left alone. Returns the names dropped."""
        dropped = []
        for name, tag in self.test_databases().items():
            if _orphaned(tag):
                self.drop_database(name)
                dropped.append(name)
        return dropped

    def drop_database(self, name: str) -> None:
        """Drop the (test-named) database, disconnecting any leftover sessions."""
        _check_test_db_name(name)
        if self.engine == "mysql":
            self._admin(f"DROP DATABASE IF EXISTS `{name}`")
        else:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def describe(self) -> str:
        kind = "throwaway" if self.throwaway else "running"
        return f"{kind} {self.engine} {self.version} at {self.host}:{self.port}"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def running_mariadb() -> Optional[Server]:
    """The MariaDB/MySQL server configured by ``OAR_TEST_MYSQL_*`` if it answers."""
    server = Server(
        engine="mysql",
        host=_env("OAR_TEST_MYSQL_HOST", "127.0.0.1"),
        port=int(_env("OAR_TEST_MYSQL_PORT", "3306")),
        user=_env("OAR_TEST_MYSQL_USER", "root"),
        password=_env("OAR_TEST_MYSQL_PASSWORD", ""),
    )
    try:
        with contextlib.closing(connect_mysql(server.host, server.port, server.user,
                                              server.password, connect_timeout=3)) as conn:
            cur = conn.cursor()
            cur.execute("SELECT VERSION()")
            server.version = cur.fetchone()[0]
    except pymysql.MySQLError:
        return None
    return server


def running_postgres() -> Optional[Server]:
    """The PostgreSQL server configured by ``OAR_TEST_PG_*`` if it answers."""
    server = Server(
        engine="postgresql",
        host=_env("OAR_TEST_PG_HOST", "127.0.0.1"),
        port=int(_env("OAR_TEST_PG_PORT", "5432")),
        user=_env("OAR_TEST_PG_USER", "root"),
        password=_env("OAR_TEST_PG_PASSWORD", ""),
    )
    try:
        with contextlib.closing(connect_postgres(server.host, server.port, server.user,
                                                 server.password, connect_timeout=3)) as conn:
            server.version = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        return None
    return server


# --------------------------------------------------------------------------
# Throwaway servers
# --------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent(sig: int):
    """A ``preexec_fn`` asking Linux to send ``sig`` to the child when pytest dies,
    so a crashed or killed test run does not leave servers behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - not Linux
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)

    return preexec


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Throwaway:
    """Common life cycle of a server process living in a temporary directory."""

    engine = ""
    stop_signal = signal.SIGTERM

    def __init__(self) -> None:
        self.base: Optional[Path] = None
        self.proc: Optional[subprocess.Popen] = None
        self.log: Optional[Path] = None
        self.server: Optional[Server] = None

    def start(self) -> Server:
        """Start the server (retrying on another port if one is snatched)."""
        atexit.register(self.stop)
        last_error: Optional[Exception] = None
        for _attempt in range(3):
            try:
                self.server = self._start()
                return self.server
            except ServerUnavailable as exc:
                last_error = exc
                self.stop()
        raise ServerUnavailable(f"could not start a throwaway {self.engine} server: {last_error}")

    def _start(self) -> Server:  # pragma: no cover - abstract
        raise NotImplementedError

    def _wait_ready(self, probe) -> str:
        """Poll ``probe()`` (returning the server version) until it works."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerUnavailable(
                    f"{self.engine} server exited with {self.proc.returncode}:\n{_tail(self.log)}")
            try:
                return probe()
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                if time.monotonic() > deadline:
                    raise ServerUnavailable(
                        f"{self.engine} server not ready after {STARTUP_TIMEOUT}s ({exc}):\n"
                        f"{_tail(self.log)}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server and delete its directory (idempotent)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        base, self.base = self.base, None
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)


def _first_tool(*names: str) -> Optional[str]:
    for name in names:
        for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    return None


class ThrowawayMariaDB(_Throwaway):
    """A private ``mariadbd`` with a fresh data directory and a normal ``root``
    account (empty password) reachable over TCP on 127.0.0.1."""

    engine = "mysql"
    stop_signal = signal.SIGTERM

    def _start(self) -> Server:
        install_db = _first_tool("mariadb-install-db", "mysql_install_db")
        daemon = _first_tool("mariadbd", "mysqld")
        if not install_db or not daemon:
            raise ServerUnavailable("mariadb-install-db/mariadbd not installed")
        self.base = Path(tempfile.mkdtemp(prefix="oar-mariadb-"))
        datadir, sock = self.base / "data", self.base / "mysqld.sock"
        tmpdir = self.base / "tmp"
        tmpdir.mkdir()
        self.log = self.base / "mariadbd.log"
        os_user = pwd.getpwuid(os.geteuid()).pw_name
        install = subprocess.run(
            [install_db, "--no-defaults", f"--datadir={datadir}", f"--user={os_user}",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve"],
            cwd=self.base, capture_output=True, text=True, timeout=300, check=False,
        )
        if install.returncode != 0:
            raise ServerUnavailable(f"{install_db} failed:\n{install.stdout}\n{install.stderr}")
        port = free_port()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [daemon, "--no-defaults", f"--datadir={datadir}", f"--socket={sock}",
                 # a private tmpdir: a starting mariadbd deletes every #sql* file of its tmpdir, and /tmp
                 # is shared with the machine's own server
                 f"--tmpdir={tmpdir}",
                 f"--port={port}", "--bind-address=127.0.0.1", f"--user={os_user}",
                 f"--pid-file={self.base / 'mariadbd.pid'}", f"--log-error={self.log}",
                 "--skip-name-resolve", "--skip-log-bin",
                 "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
                 # Throwaway data: durability does not matter, speed does.
                 "--innodb-buffer-pool-size=256M", "--innodb-flush-log-at-trx-commit=0",
                 "--innodb-doublewrite=0", "--sync-binlog=0", "--max-connections=300"],
                cwd=self.base, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )

        def probe() -> str:
            # First over the socket as root@localhost, to make sure the TCP
            # account root@127.0.0.1 exists with the same (empty) password.
            with contextlib.closing(connect_mysql(None, None, "root", "", unix_socket=str(sock),
                                                  connect_timeout=2)) as conn:
                cur = conn.cursor()
                cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''")
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
            with contextlib.closing(connect_mysql("127.0.0.1", port, "root", "",
                                                  connect_timeout=2)) as conn:
                cur = conn.cursor()
                cur.execute("SELECT VERSION()")
                return cur.fetchone()[0]

        version = self._wait_ready(probe)
        return Server("mysql", "127.0.0.1", port, "root", "", throwaway=True, version=version)


def postgres_bindir() -> Optional[str]:
    """The newest ``/usr/lib/postgresql/<ver>/bin`` (or the one ``initdb`` is in)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[4].split(".")],
    )
    if candidates:
        return os.path.dirname(candidates[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class ThrowawayPostgres(_Throwaway):
    """A private PostgreSQL cluster with trust authentication and a superuser
    ``root``. Run as the ``postgres`` system user when the tests run as root."""

    engine = "postgresql"
    stop_signal = signal.SIGINT  # "fast" shutdown

    def _start(self) -> Server:
        bindir = postgres_bindir()
        if not bindir:
            raise ServerUnavailable("PostgreSQL server binaries (initdb, postgres) not installed")
        run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            os_user = os.environ.get("OAR_TEST_PG_OS_USER", "postgres")
            try:
                account = pwd.getpwnam(os_user)
            except KeyError as exc:
                raise ServerUnavailable(
                    f"running as root and there is no system user {os_user!r} to run "
                    "PostgreSQL as (set OAR_TEST_PG_OS_USER)") from exc
            run_as = dict(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
        self.base = Path(tempfile.mkdtemp(prefix="oar-postgres-"))
        if run_as:
            os.chown(self.base, run_as["user"], run_as["group"])
        datadir = self.base / "data"
        self.log = self.base / "postgres.log"
        env = dict(os.environ, LC_ALL="C")
        init = subprocess.run(
            [f"{bindir}/initdb", "-D", str(datadir), "-U", "root", "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            cwd=self.base, env=env, capture_output=True, text=True, timeout=300, check=False, **run_as,
        )
        if init.returncode != 0:
            raise ServerUnavailable(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        port = free_port()
        log_fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if run_as:
            os.chown(self.log, run_as["user"], run_as["group"])
        try:
            self.proc = subprocess.Popen(
                [f"{bindir}/postgres", "-D", str(datadir), "-p", str(port),
                 "-k", str(self.base), "-c", "listen_addresses=127.0.0.1",
                 "-c", "max_connections=200",
                 # Throwaway data: durability does not matter, speed does.
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off"],
                cwd=self.base, env=env, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
                preexec_fn=_die_with_parent(signal.SIGINT), **run_as,
            )
        finally:
            os.close(log_fd)

        def probe() -> str:
            with contextlib.closing(connect_postgres("127.0.0.1", port, "root", "",
                                                     connect_timeout=2)) as conn:
                return conn.execute("SHOW server_version").fetchone()[0]

        version = self._wait_ready(probe)
        return Server("postgresql", "127.0.0.1", port, "root", "", throwaway=True, version=version)


@contextlib.contextmanager
def _server(engine: str, find_running, throwaway_cls) -> Iterator[Server]:
    running = None if force_throwaway() else find_running()
    if running is not None:
        # Shared server: clear what killed test runs of this machine left behind.
        running.sweep_orphans()
        yield running
        return
    throwaway = throwaway_cls()
    try:
        yield throwaway.start()
    finally:
        throwaway.stop()


def mariadb_server() -> contextlib.AbstractContextManager[Server]:
    """Context manager yielding a usable MariaDB/MySQL :class:`Server`."""
    return _server("mysql", running_mariadb, ThrowawayMariaDB)


def postgres_server() -> contextlib.AbstractContextManager[Server]:
    """Context manager yielding a usable PostgreSQL :class:`Server`."""
    return _server("postgresql", running_postgres, ThrowawayPostgres)


# --------------------------------------------------------------------------
# Test databases
# --------------------------------------------------------------------------


@dataclass
class DBTarget:
    """One test database, and everything needed to reach it.

    ``engine`` is ``mysql``, ``postgresql`` or ``sqlite``; ``name`` is the
    database name (the file path for SQLite). SQL passed to :meth:`query` and
    :meth:`execute` uses the driver's own placeholder, :attr:`placeholder`
    (``%s`` for PyMySQL and psycopg, ``?`` for sqlite3).
    """

    engine: str
    name: str
    host: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    password: str = ""
    server: Optional[Server] = field(default=None, repr=False, compare=False)

    @property
    def placeholder(self) -> str:
        return "?" if self.engine == "sqlite" else "%s"

    @property
    def params(self) -> dict[str, Any]:
        """The collection modules' connection options for this database."""
        if self.engine == "sqlite":
            return {"engine": "sqlite", "db": self.name}
        return {
            "engine": self.engine,
            "login_host": self.host,
            "login_port": self.port,
            "login_user": self.user,
            "login_password": self.password,
            "db": self.name,
        }

    def connect(self, multi_statements: bool = False):
        """A raw DB-API connection (PyMySQL / psycopg 3 / sqlite3) in autocommit mode.
        The caller closes it (``contextlib.closing`` works for all three)."""
        if self.engine == "mysql":
            return connect_mysql(self.host, self.port, self.user, self.password, self.name,
                                 multi_statements=multi_statements)
        if self.engine == "postgresql":
            return connect_postgres(self.host, self.port, self.user, self.password, self.name)
        return connect_sqlite(self.name)

    def execute_script(self, sql_text: str) -> None:
        """Run a script of several ``;``-separated statements (no parameters)."""
        with contextlib.closing(self.connect(multi_statements=True)) as conn:
            if self.engine == "sqlite":
                conn.executescript(sql_text)
                return
            cur = conn.cursor()
            cur.execute(sql_text)
            if self.engine == "mysql":
                # Each statement's result must be consumed; errors in later
                # statements surface here.
                while cur.nextset():
                    pass
            cur.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement and return its rows as a list of tuples ([] if none)."""
        with contextlib.closing(self.connect()) as conn:
            cur = self._run(conn, sql, params)
            rows = [tuple(row) for row in cur.fetchall()] if cur.description else []
            cur.close()
            return rows

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement, return its row count."""
        with contextlib.closing(self.connect()) as conn:
            cur = self._run(conn, sql, params)
            count = cur.rowcount
            cur.close()
            return count

    def _run(self, conn, sql: str, params: Sequence[Any]):
        cur = conn.cursor()
        if self.engine == "sqlite":
            cur.execute(sql, tuple(params))
        else:
            # No parameters: pass None so a literal "%" in the SQL is left alone.
            cur.execute(sql, tuple(params) if params else None)
        return cur

    def tables(self) -> list[str]:
        """Names of the tables in this database."""
        if self.engine == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        elif self.engine == "mysql":
            sql = ("SELECT table_name FROM information_schema.tables "
                   "WHERE table_schema = DATABASE() ORDER BY table_name")
        else:
            sql = ("SELECT table_name FROM information_schema.tables "
                   "WHERE table_schema = current_schema() ORDER BY table_name")
        return [row[0] for row in self.query(sql)]

    def exists(self) -> bool:
        """Whether the database (or SQLite file) exists right now."""
        if self.engine == "sqlite":
            return os.path.exists(self.name)
        assert self.server is not None
        return self.server.database_exists(self.name)

    def django_env(self) -> dict[str, str]:
        """Environment variables pointing the Django test project at this database."""
        return {
            "OAR_DB_ENGINE": self.engine,
            "OAR_DB_NAME": str(self.name),
            "OAR_DB_HOST": self.host or "",
            "OAR_DB_PORT": str(self.port) if self.port else "",
            "OAR_DB_USER": self.user or "",
            "OAR_DB_PASSWORD": self.password or "",
        }


@contextlib.contextmanager
def temporary_database(server: Server) -> Iterator[DBTarget]:
    """Create a uniquely named database on ``server``; drop it afterwards."""
    for _attempt in range(5):
        name = new_database_name()
        if server.database_exists(name):  # 1 in 4 billion; just pick again
            continue
        server.create_database(name)
        break
    else:  # pragma: no cover
        raise RuntimeError("could not find a free test database name")
    target = DBTarget(server.engine, name, server.host, server.port, server.user,
                      server.password, server=server)
    try:
        yield target
    finally:
        server.drop_database(name)


@contextlib.contextmanager
def temporary_sqlite(directory: Path) -> Iterator[DBTarget]:
    """An SQLite database file (not created yet) in ``directory``; removed afterwards."""
    path = Path(directory) / f"{new_database_name()}.sqlite3"
    target = DBTarget("sqlite", str(path))
    try:
        yield target
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")
