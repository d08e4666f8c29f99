# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite through the standard library. Integers have no width on SQLite."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.schema.model import (
    Column, ForeignKey, Index, Table)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.base import BaseDialect

SHA256_FUNCTION = "oar_sha256"


def _sha256_text(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    return hashlib.sha256(str(value).encode("utf-8")).hexdigest()


def register_functions(raw):
    """SQLite has no sha256(): give the connection one (computed in Python, row by row, inside SQL)."""
    try:
        raw.create_function(SHA256_FUNCTION, 1, _sha256_text, deterministic=True)
    except TypeError:  # pragma: no cover - Python < 3.8
        raw.create_function(SHA256_FUNCTION, 1, _sha256_text)


class SQLiteDialect(BaseDialect):
    engine = "sqlite"
    vendor = "sqlite"
    quote_char = '"'
    max_name_length = 200
    minimum_version = (3, 31)

    def normalize_type(self, declared):
        t = (declared or "").strip().lower()
        if t in ("integer", "int"):
            return "int"
        if t in ("bool", "boolean"):
            return "bool"
        if t.startswith("varchar"):
            return t.replace(" ", "")
        if t in ("datetime", "timestamp"):
            return "datetime"
        return t

    integer_width_matters = False

    def normalize_declared_type(self, db_type):
        # the catalog holds the type exactly as Django declared it: one normalisation serves both
        return self.normalize_type(db_type)

    def list_tables(self, conn):
        return [r[0] for r in conn.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%%' ORDER BY name")]

    def load_tables(self, conn, names):
        names = [self.validate_identifier(n, "table name") for n in names]
        tables = {}
        for name in names:
            sql = conn.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [name])
            if sql is None:
                continue
            table = Table(name=name)
            pk = []
            for (_cid, cname, ctype, notnull, default, pkpos) in conn.query(
                    "SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(%s)", [name]):
                auto = bool(pkpos) and (ctype or "").lower() == "integer" and _is_rowid_alias(sql, cname)
                table.columns.append(Column(name=cname, type=self.normalize_type(ctype), raw_type=ctype or "",
                                            nullable=not notnull and not pkpos, default=default,
                                            auto_increment=auto))
                if pkpos:
                    pk.append((pkpos, cname))
            table.primary_key = [column for _position, column in sorted(pk)]
            if table.primary_key:
                table.indexes.append(Index(name="%s_pkey" % name, table=name, columns=list(table.primary_key),
                                           unique=True, primary=True, constraint=True))
            for (_seq, iname, unique, origin, partial) in conn.query(
                    "SELECT seq, name, \"unique\", origin, partial FROM pragma_index_list(%s)", [name]):
                if origin == "pk":
                    continue
                cols = [r[0] for r in conn.query(
                    "SELECT name FROM pragma_index_info(%s) ORDER BY seqno", [iname])]
                where = None
                if partial:
                    isql = conn.scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = %s", [iname])
                    m = re.search(r"\bWHERE\b(.*)$", isql or "", re.I | re.S)
                    where = m.group(1).strip() if m else None
                table.indexes.append(Index(name=iname, table=name, columns=cols, unique=bool(unique),
                                           partial=bool(partial), where=where, constraint=(origin == "u")))
            fks = {}
            for (fid, _seq, rtable, col, rcol, on_update, on_delete, _match) in conn.query(
                    "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete, \"match\" "
                    "FROM pragma_foreign_key_list(%s) ORDER BY id, seq", [name]):
                if fid not in fks:
                    fks[fid] = ForeignKey(name=None, table=name, columns=[], ref_table=rtable, ref_columns=[],
                                          on_delete=on_delete, on_update=on_update,
                                          deferrable="DEFERRABLE" in sql.upper())
                fks[fid].columns.append(col)
                fks[fid].ref_columns.append(rcol)
            table.foreign_keys = list(fks.values())
            tables[name] = table
        return tables

    def referencing_foreign_keys(self, conn, table):
        self.validate_identifier(table)
        result = []
        for other in self.list_tables(conn):
            for fk in self.load_tables(conn, [other])[other].foreign_keys:
                if fk.ref_table == table:
                    result.append(fk)
        return result

    def session_timeouts(self, lock_timeout_ms, statement_timeout_ms):
        if lock_timeout_ms:
            return ["PRAGMA busy_timeout = %d" % int(lock_timeout_ms)]
        return []

    def is_lock_timeout(self, exc):
        return "database is locked" in str(exc)

    def take_run_lock(self, conn, me):
        # a file beside the database, flock-ed for the life of the process and holding who took it
        path = "%s-oauth_repair.lock" % conn.database
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                with os.fdopen(fd) as fh:
                    try:
                        return json.loads(fh.read() or "{}")
                    except ValueError:
                        return dict()
            try:
                if os.fstat(fd).st_ino != os.stat(path).st_ino:  # removed by the run that just ended: retry
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(me).encode("utf-8"))
            conn.run_lock_file = (fd, path)
            return None

    def release_run_lock(self, conn):
        held = getattr(conn, "run_lock_file", None)
        if held:
            fd, path = held
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            os.close(fd)
            conn.run_lock_file = None

    def lock_holders(self, conn, tables):
        # SQLite has no sessions to show: the one thing that blocks is another process's write lock on the file
        return [dict(id="writer", user=None, client="another process", state="holds the write lock on %s" % conn.database,
                     lock="write", table=None)]

    def sha256_hex(self, expr):
        return "%s(%s)" % (SHA256_FUNCTION, expr)


def _is_rowid_alias(create_sql, column):
    """True when ``column`` is declared INTEGER PRIMARY KEY (an alias of the rowid)."""
    pattern = r'["`\[]?%s["`\]]?\s+integer\s+(not\s+null\s+)?primary\s+key' % re.escape(column)
    return re.search(pattern, create_sql or "", re.I) is not None
