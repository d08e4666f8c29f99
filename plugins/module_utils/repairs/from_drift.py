# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repairs of schema drift: the breaking differences between the site's models and the live schema, as steps.

Only additive or widening changes are planned: a missing column (the SQL of the site's own Django schema
editor), ``char(32)`` UUID columns to MariaDB's native ``uuid`` (every value checked before and after), an
integer key narrower than the model (the widening of ``widen_integer_keys``, with every referencing column),
a missing index or unique index (duplicates looked for first, never deleted), a missing foreign key (orphans
looked for first). Nothing is ever dropped or narrowed: those differences stay findings, with the reason in
``not_repaired``.
"""

from __future__ import annotations

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Step
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.repair_seed000 import (
    Widen, check_orphans, create_index_concurrently)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.truth.django_models import (
    DjangoSite, add_field_sql)

CODES = ("schema_drift_missing_column", "schema_drift_uuid_char32", "schema_drift_int_width",
         "schema_drift_missing_unique", "schema_drift_missing_index", "schema_drift_missing_fk")

LOCKS = {
    "add_column": {"mysql": "ALTER TABLE ADD COLUMN as Django writes it: instant or in-place on MariaDB >= 10.3 "
                            "for a nullable or defaulted column, writes go on",
                   "postgresql": "ACCESS EXCLUSIVE, instant (no rewrite for a NULL or constant default)",
                   "sqlite": "ADD COLUMN, or Django's table remake, under the database write lock"},
    "uuid": {"mysql": "table copy (ALGORITHM=COPY, LOCK=SHARED): reads go on, writes wait for the copy; the "
                      "values are checked before and after (reads only)"},
    "unique": {"mysql": "online index build (ALGORITHM=INPLACE, LOCK=NONE) after a duplicate check (reads)",
               "postgresql": "CREATE UNIQUE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE): writes go on",
               "sqlite": "index build under the database write lock"},
    "index": {"mysql": "online index build (ALGORITHM=INPLACE, LOCK=NONE)",
              "postgresql": "CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE): writes go on",
              "sqlite": "index build under the database write lock"},
    "fk": {"mysql": "ADD FOREIGN KEY in place (LOCK=NONE, foreign_key_checks=0) after an orphan check (reads)",
           "postgresql": "ADD FOREIGN KEY NOT VALID (SHARE ROW EXCLUSIVE, instant), then VALIDATE (SHARE UPDATE "
                         "EXCLUSIVE: writes go on), after an orphan check"},
}


def _lock(kind, engine):
    return LOCKS[kind].get(engine) or ""


def why_not(finding, engine):
    """Why this drift finding is not repaired on ``engine`` (None when it is)."""
    code, d = finding["code"], finding["details"]
    if code not in CODES:
        return "the collection never drops, narrows or rewrites automatically: see the finding's message"
    if d.get("allowed"):
        return "allowlisted (drift_allow)"
    if code == "schema_drift_uuid_char32" and engine != "mysql":
        return "only MariaDB has char(32) UUID columns"
    if code == "schema_drift_int_width" and engine == "sqlite":
        return "SQLite integers have no width"
    if code in ("schema_drift_missing_unique", "schema_drift_missing_index") and d.get("partial"):
        return "partial indexes are created by the site's own migration"
    if code == "schema_drift_missing_fk" and engine == "sqlite":
        return "SQLite adds a foreign key only by remaking the table: run the site's migration"
    return None


def build(snapshot, findings, options):
    """Steps for the repairable drift findings among ``findings``, widenings first."""
    conn = snapshot.conn
    chosen = [f for f in findings if f["code"] in CODES and why_not(f, conn.engine) is None]
    steps = []
    keys = []
    for f in chosen:
        if f["code"] == "schema_drift_int_width":
            key = _key_to_widen(snapshot, f["objects"][0])
            if key is None:
                raise OAuthRepairError(
                    "%s is narrower than the model but is neither a primary key nor a reference to one"
                    % f["objects"][0], obj=f["objects"][0],
                    fix="widen it with the site's own migration, or allowlist it (drift_allow)")
            if key not in keys:
                keys.append(key)
    for table, column in keys:
        steps.extend(Widen(snapshot, table, column).steps())
    for f in chosen:
        code = f["code"]
        if code == "schema_drift_missing_column":
            steps.append(_add_column_step(snapshot, f, options))
        elif code == "schema_drift_uuid_char32":
            steps.append(_uuid_step(snapshot, f))
        elif code in ("schema_drift_missing_unique", "schema_drift_missing_index"):
            steps.append(_index_step(snapshot, f))
    for f in chosen:
        if f["code"] == "schema_drift_missing_fk":
            steps.append(_fk_step(snapshot, f))
    return steps


def _split(obj):
    table, column = (obj.split(".", 1) + [""])[:2]
    return table, column


def _key_to_widen(snapshot, obj):
    """(table, column) of the primary key whose widening widens ``obj``."""
    table, column = _split(obj)
    expected = snapshot.expected.table(table)
    if expected.primary_key == [column]:
        return table, column
    for fk in expected.foreign_keys:
        if fk.columns == [column]:
            return fk.ref_table, fk.ref_columns[0]
    return None


def _add_column_step(snapshot, finding, options):
    conn = snapshot.conn
    table, column = _split(finding["objects"][0])
    field = snapshot.expected.details["fields"]["%s.%s" % (table, column)]
    site = DjangoSite.from_options(options)
    live = snapshot.load(table)
    known = set(c.name for c in snapshot.expected.table(table).columns)
    sql = add_field_sql(site, field["model"], field["field"], options.get("drift_apps") or [])
    if conn.engine == "sqlite" and any("new__" in s for s in sql):
        unknown = [c.name for c in live.columns if c.name not in known]
        if unknown:
            raise OAuthRepairError(
                "adding %s.%s on SQLite needs Django's table remake, which would lose the columns the model does "
                "not know (%s)" % (table, column, ", ".join(unknown)), obj="%s.%s" % (table, column),
                fix="back up those columns' data, or add the column with the site's own migration")

    def done(lv):
        t = lv.table(table)
        return t is not None and t.has_column(column)

    return Step("schema_drift:add_column:%s.%s" % (table, column), finding["code"],
                "add %s.%s as the site's Django defines it (%s)" % (table, column, field["model"]), table,
                _lock("add_column", conn.engine), sql=sql, done=done, online=conn.engine != "sqlite")


#: @@transaction_isolation -> the SET TRANSACTION ISOLATION LEVEL words
_ISOLATION = {"READ-UNCOMMITTED": "READ UNCOMMITTED", "READ-COMMITTED": "READ COMMITTED",
              "REPEATABLE-READ": "REPEATABLE READ", "SERIALIZABLE": "SERIALIZABLE"}

#: the session's copy of the values before the conversion (a temporary table: no other session sees it)
_UUID_BEFORE = "oar_uuid_before"


def _uuid_keep_values(conn, table, column, pk):
    """Copy (key, value as 32 lowercase hex digits) of every row into a temporary table; returns the count."""
    q = conn.dialect.quote
    conn.execute("DROP TEMPORARY TABLE IF EXISTS %s" % q(_UUID_BEFORE), record=False)
    # READ COMMITTED: InnoDB then reads the source of CREATE ... SELECT as a consistent read, without the shared
    # locks REPEATABLE READ takes on every row (which stalled the site's inserts for the length of the copy)
    try:
        level = conn.scalar("SELECT @@SESSION.transaction_isolation")
    except Exception:  # pylint: disable=broad-except
        level = conn.scalar("SELECT @@SESSION.tx_isolation")  # MariaDB before 11.1
    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", record=False)
    try:
        conn.execute("CREATE TEMPORARY TABLE %s (k bigint NOT NULL PRIMARY KEY, v char(32) NOT NULL) AS "
                     "SELECT %s AS k, LOWER(%s) AS v FROM %s WHERE %s IS NOT NULL" % (
                         q(_UUID_BEFORE), q(pk), q(column), q(table), q(column)), record=False)
    finally:
        conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL %s" % _ISOLATION.get(level, "REPEATABLE READ"),
                     record=False)
    return int(conn.scalar("SELECT COUNT(*) FROM %s" % q(_UUID_BEFORE)))


def _uuid_compare_values(conn, table, column, pk):
    """``(rows compared, rows whose value changed, rows deleted meanwhile)``: every row that existed before the
    conversion and still exists is compared value by value; rows the site inserted or deleted while the repair
    ran are not a difference of the conversion."""
    q = conn.dialect.quote
    compared, changed = conn.query_one(
        "SELECT COUNT(*), COALESCE(SUM(t.%s IS NULL OR CAST(REPLACE(CAST(t.%s AS CHAR), '-', '') AS BINARY) "
        "<> CAST(b.v AS BINARY)), 0) "
        "FROM %s b JOIN %s t ON t.%s = b.k" % (q(column), q(column), q(_UUID_BEFORE), q(table), q(pk)))
    total = int(conn.scalar("SELECT COUNT(*) FROM %s" % q(_UUID_BEFORE)))
    conn.execute("DROP TEMPORARY TABLE IF EXISTS %s" % q(_UUID_BEFORE), record=False)
    return int(compared), int(changed), total - int(compared)


def _uuid_step(snapshot, finding):
    conn = snapshot.conn
    q = conn.dialect.quote
    table, column = _split(finding["objects"][0])
    expected = snapshot.expected.table(table).column(column)
    sql = "ALTER TABLE %s MODIFY %s uuid %s" % (q(table), q(column), "NULL" if expected.nullable else "NOT NULL")

    def done(lv):
        t = lv.table(table)
        return t is not None and t.column(column) is not None and t.column(column).type == "uuid"

    def run(ctx):
        bad = ctx.conn.query("SELECT %s FROM %s WHERE %s IS NOT NULL AND %s NOT REGEXP '^[0-9a-fA-F]{32}$' %s" % (
            q(column), q(table), q(column), q(column), ctx.dialect.limit(5)))
        if bad:
            raise OAuthRepairError(
                "%s.%s holds values that are not 32 hex digits (%s): they cannot become uuid" % (
                    table, column, ", ".join(repr(r[0]) for r in bad)), obj="%s.%s" % (table, column),
                fix="correct or clear those values, then re-run")
        pk = ctx.live.table(table).primary_key
        if len(pk) != 1:
            raise OAuthRepairError("%s has no single-column primary key: its values cannot be compared row by row"
                                   % table, obj=table, fix="convert the column by hand after a backup")
        before = _uuid_keep_values(ctx.conn, table, column, pk[0])
        ctx.ddl(sql, table=table)
        compared, changed, deleted = _uuid_compare_values(ctx.conn, table, column, pk[0])
        ctx.report.setdefault("uuid_conversions", {})["%s.%s" % (table, column)] = dict(
            values=before, compared=compared, deleted_meanwhile=deleted, values_equal=changed == 0)
        if changed:
            raise OAuthRepairError(
                "%s.%s: %d of %d values differ after the conversion from those before it" % (
                    table, column, changed, compared), obj="%s.%s" % (table, column),
                fix="restore the backup and report this", changed=True)

    return Step("schema_drift:uuid:%s.%s" % (table, column), finding["code"],
                "convert %s.%s from char(32) to MariaDB's uuid, every value kept" % (table, column), table,
                _lock("uuid", conn.engine), duration="proportional", online=False, sql=[sql], done=done, run=run,
                changes_type=True)


def _index_step(snapshot, finding):
    conn = snapshot.conn
    d = finding["details"]
    table = _split(finding["objects"][0])[0]
    columns = list(d["columns"])
    unique = finding["code"] == "schema_drift_missing_unique"
    name = d.get("expected") or conn.dialect.django_index_name(table, columns, "_uniq" if unique else "")
    q = conn.dialect.quote
    if conn.engine == "mysql":
        sql = "ALTER TABLE %s ADD %sINDEX %s (%s), ALGORITHM=INPLACE, LOCK=NONE" % (
            q(table), "UNIQUE " if unique else "", q(name), conn.dialect.quote_list(columns))
    elif conn.engine == "postgresql":
        sql = "CREATE %sINDEX CONCURRENTLY %s ON %s (%s)" % (
            "UNIQUE " if unique else "", q(name), q(table), conn.dialect.quote_list(columns))
    else:
        sql = "CREATE %sINDEX %s ON %s (%s)" % ("UNIQUE " if unique else "", q(name), q(table),
                                                conn.dialect.quote_list(columns))

    def done(lv):
        t = lv.table(table)
        if t is None:
            return False
        return bool(t.unique_on(columns)) if unique else bool([i for i in t.index_on(columns) if i.valid])

    def run(ctx):
        if unique:
            cols = ctx.dialect.quote_list(columns)
            dup = ctx.conn.query("SELECT %s, COUNT(*) FROM %s WHERE %s GROUP BY %s HAVING COUNT(*) > 1 %s" % (
                cols, q(table), " AND ".join("%s IS NOT NULL" % q(c) for c in columns), cols,
                ctx.dialect.limit(5)))
            if dup:
                raise OAuthRepairError(
                    "%s (%s) holds duplicates, so the unique index cannot be built: %s" % (
                        table, ", ".join(columns), "; ".join("%s x%s" % (list(r[:-1]), r[-1]) for r in dup)),
                    obj=table, fix="resolve the duplicate rows (nothing was deleted), then re-run")
        if conn.engine == "postgresql" and not unique:
            create_index_concurrently(ctx, table, columns, name)
            return
        if conn.engine == "postgresql":
            leftover = [i for i in ctx.live.table(table).indexes if i.name == name and not i.valid]
            if leftover:
                ctx.ddl("DROP INDEX CONCURRENTLY %s" % q(name), table=table)
        ctx.ddl(sql, table=table)

    return Step("schema_drift:%s:%s(%s)" % ("unique" if unique else "index", table, ",".join(columns)),
                finding["code"], "create the %sindex %s on %s (%s)" % (
                    "unique " if unique else "", name, table, ", ".join(columns)), table,
                _lock("unique" if unique else "index", conn.engine), duration="proportional", sql=[sql], done=done,
                run=run)


def _fk_step(snapshot, finding):
    conn = snapshot.conn
    d = finding["details"]
    q = conn.dialect.quote
    table, column = _split(finding["objects"][0])
    ref_table, ref_column = d["ref_table"], d["ref_columns"][0]
    name = d.get("name") or conn.dialect.django_fk_name(table, column, ref_table, ref_column)
    add = "ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)" % (
        q(table), q(name), q(column), q(ref_table), q(ref_column))
    if conn.engine == "mysql":
        sql = ["SET SESSION foreign_key_checks = 0", add + ", ALGORITHM=INPLACE, LOCK=NONE",
               "SET SESSION foreign_key_checks = 1"]
    else:
        sql = [add + " DEFERRABLE INITIALLY DEFERRED NOT VALID",
               "ALTER TABLE %s VALIDATE CONSTRAINT %s" % (q(table), q(name))]

    def done(lv):
        t = lv.table(table)
        if t is None:
            return False
        fks = [fk for fk in t.fk_on(column) if fk.ref_table == ref_table]
        return bool(fks) and all(fk.valid for fk in fks)

    def run(ctx):
        check_orphans(ctx, table, column, ref_table, ref_column)
        existing = [fk for fk in ctx.live.table(table).fk_on(column) if fk.ref_table == ref_table]
        for statement in sql:
            if existing and statement.startswith("ALTER TABLE %s ADD" % q(table)):
                continue
            ctx.ddl(statement, table=table)

    return Step("schema_drift:fk:%s.%s" % (table, column), finding["code"],
                "add the foreign key %s.%s -> %s.%s after proving it has no orphans" % (
                    table, column, ref_table, ref_column), table, _lock("fk", conn.engine), sql=sql, done=done,
                run=run)
