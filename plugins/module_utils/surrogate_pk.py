# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed 003: replace a natural primary key (``Author.name``) with a surrogate auto-increment ``id``.

The table ``T`` keeps its natural column ``N`` (now ``UNIQUE``) and gets ``I``, an auto-increment primary
key; every column ``P.C`` that references ``T.N`` - M2M pivot tables included - is rewritten from the
natural value to the new id, its indexes and constraints recreated under the names Django gives them.

Two phases of idempotent steps, each deciding from the live catalog whether it is done:

*prepare* (online; the code that still uses the natural key keeps running):
  1. ``add_id``: ``T.I`` is added, nullable;
  2. ``backfill_id``: ids are given to the rows of ``T`` in the order of ``N``, in batches (one short
     transaction each);
  3. ``natural_unique``: ``UNIQUE (N)`` under Django's name (PostgreSQL: built ``CONCURRENTLY``);
  4. ``id_unique`` (PostgreSQL): the future primary key's unique index, built ``CONCURRENTLY``;
  5. per reference: ``add_shadow`` (``P.C_oar_new``, nullable), ``backfill_fk`` (batched by ``P``'s
     primary key range: ``C_oar_new = T.I`` where ``T.N = P.C``, compared by the database with the column's
     collation - case- and pad-insensitive on MySQL/MariaDB, exactly as the foreign key matched them) and,
     on PostgreSQL, ``shadow_indexes`` (the indexes of ``C`` rebuilt ``CONCURRENTLY`` on the shadow column).

*switch* (short locks; deploy the code that declares the surrogate key right after):
  - PostgreSQL: one transaction - catch up rows written since the backfill, drop ``C``, rename the shadow
    column, attach the prepared indexes under their names, move the primary key with ``USING INDEX``, make
    ``I`` an identity column, add the foreign keys ``NOT VALID``; then ``validate`` online (``VALIDATE
    CONSTRAINT``, ``NOT NULL`` through a validated ``CHECK``);
  - MariaDB/MySQL (DDL is not transactional): ``T``'s primary key and ``AUTO_INCREMENT`` in one
    ``ALTER``, then per reference ``tmp_fk`` (a foreign key on the shadow column under a temporary name, so
    the reference stays visible in the catalog), ``swap`` (one online ``ALTER``: drop ``C``, rename the
    shadow column, recreate its indexes) and ``fk_name`` (the foreign key under Django's name);
  - SQLite: one transaction rebuilding ``T`` and every referencing table the way Django's schema editor does.

Finally ``record_migration`` records the user's migration that declares the change in ``django_migrations``.
"""

from __future__ import annotations

import re
import time

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import history
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Plan, Step
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.sqlite_rebuild import (
    column_name, split_definitions)

FINDING = "natural_pk_referenced"
SHADOW_SUFFIX = "_oar_new"
PHASES = ("prepare", "complete")
ID_TYPES = {"bigint": {"mysql": "bigint", "postgresql": "bigint", "sqlite": "bigint"},
            "int": {"mysql": "integer", "postgresql": "integer", "sqlite": "integer"}}
SQLITE_MIN_VERSION = (3, 33)
#: Django's auto field -> new_column_type
AUTO_FIELDS = {"BigAutoField": "bigint", "AutoField": "int"}


def key_type_from_model(expected, table, new_column, given=None):
    """``bigint`` or ``int``: the surrogate key's type as the site's own model declares it (the field itself, or
    ``DEFAULT_AUTO_FIELD`` / ``AppConfig.default_auto_field`` for an implicit ``id``). Raise when the model does
    not declare ``new_column`` as an auto primary key, or when ``given`` (new_column_type) disagrees."""
    model_table = expected.tables.get(table)
    if model_table is None:
        raise OAuthRepairError("the site's Django has no model with table %s" % table, obj=table,
                               fix="check table, and that django points at the release that declares the surrogate key")
    info = (expected.details.get("fields") or {}).get("%s.%s" % (table, new_column)) or {}
    if model_table.primary_key != [new_column] or info.get("internal_type") not in AUTO_FIELDS:
        raise OAuthRepairError(
            "the site's model %s has primary key %s (%s), not an auto field %s: the release being deployed must "
            "declare the surrogate key first" % (info.get("model") or table, ", ".join(model_table.primary_key) or "none",
                                                 info.get("internal_type") or "?", new_column),
            obj="%s.%s" % (table, new_column),
            fix="point django at the release whose model has id = models.BigAutoField(primary_key=True) (or relies on "
                "DEFAULT_AUTO_FIELD), or leave django out and give new_column_type")
    kind = AUTO_FIELDS[info["internal_type"]]
    if given and given != kind:
        raise OAuthRepairError(
            "new_column_type=%s but the site's model declares %s.%s as %s (%s)" % (
                given, table, new_column, info["internal_type"], kind), obj="new_column_type",
            fix="leave new_column_type out: with django it comes from the model")
    return kind


LOCKS = {
    "add_column": {"mysql": "metadata lock, instant ADD COLUMN (ALGORITHM=INPLACE, LOCK=NONE)",
                   "postgresql": "ACCESS EXCLUSIVE, instant (no default, no rewrite)",
                   "sqlite": "database write lock, instant"},
    "backfill": {"mysql": "row locks of one batch at a time", "postgresql": "row locks of one batch at a time",
                 "sqlite": "database write lock per batch"},
    "natural_unique": {"mysql": "online index build (ALGORITHM=INPLACE, LOCK=NONE)",
                       "postgresql": "CREATE UNIQUE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE), then instant",
                       "sqlite": "done by the switch"},
    "index_concurrently": {"postgresql": "CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE): reads and "
                                         "writes go on"},
    "pg_switch": {"postgresql": "ACCESS EXCLUSIVE on the table and every referencing table for one "
                                "transaction: catch-up of the rows written since the backfill (a scan of each "
                                "referencing table), NOT NULL on the new id (a scan of the table); every other "
                                "statement is catalog-only"},
    "pg_validate": {"postgresql": "SHARE UPDATE EXCLUSIVE while validating (reads and writes go on), then "
                                  "ACCESS EXCLUSIVE, instant (SET NOT NULL backed by a validated CHECK)"},
    "mysql_pk": {"mysql": "table copy of the table (ALGORITHM=COPY): reads go on, writes wait"},
    "mysql_tmp_fk": {"mysql": "metadata lock; online (ALGORITHM=INPLACE, LOCK=NONE, foreign_key_checks=0 after "
                              "the rows were checked)"},
    "mysql_swap": {"mysql": "online table rebuild (ALGORITHM=INPLACE, LOCK=NONE): reads and writes go on, "
                            "metadata lock at start and end"},
    "sqlite_switch": {"sqlite": "database write lock for one transaction: the table and every referencing "
                                "table are rebuilt (Django's table remake)"},
    "record": {"mysql": "one row insert", "postgresql": "one row insert", "sqlite": "one row insert"},
}


def _lock(kind, engine):
    return LOCKS[kind].get(engine, "")


class Ref(object):
    """One column ``table.column`` that references the natural key (or, once rewritten, the new id)."""

    def __init__(self, table, column, shadow):
        self.table = table
        self.column = column
        self.shadow = shadow
        self.nullable = False
        self.on_delete = None
        self.on_update = None
        self.deferrable = False
        self.has_fk = False
        self.pk = None            # single integer primary key of the table, for batching (or None)
        self.fk_name = None       # Django's name of the foreign key to the new id
        self.tmp_fk_name = None   # MySQL: the foreign key on the shadow column, before the swap
        self.check_name = None    # PostgreSQL: CHECK (column IS NOT NULL) NOT VALID, until validated
        self.explicit = False

    @property
    def label(self):
        return "%s.%s" % (self.table, self.column)

    def describe(self):
        return dict(table=self.table, column=self.column, nullable=self.nullable, foreign_key=self.fk_name
                    if self.has_fk else None, batched_by=self.pk)


class Target(object):
    """What the user asked for, resolved against the live catalog."""

    def __init__(self, table, column, new_column, id_type):
        self.table = table
        self.column = column
        self.new_column = new_column
        self.id_type = id_type
        self.refs = []
        self.kept = []            # foreign keys to the natural key that stay (``references`` left them out)
        self.migration = None     # (app, name)
        self.collation = None


# --------------------------------------------------------------------------
# Resolving the user's input against the catalog
# --------------------------------------------------------------------------


def _is_integer(col):
    return col is not None and col.integer_size is not None


def _load(conn, name):
    return conn.dialect.load_tables(conn, [name]).get(name)


def _pk_done(table, new_column):
    """True when ``table``'s primary key already is the auto-increment ``new_column``."""
    col = table.column(new_column)
    return table.primary_key == [new_column] and _is_integer(col) and col.auto_increment


def _switched(table, ref):
    """True when ``ref``'s column already holds ids (the shadow column has been swapped in)."""
    return table is not None and _is_integer(table.column(ref.column)) and not table.has_column(ref.shadow)


def _infer_natural(conn, t, new_column, fks):
    """The natural column of a table whose primary key is already ``new_column``: the column that foreign keys
    still reference, else the one unique column under Django's ``_uniq`` name (the end state of a run)."""
    d = conn.dialect
    others = sorted(set(fk.ref_columns[0] for fk in fks
                        if len(fk.ref_columns) == 1 and fk.ref_columns[0] != new_column))
    if len(others) == 1:
        return others[0]
    candidates = []
    for c in t.columns:
        if c.name == new_column or _is_integer(c):
            continue
        name = d.django_index_name(t.name, [c.name], "_uniq")
        # SQLite: Django's (and the switch's) inline UNIQUE, an automatic index
        if any(i.unique and i.columns == [c.name] and (i.name == name or i.name.startswith("sqlite_autoindex_"))
               for i in t.indexes):
            candidates.append(c.name)
    if len(candidates) == 1:
        return candidates[0]
    return None


def resolve(conn, options):
    """Check the options against the live catalog and return a :class:`Target`; raise a clear error (nothing
    changed) on bad input."""
    d = conn.dialect
    table = options.get("table")
    d.validate_identifier(table, "table name")
    new_column = options.get("new_column") or "id"
    d.validate_identifier(new_column, "new_column")
    id_type = options.get("new_column_type") or "bigint"
    if id_type not in ID_TYPES:
        raise OAuthRepairError("new_column_type must be bigint or int, got %r" % id_type, obj="new_column_type",
                               fix="use bigint (BigAutoField, Django's DEFAULT_AUTO_FIELD) or int (AutoField)")
    if conn.engine == "sqlite" and d.version < SQLITE_MIN_VERSION:
        raise OAuthRepairError("SQLite %s has no UPDATE ... FROM" % conn.server_version, obj="server",
                               fix="use SQLite 3.33 or later (Python's sqlite3 module links the system library)")
    t = _load(conn, table)
    if t is None:
        raise OAuthRepairError("table %s does not exist in database %r" % (table, conn.database), obj=table,
                               fix="give the model's table as it is in the database (its db_table, e.g. "
                                   "library_author)")
    fks = d.referencing_foreign_keys(conn, table)
    column = options.get("column")
    if column:
        d.validate_identifier(column, "column")
        if not t.has_column(column):
            raise OAuthRepairError("column %s does not exist in table %s (its columns: %s)" % (
                column, table, ", ".join(c.name for c in t.columns)), obj="%s.%s" % (table, column),
                fix="give the natural primary key column (default: the current primary key)")
    if len(t.primary_key) != 1:
        raise OAuthRepairError(
            "table %s has %s" % (table, "no primary key" if not t.primary_key else "a composite primary key (%s)"
                                 % ", ".join(t.primary_key)), obj=table,
            fix="only a single-column natural primary key can be replaced")
    pk = t.primary_key[0]
    if pk == new_column and _is_integer(t.column(pk)):
        # the switch already happened (or the table never had a natural key)
        natural = column or _infer_natural(conn, t, new_column, fks)
        if natural is None or natural == new_column:
            raise OAuthRepairError(
                "the primary key of %s is already the integer column %s (%s): there is no natural primary key "
                "to replace" % (table, pk, t.column(pk).type), obj="%s.%s" % (table, pk),
                fix="give the table whose primary key is a natural (non-integer) column; if a previous run "
                    "replaced it, give its natural column as column to check the result")
        column = natural
    else:
        column = column or pk
        if column != pk:
            raise OAuthRepairError(
                "column %s is not the primary key of %s (its primary key is %s)" % (column, table, pk),
                obj="%s.%s" % (table, column), fix="give the primary key column as column, or leave column out")
        if _is_integer(t.column(pk)):
            raise OAuthRepairError(
                "the primary key of %s, %s, is already an integer (%s): there is no natural key to replace" % (
                    table, pk, t.column(pk).type), obj="%s.%s" % (table, pk),
                fix="give a table whose primary key is a natural (non-integer) column")
        existing = t.column(new_column)
        if existing is not None and not _is_integer(existing):
            raise OAuthRepairError(
                "table %s already has a column %s of type %s, not an integer" % (table, new_column, existing.type),
                obj="%s.%s" % (table, new_column), fix="choose another new_column, or drop or rename that column")
    if _is_integer(t.column(column)):
        raise OAuthRepairError("column %s.%s is an integer (%s), not a natural key" % (
            table, column, t.column(column).type), obj="%s.%s" % (table, column),
            fix="give the natural (non-integer) primary key column")
    target = Target(table, column, new_column, id_type)
    if conn.engine == "mysql":
        target.collation = conn.scalar(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND COLUMN_NAME = %s", [table, column])
    for fk in fks:
        if fk.table == table and fk.ref_columns in ([column], [new_column]):
            raise OAuthRepairError(
                "%s.%s references %s itself (a self-referencing foreign key)" % (table, ",".join(fk.columns), table),
                obj="%s.%s" % (table, ",".join(fk.columns)),
                fix="self-references are not supported: rewrite that column by hand, or drop its foreign key first")
    _resolve_refs(conn, target, [fk for fk in fks if fk.table != table], options.get("references"))
    app, name = options.get("migration_app"), options.get("migration_name")
    if bool(app) != bool(name):
        raise OAuthRepairError("migration_app and migration_name go together", obj="migration_app" if not app
                               else "migration_name", fix="give both, e.g. library and 0002_author_surrogate_id")
    if app:
        history.check_value(app, "app")
        history.check_value(name, "name")
        history.require_table(conn)
        target.migration = (app, name)
    return target


def _resolve_refs(conn, target, fks, explicit):
    d = conn.dialect
    t = _load(conn, target.table)
    t_switched = _pk_done(t, target.new_column)
    natural = t.column(target.column)
    found = {}
    for fk in fks:
        if len(fk.columns) != 1 or len(fk.ref_columns) != 1:
            continue
        col, ref_col = fk.columns[0], fk.ref_columns[0]
        if ref_col == target.column:
            key = (fk.table, col)
        elif ref_col == target.new_column:
            key = (fk.table, col[:-len(SHADOW_SUFFIX)] if col.endswith(SHADOW_SUFFIX) else col)
        else:
            continue
        found.setdefault(key, []).append(fk)
    wanted = None
    if explicit:
        wanted = []
        for item in explicit:
            parts = (item or "").split(".")
            if len(parts) != 2:
                raise OAuthRepairError("references entry %r is not table.column" % item, obj="references",
                                       fix="list the referencing columns as table.column, e.g. "
                                           "library_article_authors.author_id")
            d.validate_identifier(parts[0], "table name")
            d.validate_identifier(parts[1], "column")
            wanted.append(tuple(parts))
        target.kept = [fk for key, group in sorted(found.items()) if key not in wanted for fk in group
                       if fk.ref_columns == [target.column]]
        keys = wanted
    else:
        keys = sorted(found)
    for (table, column) in keys:
        p = _load(conn, table)
        shadow = column + SHADOW_SUFFIX
        d.validate_identifier(shadow, "shadow column name (column + %s)" % SHADOW_SUFFIX)
        if p is None:
            raise OAuthRepairError("referencing table %s does not exist" % table, obj=table,
                                   fix="list existing table.column pairs in references")
        if not p.has_column(column) and not p.has_column(shadow):
            raise OAuthRepairError("column %s does not exist in table %s" % (column, table),
                                   obj="%s.%s" % (table, column), fix="list existing table.column pairs in references")
        if table == target.table:
            raise OAuthRepairError("%s.%s is in the table itself" % (table, column), obj="%s.%s" % (table, column),
                                   fix="self-references are not supported")
        ref = Ref(table, column, shadow)
        ref.explicit = explicit is not None
        group = found.get((table, column), [])
        ref.has_fk = bool(group)
        old = [fk for fk in group if fk.ref_columns == [target.column]]
        model = old[0] if old else (group[0] if group else None)
        if model is not None:
            ref.on_delete, ref.on_update, ref.deferrable = model.on_delete, model.on_update, model.deferrable
        elif conn.engine == "postgresql":
            ref.deferrable = True
        col = p.column(column)
        ref.nullable = col.nullable if col is not None else True
        if col is not None and not p.has_column(shadow) and (not _is_integer(col) or not t_switched):
            # pending: the column must still hold natural values of the key's type
            if col.base_type != natural.base_type:
                raise OAuthRepairError(
                    "%s.%s is %s while %s.%s is %s: it does not hold the natural key's values" % (
                        table, column, col.type, target.table, target.column, natural.type),
                    obj="%s.%s" % (table, column), fix="leave it out of references")
        if len(p.primary_key) == 1 and _is_integer(p.column(p.primary_key[0])):
            ref.pk = p.primary_key[0]
        ref.fk_name = d.django_fk_name(table, column, target.table, target.new_column)
        ref.tmp_fk_name = d.django_index_name(table, [shadow], "_oar_fk")
        ref.check_name = d.django_index_name(table, [column], "_notnull")
        target.refs.append(ref)
    if conn.engine == "postgresql":
        _pg_nullability(conn, target)


def _pg_nullability(conn, target):
    """After the PostgreSQL switch a NOT NULL column is nullable until ``validate``: its CHECK tells."""
    for ref in target.refs:
        if conn.scalar(_PG_CONSTRAINT_EXISTS, [ref.table, ref.check_name]):
            ref.nullable = False


_PG_CONSTRAINT_EXISTS = (
    "SELECT 1 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = %s "
    "AND con.conname = %s")


# --------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------


class SurrogatePK(object):
    def __init__(self, conn, target, options):
        self.conn = conn
        self.d = conn.dialect
        self.engine = conn.engine
        self.q = self.d.quote
        self.target = target
        self.options = options
        self.T = target.table
        self.N = target.column
        self.I = target.new_column
        self.id_type = ID_TYPES[target.id_type][self.engine]
        self.uniq_name = self.d.django_index_name(self.T, [self.N], "_uniq")
        self.tmp_pk_name = self.d.django_index_name(self.T, [self.I], "_oar_pk")
        self.pk_name = self._pg_pkey_name()
        self.snapshot = dict((name, _load(conn, name)) for name in self.tables())

    def tables(self):
        return _unique([self.T] + [r.table for r in self.target.refs] + [fk.table for fk in self.target.kept])

    def _pg_pkey_name(self):
        # PostgreSQL names an inline PRIMARY KEY <table>_pkey (the table part cut to fit 63 characters)
        return "%s_pkey" % self.T[:self.d.max_name_length - 5]

    # -- small SQL helpers ---------------------------------------------------
    def col(self, table, column):
        return "%s.%s" % (self.q(table), self.q(column))

    def _step(self, kind, table, description, lock_kind, obj=None, **kw):
        key = "surrogate_pk:%s:%s" % (kind, obj or table)
        return Step(key, FINDING, description, table, _lock(lock_kind, self.engine),
                    migration="%s.%s" % self.target.migration if self.target.migration else None, **kw)

    def steps(self, phase):
        out = [self.add_id(), self.backfill_id()]
        if self.engine != "sqlite":
            out.append(self.natural_unique())
        if self.engine == "postgresql":
            out.append(self.pg_id_unique())
        for ref in self.target.refs:
            out.append(self.add_shadow(ref))
            out.append(self.backfill_fk(ref))
            if self.engine == "postgresql":
                out.append(self.pg_shadow_indexes(ref))
        if phase == "prepare":
            return out
        if self.engine == "postgresql":
            out.append(self.pg_switch())
            for table in self._validate_tables():
                out.append(self.pg_validate(table))
        elif self.engine == "mysql":
            out.append(self.mysql_pk())
            for ref in self.target.refs:
                if ref.has_fk:
                    out.append(self.mysql_tmp_fk(ref))
                out.append(self.mysql_swap(ref))
                if ref.has_fk:
                    out.append(self.mysql_fk_name(ref))
        else:
            out.append(self.sqlite_switch())
        if self.target.migration:
            out.append(self.record())
        return out

    # -- the table: new id column --------------------------------------------
    def add_id(self):
        sql = "ALTER TABLE %s ADD COLUMN %s %s NULL" % (self.q(self.T), self.q(self.I), self.id_type)
        if self.engine == "mysql":
            sql += ", ALGORITHM=INPLACE, LOCK=NONE"
        return self._step("add_id", self.T, "add the nullable column %s to %s" % (self.I, self.T), "add_column",
                          sql=[sql], done=lambda live: live.table(self.T).has_column(self.I))

    def _assign_ids_sql(self, limit=True):
        """Give ids (MAX + 1, ...) to the rows without one, in the order of the natural key."""
        T, N, I = self.q(self.T), self.q(self.N), self.q(self.I)
        lim = " LIMIT %s" if limit else ""
        if self.engine == "mysql":
            return ("UPDATE %s t JOIN (SELECT x.k AS k, b.base + ROW_NUMBER() OVER (ORDER BY x.k) AS new_id "
                    "FROM (SELECT %s AS k FROM %s WHERE %s IS NULL ORDER BY %s%s) x "
                    "CROSS JOIN (SELECT COALESCE(MAX(%s), 0) AS base FROM %s) b) s ON t.%s = s.k "
                    "SET t.%s = s.new_id" % (T, N, T, I, N, lim, I, T, N, I))
        return ("UPDATE %s SET %s = s.new_id FROM (SELECT x.k AS k, b.base + ROW_NUMBER() OVER (ORDER BY x.k) "
                "AS new_id FROM (SELECT %s AS k FROM %s WHERE %s IS NULL ORDER BY %s%s) x "
                "CROSS JOIN (SELECT COALESCE(MAX(%s), 0) AS base FROM %s) b) s WHERE %s.%s = s.k" % (
                    T, I, N, T, I, N, lim, I, T, T, N))

    def backfill_id(self):
        sql = self._assign_ids_sql()
        T, I = self.q(self.T), self.q(self.I)
        key = "surrogate_pk:backfill_id:%s" % self.T

        def done(live):
            t = live.table(self.T)
            if not t.has_column(self.I):
                return False
            if _pk_done(t, self.I):
                return True
            return not self.conn.query_one("SELECT 1 FROM %s WHERE %s IS NULL %s" % (T, I, self.d.limit(1)))

        def run(ctx):
            batch = max(1, int(ctx.options.get("batch_size") or 10000))
            total = int(self.conn.scalar("SELECT COUNT(*) FROM %s WHERE %s IS NULL" % (T, I)))
            started, assigned = time.monotonic(), 0
            ctx.progress.update(key, 0, total, started, 0)
            while True:  # until no row is left without an id (rows may arrive meanwhile)
                n = _batch(ctx, sql, (batch,), self.T)
                if n <= 0:
                    break
                assigned += n
                ctx.progress.update(key, min(assigned, total), total, started, assigned)
                ctx.throttle()
            ctx.report["ids_assigned"] = ctx.report.get("ids_assigned", 0) + assigned
            _collapse(ctx, sql)

        return self._step("backfill_id", self.T, "give every row of %s an id, in the order of %s, in batches of "
                          "short transactions (resumable)" % (self.T, self.N), "backfill", duration="batched",
                          sql=[sql], done=done, run=run)

    def natural_unique(self):
        T, N, name = self.q(self.T), self.q(self.N), self.q(self.uniq_name)
        if self.engine == "mysql":
            sql = ["ALTER TABLE %s ADD CONSTRAINT %s UNIQUE (%s), ALGORITHM=INPLACE, LOCK=NONE" % (T, name, N)]
        else:
            sql = ["CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s)" % (name, T, N),
                   "ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s" % (T, name, name)]

        def done(live):
            t = live.table(self.T)
            return any(i.unique and not i.primary and not i.partial and i.valid and i.columns == [self.N]
                       and (i.constraint or i.name != self.uniq_name) for i in t.indexes)

        def run(ctx):
            if self.engine == "mysql":
                ctx.ddl(sql[0], table=self.T)
                return
            existing = [i for i in ctx.live.table(self.T).indexes if i.name == self.uniq_name]
            if existing and not existing[0].valid:
                ctx.ddl("DROP INDEX CONCURRENTLY %s" % name, table=self.T)
                existing = []
            if not existing:
                ctx.ddl(sql[0], table=self.T)
            ctx.ddl(sql[1], table=self.T)

        return self._step("natural_unique", self.T, "keep %s unique once it is no longer the primary key: "
                          "constraint %s" % (self.N, self.uniq_name), "natural_unique", duration="proportional",
                          sql=sql, done=done, run=run)

    def pg_id_unique(self):
        name = self.q(self.tmp_pk_name)
        sql = "CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s)" % (name, self.q(self.T), self.q(self.I))

        def done(live):
            t = live.table(self.T)
            return _pk_done(t, self.I) or any(i.name == self.tmp_pk_name and i.valid for i in t.indexes)

        def run(ctx):
            if any(i.name == self.tmp_pk_name for i in ctx.live.table(self.T).indexes):
                ctx.ddl("DROP INDEX CONCURRENTLY %s" % name, table=self.T)  # left INVALID by a failed build
            ctx.ddl(sql, table=self.T)

        return self._step("id_unique", self.T, "build the future primary key's unique index on %s.%s without "
                          "blocking writers" % (self.T, self.I), "index_concurrently", duration="proportional",
                          sql=[sql], done=done, run=run)

    # -- the referencing columns: shadow column and backfill -----------------
    def add_shadow(self, ref):
        sql = "ALTER TABLE %s ADD COLUMN %s %s NULL" % (self.q(ref.table), self.q(ref.shadow), self.id_type)
        if self.engine == "mysql":
            sql += ", ALGORITHM=INPLACE, LOCK=NONE"

        def done(live):
            p = live.table(ref.table)
            return p.has_column(ref.shadow) or _switched(p, ref)

        return self._step("add_shadow", ref.table, "add %s.%s, the nullable column that receives the new ids of "
                          "%s" % (ref.table, ref.shadow, ref.column), "add_column", obj=ref.label, sql=[sql],
                          done=done)

    def _map_sql(self, ref, ranged):
        """UPDATE that sets the shadow column from the natural value (compared by the database, with the
        column's collation, as the foreign key compared them)."""
        P, T = self.q(ref.table), self.q(self.T)
        pc, ps = self.col(ref.table, ref.column), self.col(ref.table, ref.shadow)
        ti, tn = self.col(self.T, self.I), self.col(self.T, self.N)
        cond = "(%s IS NULL OR %s <> %s) AND %s IS NOT NULL" % (ps, ps, ti, ti)
        if ranged:
            pk = self.col(ref.table, ref.pk)
            cond = "%s >= %%s AND %s < %%s AND %s" % (pk, pk, cond)
        if self.engine == "mysql":
            return "UPDATE %s JOIN %s ON %s = %s SET %s = %s WHERE %s" % (P, T, tn, pc, ps, ti, cond)
        return "UPDATE %s SET %s = %s FROM %s WHERE %s = %s AND %s" % (P, self.q(ref.shadow), ti, T, tn, pc, cond)

    def _unmapped_sql(self, ref):
        """Rows whose natural value has no id to go to (an orphan, or a row of the table still without id)."""
        return "SELECT COUNT(*) FROM %s WHERE %s IS NOT NULL AND %s IS NULL" % (
            self.q(ref.table), self.q(ref.column), self.q(ref.shadow))

    def _pending_sql(self, ref):
        P, T = self.q(ref.table), self.q(self.T)
        pc, ps = self.col(ref.table, ref.column), self.col(ref.table, ref.shadow)
        ti, tn = self.col(self.T, self.I), self.col(self.T, self.N)
        return "SELECT 1 FROM %s JOIN %s ON %s = %s WHERE %s IS NOT NULL AND (%s IS NULL OR %s <> %s) %s" % (
            P, T, tn, pc, ti, ps, ps, ti, self.d.limit(1))

    def backfill_fk(self, ref):
        ranged = ref.pk is not None
        sql = self._map_sql(ref, ranged)
        key = "surrogate_pk:backfill_fk:%s" % ref.label

        def done(live):
            p = live.table(ref.table)
            if _switched(p, ref):
                return True
            if not p.has_column(ref.shadow) or not live.table(self.T).has_column(self.I):
                return False
            return not self.conn.query_one(self._pending_sql(ref))

        def run(ctx):
            if not ranged:
                n = _batch(ctx, sql, (), ref.table)
                ctx.report["rows_rewritten"] = ctx.report.get("rows_rewritten", 0) + max(n, 0)
                return
            batch = max(1, int(ctx.options.get("batch_size") or 10000))
            pk = self.q(ref.pk)
            lo, hi = self.conn.query_one("SELECT MIN(%s), MAX(%s) FROM %s" % (pk, pk, self.q(ref.table)))
            if lo is None:
                return
            lo, hi = int(lo), int(hi)
            total = hi - lo + 1
            started, updated, start = time.monotonic(), 0, lo
            while start <= hi:
                end = start + batch
                updated += max(0, _batch(ctx, sql, (start, end), ref.table))
                start = end
                ctx.progress.update(key, min(start, hi + 1) - lo, total, started, updated)
                ctx.throttle()
            ctx.report["rows_rewritten"] = ctx.report.get("rows_rewritten", 0) + updated
            _collapse(ctx, sql)

        return self._step("backfill_fk", ref.table, "write the new id of every %s value into %s.%s, in batches "
                          "of short transactions%s (resumable)" % (
                              ref.label, ref.table, ref.shadow, " by %s ranges" % ref.pk if ranged else ""),
                          "backfill", obj=ref.label, duration="batched", sql=[sql], done=done, run=run)

    # -- PostgreSQL ------------------------------------------------------------
    def _old_indexes(self, p, ref):
        """The indexes of ``ref``'s column to carry over to the new column: [(name, columns, unique, constraint)].
        PostgreSQL's ``_like`` (varchar_pattern_ops) index of a varchar column is not: the new column is an
        integer; nor, on MySQL, the index InnoDB made for the old foreign key (the new one gets its own)."""
        out = []
        fk_names = set(fk.name for fk in p.foreign_keys)
        for i in sorted(p.indexes, key=lambda x: x.name):
            if i.primary or ref.column not in i.columns or i.partial:
                continue
            if i.columns == [ref.column] and (i.name.endswith("_like") or i.name in fk_names
                                              or i.name == ref.fk_name):
                continue
            out.append((i.name, list(i.columns), i.unique, i.constraint))
        return out

    def _tmp_index_name(self, ref, columns):
        return self.d.django_index_name(ref.table, [ref.shadow if c == ref.column else c for c in columns], "_oar")

    def pg_shadow_indexes(self, ref):
        before = self.snapshot.get(ref.table)
        planned = self._old_indexes(before, ref) if before is not None and not _switched(before, ref) else []

        def create_sql(name, columns, unique):
            return "CREATE %sINDEX CONCURRENTLY %s ON %s (%s)" % (
                "UNIQUE " if unique else "", self.q(self._tmp_index_name(ref, columns)), self.q(ref.table),
                self.d.quote_list([ref.shadow if c == ref.column else c for c in columns]))

        def done(live):
            p = live.table(ref.table)
            if _switched(p, ref):
                return True
            names = dict((i.name, i.valid) for i in p.indexes)
            return all(names.get(self._tmp_index_name(ref, cols)) for _n, cols, _u, _c in self._old_indexes(p, ref))

        def run(ctx):
            p = ctx.live.table(ref.table)
            names = dict((i.name, i.valid) for i in p.indexes)
            for name, cols, unique, _c in self._old_indexes(p, ref):
                tmp = self._tmp_index_name(ref, cols)
                if names.get(tmp):
                    continue
                if tmp in names:
                    ctx.ddl("DROP INDEX CONCURRENTLY %s" % self.q(tmp), table=ref.table)
                ctx.ddl(create_sql(name, cols, unique), table=ref.table)

        return self._step("shadow_indexes", ref.table, "build the indexes of %s on %s without blocking writers "
                          "(attached under their names by the switch)" % (ref.label, ref.shadow),
                          "index_concurrently", obj=ref.label, duration="proportional",
                          sql=[create_sql(n, c, u) for n, c, u, _x in planned], done=done, run=run)

    def _fk_clause(self, ref, column, ref_column, deferrable):
        sql = "FOREIGN KEY (%s) REFERENCES %s (%s)" % (self.q(column), self.q(self.T), self.q(ref_column))
        for what, action in (("DELETE", ref.on_delete), ("UPDATE", ref.on_update)):
            if action and action.upper() not in ("NO ACTION", "RESTRICT"):
                sql += " ON %s %s" % (what, action.upper())
        if deferrable:
            sql += " DEFERRABLE INITIALLY DEFERRED"
        return sql

    def _kept_fk_sql(self, fk):
        clause = "FOREIGN KEY (%s) REFERENCES %s (%s)" % (self.q(fk.columns[0]), self.q(self.T), self.q(self.N))
        for what, action in (("DELETE", fk.on_delete), ("UPDATE", fk.on_update)):
            if action and action.upper() not in ("NO ACTION", "RESTRICT"):
                clause += " ON %s %s" % (what, action.upper())
        if fk.deferrable:
            clause += " DEFERRABLE INITIALLY DEFERRED"
        return "ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID" % (self.q(fk.table), self.q(fk.name), clause)

    def _pg_switch_sql(self, tables):
        """The statements of the switch transaction, from the catalog ``tables`` ({name: Table})."""
        T, N, I = self.q(self.T), self.q(self.N), self.q(self.I)
        t = tables[self.T]
        t_done = _pk_done(t, self.I)
        pending = [r for r in self.target.refs if not _switched(tables.get(r.table), r)]
        locked = [self.T] + [r.table for r in pending] + [fk.table for fk in self.target.kept if not t_done]
        sql = ["BEGIN", "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE" % ", ".join(
            self.q(x) for x in _unique(locked))]
        checks = []
        if not t_done:
            sql.append(self._assign_ids_sql(limit=False))
        for ref in pending:
            P = self.q(ref.table)
            sql.append(self._map_sql(ref, False))
            if ref.nullable:
                sql.append("UPDATE %s SET %s = NULL WHERE %s IS NULL AND %s IS NOT NULL" % (
                    P, self.q(ref.shadow), self.q(ref.column), self.q(ref.shadow)))
            checks.append(self._unmapped_sql(ref))
            sql.append(checks[-1])
            indexes = self._old_indexes(tables[ref.table], ref)
            sql.append("ALTER TABLE %s DROP COLUMN %s" % (P, self.q(ref.column)))
            sql.append("ALTER TABLE %s RENAME COLUMN %s TO %s" % (P, self.q(ref.shadow), self.q(ref.column)))
            for name, cols, unique, constraint in indexes:
                tmp = self.q(self._tmp_index_name(ref, cols))
                if unique and constraint:
                    sql.append("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s" % (P, self.q(name), tmp))
                else:
                    sql.append("ALTER INDEX %s RENAME TO %s" % (tmp, self.q(name)))
        if not t_done:
            for fk in self.target.kept:
                sql.append("ALTER TABLE %s DROP CONSTRAINT %s" % (self.q(fk.table), self.q(fk.name)))
            old_pk = [i.name for i in t.indexes if i.primary and i.constraint]
            for name in old_pk:
                sql.append("ALTER TABLE %s DROP CONSTRAINT %s" % (T, self.q(name)))
            sql.append("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL" % (T, I))
            sql.append("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY USING INDEX %s" % (
                T, self.q(self.pk_name), self.q(self.tmp_pk_name)))
            sql.append("ALTER TABLE %s ALTER COLUMN %s ADD GENERATED BY DEFAULT AS IDENTITY" % (T, I))
            sql.append("SELECT setval(pg_get_serial_sequence(%%s, %%s), MAX(%s)) FROM %s HAVING MAX(%s) IS NOT "
                       "NULL" % (I, T, I))
            for fk in self.target.kept:
                sql.append(self._kept_fk_sql(fk))
        for ref in pending:
            if ref.has_fk:
                sql.append("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID" % (
                    self.q(ref.table), self.q(ref.fk_name), self._fk_clause(ref, ref.column, self.I, ref.deferrable)))
            if not ref.nullable:
                sql.append("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID" % (
                    self.q(ref.table), self.q(ref.check_name), self.q(ref.column)))
        sql.append("COMMIT")
        return sql, set(checks)

    def _all_switched(self, live):
        if not _pk_done(live.table(self.T), self.I):
            return False
        return all(_switched(live.table(r.table), r) for r in self.target.refs)

    def pg_switch(self):
        planned, _checks = self._pg_switch_sql(self.snapshot)

        def run(ctx):
            tables = dict((name, ctx.live.table(name)) for name in self.tables())
            statements, checks = self._pg_switch_sql(tables)
            _transaction(ctx, statements, checks, self.T, self._setval_params())

        return self._step("switch", self.T, "in one transaction: catch up the rows written since the backfill, "
                          "swap the new columns in, move the primary key of %s to %s (identity), attach the "
                          "indexes and add the foreign keys NOT VALID" % (self.T, self.I), "pg_switch",
                          duration="proportional", online=False, sql=planned, done=self._all_switched, run=run,
                          changes_type=True)

    def _setval_params(self):
        return (self.q(self.T), self.I)

    def _validate_tables(self):
        return _unique([r.table for r in self.target.refs] + [fk.table for fk in self.target.kept])

    def _pg_constraints(self, table):
        return dict((name, (contype, valid)) for name, contype, valid in self.conn.query(
            "SELECT con.conname, con.contype, con.convalidated FROM pg_constraint con "
            "JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = %s", [table]))

    def _validate_sql(self, table, constraints):
        sql = []
        P = self.q(table)
        for ref in [r for r in self.target.refs if r.table == table]:
            if ref.has_fk and constraints.get(ref.fk_name, ("f", True))[1] is False:
                sql.append("ALTER TABLE %s VALIDATE CONSTRAINT %s" % (P, self.q(ref.fk_name)))
            if ref.check_name in constraints:
                if not constraints[ref.check_name][1]:
                    sql.append("ALTER TABLE %s VALIDATE CONSTRAINT %s" % (P, self.q(ref.check_name)))
                sql.append("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL" % (P, self.q(ref.column)))
                sql.append("ALTER TABLE %s DROP CONSTRAINT %s" % (P, self.q(ref.check_name)))
        for fk in [k for k in self.target.kept if k.table == table]:
            if constraints.get(fk.name, ("f", True))[1] is False:
                sql.append("ALTER TABLE %s VALIDATE CONSTRAINT %s" % (P, self.q(fk.name)))
        return sql

    def pg_validate(self, table):
        # planned: what validating the switch's NOT VALID constraints takes
        planned = []
        for ref in [r for r in self.target.refs if r.table == table]:
            if ref.has_fk:
                planned.append("ALTER TABLE %s VALIDATE CONSTRAINT %s" % (self.q(table), self.q(ref.fk_name)))
            if not ref.nullable:
                planned += ["ALTER TABLE %s VALIDATE CONSTRAINT %s" % (self.q(table), self.q(ref.check_name)),
                            "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL" % (self.q(table), self.q(ref.column)),
                            "ALTER TABLE %s DROP CONSTRAINT %s" % (self.q(table), self.q(ref.check_name))]
        for fk in [k for k in self.target.kept if k.table == table]:
            planned.append("ALTER TABLE %s VALIDATE CONSTRAINT %s" % (self.q(table), self.q(fk.name)))

        def done(live):
            if not self._all_switched(live):
                return False
            return not self._validate_sql(table, self._pg_constraints(table))

        def run(ctx):
            for statement in self._validate_sql(table, self._pg_constraints(table)):
                ctx.ddl(statement, table=table)

        return self._step("validate", table, "validate the new foreign keys of %s and make its rewritten columns "
                          "NOT NULL, online" % table, "pg_validate", duration="proportional", sql=planned,
                          done=done, run=run)

    # -- MariaDB / MySQL --------------------------------------------------------
    def _mysql_strict(self, ctx):
        # a NULL must fail the NOT NULL conversion, never become 0
        ctx.ddl("SET SESSION sql_mode = CONCAT_WS(',', 'STRICT_ALL_TABLES', @@SESSION.sql_mode)", table=self.T)

    def mysql_pk(self):
        T, I = self.q(self.T), self.q(self.I)
        alter = "ALTER TABLE %s DROP PRIMARY KEY, MODIFY %s %s NOT NULL AUTO_INCREMENT, ADD PRIMARY KEY (%s)" % (
            T, I, self.id_type, I)
        sql = [self._assign_ids_sql(limit=False), alter]

        def run(ctx):
            self._mysql_strict(ctx)
            n = ctx.ddl(sql[0], table=self.T)
            ctx.report["ids_assigned"] = ctx.report.get("ids_assigned", 0) + max(n, 0)
            ctx.ddl(alter, table=self.T)

        return self._step("switch_pk", self.T, "give the rows added since the backfill an id, then make %s the "
                          "AUTO_INCREMENT primary key of %s in one ALTER (foreign keys to %s stay valid through "
                          "%s)" % (self.I, self.T, self.N, self.uniq_name), "mysql_pk", duration="proportional",
                          online=False, sql=sql, done=lambda live: _pk_done(live.table(self.T), self.I), run=run,
                          changes_type=True)

    def _catch_up(self, ctx, ref):
        n = ctx.ddl(self._map_sql(ref, False), table=ref.table)
        ctx.report["rows_rewritten"] = ctx.report.get("rows_rewritten", 0) + max(n, 0)
        if ref.nullable:
            ctx.ddl("UPDATE %s SET %s = NULL WHERE %s IS NULL AND %s IS NOT NULL" % (
                self.q(ref.table), self.q(ref.shadow), self.q(ref.column), self.q(ref.shadow)), table=ref.table)
        unmapped = int(self.conn.scalar(self._unmapped_sql(ref)))
        if unmapped:
            raise _unmapped_error(ref, self.T, self.N, unmapped)

    def mysql_tmp_fk(self, ref):
        P = self.q(ref.table)
        alter = "ALTER TABLE %s ADD CONSTRAINT %s %s, ALGORITHM=INPLACE, LOCK=NONE" % (
            P, self.q(ref.tmp_fk_name), self._fk_clause(ref, ref.shadow, self.I, False))
        sql = [self._map_sql(ref, False), self._unmapped_sql(ref), "SET SESSION foreign_key_checks = 0", alter,
               "SET SESSION foreign_key_checks = 1"]

        def done(live):
            p = live.table(ref.table)
            return _switched(p, ref) or any(fk.columns == [ref.shadow] and fk.ref_table == self.T
                                            and fk.ref_columns == [self.I] for fk in p.foreign_keys)

        def run(ctx):
            self._catch_up(ctx, ref)
            ctx.ddl(sql[2], table=ref.table)
            try:
                ctx.ddl(alter, table=ref.table)
            finally:
                ctx.ddl(sql[4], table=ref.table)

        return self._step("tmp_fk", ref.table, "catch up %s and give %s its foreign key to %s.%s under a temporary "
                          "name (the rows were checked first: no table scan under lock)" % (
                              ref.label, ref.shadow, self.T, self.I), "mysql_tmp_fk", obj=ref.label, sql=sql,
                          done=done, run=run)

    def _mysql_swap_sql(self, p, ref):
        P = self.q(ref.table)
        clauses = []
        if p is not None:
            for fk in p.foreign_keys:
                if fk.columns == [ref.column]:
                    clauses.append("DROP FOREIGN KEY %s" % self.q(fk.name))
            carried = self._old_indexes(p, ref)
            for i in sorted(p.indexes, key=lambda x: x.name):
                if not i.primary and ref.column in i.columns:
                    clauses.append("DROP INDEX %s" % self.q(i.name))
        else:
            carried = []
        clauses.append("DROP COLUMN %s" % self.q(ref.column))
        clauses.append("CHANGE COLUMN %s %s %s %sNULL" % (self.q(ref.shadow), self.q(ref.column), self.id_type,
                                                          "" if ref.nullable else "NOT "))
        for name, cols, unique, _constraint in carried:
            if unique:
                clauses.append("ADD CONSTRAINT %s UNIQUE (%s)" % (self.q(name), self.d.quote_list(cols)))
            else:
                clauses.append("ADD INDEX %s (%s)" % (self.q(name), self.d.quote_list(cols)))
        return "ALTER TABLE %s %s, ALGORITHM=INPLACE, LOCK=NONE" % (P, ", ".join(clauses))

    def mysql_swap(self, ref):
        planned = [self._map_sql(ref, False), self._unmapped_sql(ref),
                   self._mysql_swap_sql(self.snapshot.get(ref.table), ref)]

        def run(ctx):
            self._mysql_strict(ctx)
            self._catch_up(ctx, ref)
            ctx.ddl(self._mysql_swap_sql(ctx.live.table(ref.table), ref), table=ref.table)

        return self._step("swap", ref.table, "catch up %s, then in one online ALTER drop the natural column, rename "
                          "%s to %s (%sNULL) and recreate its indexes under their names" % (
                              ref.label, ref.shadow, ref.column, "" if ref.nullable else "NOT "),
                          "mysql_swap", obj=ref.label, duration="proportional", sql=planned,
                          done=lambda live: _switched(live.table(ref.table), ref), run=run, changes_type=True)

    def mysql_fk_name(self, ref):
        P = self.q(ref.table)
        alter = ("ALTER TABLE %s DROP FOREIGN KEY %s, RENAME INDEX %s TO %s, ADD CONSTRAINT %s %s, "
                 "ALGORITHM=INPLACE, LOCK=NONE" % (
                     P, self.q(ref.tmp_fk_name), self.q(ref.tmp_fk_name), self.q(ref.fk_name), self.q(ref.fk_name),
                     self._fk_clause(ref, ref.column, self.I, False)))
        sql = ["SET SESSION foreign_key_checks = 0", alter, "SET SESSION foreign_key_checks = 1"]

        def done(live):
            p = live.table(ref.table)
            return _switched(p, ref) and any(
                fk.name == ref.fk_name and fk.columns == [ref.column] and fk.ref_table == self.T
                and fk.ref_columns == [self.I] for fk in p.foreign_keys) and not any(
                fk.name == ref.tmp_fk_name for fk in p.foreign_keys)

        def run(ctx):
            p = ctx.live.table(ref.table)
            clauses = []
            if any(fk.name == ref.tmp_fk_name for fk in p.foreign_keys):
                clauses.append("DROP FOREIGN KEY %s" % self.q(ref.tmp_fk_name))
            names = set(i.name for i in p.indexes)
            if ref.tmp_fk_name in names and ref.fk_name not in names:
                clauses.append("RENAME INDEX %s TO %s" % (self.q(ref.tmp_fk_name), self.q(ref.fk_name)))
            elif ref.tmp_fk_name in names:
                clauses.append("DROP INDEX %s" % self.q(ref.tmp_fk_name))
            fk_clause = self._fk_clause(ref, ref.column, self.I, False)
            clauses.append("ADD CONSTRAINT %s %s" % (self.q(ref.fk_name), fk_clause))
            ctx.ddl(sql[0], table=ref.table)
            try:
                ctx.ddl("ALTER TABLE %s %s, ALGORITHM=INPLACE, LOCK=NONE" % (P, ", ".join(clauses)), table=ref.table)
            finally:
                ctx.ddl(sql[2], table=ref.table)

        return self._step("fk_name", ref.table, "give the foreign key of %s to %s.%s Django's name %s" % (
            ref.label, self.T, self.I, ref.fk_name), "mysql_tmp_fk", obj=ref.label, sql=sql, done=done, run=run)

    # -- SQLite -----------------------------------------------------------------
    def _sqlite_table_sql(self, name):
        return self.conn.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [name])

    def _sqlite_indexes(self, name):
        return [sql for (sql,) in self.conn.query(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL "
            "ORDER BY name", [name])]

    def _sqlite_rebuild_t(self, create_sql):
        """Statements that remake the table with the new id as its AUTOINCREMENT primary key."""
        q = self.q
        defs = split_definitions(create_sql)
        new_defs, columns = ["%s integer NOT NULL PRIMARY KEY AUTOINCREMENT" % q(self.I)], [self.I]
        for d in defs:
            name = column_name(d)
            if re.match(r"^(CONSTRAINT\s+\S+\s+)?PRIMARY\s+KEY\b", d, re.I):
                continue  # a table-level PRIMARY KEY (natural) constraint
            if name is None or re.match(r"^(CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN)\b", d, re.I):
                new_defs.append(d)
                continue
            if name == self.I:
                continue
            if name == self.N:
                d = re.sub(r"\s+PRIMARY\s+KEY(\s+(ASC|DESC))?(\s+AUTOINCREMENT)?", "", d, flags=re.I)
                if not re.search(r"\bNOT\s+NULL\b", d, re.I):
                    d += " NOT NULL"
                if not re.search(r"\bUNIQUE\b", d, re.I):
                    d += " UNIQUE"
            new_defs.append(d)
            columns.append(name)
        return self._sqlite_remake(self.T, new_defs, columns, columns)

    def _sqlite_remake(self, table, defs, columns, select):
        q = self.q
        tmp = "new__%s" % table
        return [
            "CREATE TABLE %s (%s)" % (q(tmp), ", ".join(defs)),
            "INSERT INTO %s (%s) SELECT %s FROM %s" % (q(tmp), ", ".join(q(c) for c in columns),
                                                       ", ".join(q(c) for c in select), q(table)),
            "DROP TABLE %s" % q(table),
            "ALTER TABLE %s RENAME TO %s" % (q(tmp), q(table)),
        ] + self._sqlite_indexes(table)

    def _sqlite_rebuild_p(self, ref, create_sql):
        q = self.q
        defs = split_definitions(create_sql)
        new_defs, columns, select = [], [], []
        fk = "%s %s %sNULL REFERENCES %s (%s)" % (
            q(ref.column), self.id_type, "" if ref.nullable else "NOT ", q(self.T), q(self.I))
        for what, action in (("DELETE", ref.on_delete), ("UPDATE", ref.on_update)):
            if action and action.upper() not in ("NO ACTION", "RESTRICT"):
                fk += " ON %s %s" % (what, action.upper())
        if ref.deferrable or "DEFERRABLE" in create_sql.upper():
            fk += " DEFERRABLE INITIALLY DEFERRED"
        for d in defs:
            name = column_name(d)
            if re.match(r"^(CONSTRAINT\s+\S+\s+)?FOREIGN\s+KEY\s*\(\s*[\"`\[]?%s[\"`\]]?\s*\)" % re.escape(ref.column),
                        d, re.I):
                continue  # a table-level foreign key of the natural column
            if name is None or re.match(r"^(CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN)\b", d, re.I):
                new_defs.append(d)
                continue
            if name == ref.shadow:
                continue
            if name == ref.column:
                new_defs.append(fk)
                columns.append(name)
                select.append(ref.shadow)
                continue
            new_defs.append(d)
            columns.append(name)
            select.append(name)
        return self._sqlite_remake(ref.table, new_defs, columns, select)

    def _sqlite_switch_sql(self, tables):
        t = tables[self.T]
        t_done = _pk_done(t, self.I)
        pending = [r for r in self.target.refs if not _switched(tables.get(r.table), r)]
        sql, checks = [], []
        if not t_done:
            sql.append(self._assign_ids_sql(limit=False))
        for ref in pending:
            sql.append(self._map_sql(ref, False))
            if ref.nullable:
                sql.append("UPDATE %s SET %s = NULL WHERE %s IS NULL AND %s IS NOT NULL" % (
                    self.q(ref.table), self.q(ref.shadow), self.q(ref.column), self.q(ref.shadow)))
            checks.append(self._unmapped_sql(ref))
            sql.append(checks[-1])
        if not t_done:
            sql += self._sqlite_rebuild_t(self._sqlite_table_sql(self.T) or "")
        for ref in pending:
            create = self._sqlite_table_sql(ref.table) or ""
            if ref.shadow not in create:
                # check mode before add_shadow ran: show the rebuild as it will be
                create = create.rstrip()[:-1] + ", %s %s NULL)" % (self.q(ref.shadow), self.id_type)
            sql += self._sqlite_rebuild_p(ref, create)
        return sql, set(checks), [r.table for r in pending]

    def _fk_check_tables(self, rebuilt):
        return _unique(list(rebuilt) + [fk.table for fk in self.target.kept])

    def sqlite_switch(self):
        planned, _c, rebuilt = self._sqlite_switch_sql(self.snapshot)
        wrapped = ["PRAGMA foreign_keys = OFF", "PRAGMA legacy_alter_table = ON", "BEGIN IMMEDIATE"] + planned + [
            "PRAGMA foreign_key_check(%s)" % self.q(name) for name in self._fk_check_tables(rebuilt)] + [
            "COMMIT", "PRAGMA legacy_alter_table = OFF", "PRAGMA foreign_keys = ON"]

        def run(ctx):
            conn = ctx.conn
            tables = dict((name, ctx.live.table(name)) for name in self.tables())
            seqs = {}
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("PRAGMA legacy_alter_table = ON")
            ctx.apply_timeouts()
            try:
                ctx.ddl("BEGIN IMMEDIATE", table=self.T)
                try:
                    statements, checks, rebuilt = self._sqlite_switch_sql(tables)
                    if conn.scalar("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"):
                        for name in rebuilt:
                            seqs[name] = conn.scalar("SELECT seq FROM sqlite_sequence WHERE name = %s", [name])
                    for statement in statements:
                        if statement in checks:
                            unmapped = int(conn.scalar(statement))
                            if unmapped:
                                ref = [r for r in self.target.refs if self._unmapped_sql(r) == statement][0]
                                raise _unmapped_error(ref, self.T, self.N, unmapped)
                            continue
                        n = ctx.ddl(statement, table=self.T)
                        if statement.startswith("UPDATE") and self.q(self.T) + " SET" not in statement:
                            ctx.report["rows_rewritten"] = ctx.report.get("rows_rewritten", 0) + max(n, 0)
                    for name, seq in seqs.items():
                        if seq is not None:
                            conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, %s) WHERE name = %s", [seq, name])
                    problems = []
                    for name in self._fk_check_tables(rebuilt):
                        problems += conn.query("PRAGMA foreign_key_check(%s)" % self.q(name))
                    if problems:
                        raise OAuthRepairError(
                            "the rebuilt tables would break %d foreign key reference(s): %s" % (
                                len(problems), ", ".join(sorted(set(str(p[0]) for p in problems)))),
                            obj=self.T, fix="repair the orphan rows first (nothing was changed)")
                    conn.execute("COMMIT")
                except Exception:
                    conn.execute("ROLLBACK", record=False)
                    raise
            finally:
                conn.execute("PRAGMA legacy_alter_table = OFF")
                conn.execute("PRAGMA foreign_keys = ON")

        return self._step("switch", self.T, "in one transaction: catch up the rows written since the backfill, "
                          "then rebuild %s (id INTEGER PRIMARY KEY AUTOINCREMENT, %s UNIQUE) and every referencing "
                          "table as Django's schema editor does" % (self.T, self.N), "sqlite_switch",
                          duration="proportional", online=False, sql=wrapped, done=self._all_switched, run=run,
                          changes_type=True)

    # -- history -----------------------------------------------------------------
    def record(self):
        app, name = self.target.migration

        def run(ctx):
            history.record(ctx.conn, app, name)

        return self._step("record_migration", history.TABLE, "record %s.%s as applied in django_migrations: "
                          "Django's state now agrees with the database" % (app, name), "record",
                          obj="%s.%s" % (app, name), sql=[history.insert_sql(self.conn)],
                          done=lambda live: history.is_recorded(self.conn, app, name), run=run)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _unique(items):
    out = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _batch(ctx, sql, params, table):
    """One batch: one statement, one short transaction (autocommit)."""
    return ctx.ddl(sql, params, table=table)


def _collapse(ctx, sql):
    """The log keeps one line for a batched statement, not one per batch."""
    queries = ctx.conn.executed_queries
    while len(queries) > 1 and queries[-1] == sql and queries[-2] == sql:
        queries.pop()


def _unmapped_error(ref, table, column, count):
    return OAuthRepairError(
        "%d row(s) of %s hold a value that matches no row of %s.%s (orphans: the foreign key was not enforced)"
        % (count, ref.label, table, column), obj=ref.label,
        fix="delete those rows or point them at an existing %s, then re-run (nothing of this step was applied)"
            % column)


def _transaction(ctx, statements, checks, table, setval_params):
    """Run ``statements`` (BEGIN ... COMMIT) as one transaction; a count query in ``checks`` must be 0."""
    conn = ctx.conn
    ctx.apply_timeouts()
    started = False
    try:
        for statement in statements:
            if statement in checks:
                count = int(conn.scalar(statement))
                if count:
                    raise OAuthRepairError(
                        "%d row(s) hold a natural value that matches no row of %s (%s)" % (count, table, statement),
                        obj=table, fix="delete or repair those orphan rows, then re-run (the transaction was rolled "
                                       "back: nothing of this step was applied)")
                continue
            if statement == "BEGIN":
                conn.execute("BEGIN")
                started = True
                continue
            params = setval_params if statement.startswith("SELECT setval(") else ()
            n = ctx.ddl(statement, params, table=table)
            if statement.startswith("UPDATE") and " FROM " in statement and "ROW_NUMBER()" not in statement:
                ctx.report["rows_rewritten"] = ctx.report.get("rows_rewritten", 0) + max(n, 0)
            elif statement.startswith("UPDATE") and "ROW_NUMBER()" in statement:
                ctx.report["ids_assigned"] = ctx.report.get("ids_assigned", 0) + max(n, 0)
    except Exception:
        if started:
            try:
                conn.execute("ROLLBACK", record=False)
            except Exception:  # pragma: no cover - the connection is gone
                pass
        raise


class _Snapshot(object):
    """What ``repairs.schema_text`` needs: ``load(name)`` from the live catalog."""

    def __init__(self, conn):
        self.conn = conn

    def load(self, name):
        return _load(self.conn, name)


def snapshot(conn):
    return _Snapshot(conn)


def build(conn, options):
    """Resolve the options and return (plan, target, repair)."""
    phase = options.get("phase") or "complete"
    if phase not in PHASES:
        raise OAuthRepairError("phase must be prepare or complete, got %r" % phase, obj="phase",
                               fix="use prepare (online work only) or complete")
    target = resolve(conn, options)
    repair = SurrogatePK(conn, target, options)
    return Plan(repair.steps(phase)), target, repair
