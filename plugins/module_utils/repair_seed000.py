# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed 000: an install from before DOT 1.3 (int ids) whose DOT migrations died half-way.

Four repairs, each an ordered list of idempotent steps (see plan.py):

``widen_integer_keys`` (findings ``int_width_mismatch``; ``repair_interrupted``: a widening killed half-way)
    Every primary key referenced by wider columns becomes ``bigint``, and so does
    every column that references it (found in the catalog, in any table, plus
    DOT's own relation columns), keeping AUTO_INCREMENT / sequence / identity.

    *MariaDB/MySQL* refuse to change a column used by a foreign key (errors 1832
    and 1833, even with ``foreign_key_checks=0``), so the foreign keys that
    reference the key are dropped first, after their exact definitions (name,
    columns, referenced columns, ON DELETE/ON UPDATE, read from the catalog) are
    saved in a small state table, ``django_ops_oauth_repair_state``: a run killed
    between the drop and the re-creation finds them there and re-creates them.
    The state row is deleted (and the table dropped) at the end. Each referencing
    table is then altered once: ``MODIFY`` of its columns and ``ADD CONSTRAINT``
    of its foreign keys in one statement under ``foreign_key_checks=0``, after a
    set-based orphan check (anti-join) has proved referential integrity, so the
    table is copied once (re-adding a foreign key with checks on is a second full
    copy); a table whose columns are already wide gets its foreign keys with
    ``ALGORITHM=INPLACE, LOCK=NONE`` (no copy). The orphan check is repeated once
    the foreign key is back, to catch rows written in between; if any, the
    foreign key is dropped again and the step fails naming the rows.

    *PostgreSQL*: one transaction drops the foreign keys, changes the types
    (``ALTER SEQUENCE ... AS bigint`` for a serial; an identity follows its
    column), and re-adds the foreign keys ``NOT VALID`` with their exact catalog
    definitions (``pg_get_constraintdef``); nothing is half-done if it is killed.
    ``VALIDATE CONSTRAINT`` then proves integrity without blocking writers.

``complete_migration`` (finding ``migration_half_applied``, but 0012/0015, which
    repair_checksum.py completes)
    Creates exactly the missing objects of the migration with DOT's own names and
    types (as ``sqlmigrate`` prints them for each engine), so that recording it
    afterwards is true.

``add_timestamp_columns`` (finding ``missing_timestamp_columns``)
    Adds ``created``/``updated`` as DOT's models define them (``datetime(6) NOT
    NULL`` / ``timestamp with time zone NOT NULL`` / ``datetime NOT NULL``),
    existing rows getting the time of the repair (UTC) through a constant
    default that is dropped right after: instant on MariaDB/MySQL (``ALGORITHM=
    INSTANT``) and PostgreSQL (a constant default is stored once, not written
    into every row); SQLite rebuilds the table to drop the default.

``clean_migration_history`` (finding ``migration_stale_names``)
    Removes the ``django_migrations`` rows of the migrations DOT squashed away in
    1.3. Django ignores them (DOT's 0001_initial has no ``replaces``), so they do
    not stop ``migrate``, but they make the history untrue.
"""

from __future__ import annotations

import datetime
import json
import re
import time

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import dot, history, sqlite_rebuild
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Step

CODES = ("int_width_mismatch", "missing_timestamp_columns", "migration_stale_names", "repair_interrupted")
CHECKSUM_MIGRATIONS = ("0012_add_token_checksum", "0015_refreshtoken_token_checksum")
STATE_TABLE = "django_ops_oauth_repair_state"
TARGET = "bigint"
ORPHAN_EXAMPLES = 20

# -- DOT 3.4.1's own column definitions (from its migrations, as sqlmigrate prints them) -----------
# (model, column) -> (kind, nullable, value given to existing rows, unique)
COLUMNS = {
    ("application", "skip_authorization"): ("bool", False, False, False),
    ("application", "algorithm"): ("varchar(5)", False, "", False),
    ("application", "post_logout_redirect_uris"): ("text", False, "", False),
    ("application", "hash_client_secret"): ("bool", False, True, False),
    ("application", "allowed_origins"): ("text", False, "", False),
    ("application", "registration_source"): ("varchar(32)", False, "manual", False),
    ("application", "cimd_expires_at"): ("datetime", True, None, False),
    ("grant", "code_challenge"): ("varchar(128)", False, "", False),
    ("grant", "code_challenge_method"): ("varchar(10)", False, "", False),
    ("grant", "nonce"): ("varchar(255)", False, "", False),
    ("grant", "claims"): ("text", False, "", False),
    ("grant", "resource"): ("json", False, "[]", False),
    ("accesstoken", "resource"): ("json", False, "[]", False),
    ("refreshtoken", "resource"): ("json", False, "[]", False),
    ("accesstoken", "source_refresh_token_id"): ("bigint", True, None, True),
    ("accesstoken", "id_token_id"): ("bigint", True, None, True),
    ("refreshtoken", "revoked"): ("datetime", True, None, False),
    ("refreshtoken", "token_family"): ("uuid", True, None, False),
}

#: tables a DOT migration creates: model -> [(column, kind, nullable)] after the id
TABLES = {
    "idtoken": [("jti", "uuid", False, True), ("expires", "datetime", False, False), ("scope", "text", False, False),
                ("created", "datetime", False, False), ("updated", "datetime", False, False),
                ("application_id", "fk:application", True, False), ("user_id", "fk:user", True, False)],
}

#: Meta.indexes of DOT's models: (model, columns) -> name
INDEXES = {("refreshtoken", ("token_family",)): "oauth2_prov_token_f_996e8a_idx"}

#: the supported column types of "type" effects: normalised catalog type -> kind
TYPE_KINDS = {"text": "text", "varchar(44)": "varchar(44)", "varchar(255)": "varchar(255)"}

LOCKS = {
    "save_drop_fks": {
        "mysql": "metadata lock of each referencing table, instant (DROP FOREIGN KEY is in-place); the "
                 "definitions are saved first in %s" % STATE_TABLE},
    "widen_pk": {
        "mysql": "table copy (ALGORITHM=COPY, LOCK=SHARED): reads go on, writes to the table wait",
        "postgresql": "one transaction: ACCESS EXCLUSIVE on the table and on every referencing table while "
                      "they are rewritten (reads and writes wait); foreign keys come back NOT VALID"},
    "widen_refs": {
        "mysql": "one table copy (MODIFY and ADD FOREIGN KEY in one ALTER, foreign_key_checks=0: no second "
                 "copy): reads go on, writes wait"},
    "add_fks": {
        "mysql": "ALGORITHM=INPLACE, LOCK=NONE with foreign_key_checks=0: no copy, writes go on (an index the "
                 "foreign key needs is built online)",
        "postgresql": "ADD ... NOT VALID (SHARE ROW EXCLUSIVE, instant), VALIDATE (SHARE UPDATE EXCLUSIVE: "
                      "reads and writes go on), index CREATE INDEX CONCURRENTLY"},
    "forget_fks": {"mysql": "none (a row of %s)" % STATE_TABLE},
    "validate": {
        "postgresql": "VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE on the table, ROW SHARE on the referenced "
                      "one; reads and writes go on"},
    "add_timestamps": {
        "mysql": "metadata lock, instant (ALGORITHM=INSTANT), then an instant DROP DEFAULT",
        "postgresql": "ACCESS EXCLUSIVE, instant (a constant default is stored once), then an instant DROP DEFAULT",
        "sqlite": "ADD COLUMN, then a table rebuild under the database write lock to drop the default"},
    "add_column": {
        "mysql": "metadata lock, instant ADD COLUMN (then an instant DROP DEFAULT)",
        "postgresql": "ACCESS EXCLUSIVE, instant (constant default), then an instant DROP DEFAULT",
        "sqlite": "ADD COLUMN, then a table rebuild under the database write lock to drop the default"},
    "create_table": {"mysql": "none (a new table)", "postgresql": "none (a new table)"},
    "alter_type": {
        "mysql": "table copy (ALGORITHM=COPY, LOCK=SHARED) unless the server can extend the column in place",
        "postgresql": "ACCESS EXCLUSIVE; instant for varchar -> text or a longer varchar (no rewrite)",
        "sqlite": "table rebuild under the database write lock"},
    "index": {"mysql": "online index build (ALGORITHM=INPLACE, LOCK=NONE)",
              "postgresql": "CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE)",
              "sqlite": "index build under the database write lock"},
    "history": {"mysql": "row locks of django_migrations", "postgresql": "row locks of django_migrations",
                "sqlite": "database write lock, instant"},
}


def _lock(kind, engine):
    return LOCKS[kind].get(engine) or LOCKS[kind].get("mysql")


# --------------------------------------------------------------------------
# What can be repaired
# --------------------------------------------------------------------------

def _effect_kind(label):
    """The kind of a migration effect from its label in a finding (see diagnosis._effect_present)."""
    if label.endswith(" (foreign key)"):
        return "fk"
    if label.endswith(" not unique") or label.endswith(" unique"):
        return "unique"
    if label.endswith(" index"):
        return "index"
    if label.endswith(" (dropped)"):
        return "no_column"
    if " as " in label:
        return "type"
    if "." in label:
        return "column"
    return "table"


def repairable(finding, engine=None):
    """Whether this module has a repair for ``finding`` (on ``engine`` when given)."""
    code = finding["code"]
    if code in CODES:
        return code != "int_width_mismatch" or engine != "sqlite"
    if code != "migration_half_applied":
        return False
    details = finding["details"]
    if details.get("migration") in CHECKSUM_MIGRATIONS:
        return False
    missing = details.get("missing") or []
    # the objects of a table that is missing itself are labelled "table.column" whatever their kind: creating
    # the table (and its foreign keys) covers them
    new_tables = [label for label in missing if _effect_kind(label) == "table" and _can_create(label, engine)]
    for label in missing:
        if label.split(" ")[0].rsplit(".", 1)[0] in new_tables and label not in new_tables:
            continue
        if not _can_create(label, engine):
            return False
    return True


def _can_create(label, engine):
    """Whether the missing object named by ``label`` (a finding's label) can be created here."""
    kind = _effect_kind(label)
    prefix = dot.APP + "_"
    if kind in ("unique", "no_column"):
        return False
    if kind == "fk":
        return engine != "sqlite"
    if kind == "table":
        return engine != "sqlite" and label.startswith(prefix) and label[len(prefix):] in TABLES
    if kind == "type":
        return label.rsplit(" as ", 1)[-1] in TYPE_KINDS and not label.split(" as ")[0].endswith(".token")
    if kind == "index":
        return any(label == "%s%s (%s) index" % (prefix, m, ", ".join(c)) for m, c in INDEXES)
    table, column = label.split(" ")[0].rsplit(".", 1)
    spec = COLUMNS.get((table[len(prefix):], column)) if table.startswith(prefix) else None
    if spec is None:
        return False
    return engine != "sqlite" or not (spec[3] or spec[0] == "json")


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------

def _fk_migration(model, column):
    """The DOT migration that creates the foreign key on ``model.column``."""
    for name, effects in dot.MIGRATIONS:
        for e in effects:
            if e.kind == "fk" and e.model == model and e.target == column:
                return name
    return None


def _fk_dict(fk):
    return dict(name=fk.name, table=fk.table, columns=list(fk.columns), ref_table=fk.ref_table,
                ref_columns=list(fk.ref_columns), on_delete=fk.on_delete, on_update=fk.on_update)


def _has_fk(table, fk):
    """``table`` (catalog) has a foreign key like ``fk`` (a dict): same name, or same columns and target."""
    for f in table.foreign_keys:
        if fk.get("name") and f.name == fk["name"]:
            return True
        if not fk.get("name") and f.columns == fk["columns"] and f.ref_table == fk["ref_table"]:
            return True
    return False


def _type_ddl(kind, conn):
    engine = conn.engine
    if kind.startswith("varchar") or kind == "bigint":
        return kind
    if kind == "text":
        return {"mysql": "longtext"}.get(engine, "text")
    if kind == "bool":
        return {"postgresql": "boolean"}.get(engine, "bool")
    if kind == "datetime":
        return {"mysql": "datetime(6)", "postgresql": "timestamp with time zone"}.get(engine, "datetime")
    if kind == "uuid":
        if engine == "postgresql":
            return "uuid"
        if engine == "mysql" and conn.dialect.vendor == "mariadb" and conn.dialect.version >= (10, 7):
            return "uuid"
        return "char(32)"
    if kind == "json":
        return {"mysql": "json", "postgresql": "jsonb"}.get(engine, "text")
    raise ValueError(kind)  # pragma: no cover


def _literal(value, kind, engine):
    """A SQL literal for a constant we chose (never user input)."""
    if isinstance(value, bool):
        if engine == "postgresql":
            return "true" if value else "false"
        return "1" if value else "0"
    text = "'%s'" % str(value).replace("'", "''")
    if kind == "json" and engine == "postgresql":
        return text + "::jsonb"
    return text


def orphans(conn, table, column, ref_table, ref_column, pk=None):
    """Values of ``table.column`` absent from ``ref_table.ref_column`` (set-based anti-join), and the
    primary keys of some rows holding them. Reads only."""
    q = conn.dialect.quote
    t, c, r, rc = q(table), q(column), q(ref_table), q(ref_column)
    if conn.engine == "mysql":
        # GROUP BY over the column's index is a loose index scan: it reads each distinct value once
        sql = ("SELECT d.v FROM (SELECT %s AS v FROM %s WHERE %s IS NOT NULL GROUP BY %s) d "
               "LEFT JOIN %s p ON p.%s = d.v WHERE p.%s IS NULL %s" % (
                   c, t, c, c, r, rc, rc, conn.dialect.limit(ORPHAN_EXAMPLES)))
    else:
        sql = ("SELECT DISTINCT x.%s FROM %s x WHERE x.%s IS NOT NULL AND NOT EXISTS "
               "(SELECT 1 FROM %s p WHERE p.%s = x.%s) %s" % (c, t, c, r, rc, c, conn.dialect.limit(ORPHAN_EXAMPLES)))
    values = [row[0] for row in conn.query(sql)]
    rows = []
    if values and pk:
        rows = [row[0] for row in conn.query("SELECT %s FROM %s WHERE %s IN (%s) ORDER BY %s %s" % (
            q(pk), t, c, ", ".join(["%s"] * len(values)), q(pk), conn.dialect.limit(ORPHAN_EXAMPLES)), values)]
    return values, rows


def orphan_error(table, column, ref_table, ref_column, values, rows, pk):
    where = []
    if rows:
        where.append("rows %s" % ", ".join("%s=%s" % (pk, v) for v in rows))
    where.append("values %s" % ", ".join(str(v) for v in values))
    return OAuthRepairError(
        "%s.%s holds values that %s.%s does not have (orphans: %s): the foreign key cannot be created" % (
            table, column, ref_table, ref_column, "; ".join(where)),
        obj="%s.%s" % (table, column),
        fix="delete those rows, point them at existing %s rows, or set the column to NULL where it is nullable, "
            "then re-run (the steps done so far are kept)" % ref_table, changed=False)


def check_orphans(ctx, table, column, ref_table, ref_column, when="before"):
    """Prove that every value of ``table.column`` exists in ``ref_table.ref_column`` (reads only), or fail
    naming the orphan rows. Each check is reported in ``report.orphan_checks`` with its duration."""
    t = ctx.live.table(table)
    pk = t.primary_key[0] if t is not None and len(t.primary_key) == 1 else None
    started = time.monotonic()
    values, rows = orphans(ctx.conn, table, column, ref_table, ref_column, pk)
    ctx.report.setdefault("orphan_checks", []).append(dict(
        column="%s.%s" % (table, column), references="%s.%s" % (ref_table, ref_column), when=when,
        orphans=len(values), seconds=round(time.monotonic() - started, 3)))
    if values:
        ctx.report.setdefault("orphans", {})["%s.%s" % (table, column)] = dict(values=values, rows=rows)
        raise orphan_error(table, column, ref_table, ref_column, values, rows, pk)


# --------------------------------------------------------------------------
# widen_integer_keys
# --------------------------------------------------------------------------

class StateStore(object):
    """Saved foreign key definitions of an unfinished widening (MariaDB/MySQL only)."""

    def __init__(self, conn):
        self.conn = conn
        self.q = conn.dialect.quote

    def exists(self):
        return STATE_TABLE in set(self.conn.dialect.list_tables(self.conn))

    def entries(self):
        """{name: (payload, time saved)} of every saved row."""
        if not self.exists():
            return {}
        return dict((k, (json.loads(v), saved)) for k, v, saved in self.conn.query(
            "SELECT %s, %s, %s FROM %s" % (self.q("name"), self.q("payload"), self.q("saved"), self.q(STATE_TABLE))))

    def all(self):
        return dict((k, v[0]) for k, v in self.entries().items())

    def get(self, key):
        return self.all().get(key)

    def create_sql(self):
        return ("CREATE TABLE IF NOT EXISTS %s (%s varchar(191) NOT NULL PRIMARY KEY, %s longtext NOT NULL, "
                "%s datetime(6) NOT NULL) ENGINE=InnoDB" % (
                    self.q(STATE_TABLE), self.q("name"), self.q("payload"), self.q("saved")))

    def save_sql(self):
        return ("INSERT INTO %s (%s, %s, %s) VALUES (%%s, %%s, UTC_TIMESTAMP(6)) "
                "ON DUPLICATE KEY UPDATE %s = VALUES(%s)" % (
                    self.q(STATE_TABLE), self.q("name"), self.q("payload"), self.q("saved"),
                    self.q("payload"), self.q("payload")))

    def delete_sql(self):
        return "DELETE FROM %s WHERE %s = %%s" % (self.q(STATE_TABLE), self.q("name"))

    def drop_sql(self):
        return "DROP TABLE IF EXISTS %s" % self.q(STATE_TABLE)


class Widen(object):
    """Widen ``table.column`` (a primary key) and every column that references it to bigint."""

    finding = "int_width_mismatch"

    def __init__(self, snap, table, column, state=None):
        self.snap = snap
        self.conn = snap.conn
        self.dialect = snap.conn.dialect
        self.engine = self.conn.engine
        self.q = self.dialect.quote
        self.table = table
        self.column = column
        self.key = "widen:%s.%s" % (table, column)
        self.state = state  # saved payload (MySQL), or None
        self.store = StateStore(self.conn)

    # -- the catalog, from the snapshot (plan time) or live (run time) ------
    def _target_of(self, pk_col):
        if self.engine == "mysql" and pk_col is not None and pk_col.type.endswith("unsigned"):
            return "bigint unsigned"
        return TARGET

    def _saved_fks(self, saved):
        return list((saved or {}).get("foreign_keys") or [])

    def analyse(self, load, refs, saved):
        """Everything about this key: {pk, target, fks (live), saved, by_table: {table: {columns, add}}}."""
        parent = load(self.table)
        if parent is None or parent.column(self.column) is None:
            raise OAuthRepairError("%s.%s does not exist" % (self.table, self.column), obj=self.table,
                                   fix="check the database; re-run oauth_info")
        pk = parent.column(self.column)
        target = self._target_of(pk)
        live_fks = [fk for fk in refs(self.table) if fk.ref_columns == [self.column] and len(fk.columns) == 1]
        fks = [_fk_dict(fk) for fk in live_fks]
        names = set((f["table"], f["name"]) for f in fks)
        for f in self._saved_fks(saved):
            if (f["table"], f["name"]) not in names:
                fks.append(f)
                names.add((f["table"], f["name"]))
        by_table = {}
        for f in fks:
            entry = by_table.setdefault(f["table"], dict(columns=[], fks=[], expected=[]))
            if f["columns"][0] not in entry["columns"]:
                entry["columns"].append(f["columns"][0])
            entry["fks"].append(f)
        # DOT's own relation columns that point at this table, with or without a foreign key
        for model, relations in dot.RELATIONS.items():
            if self.snap.models.is_swapped(model):
                continue
            tname = self.snap.models.table(model)
            for col, target_model in relations.items():
                if self.snap.models.table(target_model) != self.table or self.column != "id":
                    continue
                t = load(tname)
                if t is None or t.column(col) is None:
                    continue
                entry = by_table.setdefault(tname, dict(columns=[], fks=[], expected=[]))
                if col not in entry["columns"]:
                    entry["columns"].append(col)
                if not any(f["columns"] == [col] for f in entry["fks"]):
                    entry["expected"].append(dict(
                        name=self.dialect.django_fk_name(tname, col, self.table, self.column), table=tname,
                        columns=[col], ref_table=self.table, ref_columns=[self.column], on_delete="NO ACTION",
                        on_update="NO ACTION", django=True, migration=_fk_migration(model, col)))
        return dict(parent=parent, pk=pk, target=target, live_fks=live_fks, fks=fks, by_table=by_table)

    def _plan_view(self):
        return self.analyse(self.snap.load, self.snap.references_to, self.state)

    def _live_view(self, ctx):
        ctx.live.invalidate()
        saved = self.store.get(self.key) if self.engine == "mysql" else None
        return self.analyse(ctx.live.table, lambda t: ctx.dialect.referencing_foreign_keys(ctx.conn, t), saved)

    def _step(self, kind, description, table, **kw):
        return Step("%s:%s:%s.%s" % (self.finding, kind, self.table, self.column), self.finding, description, table,
                    _lock(kind, self.engine), **kw)

    def steps(self):
        view = self.view = self._plan_view()
        if self.engine == "mysql":
            return self._mysql_steps(view)
        return self._pg_steps(view)

    # -- MariaDB / MySQL -------------------------------------------------------
    def _needs_drop(self, view):
        """The foreign keys that stop the primary key from changing (all of them while it is narrow)."""
        if view["pk"].type == view["target"]:
            return []
        return view["live_fks"]

    def _drop_sql(self, fks):
        per_table = {}
        for fk in fks:
            per_table.setdefault(fk.table, []).append(fk.name)
        return ["ALTER TABLE %s %s" % (self.q(t), ", ".join("DROP FOREIGN KEY %s" % self.q(n) for n in names))
                for t, names in sorted(per_table.items())]

    def _pk_sql(self, view):
        return "ALTER TABLE %s MODIFY %s %s NOT NULL%s" % (
            self.q(self.table), self.q(self.column), view["target"], " AUTO_INCREMENT"
            if view["pk"].auto_increment else "")

    def _fk_clause(self, fk):
        clause = "ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)" % (
            self.q(fk["name"]), self.dialect.quote_list(fk["columns"]), self.q(fk["ref_table"]),
            self.dialect.quote_list(fk["ref_columns"]))
        for action, rule in (("DELETE", fk.get("on_delete")), ("UPDATE", fk.get("on_update"))):
            rule = (rule or "RESTRICT").upper()
            if rule not in ("RESTRICT",) and not (fk.get("django") and rule == "NO ACTION"):
                if rule not in ("CASCADE", "SET NULL", "NO ACTION", "SET DEFAULT"):
                    raise OAuthRepairError("unknown referential action %r on %s" % (rule, fk["name"]),
                                           obj=fk["table"], fix="report this")
                clause += " ON %s %s" % (action, rule)
        return clause

    def _modify_clause(self, col, target):
        default = ""
        if col.default is not None:
            if not re.match(r"^-?\d+$", str(col.default)):
                raise OAuthRepairError("cannot keep the default %r of %s while widening it" % (col.default, col.name),
                                       obj=col.name, fix="drop the column's default, re-run, then set it again")
            default = " DEFAULT %s" % col.default
        return "MODIFY %s %s %s%s" % (self.q(col.name), target, "NULL" if col.nullable else "NOT NULL", default)

    def _refs_work(self, view, table_name, table):
        """(modify clauses, fk dicts to add) for one referencing table, given its catalog."""
        entry = view["by_table"][table_name]
        modify = [self._modify_clause(table.column(c), view["target"]) for c in entry["columns"]
                  if table.column(c) is not None and table.column(c).type != view["target"]]
        add = [f for f in entry["fks"] + entry["expected"] if not _has_fk(table, f)]
        return modify, add

    def _refs_sql(self, view, table_name, table):
        modify, add = self._refs_work(view, table_name, table)
        if not modify and not add:
            return []
        clauses = modify + [self._fk_clause(f) for f in add]
        tail = "" if modify else ", ALGORITHM=INPLACE, LOCK=NONE"
        return ["SET SESSION foreign_key_checks = 0",
                "ALTER TABLE %s %s%s" % (self.q(table_name), ", ".join(clauses), tail),
                "SET SESSION foreign_key_checks = 1"]

    def _mysql_steps(self, view):
        steps = []
        store = self.store
        drop = self._needs_drop(view)

        def save_drop_done(live):
            return not self._needs_drop(self._live_view_from(live))

        def save_drop_run(ctx):
            v = self._live_view(ctx)
            fks = self._needs_drop(v)
            if not fks:
                return
            payload = dict(primary_key=dict(table=self.table, column=self.column, type=v["pk"].type),
                           foreign_keys=v["fks"])
            ctx.ddl(store.create_sql(), table=STATE_TABLE)
            ctx.ddl(store.save_sql(), (self.key, json.dumps(payload, sort_keys=True)), table=STATE_TABLE)
            for statement in self._drop_sql(fks):
                ctx.ddl(statement, table=statement.split("`")[1])
            ctx.report.setdefault("saved_foreign_keys", {})[self.key] = [f["name"] for f in v["fks"]]

        steps.append(self._step(
            "save_drop_fks", "save the definitions of the %d foreign key(s) that reference %s.%s in %s, then drop "
            "them (MariaDB/MySQL cannot change a column a foreign key uses)" % (
                len(drop), self.table, self.column, STATE_TABLE),
            self.table, duration="instant", online=True,
            sql=([store.create_sql(), store.save_sql()] + self._drop_sql(drop)) if drop else [],
            done=save_drop_done, run=save_drop_run))

        def pk_done(live):
            t = live.table(self.table)
            return t is not None and t.column(self.column).type == view["target"]

        def pk_run(ctx):
            v = self._live_view(ctx)
            blocking = v["live_fks"]
            if blocking:
                raise OAuthRepairError(
                    "foreign keys still reference %s.%s: %s" % (self.table, self.column, ", ".join(
                        "%s.%s" % (f.table, f.name) for f in blocking)), obj=self.table,
                    fix="re-run: the step before this one drops them")
            ctx.ddl(self._pk_sql(v), table=self.table)

        steps.append(self._step(
            "widen_pk", "widen %s.%s to %s, keeping AUTO_INCREMENT and its counter" % (
                self.table, self.column, view["target"]), self.table, duration="proportional", online=False,
            sql=[self._pk_sql(view)], done=pk_done, run=pk_run, changes_type=True))

        for table_name in sorted(view["by_table"]):
            steps.append(self._mysql_refs_step(view, table_name))

        def forget_done(live):
            return not store.exists() or store.get(self.key) is None

        def forget_run(ctx):
            ctx.ddl(store.delete_sql(), (self.key,), table=STATE_TABLE)
            if not ctx.conn.query("SELECT 1 FROM %s %s" % (self.q(STATE_TABLE), self.dialect.limit(1))):
                ctx.ddl(store.drop_sql(), table=STATE_TABLE)

        steps.append(self._step(
            "forget_fks", "every foreign key is back: forget the saved definitions (and drop %s when empty)"
            % STATE_TABLE, STATE_TABLE, duration="instant", online=True,
            sql=[store.delete_sql(), store.drop_sql()], done=forget_done, run=forget_run))
        return steps

    def _live_view_from(self, live):
        saved = self.store.get(self.key) if self.engine == "mysql" else None
        return self.analyse(live.table, lambda t: live.dialect.referencing_foreign_keys(live.conn, t), saved)

    def _mysql_refs_step(self, view, table_name):
        current = self.snap.load(table_name)
        migrations = sorted(set(f["migration"] for f in view["by_table"][table_name]["expected"]
                                if f.get("migration")))

        def done(live):
            v = self._live_view_from(live)
            if v["pk"].type != v["target"]:
                return False
            if table_name not in v["by_table"]:
                return True
            modify, add = self._refs_work(v, table_name, live.table(table_name))
            return not modify and not add

        def run(ctx):
            v = self._live_view(ctx)
            if v["pk"].type != v["target"]:
                raise OAuthRepairError("%s.%s is still %s" % (self.table, self.column, v["pk"].type),
                                       obj=self.table, fix="re-run: the step before this one widens it")
            table = ctx.live.table(table_name)
            modify, add = self._refs_work(v, table_name, table)
            for f in add:
                check_orphans(ctx, table_name, f["columns"][0], f["ref_table"], f["ref_columns"][0])
            statements = self._refs_sql(v, table_name, table)
            if not statements:
                return
            ctx.ddl(statements[0], table=table_name)
            try:
                ctx.ddl(statements[1], table=table_name)
            finally:
                ctx.ddl(statements[2], table=table_name)
            # rows written between the check and the ALTER: proved absent, or the foreign keys go again
            ctx.live.invalidate()
            for f in add:
                try:
                    check_orphans(ctx, table_name, f["columns"][0], f["ref_table"], f["ref_columns"][0], "after")
                except OAuthRepairError:
                    ctx.ddl("ALTER TABLE %s %s" % (self.q(table_name), ", ".join(
                        "DROP FOREIGN KEY %s" % self.q(x["name"]) for x in add)), table=table_name)
                    raise
            ctx.report.setdefault("foreign_keys_created", []).extend(
                "%s.%s" % (table_name, f["name"]) for f in add)

        modify, add = self._refs_work(view, table_name, current) if current is not None else ([], [])
        if view["pk"].type != view["target"]:
            # at plan time the foreign keys are still there: they will be dropped first, then re-added
            entry = view["by_table"][table_name]
            add = entry["fks"] + entry["expected"]
        sql = []
        if modify or add:
            clauses = modify + [self._fk_clause(f) for f in add]
            sql = ["SET SESSION foreign_key_checks = 0",
                   "ALTER TABLE %s %s%s" % (self.q(table_name), ", ".join(clauses),
                                            "" if modify else ", ALGORITHM=INPLACE, LOCK=NONE"),
                   "SET SESSION foreign_key_checks = 1"]
        kind = "widen_refs" if modify else "add_fks"
        what = ("widen %s to %s and re-create its foreign key(s) in one ALTER (one table copy)" % (
            ", ".join("%s.%s" % (table_name, c) for c in view["by_table"][table_name]["columns"]), view["target"])
            if modify else "re-create the foreign key(s) of %s to %s.%s without a table copy" % (
                table_name, self.table, self.column))
        return Step("%s:widen_refs:%s->%s.%s" % (self.finding, table_name, self.table, self.column), self.finding,
                    "%s, after an orphan check (anti-join) proves every value exists in %s" % (what, self.table),
                    table_name, _lock(kind, self.engine), duration="proportional" if modify else "instant",
                    online=not modify, sql=sql, done=done, run=run,
                    migration=migrations[0] if len(migrations) == 1 else None, changes_type=bool(modify))

    # -- PostgreSQL ------------------------------------------------------------
    def _pg_plan(self, load, view, definitions):
        """The statements of the widening transaction (BEGIN ... COMMIT), or [] when nothing is left to do."""
        q = self.q
        target = view["target"]
        by_table = view["by_table"]
        pk_narrow = view["pk"].type != target

        def narrow(table_name, column):
            t = load(table_name)
            c = t.column(column) if t is not None else None
            return c is not None and c.type != target

        statements, dropped = [], {}
        for fk in view["live_fks"]:
            if pk_narrow or narrow(fk.table, fk.columns[0]):
                statements.append("ALTER TABLE %s DROP CONSTRAINT %s" % (q(fk.table), q(fk.name)))
                dropped.setdefault(fk.table, []).append(fk)
        if pk_narrow:
            statements.append("ALTER TABLE %s ALTER COLUMN %s TYPE %s" % (q(self.table), q(self.column), target))
            seq = self.dialect.serial_sequence(self.conn, self.table, self.column)
            if seq and not seq[2] and seq[1] != "bigint":
                if not re.match(r'^[A-Za-z0-9_."$]+$', seq[0]):
                    raise OAuthRepairError("unexpected sequence name %r" % seq[0], obj=self.table,
                                           fix="widen the sequence by hand: ALTER SEQUENCE ... AS bigint")
                statements.append("ALTER SEQUENCE %s AS bigint" % seq[0])
        for table_name in sorted(by_table):
            entry = by_table[table_name]
            clauses = ["ALTER COLUMN %s TYPE %s" % (q(c), target) for c in entry["columns"] if narrow(table_name, c)]
            for fk in dropped.get(table_name, []):
                definition = definitions.get(fk.name, ("FOREIGN KEY ... (as the catalog defines it)", True))[0]
                clauses.append("ADD CONSTRAINT %s %s NOT VALID" % (q(fk.name), definition.replace(" NOT VALID", "")))
            t = load(table_name)
            for f in entry["expected"]:
                if t is not None and not t.fk_on(f["columns"][0]):
                    clauses.append("ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s) DEFERRABLE INITIALLY "
                                   "DEFERRED NOT VALID" % (q(f["name"]), q(f["columns"][0]), q(self.table),
                                                           q(self.column)))
            if clauses:
                statements.append("ALTER TABLE %s %s" % (q(table_name), ", ".join(clauses)))
        if not statements:
            return []
        return ["BEGIN"] + statements + ["COMMIT"]

    def _pg_steps(self, view):
        definitions = self.dialect.constraint_definitions(self.conn, self.table)
        plan_sql = self._pg_plan(self.snap.load, view, definitions)
        expected = [f for e in view["by_table"].values() for f in e["expected"]]
        migrations = sorted(set(f["migration"] for f in expected if f.get("migration")))

        def done(live):
            return not self._pg_plan(live.table, self._live_view_from(live), {})

        def run(ctx):
            v = self._live_view(ctx)
            for f in [f for e in v["by_table"].values() for f in e["expected"]]:
                t = ctx.live.table(f["table"])
                if t is not None and not t.fk_on(f["columns"][0]):
                    check_orphans(ctx, f["table"], f["columns"][0], self.table, self.column)
            defs = ctx.dialect.constraint_definitions(ctx.conn, self.table)
            statements = self._pg_plan(ctx.live.table, v, defs)
            if not statements:
                return
            ctx.apply_timeouts()
            ctx.ddl(statements[0], table=self.table)
            try:
                for statement in statements[1:-1]:
                    m = re.search(r'^ALTER TABLE "([^"]+)"', statement)
                    ctx.ddl(statement, table=m.group(1) if m else self.table)
                ctx.ddl(statements[-1], table=self.table)
            except Exception:
                ctx.conn.execute("ROLLBACK", record=False)
                raise

        steps = [Step("%s:widen_pk:%s.%s" % (self.finding, self.table, self.column), self.finding,
                      "in one transaction: drop the foreign keys that reference %s.%s, widen it and every column "
                      "referencing it to %s (the sequence too), re-add the foreign keys NOT VALID with their exact "
                      "catalog definitions" % (self.table, self.column, view["target"]), self.table,
                      _lock("widen_pk", self.engine), duration="proportional", online=False, sql=plan_sql,
                      done=done, run=run, migration=migrations[0] if len(migrations) == 1 else None,
                      changes_type=True)]
        steps.append(self._pg_validate_step(view))
        return steps

    def _pg_not_valid(self, conn):
        defs = self.dialect.constraint_definitions(conn, self.table)
        out = []
        for fk in self.dialect.referencing_foreign_keys(conn, self.table):
            if fk.ref_columns == [self.column] and fk.name in defs and not defs[fk.name][1]:
                out.append(fk)
        return out

    def _pg_missing_indexes(self, conn, view):
        """DOT relation columns (with a foreign key now) that lack the index Django creates with it."""
        out = []
        for table_name, entry in view["by_table"].items():
            for f in entry["expected"]:
                t = self.dialect.load_tables(conn, [table_name]).get(table_name)
                if t is not None and not t.index_on(f["columns"]):
                    out.append((table_name, f["columns"][0]))
        return out

    def _pg_validate_step(self, view):
        q = self.q

        def done(live):
            return not self._pg_not_valid(live.conn) and not self._pg_missing_indexes(
                live.conn, self._live_view_from(live))

        def run(ctx):
            for fk in self._pg_not_valid(ctx.conn):
                check_orphans(ctx, fk.table, fk.columns[0], self.table, self.column)
                ctx.ddl("ALTER TABLE %s VALIDATE CONSTRAINT %s" % (q(fk.table), q(fk.name)), table=fk.table)
            for table_name, column in self._pg_missing_indexes(ctx.conn, self._live_view(ctx)):
                create_index_concurrently(ctx, table_name, [column], self.dialect.django_index_name(
                    table_name, [column]))

        names = sorted(set((f["table"], f["name"]) for e in view["by_table"].values() for f in e["fks"] + e["expected"]))
        return Step("%s:validate:%s.%s" % (self.finding, self.table, self.column), self.finding,
                    "validate the foreign keys re-added NOT VALID (an orphan check first names any bad row), and "
                    "create the index Django adds with a foreign key where it is missing", self.table,
                    _lock("validate", self.engine), duration="proportional", online=True,
                    sql=["ALTER TABLE %s VALIDATE CONSTRAINT %s" % (q(t), q(n)) for t, n in names], done=done, run=run)


def create_index_concurrently(ctx, table, columns, name):
    q = ctx.dialect.quote
    t = ctx.live.table(table)
    existing = [i for i in t.indexes if i.name == name]
    if existing and not existing[0].valid:
        ctx.ddl("DROP INDEX CONCURRENTLY %s" % q(name), table=table)
    elif existing:
        return
    ctx.ddl("CREATE INDEX CONCURRENTLY %s ON %s (%s)" % (q(name), q(table), ctx.dialect.quote_list(columns)),
            table=table)
    ctx.live.invalidate()


# --------------------------------------------------------------------------
# add_timestamp_columns
# --------------------------------------------------------------------------

def _repair_time(options):
    value = options.get("_repair_time")
    if value is None:
        value = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0, tzinfo=None)
        options["_repair_time"] = value
    return value


def timestamp_steps(snap, finding, options):
    conn = snap.conn
    q = conn.dialect.quote
    engine = conn.engine
    when = _repair_time(options)
    literal = when.strftime("%Y-%m-%d %H:%M:%S")
    literal = "'%s%s'" % (literal, "+00:00" if engine == "postgresql" else "")
    per_table = {}
    for obj in finding["details"].get("columns") or finding["objects"]:
        table, column = obj.rsplit(".", 1)
        per_table.setdefault(table, []).append(column)
    ddl_type = _type_ddl("datetime", conn)
    steps = []
    for table, columns in sorted(per_table.items()):
        steps.extend(_add_columns_steps(
            conn, table, [(c, ddl_type, literal, False) for c in columns], "missing_timestamp_columns",
            "add_timestamps", "add %s as DOT's models define them (%s NOT NULL), existing rows getting the time of "
            "the repair (%s UTC); no default is left behind" % (
                ", ".join("%s.%s" % (table, c) for c in columns), ddl_type, when.isoformat(sep=" ")), None))
    return steps


def _add_columns_steps(conn, table, columns, finding, lock_kind, description, migration, key_prefix=None):
    """Steps adding ``columns`` [(name, DDL type, literal default or None, nullable)] to ``table`` and
    then dropping the defaults. Returns [add step, drop-default step]."""
    q = conn.dialect.quote
    engine = conn.engine
    t = q(table)
    key_prefix = key_prefix or "%s:%s" % (finding, lock_kind)
    names = [c[0] for c in columns]
    with_default = [c[0] for c in columns if c[2] is not None]

    def add_sql(missing):
        cols = [c for c in columns if c[0] in missing]
        if not cols:
            return []
        defs = []
        unique = False
        for name, ddl, default, nullable in cols:
            d = "%s %s" % (q(name), ddl.replace(" UNIQUE", ""))
            if default is not None:
                d += " DEFAULT %s" % default
            d += " NULL" if nullable else " NOT NULL"
            if ddl.endswith(" UNIQUE"):
                d += " UNIQUE"
                unique = True
            defs.append(d)
        if engine == "mysql":
            # a new column is instant; its unique index (if any) is built online
            return ["ALTER TABLE %s %s, %s" % (t, ", ".join("ADD COLUMN %s" % d for d in defs),
                                               "ALGORITHM=INPLACE, LOCK=NONE" if unique else "ALGORITHM=INSTANT")]
        if engine == "postgresql":
            return ["ALTER TABLE %s %s" % (t, ", ".join("ADD COLUMN %s" % d for d in defs))]
        return ["ALTER TABLE %s ADD COLUMN %s" % (t, d) for d in defs]

    def missing_of(tab):
        return [n for n in names if tab is None or not tab.has_column(n)]

    def add_done(live):
        return not missing_of(live.table(table))

    def add_run(ctx):
        for statement in add_sql(missing_of(ctx.live.table(table))):
            ctx.ddl(statement, table=table)

    def defaults_of(tab):
        return [n for n in with_default if tab is not None and tab.column(n) is not None
                and tab.column(n).default is not None]

    def drop_sql(present):
        if not present:
            return []
        if engine in ("mysql", "postgresql"):
            return ["ALTER TABLE %s %s" % (t, ", ".join("ALTER COLUMN %s DROP DEFAULT" % q(n) for n in present))]
        return ["-- table rebuild: CREATE TABLE new__%s ...; INSERT ... SELECT; DROP; RENAME" % table]

    def drop_done(live):
        return not missing_of(live.table(table)) and not defaults_of(live.table(table))

    def drop_run(ctx):
        present = defaults_of(ctx.live.table(table))
        if engine == "sqlite":
            replace = dict((name, "%s %s" % (ddl, "NULL" if nullable else "NOT NULL"))
                           for name, ddl, _d, nullable in columns if name in present)
            ran = sqlite_rebuild.rebuild(ctx, table, replace)
            ctx.report.setdefault("sqlite_rebuilds", {})[table] = len(ran)
            return
        for statement in drop_sql(present):
            ctx.ddl(statement, table=table)

    current = conn.dialect.load_tables(conn, [table]).get(table)
    steps = [Step("%s:%s" % (key_prefix, table), finding, description, table, _lock(lock_kind, engine),
                  duration="instant", online=True, sql=add_sql(missing_of(current)), done=add_done, run=add_run,
                  migration=migration)]
    if with_default:
        steps.append(Step("%s:drop_default:%s" % (key_prefix, table), finding,
                          "drop the default the new column(s) of %s were added with (Django's models declare none)"
                          % table, table, _lock(lock_kind, engine), duration="instant" if engine != "sqlite"
                          else "proportional", online=engine != "sqlite",
                          sql=drop_sql(with_default), done=drop_done, run=drop_run, migration=migration))
    return steps


# --------------------------------------------------------------------------
# complete_migration
# --------------------------------------------------------------------------

def _missing_effects(snap, migration):
    for name, effects in dot.MIGRATIONS:
        if name != migration:
            continue
        out = []
        for effect in effects:
            undo = dot.SUPERSEDED.get((name, effect.kind, effect.model, effect.target))
            if undo and (undo[0] in snap.migration_state["applied"] or snap._effect_present(undo[1])[1]):
                continue
            applicable, present, _label = snap._effect_present(effect)
            if applicable and not present:
                out.append(effect)
        return out
    return []


class Completion(object):
    finding = "migration_half_applied"

    def __init__(self, snap, migration, covered=()):
        self.covered = set(covered)  # (table, column) whose foreign keys a widening creates
        self.snap = snap
        self.conn = snap.conn
        self.dialect = snap.conn.dialect
        self.engine = self.conn.engine
        self.q = self.dialect.quote
        self.migration = migration

    def steps(self):
        effects = _missing_effects(self.snap, self.migration)
        order = {"table": 0, "column": 1, "type": 2, "fk": 3, "index": 4}
        effects.sort(key=lambda e: order.get(e.kind, 9))
        steps = []
        columns = {}
        for e in effects:
            if e.kind == "column":
                columns.setdefault(e.model, []).append(e.target)
        for e in effects:
            if e.kind == "table":
                steps.append(self.table_step(e.model))
        for model, cols in sorted(columns.items()):
            steps.extend(self.column_steps(model, cols))
        for e in effects:
            if e.kind == "type":
                steps.append(self.type_step(e.model, e.target[0], e.target[1]))
            elif e.kind == "fk":
                if (self.snap.models.table(e.model), e.target) not in self.covered:
                    steps.append(self.fk_step(e.model, e.target))
            elif e.kind == "index":
                steps.append(self.index_step(e.model, tuple(e.target)))
            elif e.kind not in ("table", "column"):
                raise OAuthRepairError("cannot complete %s: its %s effect on %s is not supported" % (
                    self.migration, e.kind, e.model), obj="oauth2_provider.%s" % self.migration,
                    fix="complete it by hand (see manage.py sqlmigrate oauth2_provider %s)" % self.migration)
        return steps

    def _key(self, kind, what):
        return "%s:%s:%s:%s" % (self.finding, self.migration, kind, what)

    # -- tables ----------------------------------------------------------------
    def _user_pk_type(self):
        user = self.snap.models.user_table
        t = self.snap.load(user) if user else None
        if t is not None and len(t.primary_key) == 1 and t.column(t.primary_key[0]).type.startswith("bigint"):
            return "bigint"
        return "integer"

    def table_sql(self, model):
        if model not in TABLES:
            raise OAuthRepairError("cannot create the table of %s (migration %s)" % (model, self.migration),
                                   obj=self.snap.models.table(model),
                                   fix="run the migration's CREATE TABLE by hand (manage.py sqlmigrate)")
        q = self.q
        table = self.snap.models.table(model)
        if self.engine == "mysql":
            defs = ["%s bigint AUTO_INCREMENT NOT NULL PRIMARY KEY" % q("id")]
        elif self.engine == "postgresql":
            defs = ["%s bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY" % q("id")]
        else:
            raise OAuthRepairError("creating tables is not supported on SQLite", obj=table,
                                   fix="run manage.py migrate on a copy, or create it by hand")
        for name, kind, nullable, unique in TABLES[model]:
            if kind == "fk:user":
                ddl = self._user_pk_type()
            elif kind.startswith("fk:"):
                ddl = "bigint"
            else:
                ddl = _type_ddl(kind, self.conn)
            defs.append("%s %s %s%s" % (q(name), ddl, "NULL" if nullable else "NOT NULL", " UNIQUE" if unique else ""))
        return "CREATE TABLE %s (%s)" % (q(table), ", ".join(defs))

    def table_step(self, model):
        table = self.snap.models.table(model)
        sql = self.table_sql(model)
        return Step(self._key("table", table), self.finding, "create %s as DOT's %s does" % (table, self.migration),
                    table, _lock("create_table", self.engine), duration="instant", online=True, sql=[sql],
                    done=lambda live: live.table(table) is not None, migration=self.migration)

    # -- columns -----------------------------------------------------------------
    def column_steps(self, model, cols):
        table = self.snap.models.table(model)
        specs = []
        for col in cols:
            spec = COLUMNS.get((model, col))
            if spec is None:
                raise OAuthRepairError("cannot add %s.%s (migration %s): no definition known" % (
                    table, col, self.migration), obj="%s.%s" % (table, col),
                    fix="add it by hand (manage.py sqlmigrate oauth2_provider %s)" % self.migration)
            kind, nullable, fill, unique = spec
            if self.engine == "sqlite" and (unique or kind == "json"):
                raise OAuthRepairError("adding %s.%s is not supported on SQLite" % (table, col),
                                       obj="%s.%s" % (table, col), fix="add it by hand with a table rebuild")
            ddl = _type_ddl(kind, self.conn) + (" UNIQUE" if unique else "")
            default = None
            if fill is not None and not (self.engine == "mysql" and kind == "text"):
                default = _literal(fill, kind, self.engine)
            specs.append((col, ddl, default, nullable))
        return _add_columns_steps(self.conn, table, specs, self.finding, "add_column",
                                  "add %s as DOT's %s does" % (", ".join("%s.%s" % (table, c) for c in cols),
                                                               self.migration), self.migration,
                                  key_prefix=self._key("column", "add"))

    # -- types -------------------------------------------------------------------
    def type_step(self, model, column, wanted):
        table = self.snap.models.table(model)
        q = self.q
        kind = TYPE_KINDS.get(wanted)
        if kind is None:
            raise OAuthRepairError("cannot change %s.%s to %s" % (table, column, wanted), obj="%s.%s" % (table, column),
                                   fix="change it by hand (manage.py sqlmigrate oauth2_provider %s)" % self.migration)
        ddl = _type_ddl(kind, self.conn)
        col = self.snap.load(table).column(column)
        null = "NULL" if col is not None and col.nullable else "NOT NULL"
        if self.engine == "mysql":
            sql = ["ALTER TABLE %s MODIFY %s %s %s" % (q(table), q(column), ddl, null)]
        elif self.engine == "postgresql":
            sql = ["ALTER TABLE %s ALTER COLUMN %s TYPE %s" % (q(table), q(column), ddl)]
        else:
            sql = ["-- table rebuild: CREATE TABLE new__%s ...; INSERT ... SELECT; DROP; RENAME" % table]

        def done(live):
            c = live.table(table).column(column)
            return c is not None and c.type == wanted

        def run(ctx):
            if self.engine == "sqlite":
                sqlite_rebuild.rebuild(ctx, table, {column: "%s %s" % (ddl, null)})
                return
            for statement in sql:
                ctx.ddl(statement, table=table)

        return Step(self._key("type", "%s.%s" % (table, column)), self.finding,
                    "make %s.%s %s as DOT's %s does" % (table, column, ddl, self.migration), table,
                    _lock("alter_type", self.engine), duration="proportional", online=self.engine == "postgresql",
                    sql=sql, done=done, run=run, migration=self.migration, changes_type=True)

    # -- foreign keys --------------------------------------------------------------
    def fk_step(self, model, column):
        table = self.snap.models.table(model)
        target_model = dot.RELATIONS[model][column]
        ref_table = self.snap.models.table(target_model)
        if not ref_table:
            raise OAuthRepairError("the table %s.%s references is unknown" % (table, column), obj=table,
                                   fix="give user_table")
        return foreign_key_step(self.snap, table, column, ref_table, "id", self.migration, self.finding,
                                key=self._key("fk", "%s.%s" % (table, column)))

    # -- indexes -------------------------------------------------------------------
    def index_step(self, model, columns):
        table = self.snap.models.table(model)
        name = INDEXES.get((model, columns)) or self.dialect.django_index_name(table, list(columns), "_idx")
        q = self.q
        if self.engine == "mysql":
            sql = "CREATE INDEX %s ON %s (%s) ALGORITHM=INPLACE LOCK=NONE" % (
                q(name), q(table), self.dialect.quote_list(columns))
        elif self.engine == "postgresql":
            sql = "CREATE INDEX CONCURRENTLY %s ON %s (%s)" % (q(name), q(table), self.dialect.quote_list(columns))
        else:
            sql = "CREATE INDEX %s ON %s (%s)" % (q(name), q(table), self.dialect.quote_list(columns))

        def done(live):
            return any(i.name == name and i.valid for i in live.table(table).indexes)

        def run(ctx):
            if self.engine == "postgresql":
                create_index_concurrently(ctx, table, list(columns), name)
            else:
                ctx.ddl(sql, table=table)

        return Step(self._key("index", name), self.finding, "create DOT's index %s" % name, table,
                    _lock("index", self.engine), duration="proportional", online=True, sql=[sql], done=done, run=run,
                    migration=self.migration)


def foreign_key_step(snap, table, column, ref_table, ref_column, migration, finding, key):
    """Create the foreign key DOT's migration creates on ``table.column``, with Django's name, after an orphan
    check: MySQL ``ALGORITHM=INPLACE`` under ``foreign_key_checks=0`` (no copy); PostgreSQL ``NOT VALID`` +
    ``VALIDATE`` + the index Django adds (``CREATE INDEX CONCURRENTLY``)."""
    conn = snap.conn
    dialect = conn.dialect
    q = dialect.quote
    engine = conn.engine
    name = dialect.django_fk_name(table, column, ref_table, ref_column)
    index_name = dialect.django_index_name(table, [column])
    if engine == "mysql":
        sql = ["SET SESSION foreign_key_checks = 0",
               "ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s), ALGORITHM=INPLACE, LOCK=NONE"
               % (q(table), q(name), q(column), q(ref_table), q(ref_column)),
               "SET SESSION foreign_key_checks = 1"]
    else:
        sql = ["ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s) DEFERRABLE INITIALLY DEFERRED "
               "NOT VALID" % (q(table), q(name), q(column), q(ref_table), q(ref_column)),
               "ALTER TABLE %s VALIDATE CONSTRAINT %s" % (q(table), q(name)),
               "CREATE INDEX CONCURRENTLY %s ON %s (%s)" % (q(index_name), q(table), q(column))]

    def fk_of(live):
        t = live.table(table)
        return [f for f in t.foreign_keys if f.columns == [column] and f.ref_table == ref_table] if t else []

    def done(live):
        fks = fk_of(live)
        if not fks:
            return False
        if engine == "postgresql":
            defs = dialect.constraint_definitions(live.conn, table)
            if any(f.name in defs and not defs[f.name][1] for f in fks):
                return False
            return bool(live.table(table).index_on([column]))
        return True

    def run(ctx):
        t = ctx.live.table(table)
        r = ctx.live.table(ref_table)
        col, rcol = t.column(column), r.column(ref_column) if r is not None else None
        if rcol is None:
            raise OAuthRepairError("%s.%s does not exist" % (ref_table, ref_column), obj=ref_table,
                                   fix="create it first")
        if engine == "mysql" and col.type != rcol.type:
            raise OAuthRepairError(
                "%s.%s is %s but %s.%s is %s: InnoDB refuses a foreign key between them" % (
                    table, column, col.type, ref_table, ref_column, rcol.type), obj="%s.%s" % (table, column),
                fix="repair int_width_mismatch too (fix: [int_width_mismatch, migration_half_applied])")
        fks = fk_of(ctx.live)
        if not fks:
            check_orphans(ctx, table, column, ref_table, ref_column)
            if engine == "mysql":
                ctx.ddl(sql[0], table=table)
                try:
                    ctx.ddl(sql[1], table=table)
                finally:
                    ctx.ddl(sql[2], table=table)
                try:
                    check_orphans(ctx, table, column, ref_table, ref_column, "after")
                except OAuthRepairError:
                    ctx.ddl("ALTER TABLE %s DROP FOREIGN KEY %s" % (q(table), q(name)), table=table)
                    raise
                return
            ctx.ddl(sql[0], table=table)
            ctx.live.invalidate()
            fks = fk_of(ctx.live)
        if engine == "postgresql":
            defs = dialect.constraint_definitions(ctx.conn, table)
            for f in fks:
                if f.name in defs and not defs[f.name][1]:
                    check_orphans(ctx, table, column, ref_table, ref_column)
                    ctx.ddl("ALTER TABLE %s VALIDATE CONSTRAINT %s" % (q(table), q(f.name)), table=table)
            if not ctx.live.table(table).index_on([column]):
                create_index_concurrently(ctx, table, [column], index_name)

    return Step(key, finding, "create the foreign key %s on %s.%s -> %s.%s as DOT's %s does, after an orphan check "
                "(anti-join)" % (name, table, column, ref_table, ref_column, migration), table,
                _lock("add_fks", engine), duration="instant" if engine == "mysql" else "proportional", online=True,
                sql=sql, done=done, run=run, migration=migration)


# --------------------------------------------------------------------------
# clean_migration_history
# --------------------------------------------------------------------------

def history_step(snap, finding):
    conn = snap.conn
    names = list(finding["details"].get("names") or [])

    def stale(live):
        recorded = history.names(live.conn, dot.APP)
        return [n for n in names if n in recorded]

    def run(ctx):
        removed = []
        for name in stale(ctx.live):
            if history.remove(ctx.conn, dot.APP, name):
                removed.append(name)
        ctx.report["removed_migration_rows"] = removed

    return Step("migration_stale_names:clean_history:%s" % dot.APP, "migration_stale_names",
                "remove the django_migrations rows of the oauth2_provider migrations DOT squashed away in 1.3 (%s): "
                "Django ignores them (DOT's 0001_initial replaces nothing), they only make the history untrue"
                % ", ".join(names), history.TABLE, _lock("history", conn.engine), duration="instant", online=True,
                sql=[history.delete_sql(conn)] * len(names), done=lambda live: not stale(live), run=run)


# --------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------

def interrupted_widenings(snapshot):
    """What widenings killed half-way left behind, which the next run of :func:`build` finishes whatever
    the findings chosen (and oauth_info reports as ``repair_interrupted``). One dict per primary key:

    * MariaDB/MySQL - every widening saved in the state table: ``key``, ``primary_key`` (table, column, type
      before the widening), ``payload`` (the saved definitions), ``saved`` (when, UTC) and ``foreign_keys``,
      those of the saved foreign keys that are not back in the catalog (empty when the run was killed after
      re-creating them all, before it deleted its row);
    * PostgreSQL - every primary key of a DOT table (the user table aside) referenced by a foreign key still
      ``NOT VALID`` (the widening re-adds them so, then validates them): ``foreign_keys`` those, ``payload``
      None.
    """
    conn = snapshot.conn
    out = []
    if conn.engine == "mysql" and STATE_TABLE in snapshot.all_tables:
        for key, (payload, saved) in sorted(StateStore(conn).entries().items()):
            pk = payload.get("primary_key") or {}
            if not key.startswith("widen:") or not pk.get("table"):
                continue
            missing = []
            for fk in payload.get("foreign_keys") or []:
                table = snapshot.load(fk["table"])
                if table is None or not _has_fk(table, fk):
                    missing.append(fk)
            out.append(dict(key=key, primary_key=pk, payload=payload, foreign_keys=missing,
                            saved=saved.isoformat(sep=" ") if hasattr(saved, "isoformat") else saved))
    elif conn.engine == "postgresql":
        # foreign keys left NOT VALID by a widening killed before its validation (nothing else in DOT's
        # tables makes them): validated by any run, as MySQL's saved definitions are re-created
        for name in sorted(snapshot.tables):
            table = snapshot.tables[name]
            if name == snapshot.models.user_table or len(table.primary_key) != 1:
                continue
            definitions = conn.dialect.constraint_definitions(conn, name)
            not_valid = [fk for fk in snapshot.references_to(name)
                         if fk.ref_table == name and fk.name in definitions and not definitions[fk.name][1]]
            if not_valid:
                out.append(dict(key="widen:%s.%s" % (name, table.primary_key[0]), payload=None, saved=None,
                                primary_key=dict(table=name, column=table.primary_key[0]),
                                foreign_keys=[_fk_dict(fk) for fk in not_valid]))
    return out


def build(snapshot, findings, options):
    """Steps for the seed-000 findings among ``findings`` (in this order: widen, complete the migrations, add
    the timestamps, clean the history), plus the end of any widening a killed run left unfinished (the
    foreign keys saved in the state table re-created, those left NOT VALID validated), whatever the
    findings."""
    conn = snapshot.conn
    steps = []
    keys = []
    saved = {}
    for entry in interrupted_widenings(snapshot):
        pk = entry["primary_key"]
        if entry["payload"] is not None:
            saved[entry["key"]] = entry["payload"]
        if (pk["table"], pk["column"]) not in keys:
            keys.append((pk["table"], pk["column"]))
    for f in findings:
        if f["code"] == "int_width_mismatch" and conn.engine != "sqlite":
            pk = f["details"]["primary_key"]
            if (pk["table"], pk["column"]) not in keys:
                keys.append((pk["table"], pk["column"]))
    covered = set()
    for table, column in keys:
        widen = Widen(snapshot, table, column, saved.get("widen:%s.%s" % (table, column)))
        steps.extend(widen.steps())
        # the foreign keys DOT expects on the columns being widened are created by the widening itself
        covered.update((t, c) for t, entry in widen.view["by_table"].items() for c in entry["columns"])
    for f in findings:
        if f["code"] == "migration_half_applied" and repairable(f, conn.engine):
            steps.extend(Completion(snapshot, f["details"]["migration"], covered).steps())
    for f in findings:
        if f["code"] == "missing_timestamp_columns":
            steps.extend(timestamp_steps(snapshot, f, options))
    for f in findings:
        if f["code"] == "migration_stale_names":
            steps.append(history_step(snapshot, f))
    return steps
