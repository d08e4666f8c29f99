# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed 004: DOT's token_checksum (migrations 0012 for access tokens, 0015 for refresh tokens).

DOT computes ``sha256(token.encode('utf-8')).hexdigest()`` in Python, row by
row, while its migration holds the table. Here the work is split into steps:

1. add the nullable column (instant);
2. ``token`` becomes ``text`` and loses its unique index (MySQL: one table copy;
   PostgreSQL: no rewrite, varchar -> text is binary-coercible);
3. backfill the checksum in the database, in batches of short transactions
   keyed by primary-key ranges; resumable, since a batch only touches rows whose
   checksum is missing or wrong;
4. refuse to go on while duplicates remain (reported, never silently deleted,
   unless ``checksum_duplicates: keep_newest``);
5. NOT NULL and the unique index, online where the engine allows it
   (MariaDB/MySQL ``ALGORITHM=INPLACE, LOCK=NONE``; PostgreSQL ``CREATE UNIQUE
   INDEX CONCURRENTLY`` then ``ADD CONSTRAINT ... USING INDEX`` and a validated
   CHECK that makes ``SET NOT NULL`` instant; SQLite: Django's table rebuild).

On MariaDB/MySQL, in ``complete`` mode on a table still at 0011, steps 1 and 2 are
one ALTER, the only table copy of the repair (``MODIFY token longtext`` cannot be
done in place): the column is added there ``NOT NULL DEFAULT ''`` - the state DOT
3.0.0's own 0012 left, which the rest of the repair finishes - so that step 5 is
metadata plus an online index build instead of a second rebuild of the table for
NOT NULL. Old code inserting during the backfill gets ``''`` (backfilled like NULL).

On PostgreSQL the duplicate check of step 4 *is* the concurrent build of the unique
index: a build that succeeds proves there is no duplicate, without a ``GROUP BY``
over the whole table; only a build that fails on a duplicate key reads the groups
to report them. Its ``token`` stays indexed by nothing between steps 2 and 5, as in
DOT's migration: keeping the old unique index during the backfill would make
every updated row pay a unique-index insertion (measured: 2-6x slower).

The end state is the one DOT's migration leaves, names included, so that the
migration can then be recorded as applied.
"""

from __future__ import annotations

import time

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import sqlite_rebuild
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Step

SPECS = {
    "accesstoken": dict(migration="0012_add_token_checksum", unique=("token_checksum",),
                        old_unique=("token",), like_index=True),
    "refreshtoken": dict(migration="0015_refreshtoken_token_checksum", unique=("token_checksum", "revoked"),
                         old_unique=("token", "revoked"), like_index=False),
}

#: characters of token_checksum compared by the first pass of the duplicate check
DUPLICATE_PREFIX = 16

#: candidate prefixes the first pass reads at most; at this many the second pass groups the whole table
DUPLICATE_CANDIDATES = 1000

#: extra passes of the backfill over rows inserted while it ran (ids past the first MAX(id))
CATCH_UP_ROUNDS = 3

CODES = ("token_checksum_empty", "token_checksum_null", "token_checksum_duplicate", "token_checksum_mismatch",
         "token_checksum_unique_missing", "token_checksum_preupgrade")

LOCKS = {
    "add_column": {"mysql": "metadata lock, instant ADD COLUMN", "postgresql": "ACCESS EXCLUSIVE, instant",
                   "sqlite": "database write lock, instant"},
    "add_column_copy": {"mysql": "table copy (ALGORITHM=COPY, LOCK=SHARED): reads go on, writes wait; "
                                 "also makes token longtext (the repair's only copy)"},
    "token_text": {"mysql": "table copy (ALGORITHM=COPY, LOCK=SHARED): reads go on, writes wait",
                   "postgresql": "ACCESS EXCLUSIVE, instant (varchar -> text needs no rewrite)",
                   "sqlite": "done by the final table rebuild"},
    "backfill": {"mysql": "row locks of one batch at a time", "postgresql": "row locks of one batch at a time",
                 "sqlite": "database write lock per batch"},
    "duplicates": {"mysql": "none (read)", "sqlite": "none (read)",
                   "postgresql": "CREATE UNIQUE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE): the build is the check"},
    "not_null": {"mysql": "online rebuild (ALGORITHM=INPLACE, LOCK=NONE)",
                 "postgresql": "SHARE UPDATE EXCLUSIVE to validate a CHECK, then ACCESS EXCLUSIVE, instant",
                 "sqlite": "table rebuild under the database write lock"},
    "unique": {"mysql": "online index build (ALGORITHM=INPLACE, LOCK=NONE)",
               "postgresql": "ACCESS EXCLUSIVE, instant (attaches the index built concurrently by the duplicates "
                             "step; builds it first if it is missing)",
               "sqlite": "index build under the database write lock"},
}


def _lock(kind, engine):
    return LOCKS[kind][engine]


def duplicate_groups(conn, table, columns, limit=1000, skip_empty=False):
    """The groups of rows of ``table`` that share the values of ``columns`` (``token_checksum`` and, for
    refresh tokens, ``revoked``; rows with a NULL in them never conflict), largest first: ``(number of
    groups, [(value, ..., rows)])``, at most ``limit`` groups listed, the number exact. ``skip_empty``
    leaves out the rows whose checksum is ``''`` (the diagnosis reports those as token_checksum_empty).

    Used by the diagnosis (finding token_checksum_duplicate) and by the repair's duplicates step. Two passes:
    first over the first DUPLICATE_PREFIX characters of token_checksum only (two equal checksums have equal
    prefixes; on MariaDB, sorting 1M full 64-character utf8mb4 keys for a GROUP BY took 11-100 s, 86 s right
    after a backfill where both passes took 7-10 s: docs/performance.md), then, only when some prefix occurs
    twice, exactly over the rows of those prefixes. When DUPLICATE_CANDIDATES prefixes or more occur twice,
    the second pass groups the whole table."""
    dialect = conn.dialect
    q = dialect.quote
    cols = [q(x) for x in columns]
    c = q("token_checksum")
    prefix = "SUBSTR(%s, 1, %d)" % (c, DUPLICATE_PREFIX)
    keys = [prefix] + [x for x in cols if x != c]
    where = " AND ".join("%s IS NOT NULL" % x for x in cols)
    if skip_empty:
        where += " AND %s <> ''" % c
    candidates = conn.query(
        "SELECT %s%s, COUNT(*) FROM %s WHERE %s GROUP BY %s HAVING COUNT(*) > 1 %s" % (
            dialect.big_result_hint(), ", ".join(keys), q(table), where, ", ".join(keys),
            dialect.limit(DUPLICATE_CANDIDATES)))
    if not candidates:
        return 0, []
    params, hint = [], dialect.big_result_hint()
    if len(candidates) < DUPLICATE_CANDIDATES:
        prefixes = sorted(set(r[0] for r in candidates))
        where += " AND %s IN (%s)" % (prefix, ", ".join(["%s"] * len(prefixes)))
        params, hint = prefixes, ""
    # the groups, their number (window function) and the biggest ones
    groups = conn.query(
        "SELECT %s, n, COUNT(*) OVER () FROM (SELECT %s%s, COUNT(*) AS n FROM %s WHERE %s GROUP BY %s "
        "HAVING COUNT(*) > 1) d ORDER BY n DESC, %s %s" % (
            ", ".join(cols), hint, ", ".join(cols), q(table), where, ", ".join(cols), ", ".join(cols),
            dialect.limit(limit)), params)
    if not groups:
        return 0, []
    return int(groups[0][-1]), [tuple(g[:-1]) for g in groups]


class ChecksumRepair(object):
    def __init__(self, snapshot, model, mode):
        self.snap = snapshot
        self.conn = snapshot.conn
        self.dialect = snapshot.conn.dialect
        self.engine = self.conn.engine
        self.model = model
        self.spec = SPECS[model]
        self.mode = mode  # complete | preupgrade
        self.table = snapshot.models.table(model)
        self.q = self.dialect.quote
        self.unique_name = self.dialect.django_index_name(self.table, list(self.spec["unique"]), "_uniq")
        self.like_name = self.dialect.django_index_name(self.table, ["token_checksum"], "_like")
        self.finding = "token_checksum"

    # -- helpers -------------------------------------------------------------
    def _t(self):
        return self.q(self.table)

    def _bad_condition(self):
        c, tok = self.q("token_checksum"), self.q("token")
        return "%s <> '' AND (%s IS NULL OR %s <> %s)" % (tok, c, c, self.dialect.sha256_hex(tok))

    def _step(self, kind, description, **kw):
        lock = _lock(kw.pop("lock_kind", kind), self.engine)
        return Step("%s:%s:%s" % (self.finding, kind, self.table), kw.pop("finding", self.finding), description,
                    self.table, lock, migration=self.spec["migration"], **kw)

    def steps(self):
        out = [self.add_column()]
        if self.mode == "complete" and self.engine != "sqlite":
            out.append(self.token_text())
        out.append(self.backfill())
        out.append(self.duplicates())
        if self.engine == "postgresql":
            if self.mode == "complete":
                out.append(self.pg_not_null())
            out.append(self.pg_unique())
            if self.mode == "complete" and self.spec["like_index"]:
                out.append(self.pg_like())
        elif self.engine == "mysql":
            out.append(self.mysql_not_null_unique())
        else:
            out.append(self.sqlite_finish())
        return out

    # -- 1. column -----------------------------------------------------------
    def _combined_copy(self, table):
        """MySQL, complete mode, no column yet and token still to make text: one ALTER, one table copy, adds
        the column NOT NULL DEFAULT '' (so that NOT NULL later needs no second rebuild) and makes token text."""
        return (self.engine == "mysql" and self.mode == "complete" and table is not None
                and not table.has_column("token_checksum") and self._token_text_needed(table))

    def _add_column_sql(self, table):
        c = self.q("token_checksum")
        if self._combined_copy(table):
            clauses = ["ADD COLUMN %s varchar(64) NOT NULL DEFAULT ''" % c] + self._mysql_token_text_clauses(table)
            return ["ALTER TABLE %s %s" % (self._t(), ", ".join(clauses))]
        return ["ALTER TABLE %s ADD COLUMN %s varchar(64) NULL" % (self._t(), c)]

    def add_column(self):
        table = self.snap.load(self.table)

        def run(ctx):
            live = ctx.live.table(self.table)
            if live.has_column("token_checksum"):
                return
            for statement in self._add_column_sql(live):
                ctx.ddl(statement, table=self.table)

        if self._combined_copy(table):
            return self._step("add_column", "add token_checksum to %s (NOT NULL DEFAULT '' until the backfill) and "
                              "make token text without its old unique index, as DOT's %s does, in one table copy"
                              % (self.table, self.spec["migration"]), lock_kind="add_column_copy",
                              duration="proportional", online=False, sql=self._add_column_sql(table), run=run,
                              done=lambda live: live.table(self.table).has_column("token_checksum"),
                              changes_type=True)
        return self._step("add_column", "add the nullable token_checksum column to %s" % self.table,
                          sql=self._add_column_sql(table), run=run,
                          done=lambda live: live.table(self.table).has_column("token_checksum"))

    # -- 2. token -> text ----------------------------------------------------
    def _old_unique_indexes(self, table):
        return [i for i in table.indexes if not i.primary and list(i.columns) in (
            list(self.spec["old_unique"]), ["token"])]

    def _token_text_needed(self, table):
        return table.column("token").type != "text" or bool(self._old_unique_indexes(table))

    def _mysql_token_text_clauses(self, table):
        clauses = ["DROP INDEX %s" % self.q(i.name) for i in self._old_unique_indexes(table)]
        clauses.append("MODIFY %s longtext NOT NULL" % self.q("token"))
        return clauses

    def _token_text_sql(self, table):
        old = self._old_unique_indexes(table)
        if self.engine == "mysql":
            return ["ALTER TABLE %s %s" % (self._t(), ", ".join(self._mysql_token_text_clauses(table)))]
        out = []
        for i in old:
            if i.constraint:
                out.append("ALTER TABLE %s DROP CONSTRAINT %s" % (self._t(), self.q(i.name)))
            else:
                out.append("DROP INDEX %s" % self.q(i.name))
        out.append("ALTER TABLE %s ALTER COLUMN %s TYPE text" % (self._t(), self.q("token")))
        return out

    def token_text(self):
        table = self.snap.load(self.table)

        def done(live):
            return not self._token_text_needed(live.table(self.table))

        def run(ctx):
            for statement in self._token_text_sql(ctx.live.table(self.table)):
                ctx.ddl(statement, table=self.table)

        if self._combined_copy(table):
            # the add_column step's copy does it; a re-run after that step finds this one done
            return self._step("token_text", "make %s.token text and drop its old unique index: done by the "
                              "add_column step's table copy" % self.table, duration="instant", online=True,
                              sql=[], done=done, run=run, changes_type=True)
        return self._step("token_text", "make %s.token text and drop its old unique index, as DOT's %s does"
                          % (self.table, self.spec["migration"]), duration="proportional"
                          if self.engine == "mysql" else "instant", online=self.engine != "mysql",
                          sql=self._token_text_sql(table), done=done, run=run, changes_type=True)

    # -- 3. backfill ---------------------------------------------------------
    def backfill(self):
        pk = self.q("id")
        c, tok = self.q("token_checksum"), self.q("token")
        update = "UPDATE %s SET %s = %s WHERE %s >= %%s AND %s < %%s AND %s" % (
            self._t(), c, self.dialect.sha256_hex(tok), pk, pk, self._bad_condition())

        def done(live):
            if not live.table(self.table).has_column("token_checksum"):
                return False
            return not self.conn.query_one("SELECT 1 FROM %s WHERE %s %s" % (
                self._t(), self._bad_condition(), self.dialect.limit(1)))

        def run(ctx):
            batch = max(1, int(ctx.options.get("batch_size") or 10000))
            lo, hi = self.conn.query_one("SELECT MIN(%s), MAX(%s) FROM %s" % (pk, pk, self._t()))
            if lo is None:
                return
            lo, hi = int(lo), int(hi)
            total = hi - lo + 1
            started = time.monotonic()
            updated = 0
            key = "%s:backfill:%s" % (self.finding, self.table)
            start = lo
            ctx.apply_timeouts()
            for _round in range(CATCH_UP_ROUNDS + 1):
                while start <= hi:
                    end = start + batch
                    updated += max(0, ctx.ddl(update, (start, end), table=self.table))
                    start = end
                    ctx.progress.update(key, min(start, hi + 1) - lo, total, started, updated)
                    ctx.throttle()
                # rows inserted meanwhile lie past the MAX(id) read first: go on with them (old code inserts them
                # without a checksum), a few rounds at most under a steady stream of inserts
                newest = self.conn.scalar("SELECT MAX(%s) FROM %s" % (pk, self._t()))
                if newest is None or int(newest) <= hi:
                    break
                hi = int(newest)
                total = hi - lo + 1
            # the log keeps one line for the whole batched statement, not one per batch
            queries = ctx.conn.executed_queries
            while len(queries) > 1 and queries[-1] == update and queries[-2] == update:
                queries.pop()

        return self._step("backfill", "compute token_checksum = sha256(token) in the database, in batches of "
                          "short transactions (resumable)", duration="batched", online=True, sql=[update],
                          done=done, run=run)

    # -- 4. duplicates -------------------------------------------------------
    def _duplicate_groups(self):
        """The groups of rows sharing the unique columns' values (at most 1000): see duplicate_groups."""
        return duplicate_groups(self.conn, self.table, self.spec["unique"], limit=1000)[1]

    def duplicates(self):
        if self.engine == "postgresql":
            return self.pg_duplicates()

        def done(live):
            return live.table(self.table).has_column("token_checksum") and not self._duplicate_groups()

        return self._step("duplicates", "make sure no token_checksum value occurs twice before the unique index",
                          duration="proportional", online=True, sql=[], done=done, run=self._resolve_duplicates)

    def _pg_create_unique(self):
        return "CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s)" % (
            self.q(self.unique_name), self._t(), self.dialect.quote_list(self.spec["unique"]))

    def pg_duplicates(self):
        """The concurrent build of the unique index is the duplicate check: no GROUP BY over the table unless it
        fails on a duplicate key, and then only to report (or, with keep_newest, resolve) the groups."""
        name = self.q(self.unique_name)
        create = self._pg_create_unique()

        def done(live):
            return self._has_unique(live.table(self.table))

        def run(ctx):
            table = ctx.live.table(self.table)
            if any(i.name == self.unique_name and not i.valid for i in table.indexes):
                ctx.ddl("DROP INDEX CONCURRENTLY %s" % name, table=self.table)  # a build that failed before
            ctx.apply_timeouts()
            try:
                ctx.conn.execute(create)
                return
            except Exception as exc:  # pylint: disable=broad-except
                if getattr(exc, "sqlstate", None) != "23505":  # unique_violation
                    raise ctx.dialect.translate_error(exc, create, self.table, ctx.options)
            # the failed build left an INVALID index behind: drop it, then report or resolve the duplicates
            ctx.ddl("DROP INDEX CONCURRENTLY IF EXISTS %s" % name, table=self.table)
            self._resolve_duplicates(ctx)
            ctx.ddl(create, table=self.table)

        return self._step("duplicates", "build the unique index %s concurrently: it proves no token_checksum value "
                          "occurs twice (on a duplicate key the groups are read and reported)" % self.unique_name,
                          duration="proportional", online=True, sql=[create], done=done, run=run)

    def _resolve_duplicates(self, ctx):
        groups = self._duplicate_groups()
        cols = list(self.spec["unique"])
        details = []
        for g in groups:
            where = " AND ".join("%s = %%s" % self.q(x) for x in cols)
            ids = [r[0] for r in self.conn.query("SELECT %s FROM %s WHERE %s ORDER BY %s" % (
                self.q("id"), self._t(), where, self.q("id")), list(g[:len(cols)]))]
            details.append(dict(values=list(g[:len(cols)]), ids=ids))
        policy = ctx.options.get("checksum_duplicates") or "fail"
        unfixable = [d for d in details if d["values"][0] in ("", None)]
        if policy != "keep_newest" or unfixable:
            ctx.report["checksum_duplicates"] = details
            raise OAuthRepairError(
                "%d duplicate token_checksum group(s) in %s (row ids: %s); the unique index cannot be built"
                % (len(details), self.table, "; ".join(",".join(str(i) for i in d["ids"]) for d in details[:10])),
                obj=self.table + ".token_checksum",
                fix="revoke or delete the duplicate tokens (or rows whose token is empty), or re-run with "
                    "checksum_duplicates=keep_newest to delete all but the newest row of each group")
        removed = []
        references = [f for f in self.dialect.referencing_foreign_keys(self.conn, self.table)
                      if len(f.columns) == 1]
        for d in details:
            for row_id in d["ids"][:-1]:
                for fk in references:
                    # what DOT's on_delete=SET_NULL (refresh token -> access token) does
                    column = self.q(fk.columns[0])
                    ctx.ddl("UPDATE %s SET %s = NULL WHERE %s = %%s" % (self.q(fk.table), column, column),
                            (row_id,), table=fk.table)
                ctx.ddl("DELETE FROM %s WHERE %s = %%s" % (self._t(), self.q("id")), (row_id,), table=self.table)
                removed.append(row_id)
        ctx.report.setdefault("deleted_duplicates", {})[self.table] = removed

    # -- 5. NOT NULL and unique ---------------------------------------------
    def _has_unique(self, t):
        return bool(t.unique_on(list(self.spec["unique"])))

    def mysql_not_null_unique(self):
        def sql_for(t):
            clauses = []
            col = t.column("token_checksum") if t is not None else None
            if self.mode == "complete" and (col is None or col.nullable or col.default is not None):
                clauses.append("MODIFY %s varchar(64) NOT NULL" % self.q("token_checksum"))
            if t is None or not self._has_unique(t):
                clauses.append("ADD CONSTRAINT %s UNIQUE (%s)" % (
                    self.q(self.unique_name), self.dialect.quote_list(self.spec["unique"])))
            if not clauses:
                return []
            return ["ALTER TABLE %s %s, ALGORITHM=INPLACE, LOCK=NONE" % (self._t(), ", ".join(clauses))]

        def done(live):
            t = live.table(self.table)
            return t.has_column("token_checksum") and not sql_for(t)

        def run(ctx):
            for statement in sql_for(ctx.live.table(self.table)):
                ctx.ddl(statement, table=self.table)

        current = self.snap.load(self.table)
        what = "NOT NULL and the unique index" if self.mode == "complete" else "the unique index (column stays " \
            "nullable until the upgrade)"
        return self._step("unique", "give token_checksum %s, online" % what, duration="proportional",
                          online=True, sql=sql_for(current if current.has_column("token_checksum") else None),
                          done=done, run=run)

    def pg_not_null(self):
        check = self.dialect.django_index_name(self.table, ["token_checksum"], "_notnull")
        t, c = self._t(), self.q("token_checksum")
        sql = [
            "ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s" % (t, self.q(check)),
            "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID" % (t, self.q(check), c),
            "ALTER TABLE %s VALIDATE CONSTRAINT %s" % (t, self.q(check)),
            "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL" % (t, c),
            "ALTER TABLE %s DROP CONSTRAINT %s" % (t, self.q(check)),
        ]

        def done(live):
            col = live.table(self.table).column("token_checksum")
            return col is not None and not col.nullable

        return self._step("not_null", "make token_checksum NOT NULL without a long ACCESS EXCLUSIVE scan",
                          duration="proportional", online=True, sql=sql, done=done)

    def pg_unique(self):
        t = self._t()
        name = self.q(self.unique_name)
        create = self._pg_create_unique()  # normally built by the duplicates step already
        attach = "ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s" % (t, name, name)

        def done(live):
            # the index the duplicates step built still has to become DOT's constraint; a unique index or
            # constraint of another name (made by hand) does the job as it is
            return any(i.constraint or i.name != self.unique_name
                       for i in live.table(self.table).unique_on(list(self.spec["unique"])))

        def run(ctx):
            table = ctx.live.table(self.table)
            existing = [i for i in table.indexes if i.name == self.unique_name]
            if existing and not existing[0].valid:
                ctx.ddl("DROP INDEX CONCURRENTLY %s" % name, table=self.table)
                existing = []
            if not existing:
                ctx.ddl(create, table=self.table)
                ctx.live.invalidate()
            if not any(i.name == self.unique_name and i.constraint for i in ctx.live.table(self.table).indexes):
                ctx.ddl(attach, table=self.table)

        return self._step("unique", "attach the unique index (built without blocking writers by the duplicates "
                          "step) as DOT's constraint %s" % self.unique_name, duration="instant", online=True,
                          sql=[attach], done=done, run=run)

    def pg_like(self):
        sql = "CREATE INDEX CONCURRENTLY %s ON %s (%s varchar_pattern_ops)" % (
            self.q(self.like_name), self._t(), self.q("token_checksum"))

        def done(live):
            return any(i.name == self.like_name and i.valid for i in live.table(self.table).indexes)

        def run(ctx):
            if any(i.name == self.like_name for i in ctx.live.table(self.table).indexes):
                ctx.ddl("DROP INDEX CONCURRENTLY %s" % self.q(self.like_name), table=self.table)
            ctx.ddl(sql, table=self.table)

        return Step("%s:like_index:%s" % (self.finding, self.table), self.finding,
                    "the varchar_pattern_ops index Django adds for an indexed varchar on PostgreSQL",
                    self.table, _lock("unique", self.engine), duration="proportional", online=True,
                    sql=[sql], done=done, run=run, migration=self.spec["migration"])

    def sqlite_finish(self):
        unique = list(self.spec["unique"])
        single = len(unique) == 1

        def done(live):
            t = live.table(self.table)
            col = t.column("token_checksum")
            if col is None or not self._has_unique(t):
                return False
            if self.mode == "preupgrade":
                return True
            return not col.nullable and t.column("token").type == "text" and not self._old_unique_indexes(t)

        def run(ctx):
            if self.mode == "preupgrade":
                ctx.ddl("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (%s)" % (
                    self.q(self.unique_name), self._t(), self.dialect.quote_list(unique)), table=self.table)
                return
            t = ctx.live.table(self.table)
            drop = [i.name for i in t.indexes if not i.primary and (
                list(i.columns) in (list(self.spec["old_unique"]), ["token"]) or sorted(i.columns) == sorted(unique))]
            replace = {"token": "text NOT NULL",
                       "token_checksum": "varchar(64) NOT NULL UNIQUE" if single else "varchar(64) NOT NULL"}
            extra = [] if single else ["CREATE UNIQUE INDEX %s ON %s (%s)" % (
                self.q(self.unique_name), self._t(), self.dialect.quote_list(unique))]
            ran = sqlite_rebuild.rebuild(ctx, self.table, replace, drop_index_names=drop, extra_indexes=extra)
            ctx.report.setdefault("sqlite_rebuilds", {})[self.table] = len(ran)

        desc = ("rebuild %s as Django does: token text, token_checksum NOT NULL UNIQUE" % self.table
                if self.mode == "complete" else "create the unique index on token_checksum")
        return self._step("not_null", desc, duration="proportional", online=False,
                          sql=["-- table rebuild: CREATE TABLE new__%s ...; INSERT ... SELECT; DROP; RENAME" %
                               self.table] if self.mode == "complete" else [], done=done, run=run)


def build(snapshot, findings, mode):
    """Steps for every token table that needs checksum work."""
    models = []
    for f in findings:
        if f["code"] in CODES:
            table = f["objects"][0].split(".")[0]
        elif f["code"] == "migration_half_applied" and f["details"]["migration"] in (
                SPECS["accesstoken"]["migration"], SPECS["refreshtoken"]["migration"]):
            table = snapshot.models.table("accesstoken" if "0012" in f["details"]["migration"] else "refreshtoken")
        else:
            continue
        for model in SPECS:
            if snapshot.models.table(model) == table and model not in models:
                models.append(model)
    steps = []
    for model in models:
        steps.extend(ChecksumRepair(snapshot, model, mode).steps())
    return steps
