# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL 8 and MariaDB >= 10.5, told apart by the server version string."""

from __future__ import annotations

import re

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.schema.model import (
    Column, ForeignKey, Index, Table)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.base import (
    SCRATCH_DATABASE, BaseDialect, run_lock_key)

_TEXT_TYPES = ("tinytext", "text", "mediumtext", "longtext")


def _placeholders(n):
    return ", ".join(["%s"] * n)


class MySQLDialect(BaseDialect):
    engine = "mysql"
    vendor = "mysql"
    quote_char = "`"
    max_name_length = 64
    minimum_version = (8, 0)
    integer_ddl = {"int": "integer", "bigint": "bigint", "smallint": "smallint"}

    def __init__(self, server_version):
        super(MySQLDialect, self).__init__(server_version)
        #: tables whose constraints information_schema hid from this user (read from SHOW CREATE TABLE instead)
        self.hidden_constraints = set()

    # -- introspection -------------------------------------------------------
    def list_tables(self, conn):
        rows = conn.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME")
        return [r[0] for r in rows]

    def normalize_type(self, data_type, column_type, char_len, num_prec, num_scale):
        dt = (data_type or "").lower()
        ct = (column_type or "").lower()
        unsigned = " unsigned" if "unsigned" in ct else ""
        if dt in ("int", "integer"):
            return "int" + unsigned
        if dt in ("bigint", "smallint", "mediumint"):
            return dt + unsigned
        if dt == "tinyint":
            return "bool" if ct.startswith("tinyint(1)") else "tinyint" + unsigned
        if dt in ("varchar", "char"):
            return "%s(%s)" % (dt, char_len)
        if dt in _TEXT_TYPES:
            return "text"
        if dt in ("datetime", "timestamp"):
            return "datetime"
        if dt == "decimal":
            return "decimal(%s,%s)" % (num_prec, num_scale)
        if dt in ("double", "float", "real"):
            return "double" if dt != "float" else "float"
        if dt == "json":
            return "json"
        return dt

    def normalize_declared_type(self, db_type):
        t = re.sub(r"\s+auto_increment\b", "", (db_type or "").strip().lower())
        m = re.match(r"^(var)?char\((\d+)\)$", t)
        if m:
            return self.normalize_type("varchar" if m.group(1) else "char", t, m.group(2), None, None)
        m = re.match(r"^(?:numeric|decimal)\((\d+),\s*(\d+)\)$", t)
        if m:
            return self.normalize_type("decimal", t, None, m.group(1), m.group(2))
        base = t.split("(")[0].split(" ")[0]
        if base == "bool":
            return "bool"
        if base == "json":
            return self.json_type
        if t == "double precision":
            base = "double"
        return self.normalize_type(base, t, None, None, None)

    #: how a JSONField's column reads back (MySQL: json; MariaDB: an alias of longtext)
    json_type = "json"

    @staticmethod
    def _default(value):
        if value is None:
            return None
        if value == "NULL":  # MariaDB spells a NULL default this way
            return None
        if len(value) >= 2 and value[0] == "'" and value[-1] == "'":
            return value[1:-1].replace("''", "'")
        return value

    def load_tables(self, conn, names):
        names = [self.validate_identifier(n, "table name") for n in names]
        if not names:
            return {}
        ph = _placeholders(len(names))
        tables = {}
        rows = conn.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME IN (%s)" % ph, names)
        for (name,) in rows:
            tables[name] = Table(name=name)
        if not tables:
            return tables
        for (tname, cname, dt, ct, clen, nprec, nscale, nullable, default, extra, charset) in conn.query(
                "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, "
                "NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, CHARACTER_SET_NAME "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s) "
                "ORDER BY TABLE_NAME, ORDINAL_POSITION" % ph, names):
            tables[tname].columns.append(Column(
                name=cname,
                type=self.normalize_type(dt, ct, clen, nprec, nscale),
                raw_type=ct,
                nullable=(nullable == "YES"),
                default=self._default(default),
                auto_increment="auto_increment" in (extra or "").lower(),
                charset=charset,
            ))
        indexes = {}
        for (tname, iname, non_unique, seq, cname) in conn.query(
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s) "
                "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX" % ph, names):
            key = (tname, iname)
            if key not in indexes:
                indexes[key] = Index(name=iname, table=tname, columns=[], unique=not int(non_unique),
                                     primary=(iname == "PRIMARY"), constraint=False)
            indexes[key].columns.append(cname)
        rows = conn.query(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE FROM information_schema.TABLE_CONSTRAINTS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s)" % ph, names)
        constraints = set((t, c) for t, c, kind in rows if kind in ("UNIQUE", "PRIMARY KEY"))
        # MariaDB hides a table's TABLE_CONSTRAINTS and REFERENTIAL_CONSTRAINTS rows from a user whose only
        # privilege on it is SELECT; SHOW CREATE TABLE shows them to that user (see catalog_limitations)
        shown = set(t for t, _c, _kind in rows)
        unshown = dict((t, self._create_table_fks(conn, t)) for t in sorted(tables) if t not in shown)
        for key, idx in indexes.items():
            idx.constraint = key in constraints
            tables[idx.table].indexes.append(idx)
            if idx.primary:
                tables[idx.table].primary_key = list(idx.columns)
        hidden = [t for t, fks in unshown.items() if fks or any(i.unique or i.primary for i in tables[t].indexes)]
        for name in hidden:
            # every unique index of MariaDB/MySQL is a UNIQUE constraint of information_schema
            for idx in tables[name].indexes:
                idx.constraint = idx.unique or idx.primary
            tables[name].foreign_keys.extend(unshown[name])
            self.hidden_constraints.add(name)
        for fk in self._foreign_keys(conn, "TABLE_NAME", [t for t in names if t in tables and t not in unshown]):
            tables[fk.table].foreign_keys.append(fk)
        return tables

    #: a foreign key as SHOW CREATE TABLE spells it
    _CREATE_FK = re.compile(
        r"CONSTRAINT `(?P<name>(?:[^`]|``)+)` FOREIGN KEY \((?P<cols>[^)]*)\) REFERENCES "
        r"(?:`(?:[^`]|``)+`\.)?`(?P<ref>(?:[^`]|``)+)` \((?P<refcols>[^)]*)\)"
        r"(?: ON DELETE (?P<delete>RESTRICT|CASCADE|SET NULL|SET DEFAULT|NO ACTION))?"
        r"(?: ON UPDATE (?P<update>RESTRICT|CASCADE|SET NULL|SET DEFAULT|NO ACTION))?")
    #: the rule information_schema shows for a foreign key declared without ON DELETE/ON UPDATE
    default_fk_rule = "NO ACTION"

    def _create_table_fks(self, conn, table):
        """The foreign keys of ``table`` read from SHOW CREATE TABLE, which any user who can see the table may run."""
        try:
            ddl = conn.query_one("SHOW CREATE TABLE %s" % self.quote(table))[1]
        except Exception as exc:  # pylint: disable=broad-except
            raise OAuthRepairError(
                "cannot read the definition of table %s (SHOW CREATE TABLE: %s), and information_schema hides its "
                "constraints from this user: its foreign keys cannot be known" % (table, exc), obj=table,
                fix="GRANT SELECT, REFERENCES ON %s.* TO the user, or connect as the site's user" % self.quote(
                    conn.database))

        def names(text):
            return [n.strip().strip("`").replace("``", "`") for n in text.split(",")]
        out = []
        for m in self._CREATE_FK.finditer(ddl or ""):
            out.append(ForeignKey(name=m.group("name").replace("``", "`"), table=table, columns=names(m.group("cols")),
                                  ref_table=m.group("ref").replace("``", "`"), ref_columns=names(m.group("refcols")),
                                  on_delete=m.group("delete") or self.default_fk_rule,
                                  on_update=m.group("update") or self.default_fk_rule))
        return sorted(out, key=lambda fk: fk.name.upper())  # as information_schema orders them (case-insensitive)

    def catalog_limitations(self, conn):
        """What the catalog hid from this user, and how the reading made up for it (see BaseDialect)."""
        if not self.hidden_constraints:
            return []
        user, _at, host = (conn.scalar("SELECT CURRENT_USER()") or "").rpartition("@")
        hidden = sorted(self.hidden_constraints)
        return ["information_schema hides the constraints of %d table(s) (%s%s) from '%s'@'%s': MariaDB shows "
                "TABLE_CONSTRAINTS and REFERENTIAL_CONSTRAINTS rows only to a user with a privilege other than SELECT "
                "on the table (REFERENCES, for instance). Their foreign keys and unique constraints were read from "
                "SHOW CREATE TABLE instead, so none is reported missing for lack of privilege. Fix: GRANT REFERENCES "
                "ON %s.* TO '%s'@'%s' (it changes no data), or run as the site's user" % (
                    len(hidden), ", ".join(hidden[:5]), ", ..." if len(hidden) > 5 else "", user, host,
                    self.quote(conn.database), user, host)]

    def _foreign_keys(self, conn, column, values):
        if not values:
            return []
        ph = _placeholders(len(values))
        fks = {}
        for (tname, cname, col, rtable, rcol, delete_rule, update_rule) in conn.query(
                "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, "
                "k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE "
                "FROM information_schema.KEY_COLUMN_USAGE k "
                "LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
                "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
                "AND r.TABLE_NAME = k.TABLE_NAME "
                "WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL "
                "AND k.%s IN (%s) ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION" % (column, ph),
                values):
            key = (tname, cname)
            if key not in fks:
                fks[key] = ForeignKey(name=cname, table=tname, columns=[], ref_table=rtable, ref_columns=[],
                                      on_delete=delete_rule, on_update=update_rule)
            fks[key].columns.append(col)
            fks[key].ref_columns.append(rcol)
        out = []
        hidden = {}
        for fk in fks.values():
            if fk.on_delete is None:
                # KEY_COLUMN_USAGE shows the key, REFERENTIAL_CONSTRAINTS hides its rules: SHOW CREATE TABLE has them
                if fk.table not in hidden:
                    hidden[fk.table] = dict((f.name, f) for f in self._create_table_fks(conn, fk.table))
                    self.hidden_constraints.add(fk.table)
                fk = hidden[fk.table].get(fk.name, fk)
            out.append(fk)
        return out

    def referencing_foreign_keys(self, conn, table):
        return self._foreign_keys(conn, "REFERENCED_TABLE_NAME", [self.validate_identifier(table)])

    def estimated_rows(self, conn, tables):
        if not tables:
            return {}
        rows = conn.query(
            "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME IN (%s)" % _placeholders(len(tables)), list(tables))
        return dict((t, int(n) if n is not None else None) for t, n in rows)

    # -- scratch databases (backup verification, the schema truth) -------------
    def create_scratch_database(self, conn, name):
        """Create an empty database ``name`` with the character set and collation of the connected one."""
        charset, collation = conn.query_one(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = DATABASE()")
        conn.execute("CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (
            self.quote(name), self.quote(charset), self.quote(collation)), record=False)

    def drop_scratch_database(self, conn, name):
        conn.execute("DROP DATABASE IF EXISTS %s" % self.quote(name), record=False)

    # -- running DDL safely ---------------------------------------------------
    def session_timeouts(self, lock_timeout_ms, statement_timeout_ms):
        out = []
        if lock_timeout_ms:
            secs = max(1, int((int(lock_timeout_ms) + 999) // 1000))
            out.append("SET SESSION lock_wait_timeout = %d" % secs)
            out.append("SET SESSION innodb_lock_wait_timeout = %d" % secs)
        if statement_timeout_ms:
            out.extend(self.statement_timeout_sql(int(statement_timeout_ms)))
        return out

    def statement_timeout_sql(self, ms):
        # MySQL 8 bounds only SELECTs (max_execution_time); DDL relies on lock_wait_timeout.
        return ["SET SESSION max_execution_time = %d" % ms]

    def is_lock_timeout(self, exc):
        code = exc.args[0] if getattr(exc, "args", None) else None
        return code in (1205, 3572)

    def is_statement_timeout(self, exc):
        code = exc.args[0] if getattr(exc, "args", None) else None
        return code in (3024, 1969)

    def lock_holders(self, conn, tables):
        """MariaDB/MySQL do not say who holds a metadata lock without a plugin: the tables in use among
        ``tables`` (SHOW OPEN TABLES), and the other sessions of this database that are not themselves
        waiting, with those in an open transaction first."""
        in_use = set(r[1] for r in conn.query("SHOW OPEN TABLES FROM %s WHERE In_use > 0" % self.quote(conn.database)))
        rows = conn.query(
            "SELECT p.ID, p.USER, p.HOST, p.COMMAND, p.STATE, p.TIME, t.trx_started "
            "FROM information_schema.PROCESSLIST p LEFT JOIN information_schema.INNODB_TRX t "
            "ON t.trx_mysql_thread_id = p.ID WHERE p.DB = DATABASE() AND p.ID <> CONNECTION_ID() "
            "AND COALESCE(p.STATE, '') NOT LIKE 'Waiting for%%' AND p.COMMAND NOT IN ('Daemon', 'Killed') "
            "ORDER BY t.trx_started IS NULL, p.TIME DESC")
        table = ", ".join(sorted(t for t in tables if t in in_use)) or None
        return [dict(id=int(i), user=user, client=host, state=command if not state else "%s: %s" % (command, state),
                     lock="table in use" if table else None, table=table,
                     transaction_since=started.isoformat() if started else None)
                for i, user, host, command, state, _t, started in rows]

    def scratch_databases(self, conn):
        rows = conn.query(
            "SELECT s.SCHEMA_NAME, (SELECT COUNT(*) FROM information_schema.PROCESSLIST p WHERE p.DB = s.SCHEMA_NAME) "
            "FROM information_schema.SCHEMATA s WHERE s.SCHEMA_NAME LIKE 'oar\\_%%' ORDER BY s.SCHEMA_NAME")
        return dict((name, int(n)) for name, n in rows if SCRATCH_DATABASE.match(name))

    def take_run_lock(self, conn, me):
        # user lock names are limited to 64 characters: a long database name is hashed
        name = "oauth_repair:%s" % (conn.database if len(conn.database) <= 51 else run_lock_key(conn.database))
        if conn.scalar("SELECT GET_LOCK(%s, 0)", [name]) == 1:
            return None
        session = conn.scalar("SELECT IS_USED_LOCK(%s)", [name])
        row = conn.query_one("SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = %s",
                             [session]) if session else None
        # MariaDB/MySQL do not show another session's process id or start time: its session and client instead
        return dict(session=session, client="%s@%s" % (row[0], row[1]) if row else None)

    def big_result_hint(self):
        return "SQL_BIG_RESULT "

    # -- SQL expressions -----------------------------------------------------
    def sha256_hex(self, expr):
        # SHA2 hashes the bytes of its argument in the argument's character set:
        # convert first so that a latin1 (or any) column hashes like Python's .encode('utf-8').
        return "LOWER(SHA2(CONVERT(%s USING utf8mb4), 256))" % expr


class MariaDBDialect(MySQLDialect):
    vendor = "mariadb"
    minimum_version = (10, 5)
    json_type = "text"
    default_fk_rule = "RESTRICT"

    def statement_timeout_sql(self, ms):
        # MariaDB's max_statement_time bounds every statement, DDL included (seconds, fractional).
        return ["SET SESSION max_statement_time = %.3f" % (ms / 1000.0)]

    def normalize_type(self, data_type, column_type, char_len, num_prec, num_scale):
        if (data_type or "").lower() == "uuid":
            return "uuid"
        return super(MariaDBDialect, self).normalize_type(data_type, column_type, char_len, num_prec, num_scale)
