# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every dialect provides: identifier handling, introspection, SQL builders.

A dialect never pastes a value into SQL: values are bound parameters (``%s``).
Identifiers (table, column, index, constraint names) cannot be bound, so they
are validated against a strict pattern and quoted.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.schema.model import Schema

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def version_tuple(text):
    nums = re.findall(r"\d+", text or "")
    return tuple(int(n) for n in nums[:3]) if nums else (0,)


class BaseDialect(object):
    engine = None
    vendor = None
    quote_char = '"'
    max_name_length = 200
    minimum_version = (0,)
    #: integers: normalised name -> DDL spelling
    integer_ddl = {"int": "integer", "bigint": "bigint", "smallint": "smallint"}

    def __init__(self, server_version):
        self.server_version = server_version
        self.version = version_tuple(server_version)

    # -- identifiers -------------------------------------------------------
    def validate_identifier(self, name, what="identifier"):
        if not isinstance(name, str) or not IDENTIFIER.match(name) or len(name) > self.max_name_length:
            raise OAuthRepairError(
                "refusing %s %r: only letters, digits, '_' and '$' (not first) are accepted, at most %d characters"
                % (what, name, self.max_name_length),
                obj=str(name), fix="check the table/column/model names given to the module")
        return name

    def quote(self, name):
        self.validate_identifier(name)
        return "%s%s%s" % (self.quote_char, name, self.quote_char)

    def quote_list(self, names):
        return ", ".join(self.quote(n) for n in names)

    # -- Django's naming of indexes and constraints ----------------------
    def django_index_name(self, table, columns, suffix=""):
        """The name Django's schema editor gives an index/constraint (``_create_index_name``)."""
        h = hashlib.md5(usedforsecurity=False) if _md5_kw() else hashlib.md5()  # nosec - a name, not security
        for part in [table] + list(columns):
            h.update(part.encode())
        hash_suffix = "%s%s" % (h.hexdigest()[:8], suffix)
        max_length = self.max_name_length
        name = "%s_%s_%s" % (table, "_".join(columns), hash_suffix)
        if len(name) <= max_length:
            return name
        if len(hash_suffix) > max_length / 3:
            hash_suffix = hash_suffix[:max_length // 3]
        other = (max_length - len(hash_suffix)) // 2 - 1
        name = "%s_%s_%s" % (table[:other], "_".join(columns)[:other], hash_suffix)
        if name[0] == "_" or name[0].isdigit():
            name = "D%s" % name[:-1]
        return name

    def django_fk_name(self, table, column, ref_table, ref_column):
        return self.django_index_name(table, [column], suffix="_fk_%s_%s" % (ref_table, ref_column))

    # -- introspection (implemented per engine) ----------------------------
    #: whether integer widths differ on this engine (False on SQLite: every integer is 64-bit)
    integer_width_matters = True

    def load_schema(self, conn, names, source="catalog"):
        """The :class:`Schema` of the existing tables among ``names``."""
        return Schema(engine=self.engine, vendor=self.vendor, server_version=self.server_version,
                      tables=self.load_tables(conn, names), source=source)

    def normalize_declared_type(self, db_type):
        """A column type as Django's ``Field.db_type(connection)`` spells it, normalised like the catalog's."""
        raise NotImplementedError

    def list_tables(self, conn):
        raise NotImplementedError

    def load_tables(self, conn, names):
        """Return {name: catalog.Table} for the existing tables among ``names``."""
        raise NotImplementedError

    def referencing_foreign_keys(self, conn, table):
        """Foreign keys of any table of the database that reference ``table``."""
        raise NotImplementedError

    def catalog_limitations(self, conn):
        """Sentences on what the catalog hid from the connected user while reading it (and what was read instead),
        each naming the privilege that would show it; [] when it hid nothing."""
        return []

    def estimated_rows(self, conn, tables):
        """{table: estimated row count or None} from statistics, without scanning."""
        return dict((t, None) for t in tables)

    def exact_rows(self, conn, table):
        return conn.scalar("SELECT COUNT(*) FROM %s" % self.quote(table))

    # -- SQL expressions -----------------------------------------------------
    def sha256_hex(self, expr):
        """SQL expression: lowercase hex sha256 of the UTF-8 bytes of a text expression."""
        raise NotImplementedError

    # -- running DDL safely ---------------------------------------------------
    def session_timeouts(self, lock_timeout_ms, statement_timeout_ms):
        """Statements that bound how long this session waits for locks and runs one statement."""
        return []

    def is_lock_timeout(self, exc):
        return False

    def is_statement_timeout(self, exc):
        """True when ``exc`` is a statement cancelled by statement_timeout (not a lock wait)."""
        return False

    def scratch_databases(self, conn):
        """``{name: sessions connected}`` of the scratch databases on the server (see :data:`SCRATCH_DATABASE`)."""
        return {}

    def take_run_lock(self, conn, me):
        """Take the database's run lock for the life of ``conn`` (see run_lock.py): None when taken, else what is
        known of the run that holds it (``host``, ``pid``, ``started``, ``session``, ``client``)."""
        return None

    def release_run_lock(self, conn):
        """Release what :meth:`take_run_lock` took that does not end with the connection."""
        return None

    def rollback_failed(self, conn):
        """End a transaction that an error left open and unusable, so that the connection can read again."""
        return None

    def lock_holders(self, conn, tables):
        """The other sessions that hold (or may hold) a lock on ``tables``: dicts with ``id``, ``user``, ``client``,
        ``state`` and, where the server tells, ``lock`` and ``table``. Read after a lock wait ran out."""
        return []

    def translate_error(self, exc, statement, table, options):
        """Turn a driver error into an OAuthRepairError naming the object and the fix."""
        if isinstance(exc, OAuthRepairError):
            return exc
        return timeout_error(self, exc, statement, table, options) or OAuthRepairError(
            "%s failed on %s: %s" % (statement.split(" (")[0][:120], table, exc),
            obj=table, fix="see the error; re-running resumes from this step")

    def big_result_hint(self):
        """A hint for a GROUP BY over a whole big table (MySQL: sort rather than an on-disk temp table)."""
        return ""

    def limit(self, n):
        return "LIMIT %d" % int(n)

    def check_version(self):
        """Raise when the server is older than the dialect supports."""
        if self.version < self.minimum_version:
            raise OAuthRepairError(
                "%s %s is not supported (needs %s or later)" % (
                    self.vendor, self.server_version, ".".join(str(x) for x in self.minimum_version)),
                obj="server", fix="upgrade the database server")


def _md5_kw():
    try:
        hashlib.md5(usedforsecurity=False)
        return True
    except TypeError:  # pragma: no cover - Python < 3.9
        return False


#: the names of the collection's scratch databases (backup verification restores, schema-truth migrations):
#: prefix, the tag of the site's database (see :func:`site_tag`; absent in names made before it) and a random part
SCRATCH_DATABASE = re.compile(r"^oar_(?:verify|truth)_(?:(?P<site>[0-9a-f]{8})_)?[0-9a-f]{8,32}$")


def site_tag(database):
    """8 hex digits that tie a scratch database to the site's database it was made for."""
    return hashlib.sha256(("%s" % database).encode("utf-8")).hexdigest()[:8]


def scratch_name(prefix, database):
    """A new scratch database name for ``database``: ``<prefix><site tag>_<random>``."""
    return "%s%s_%s" % (prefix, site_tag(database), secrets.token_hex(4))


#: the name of every run lock, with the database's name after it
RUN_LOCK_NAME = "django_ops.oauth_repair"


def run_lock_key(database):
    """A stable signed 63-bit number for ``database``'s run lock (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.sha256(("%s:%s" % (RUN_LOCK_NAME, database)).encode("utf-8")).hexdigest()
    return int(digest[:15], 16)


#: statements that, cancelled half-way, leave something behind (PostgreSQL: an INVALID index)
_LEAVES_INVALID = re.compile(r"\bCREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\b", re.I)


def _ms(value, unlimited="no limit"):
    return "%sms" % value if value else unlimited


def timeout_error(dialect, exc, statement, table, options):
    """An OAuthRepairError for a lock wait or statement timeout that ran out, or None for any other error.

    It says which limit ran out (a statement_timeout of 0 is "no limit", never "0ms"), on which table and
    step, and what was left: a cancelled ``CREATE INDEX CONCURRENTLY`` leaves an INVALID index behind (the
    next run drops and rebuilds it), anything else run in one statement or transaction left nothing.
    """
    lock = dialect.is_lock_timeout(exc)
    cancelled = dialect.is_statement_timeout(exc)
    if not lock and not cancelled:
        return None
    step = (statement or "").split(" (")[0][:120]
    reading = re.match(r"\s*(SELECT|SHOW|WITH|PRAGMA)\b", statement or "", re.I)
    step = "reading" if reading else (step or "a statement")
    if cancelled:
        what = "%s on %s ran past statement_timeout=%s" % (step, table, _ms(options.get("statement_timeout")))
        fix = "raise statement_timeout (0 = no limit), or re-run when the table is less busy"
    else:
        what = "could not lock %s within lock_timeout=%s (%s): live traffic holds it" % (
            table, _ms(options.get("lock_timeout")), step)
        fix = "re-run when traffic is lower, or raise lock_timeout"
    if _LEAVES_INVALID.search(statement or ""):
        left = ("the index build was cancelled and leaves an INVALID index behind; the next run drops and "
                "builds it again")
        changed = True
    else:
        left = "nothing of this step was applied"
        changed = False
    return OAuthRepairError("%s; %s" % (what, left), obj=table, fix=fix, changed=changed)
