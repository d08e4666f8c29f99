# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL >= 12, through psycopg 3. Tables are looked up in ``current_schema()``."""

from __future__ import annotations

import re

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.schema.model import (
    Column, ForeignKey, Index, Table)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.base import (
    RUN_LOCK_NAME, SCRATCH_DATABASE, BaseDialect, run_lock_key)

_FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}

_TYPES = {
    "integer": "int", "bigint": "bigint", "smallint": "smallint", "text": "text", "uuid": "uuid",
    "boolean": "bool", "jsonb": "json", "json": "json", "date": "date", "double precision": "double",
    "real": "float", "timestamp with time zone": "datetime", "timestamp without time zone": "datetime",
    "time without time zone": "time", "inet": "inet", "bytea": "bytes",
}


def _literal(text):
    return str(text).replace("'", "''")


#: Django < 4.1 declared auto fields as serial types
_SERIALS = {"serial": "integer", "bigserial": "bigint", "smallserial": "smallint", "time": "time without time zone"}


class PostgreSQLDialect(BaseDialect):
    engine = "postgresql"
    vendor = "postgresql"
    quote_char = '"'
    max_name_length = 63
    minimum_version = (12,)

    def normalize_type(self, formatted):
        t = (formatted or "").lower()
        if t in _TYPES:
            return _TYPES[t]
        m = re.match(r"^character varying\((\d+)\)$", t)
        if m:
            return "varchar(%s)" % m.group(1)
        if t == "character varying":
            return "text"
        m = re.match(r"^character\((\d+)\)$", t)
        if m:
            return "char(%s)" % m.group(1)
        m = re.match(r"^numeric\((\d+),(\d+)\)$", t)
        if m:
            return "decimal(%s,%s)" % m.groups()
        if t.startswith("timestamp"):
            return "datetime"
        return t

    def normalize_declared_type(self, db_type):
        t = (db_type or "").strip().lower()
        t = re.sub(r"^varchar\(", "character varying(", t)
        t = re.sub(r"^(?:numeric|decimal)\((\d+),\s*(\d+)\)$", r"numeric(\1,\2)", t)
        t = _SERIALS.get(t, t)
        return self.normalize_type(t)

    def list_tables(self, conn):
        return [r[0] for r in conn.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() ORDER BY c.relname")]

    def load_tables(self, conn, names):
        names = [self.validate_identifier(n, "table name") for n in names]
        if not names:
            return {}
        tables = {}
        rows = conn.query(
            "SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() AND c.relname = ANY(%s)", [names])
        oids = {}
        for oid, name in rows:
            tables[name] = Table(name=name)
            oids[oid] = name
        if not tables:
            return tables
        oid_list = list(oids)
        for (relid, attname, ftype, notnull, default, identity) in conn.query(
                "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                "pg_get_expr(d.adbin, d.adrelid), a.attidentity "
                "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attrelid, a.attnum", [oid_list]):
            auto = bool(identity) or (default or "").startswith("nextval(")
            tables[oids[relid]].columns.append(Column(
                name=attname, type=self.normalize_type(ftype), raw_type=ftype, nullable=not notnull,
                default=None if identity else default, auto_increment=auto))
        for (relid, iname, unique, primary, cols, pred, is_constraint, valid) in conn.query(
                "SELECT i.indrelid, ic.relname, i.indisunique, i.indisprimary, "
                "ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
                "      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord), "
                "pg_get_expr(i.indpred, i.indrelid), "
                "EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid "
                "        AND con.contype IN ('p', 'u')), i.indisvalid "
                "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
                "WHERE i.indrelid = ANY(%s) ORDER BY i.indrelid, ic.relname", [oid_list]):
            idx = Index(name=iname, table=oids[relid], columns=list(cols), unique=unique, primary=primary,
                        partial=pred is not None, where=pred, constraint=is_constraint, valid=valid)
            tables[oids[relid]].indexes.append(idx)
            if primary:
                tables[oids[relid]].primary_key = list(cols)
        for fk in self._foreign_keys(conn, "con.conrelid", oid_list):
            tables[fk.table].foreign_keys.append(fk)
        return tables

    def _foreign_keys(self, conn, column, oids):
        fks = []
        for (name, table, cols, rtable, rcols, deltype, updtype, deferrable, valid) in conn.query(
                "SELECT con.conname, t.relname, "
                "ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) "
                "      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord), "
                "r.relname, "
                "ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord) "
                "      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord), "
                "con.confdeltype, con.confupdtype, con.condeferrable, con.convalidated "
                "FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid "
                "JOIN pg_class r ON r.oid = con.confrelid "
                "WHERE con.contype = 'f' AND %s = ANY(%%s) ORDER BY t.relname, con.conname" % column, [oids]):
            fks.append(ForeignKey(name=name, table=table, columns=list(cols), ref_table=rtable,
                                  ref_columns=list(rcols), on_delete=_FK_ACTIONS.get(deltype, deltype),
                                  on_update=_FK_ACTIONS.get(updtype, updtype), deferrable=bool(deferrable),
                                  valid=bool(valid)))
        return fks

    def referencing_foreign_keys(self, conn, table):
        self.validate_identifier(table)
        oid = conn.scalar(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = %s", [table])
        if oid is None:
            return []
        return self._foreign_keys(conn, "con.confrelid", [oid])

    def constraint_definitions(self, conn, table):
        """{constraint name: (pg_get_constraintdef text, validated)} of the foreign keys of any table that
        reference ``table``, and of ``table``'s own, as the server spells them (for an exact re-creation)."""
        self.validate_identifier(table)
        rows = conn.query(
            "SELECT con.conname, pg_get_constraintdef(con.oid), con.convalidated FROM pg_constraint con "
            "JOIN pg_class t ON t.oid = con.conrelid JOIN pg_class r ON r.oid = con.confrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE con.contype = 'f' "
            "AND n.nspname = current_schema() AND (r.relname = %s OR t.relname = %s)", [table, table])
        return dict((name, (definition, bool(valid))) for name, definition, valid in rows)

    def serial_sequence(self, conn, table, column):
        """(sequence name, its type, whether ``column`` is an identity column) of an auto-increment column,
        or None when the column owns no sequence."""
        self.validate_identifier(table)
        self.validate_identifier(column)
        seq = conn.scalar("SELECT pg_get_serial_sequence(%s, %s)", [self.quote(table), column])
        if seq is None:
            return None
        seqtype, identity = conn.query_one(
            "SELECT format_type(s.seqtypid, NULL), COALESCE(a.attidentity, '') FROM pg_sequence s, pg_attribute a "
            "WHERE s.seqrelid = %s::regclass AND a.attrelid = %s::regclass AND a.attname = %s",
            [seq, self.quote(table), column])
        return seq, seqtype, bool(identity)

    # -- sequences of a backup's tables --------------------------------------------
    def feeding_sequences(self, conn, tables):
        """The sequences that hand out the values of columns of ``tables`` (in ``current_schema()``), sorted, as
        [dict(schema, name, qualified, table, column, owned, identity)]: sequences OWNED BY a column (``serial``,
        identity columns) and sequences only named by a column's default (``nextval('..._seq'::regclass)``).

        Django before 4.0 made the latter whenever a migration altered a column to an AutoField/BigAutoField (it
        dropped the column's sequence and created one without ``OWNED BY``; django-oauth-toolkit < 1.3's 0005
        did so on every id): ``pg_dump --table`` dumps only owned sequences with their table, so a dump of such
        a table restores only when its sequence is named too."""
        names = [self.validate_identifier(n, "table name") for n in tables]
        if not names:
            return []
        rows = conn.query(
            "SELECT sn.nspname, s.relname, t.relname, a.attname, bool_or(x.deptype IN ('a', 'i')), "
            "bool_or(x.deptype = 'i') FROM ("
            "  SELECT d.objid AS seqid, d.refobjid AS relid, d.refobjsubid AS attnum, d.deptype FROM pg_depend d "
            "  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
            "  AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 "
            "  UNION ALL "
            "  SELECT d.refobjid, ad.adrelid, ad.adnum, d.deptype FROM pg_attrdef ad "
            "  JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid "
            "  WHERE d.refclassid = 'pg_class'::regclass) x "
            "JOIN pg_class s ON s.oid = x.seqid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace "
            "JOIN pg_class t ON t.oid = x.relid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = x.relid AND a.attnum = x.attnum "
            "WHERE tn.nspname = current_schema() AND t.relname = ANY(%s) "
            "GROUP BY sn.nspname, s.relname, t.relname, a.attname ORDER BY t.relname, a.attname, sn.nspname, s.relname",
            [names])
        return [dict(schema=schema, name=name, table=table, column=column, owned=bool(owned), identity=bool(identity),
                     qualified="%s.%s" % (self.validate_identifier(schema, "schema name"),
                                          self.validate_identifier(name, "sequence name")))
                for schema, name, table, column, owned, identity in rows]

    def sequence_values(self, conn, qualified_names):
        """{``schema.name``: dict(last_value, is_called, increment, next_value), or None when it does not exist}
        of sequences (``feeding_sequences``' ``qualified``); ``next_value`` is what ``nextval`` hands out next."""
        out = {}
        for qualified in qualified_names:
            if qualified in out:
                continue
            schema, name = qualified.split(".", 1)
            quoted = "%s.%s" % (self.quote(schema), self.quote(name))
            if conn.scalar("SELECT to_regclass(%s) IS NOT NULL", [quoted]) is not True:
                out[qualified] = None
                continue
            last, called, increment = conn.query_one(
                "SELECT s.last_value, s.is_called, p.seqincrement FROM %s s, pg_sequence p "
                "WHERE p.seqrelid = %%s::regclass" % quoted, [quoted])
            out[qualified] = dict(last_value=int(last), is_called=bool(called), increment=int(increment),
                                  next_value=int(last) + int(increment) if called else int(last))
        return out

    # -- scratch databases (backup verification, the schema truth) -------------
    def create_scratch_database(self, conn, name):
        """Create an empty database ``name`` with the encoding and locale of the connected one."""
        enc, collate, ctype = conn.query_one(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
            "WHERE datname = current_database()")
        conn.execute("CREATE DATABASE %s TEMPLATE template0 ENCODING '%s' LC_COLLATE '%s' LC_CTYPE '%s'" % (
            self.quote(name), _literal(enc), _literal(collate), _literal(ctype)), record=False)

    def drop_scratch_database(self, conn, name):
        force = " WITH (FORCE)" if self.version >= (13,) else ""
        conn.execute("DROP DATABASE IF EXISTS %s%s" % (self.quote(name), force), record=False)

    def estimated_rows(self, conn, tables):
        if not tables:
            return {}
        rows = conn.query(
            "SELECT c.relname, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(%s)", [list(tables)])
        # reltuples is -1 for a table never vacuumed/analysed: unknown.
        return dict((t, int(n) if n is not None and n >= 0 else None) for t, n in rows)

    def session_timeouts(self, lock_timeout_ms, statement_timeout_ms):
        out = []
        if lock_timeout_ms:
            out.append("SET lock_timeout = %d" % int(lock_timeout_ms))
        if statement_timeout_ms:
            out.append("SET statement_timeout = %d" % int(statement_timeout_ms))
        return out

    def is_lock_timeout(self, exc):
        # 57014 (query_canceled) is what lock_timeout raises too when the wait is inside a statement's run
        return getattr(exc, "sqlstate", None) in ("55P03", "57014") and not self.is_statement_timeout(exc)

    def is_statement_timeout(self, exc):
        return getattr(exc, "sqlstate", None) == "57014" and "statement timeout" in str(exc)

    def scratch_databases(self, conn):
        rows = conn.query(
            "SELECT d.datname, (SELECT COUNT(*) FROM pg_stat_activity a WHERE a.datname = d.datname) "
            "FROM pg_database d WHERE d.datname LIKE 'oar\\_%%' ORDER BY d.datname")
        return dict((name, int(n)) for name, n in rows if SCRATCH_DATABASE.match(name))

    def take_run_lock(self, conn, me):
        key = run_lock_key(conn.database)
        if conn.scalar("SELECT pg_try_advisory_lock(%s)", [key]):
            # who holds it, for a second run to read in pg_stat_activity (63 characters at most)
            conn.query("SELECT set_config('application_name', %s, false)",
                       [("%s pid=%s host=%s" % (RUN_LOCK_NAME, me["pid"], me["host"]))[:63]])
            return None
        row = conn.query_one(
            "SELECT a.pid, a.application_name, COALESCE(host(a.client_addr), 'local'), a.backend_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1",
            [(key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF])
        if row is None:
            return dict()
        pid, app, client, started = row
        found = dict(re.findall(r"\b(pid|host)=(\S+)", app or ""))
        return dict(host=found.get("host"), pid=found.get("pid"), session=pid, client=client,
                    started=started.isoformat() if started else None)

    def rollback_failed(self, conn):
        # psycopg's TransactionStatus: 0 idle; anything else (in a block, in error) is ended here
        if int(conn.raw.info.transaction_status) != 0:
            conn.raw.execute("ROLLBACK")

    def lock_holders(self, conn, tables):
        rows = conn.query(
            "SELECT a.pid, a.usename, COALESCE(host(a.client_addr), 'local'), a.state, l.mode, c.relname, "
            "a.xact_start FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.granted AND l.pid <> pg_backend_pid() "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND c.relname = ANY(%s) ORDER BY (l.mode = 'AccessExclusiveLock') DESC, a.xact_start, a.pid",
            [list(tables)])
        out, seen = [], set()
        for pid, user, client, state, mode, table, since in rows:
            if pid in seen:
                continue
            seen.add(pid)
            out.append(dict(id=pid, user=user, client=client, state=state or "unknown", lock=mode, table=table,
                            transaction_since=since.isoformat() if since else None))
        return out

    def sha256_hex(self, expr):
        return "encode(sha256(convert_to(%s, 'UTF8')), 'hex')" % expr
