# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed 001: swap ``OAUTH2_PROVIDER_APPLICATION_MODEL`` on a live database, losing nothing.

A site that ran DOT's migrations with DOT's own ``Application`` model cannot
simply set ``OAUTH2_PROVIDER_APPLICATION_MODEL``: the custom model's table does
not exist, every token table's foreign key still points at
``oauth2_provider_application``, and Django refuses to migrate
(``InconsistentMigrationHistory``: ``oauth2_provider.0001_initial`` is recorded,
the custom app's ``0001_initial`` that must run before it is not).

Two strategies, both plans of idempotent steps that read the live catalog:

``rename``
    ``oauth2_provider_application`` becomes the custom model's table. Every
    engine keeps the foreign keys of other tables on the renamed table
    (PostgreSQL and InnoDB reference tables by identity; SQLite >= 3.26 with
    ``legacy_alter_table=OFF`` rewrites the ``REFERENCES`` clauses). The custom
    model's extra columns are added with their default, which is then dropped
    as Django does; sequences, indexes and constraints Django named after the
    old table are renamed to the names Django gives them under the new one.

``copy``
    The custom model's table is created from the old table's catalog (Django's
    names, the extra columns), every row copied with the same id in batches
    (ids, client ids, hashed secrets, everything), the sequence moved past the
    old one, every foreign key of every table that references the old table
    re-pointed (PostgreSQL: ``NOT VALID`` then ``VALIDATE``; MariaDB/MySQL:
    in place, checked by the module; SQLite: table rebuild), and the old table
    kept under another name for a rollback. ``phase: prepare`` does only the
    online part (create and copy), which the running code does not notice.

Then the custom app's initial migration is recorded, and nothing else.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import history, sqlite_rebuild
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import (
    OAuthRepairError, default_table_name, parse_model_label)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Step

#: DOT's own Application table.
OLD_TABLE = "oauth2_provider_application"
DOT_APP = "oauth2_provider"
DEFAULT_KEPT_TABLE = "oauth2_provider_application_old_swap"

#: The columns of DOT 3.4's AbstractApplication: what the custom model's 0001_initial creates besides its
#: own fields. A source table without one of them (but those of LATE_COLUMNS) is a database DOT has not
#: migrated to 0011.
DOT_APPLICATION_COLUMNS = (
    "id", "client_id", "redirect_uris", "post_logout_redirect_uris", "client_type", "authorization_grant_type",
    "client_secret", "hash_client_secret", "name", "user_id", "skip_authorization", "created", "updated",
    "algorithm", "allowed_origins", "registration_source", "cimd_expires_at",
)

#: Changes DOT made to the Application table after 0011 (DOT 3.x) by schema operations that Django skips once
#: the model is swapped (DOT's 0019 says so: "the swapped app has to add registration_source"). The custom
#: model's 0001_initial, made with DOT 3.4, has them; a source table from before them gets them in the new table:
#: missing columns with the value DOT's migration gives existing rows, and varchar columns widened.
LATE_COLUMNS = {
    # name: (migration, {engine: type}, default, null)
    "registration_source": ("0019_application_registration_source", {
        "postgresql": "varchar(32)", "mysql": "varchar(32)", "sqlite": "varchar(32)"}, "manual", False),
    "cimd_expires_at": ("0020_cimd_application_fields", {
        "postgresql": "timestamp with time zone", "mysql": "datetime(6)", "sqlite": "datetime"}, None, True),
}
LATE_WIDENED = {"authorization_grant_type": 44, "client_id": 255}  # 0013, 0020
#: DOT 0017 added dcr_created and 0019 turned it into registration_source ('dcr'), then dropped it.
DCR_CREATED = "dcr_created"


def sqlite_widened(sql):
    """A CREATE TABLE text (or its body) with the LATE_WIDENED columns at DOT 3.4's length. SQLite does not
    enforce the length; the definition says what the custom model's 0001_initial says."""
    for column, length in sorted(LATE_WIDENED.items()):
        sql = re.sub(r'((?:"%s"|`%s`|\[%s\]|\b%s\b)\s+varchar\()\s*\d+\s*(\))' % ((re.escape(column),) * 4),
                     r"\g<1>%d\2" % length, sql, count=1, flags=re.I)
    return sql


STRATEGIES = ("rename", "copy")
PHASES = ("complete", "prepare")

_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*( [A-Za-z][A-Za-z0-9_]*)*(\(\s*\d+\s*(,\s*\d+\s*)?\))?"
                   r"( [A-Za-z][A-Za-z0-9_]*)*$")
_MIGRATION = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]*)[./])?([A-Za-z0-9_]+)$")

LOCKS = {
    "rename_table": {
        "postgresql": "ACCESS EXCLUSIVE on the table, instant (catalog only); foreign keys follow the table",
        "mysql": "exclusive metadata lock, instant; InnoDB re-points the foreign keys of other tables",
        "sqlite": "database write lock, instant; SQLite rewrites the REFERENCES of other tables"},
    "sequence_name": {"postgresql": "ACCESS EXCLUSIVE on the sequence, instant"},
    "widen": {"postgresql": "ACCESS EXCLUSIVE, instant (varchar widening: no rewrite, no index rebuild)",
              "mysql": "in-place varchar widening (LOCK=NONE), metadata lock only",
              "sqlite": "rebuild of the (small) application table under the database write lock"},
    "add_column": {
        "postgresql": "ACCESS EXCLUSIVE, instant (constant default, no rewrite)",
        "mysql": "metadata lock, instant ADD COLUMN", "sqlite": "database write lock, instant"},
    "drop_default": {
        "postgresql": "ACCESS EXCLUSIVE, instant", "mysql": "metadata lock, instant",
        "sqlite": "rebuild of the (small) application table under the database write lock"},
    "names": {
        "postgresql": "ACCESS EXCLUSIVE per renamed index/constraint, instant",
        "mysql": "in-place, metadata lock only (RENAME INDEX; foreign keys re-created without a table copy)",
        "sqlite": "index re-created under the database write lock (small table)"},
    "create_table": {"postgresql": "none on live tables (new table)", "mysql": "none on live tables (new table)",
                     "sqlite": "database write lock, instant"},
    "indexes": {"postgresql": "new, still unused table only", "mysql": "new table only",
                "sqlite": "database write lock, instant (empty or small table)"},
    "own_foreign_keys": {"postgresql": "SHARE ROW EXCLUSIVE on the new table and the user table, instant",
                         "mysql": "new table only", "sqlite": "part of CREATE TABLE"},
    "copy_rows": {"postgresql": "row locks of one batch at a time",
                  "mysql": "shared row locks on the old table's rows of one batch at a time",
                  "sqlite": "database write lock per batch"},
    "refresh_rows": {"postgresql": "row locks of the changed rows", "mysql": "row locks of the changed rows",
                     "sqlite": "database write lock, short"},
    "repoint": {
        "postgresql": "ADD ... NOT VALID (SHARE ROW EXCLUSIVE, instant), VALIDATE (SHARE UPDATE EXCLUSIVE: reads "
                      "and writes go on), DROP of the old constraint (ACCESS EXCLUSIVE, instant)",
        "mysql": "ALGORITHM=INPLACE, LOCK=NONE with foreign_key_checks=0 after the module checked every row: "
                 "no table copy, writes go on",
        "sqlite": "table rebuild under the database write lock (proportional to the table)"},
    "retire_old": {"postgresql": "ACCESS EXCLUSIVE on the old table, instant",
                   "mysql": "exclusive metadata lock, instant", "sqlite": "database write lock, instant"},
    "sequence": {"postgresql": "none (setval)", "mysql": "metadata lock, instant (AUTO_INCREMENT)",
                 "sqlite": "database write lock, instant (sqlite_sequence)"},
    "record_migration": {"postgresql": "row insert into django_migrations",
                         "mysql": "row insert into django_migrations", "sqlite": "row insert into django_migrations"},
}


def _lock(kind, engine):
    return LOCKS[kind].get(engine, "")


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------


class ExtraColumn(object):
    """A column the custom model adds to DOT's AbstractApplication."""

    def __init__(self, name, type_, default=None, null=False, has_default=False):
        self.name = name
        self.type = type_
        self.default = default
        self.null = null
        self.has_default = has_default


def parse_extra_columns(items, dialect):
    out = []
    seen = set()
    for index, item in enumerate(items or []):
        if not isinstance(item, dict):
            raise OAuthRepairError("extra_columns[%d] must be a dict with name, type, default, null" % index,
                                   obj="extra_columns", fix="give each column as {name: ..., type: ...}")
        name = item.get("name")
        dialect.validate_identifier(name, "extra column name")
        if name in seen:
            raise OAuthRepairError("extra column %s is given twice" % name, obj="extra_columns",
                                   fix="give each extra column once")
        seen.add(name)
        if name in DOT_APPLICATION_COLUMNS:
            raise OAuthRepairError(
                "extra column %s is a column of DOT's AbstractApplication, not one the custom model adds" % name,
                obj="extra_columns.%s" % name, fix="list only the fields your model adds to AbstractApplication")
        type_ = item.get("type")
        if not isinstance(type_, str) or not _TYPE.match(type_.strip()):
            raise OAuthRepairError(
                "extra column %s: type %r is not an SQL column type such as varchar(200), bigint, boolean, "
                "timestamp with time zone" % (name, type_), obj="extra_columns.%s.type" % name,
                fix="give the type as 'manage.py sqlmigrate <app> 0001_initial' prints it for this engine")
        null = bool(item.get("null"))
        has_default = "default" in item and item.get("default") is not None
        default = item.get("default") if has_default else None
        if has_default:
            _check_literal(default, name, dialect)
        if not null and not has_default:
            raise OAuthRepairError(
                "extra column %s is NOT NULL and has no default: existing applications need a value" % name,
                obj="extra_columns.%s" % name,
                fix="give the field's default as 'default' (Django's one-off default), or null: true")
        out.append(ExtraColumn(name, type_.strip(), default, null, has_default))
    return out


def model_columns(expected, table_name, source, overrides, dialect):
    """The columns the swapped model has beyond ``source`` (DOT's table as it is), read from the site's own
    Django (``expected``, a :class:`~.schema.model.Schema`): ExtraColumns with Django's column type and the value
    existing rows get (the field's effective default). Columns named in ``extra_columns`` (``overrides``) and DOT's
    later columns are left to those. A NOT NULL column whose default is not a constant is refused: its value for
    the existing applications must then be given in ``extra_columns``."""
    table = expected.tables.get(table_name)
    if table is None:
        raise OAuthRepairError(
            "the site's Django has no model with table %s (its DOT models: %s)" % (
                table_name, ", ".join(sorted(expected.details.get("models") or {})) or "none"),
            obj=table_name, fix="check model and table against OAUTH2_PROVIDER_APPLICATION_MODEL of the site")
    fields = expected.details.get("fields") or {}
    out = []
    for col in table.columns:
        if source.has_column(col.name) or col.name in overrides or col.name in LATE_COLUMNS:
            continue
        info = fields.get("%s.%s" % (table_name, col.name)) or {}
        type_ = col.raw_type or col.type
        if not _TYPE.match(type_):
            raise OAuthRepairError("column %s of %s: Django's type %r is not one this module writes" % (
                col.name, table_name, type_), obj="%s.%s" % (table_name, col.name),
                fix="give the column in extra_columns")
        has_default = bool(info.get("has_scalar_default"))
        default = info.get("scalar_default") if has_default else None
        if has_default:
            _check_literal(default, col.name, dialect)
        if not col.nullable and not has_default:
            raise OAuthRepairError(
                "column %s of the swapped model (%s.%s) is NOT NULL and its default is not a constant, so the "
                "value existing applications get is unknown" % (col.name, info.get("model") or table_name,
                                                                info.get("field") or col.name),
                obj="%s.%s" % (table_name, col.name),
                fix="give it in extra_columns with that value: {name: %s, type: '%s', default: ...}" % (col.name, type_))
        out.append(ExtraColumn(col.name, type_, default, col.nullable, has_default))
    return out


def _check_literal(value, name, dialect):
    if isinstance(value, bool) or isinstance(value, int):
        return
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise OAuthRepairError("extra column %s: default %r is not a finite number" % (name, value),
                                   obj="extra_columns.%s.default" % name, fix="give a finite number")
        return
    if isinstance(value, str):
        if "\x00" in value or (dialect.engine == "mysql" and "\\" in value):
            raise OAuthRepairError(
                "extra column %s: the default contains a NUL%s character" % (
                    name, " or backslash" if dialect.engine == "mysql" else ""),
                obj="extra_columns.%s.default" % name, fix="set such a default after the swap, in Python")
        return
    raise OAuthRepairError("extra column %s: default must be a string, number, boolean or null, got %s" % (
        name, type(value).__name__), obj="extra_columns.%s.default" % name, fix="give a scalar default")


def literal(dialect, value):
    """SQL literal of a validated scalar default (identifiers are quoted elsewhere; this is only for values)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        if dialect.engine == "postgresql":
            return "true" if value else "false"
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'%s'" % value.replace("'", "''")


def parse_initial_migration(value, app_label):
    value = (value or "0001_initial").strip()
    m = _MIGRATION.match(value)
    if not m:
        raise OAuthRepairError(
            "initial_migration must look like 'app_label.0001_initial' (or just '0001_initial'), got %r" % value,
            obj="initial_migration", fix="give the custom model's initial migration as showmigrations names it")
    app = m.group(1) or app_label
    history.check_value(app, "app")
    history.check_value(m.group(2), "name")
    return app, m.group(2)


class Spec(object):
    """The validated options of a swap."""

    def __init__(self, dialect, options):
        self.dialect = dialect
        self.model = options.get("model")
        self.app_label, self.model_name = parse_model_label(self.model, option="model")
        if self.app_label == DOT_APP:
            raise OAuthRepairError(
                "model %s is one of django-oauth-toolkit's own models, not a custom Application model" % self.model,
                obj="model", fix="give the custom model OAUTH2_PROVIDER_APPLICATION_MODEL is set to, "
                                 "e.g. myapp.MyApplication")
        self.old = OLD_TABLE
        self.new = dialect.validate_identifier(options.get("table") or default_table_name(self.model),
                                               "table of model %s" % self.model)
        if self.new == self.old:
            raise OAuthRepairError("table %s is DOT's own Application table" % self.new, obj="table",
                                   fix="give the custom model's db_table (default: app_label_modelname)")
        self.kept = dialect.validate_identifier(options.get("old_table_name") or DEFAULT_KEPT_TABLE,
                                                "old_table_name")
        if self.kept in (self.old, self.new):
            raise OAuthRepairError("old_table_name %s must differ from %s and %s" % (self.kept, self.old, self.new),
                                   obj="old_table_name", fix="choose another name for the kept table")
        self.strategy = options.get("strategy") or "rename"
        if self.strategy not in STRATEGIES:
            raise OAuthRepairError("strategy must be rename or copy, got %r" % self.strategy, obj="strategy",
                                   fix="choose rename or copy")
        self.phase = options.get("phase") or "complete"
        if self.phase not in PHASES:
            raise OAuthRepairError("phase must be complete or prepare", obj="phase", fix="choose one")
        if self.phase == "prepare" and self.strategy != "copy":
            raise OAuthRepairError(
                "phase=prepare applies to strategy=copy only (a rename has nothing to prepare)", obj="phase",
                fix="use phase=complete with strategy=rename, or strategy=copy")
        self.keep_old_table = options.get("keep_old_table", True) is not False
        self.record = options.get("record_migration", True) is not False
        self.migration_app, self.migration_name = parse_initial_migration(
            options.get("initial_migration"), self.app_label)
        self.extras = parse_extra_columns(options.get("extra_columns"), dialect)
        #: the site's own Django's picture (option django), or None: then extra_columns is all there is
        self.expected = options.get("expected")
        self.batch_size = max(1, int(options.get("batch_size") or 1000))


# ---------------------------------------------------------------------------
# Names Django gives
# ---------------------------------------------------------------------------


def pg_object_name(name1, name2, label, max_length=63):
    """PostgreSQL's makeObjectName(): the name it gives an inline UNIQUE (``_key``), a primary key
    (``_pkey``) or a serial/identity sequence (``_seq``), truncating the parts as the server does."""
    overhead = (len(label) + 1 if label else 0) + (1 if name2 else 0)
    n1, n2 = len(name1), len(name2 or "")
    avail = max_length - overhead
    while n1 + n2 > avail:
        if n1 > n2:
            n1 -= 1
        else:
            n2 -= 1
    name = name1[:n1]
    if name2:
        name += "_" + name2[:n2]
    if label:
        name += "_" + label
    return name


class Names(object):
    """Map the names Django (or PostgreSQL) gave objects of the old table to the ones it gives under the new."""

    SUFFIXES = ("", "_like", "_uniq", "_check")

    def __init__(self, dialect, old, new, own_fks):
        self.d = dialect
        self.old = old
        self.new = new
        #: outgoing foreign keys of the application table: [(columns, ref_table, ref_columns)]
        self.own_fks = own_fks

    def _candidates(self, table, columns):
        out = {}
        for suffix in self.SUFFIXES:
            out[("dj", suffix)] = self.d.django_index_name(table, list(columns), suffix)
        if self.d.engine == "postgresql":
            joined = "_".join(columns)
            out[("pg", "key")] = pg_object_name(table, joined, "key")
            out[("pg", "idx")] = pg_object_name(table, joined, "idx")
            out[("pg", "pkey")] = pg_object_name(table, None, "pkey")
        for cols, ref_table, ref_cols in self.own_fks:
            if list(cols) == list(columns) and len(cols) == 1:
                out[("fk", ref_table)] = self.d.django_fk_name(table, cols[0], ref_table, ref_cols[0])
        return out

    def index(self, name, columns):
        """New name of an index/constraint of the application table, or None if Django did not name it."""
        if not name:
            return None
        old = self._candidates(self.old, columns)
        for key, value in old.items():
            if value == name:
                return self._candidates(self.new, columns)[key]
        return None

    def own_fk(self, name, columns, ref_table, ref_columns):
        if not name or len(columns) != 1:
            return None
        if name == self.d.django_fk_name(self.old, columns[0], ref_table, ref_columns[0]):
            return self.d.django_fk_name(self.new, columns[0], ref_table, ref_columns[0])
        return None

    def referencing_fk(self, table, columns, ref_columns):
        """Django's name for ``table``'s foreign key to the new table."""
        return self.d.django_fk_name(table, columns[0], self.new, ref_columns[0])

    def old_referencing_fk(self, table, columns, ref_columns):
        return self.d.django_fk_name(table, columns[0], self.old, ref_columns[0])

    def sequence(self, table, column="id"):
        return pg_object_name(table, column, "seq")

    def copied(self, name):
        """A name for a copy of an index Django did not name (index names are per schema on PostgreSQL and
        SQLite)."""
        if name.startswith(self.old):
            candidate = self.new + name[len(self.old):]
        else:
            candidate = name + "_swap"
        return candidate[:self.d.max_name_length]


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------


def _fk_dict(fk):
    return dict(table=fk.table, columns=list(fk.columns), name=fk.name, ref_table=fk.ref_table,
                ref_columns=list(fk.ref_columns))


class Swap(object):
    """Builds the steps of one swap from the live catalog."""

    def __init__(self, conn, spec):
        self.conn = conn
        self.d = conn.dialect
        self.engine = conn.engine
        self.spec = spec
        self.q = self.d.quote
        self.old, self.new, self.kept = spec.old, spec.new, spec.kept

    # -- catalog -------------------------------------------------------------
    def table(self, name):
        return self.d.load_tables(self.conn, [name]).get(name)

    def references(self, name):
        return [fk for fk in self.d.referencing_foreign_keys(self.conn, name) if fk.table != name]

    def count(self, name):
        return int(self.conn.scalar("SELECT COUNT(*) FROM %s" % self.q(name)))

    # -- validation: everything is checked before anything changes -----------
    def validate(self):
        history.require_table(self.conn)
        tables = set(self.d.list_tables(self.conn))
        self.old_exists = self.old in tables
        self.new_exists = self.new in tables
        kept_exists = self.kept in tables
        if not self.old_exists and not self.new_exists:
            raise OAuthRepairError(
                "neither %s nor %s exists in database %r: there is no application table to swap" % (
                    self.old, self.new, self.conn.database), obj=self.old,
                fix="point db at the site's database; check model/table")
        source_name = self.old if self.old_exists else self.new
        self.source = self.table(source_name)
        if self.source.has_column(DCR_CREATED):
            raise OAuthRepairError(
                "%s has column %s (DOT 0017-0018): DOT's 0019 turns it into registration_source, which it skips "
                "for a swapped model, so the swap would lose which applications came from dynamic registration" % (
                    source_name, DCR_CREATED), obj="%s.%s" % (source_name, DCR_CREATED),
                fix="migrate oauth2_provider to 0019_application_registration_source or later with the default "
                    "model first, then swap")
        self.late = [ExtraColumn(name, types[self.engine], default, null, default is not None)
                     for name, (_migration, types, default, null) in sorted(LATE_COLUMNS.items())
                     if self.engine in types and not self.source.has_column(name)]
        self.model_extras = []
        if self.spec.expected is not None:
            self.model_extras = model_columns(self.spec.expected, self.new, self.source,
                                              set(e.name for e in self.spec.extras), self.d)
        self.extras = list(self.spec.extras) + self.model_extras + self.late
        missing = [c for c in DOT_APPLICATION_COLUMNS if not self.source.has_column(c) and c not in LATE_COLUMNS]
        if missing:
            raise OAuthRepairError(
                "%s has no column %s that DOT 3.4's Application has: the custom model's 0001_initial would "
                "create %s, so recording it would be untrue" % (
                    source_name, ", ".join(missing), "it" if len(missing) == 1 else "them"),
                obj="%s.%s" % (source_name, missing[0]),
                fix="migrate oauth2_provider to 0011 or later with the default model first "
                    "(or repair it with oauth_repair), then swap")
        if self.old_exists:
            for extra in self.spec.extras:
                if self.source.has_column(extra.name):
                    raise OAuthRepairError(
                        "extra column %s already exists in %s: it is carried over, not added" % (extra.name, self.old),
                        obj="%s.%s" % (self.old, extra.name), fix="remove %s from extra_columns" % extra.name)
        if self.old_exists and self.new_exists:
            new = self.table(self.new)
            if self.spec.strategy == "rename":
                raise OAuthRepairError(
                    "%s already exists (%d rows) next to %s: the rename strategy needs it absent" % (
                        self.new, self.count(self.new), self.old), obj=self.new,
                    fix="use strategy=copy (its rows must be copies of %s's), or drop %s if it is an empty "
                        "leftover" % (self.old, self.new))
            self._check_target(new)
        if self.old_exists and kept_exists:
            raise OAuthRepairError(
                "%s already exists: the old table cannot be kept under that name" % self.kept, obj=self.kept,
                fix="drop or rename %s after checking what it holds, or set old_table_name" % self.kept)
        if not self.old_exists:
            extra_missing = [e.name for e in self.spec.extras if not self.source.has_column(e.name)]
            if extra_missing and self.spec.strategy == "copy":
                # a copy is finished once the old table is gone: nothing is added any more
                raise OAuthRepairError(
                    "%s has no column %s and %s is gone: the copy was finished without it" % (
                        self.new, ", ".join(extra_missing), self.old), obj="%s.%s" % (self.new, extra_missing[0]),
                    fix="add the column with a migration of your app")
        own = self.source.foreign_keys
        self.names = Names(self.d, self.old, self.new,
                           [(fk.columns, fk.ref_table, fk.ref_columns) for fk in own])
        self.references_before = self.references(self.old) + self.references(self.new) \
            if self.old_exists else self.references(self.new)

    def _check_target(self, new):
        """The target table exists next to the old one (copy strategy): it must hold copies of the old rows only."""
        missing = [c.name for c in self.source.columns if not new.has_column(c.name)]
        if missing:
            raise OAuthRepairError(
                "%s has no column %s that %s has: the copy would lose it" % (self.new, ", ".join(missing), self.old),
                obj="%s.%s" % (self.new, missing[0]),
                fix="add the column to the custom model (it must extend AbstractApplication), or give the right table")
        extras = set(e.name for e in self.extras)
        unknown = [c.name for c in new.columns if not self.source.has_column(c.name) and c.name not in extras
                   and not c.nullable and c.default is None]
        if unknown:
            raise OAuthRepairError(
                "%s has NOT NULL column %s that is neither in %s nor in extra_columns" % (
                    self.new, ", ".join(unknown), self.old), obj="%s.%s" % (self.new, unknown[0]),
                fix="declare it in extra_columns with its default")
        bad = self.foreign_rows()
        if bad:
            raise OAuthRepairError(
                "%s already holds rows that are not copies of %s's (ids %s): a different table, or rows written "
                "by the new code" % (self.new, self.old, ", ".join(str(i) for i in bad[:10])), obj=self.new,
                fix="give an unused table, or empty %s after checking what it holds" % self.new)

    def foreign_rows(self):
        """Ids of rows of the new table whose id is not in the old one or whose client_id differs."""
        q = self.q
        return [r[0] for r in self.conn.query(
            "SELECT n.%s FROM %s n LEFT JOIN %s o ON o.%s = n.%s WHERE o.%s IS NULL OR o.%s <> n.%s ORDER BY n.%s %s"
            % (q("id"), q(self.new), q(self.old), q("id"), q("id"), q("id"), q("client_id"), q("client_id"),
               q("id"), self.d.limit(20)))]

    # -- steps -----------------------------------------------------------------
    #: the finding each kind of step repairs (docs/findings.md)
    FINDINGS = {"repoint": "swapped_model_stale_fk", "retire_old": "swapped_model_stale_fk",
                "record_migration": "swapped_model_inconsistent_history"}

    def _step(self, kind, description, table, key=None, **kw):
        lock = _lock(kw.pop("lock_kind", kind), self.engine)
        finding = self.FINDINGS.get(kind, "swapped_model_table_missing")
        if kind == "names" and table != self.new:
            finding = "swapped_model_stale_fk"
        return Step("swap:%s:%s" % (kind, key or table), finding, description, table, lock, **kw)

    def steps(self):
        if self.spec.strategy == "rename":
            out = [self.rename_table()]
            if self.engine == "postgresql":
                out.append(self.sequence_name())
            out.extend(self.add_columns())
            out.extend(self.widen_columns())
            out.append(self.rename_names(self.new))
            out.extend(self.rename_referencing_names())
        else:
            out = [self.create_table()]
            if self.engine == "mysql" or self.new_exists:
                out.extend(self.add_columns())
            out.extend(self.widen_columns())
            if self.engine == "mysql":
                out.append(self.rename_names(self.new))
            else:
                out.append(self.create_indexes())
            if self.engine != "sqlite":  # SQLite's are part of CREATE TABLE
                out.append(self.own_foreign_keys())
            out.append(self.copy_rows())
            out.append(self.refresh_rows())
            if self.spec.phase == "complete":
                out.extend(self.repoint_all())
                out.append(self.retire_old())
                out.append(self.sequence())
        if self.spec.phase == "complete" and self.spec.record:
            out.append(self.record_migration())
        return out

    # -- rename: table -----------------------------------------------------------
    def _rename_sql(self, a, b):
        if self.engine == "mysql":
            return "RENAME TABLE %s TO %s" % (self.q(a), self.q(b))
        return "ALTER TABLE %s RENAME TO %s" % (self.q(a), self.q(b))

    def _rename(self, ctx, a, b):
        if self.engine == "sqlite":
            # the default since SQLite 3.26; said explicitly so that REFERENCES in other tables follow
            self.conn.execute("PRAGMA legacy_alter_table = OFF", record=False)
        ctx.ddl(self._rename_sql(a, b), table=a)

    def rename_table(self):
        sql = self._rename_sql(self.old, self.new)

        def done(live):
            return live.table(self.new) is not None and live.table(self.old) is None

        def run(ctx):
            self._rename(ctx, self.old, self.new)

        return self._step("rename_table", "rename %s to %s; the foreign keys of every other table follow it" % (
            self.old, self.new), self.old, sql=[sql], done=done, run=run)

    # -- PostgreSQL sequence name --------------------------------------------------
    def _pg_sequence_of(self, table, column="id"):
        return self.conn.scalar(
            "SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass "
            "JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
            "WHERE s.relkind = 'S' AND d.deptype IN ('a', 'i') AND n.nspname = current_schema() "
            "AND t.relname = %s AND a.attname = %s", [table, column])

    def sequence_name(self):
        wanted = self.names.sequence(self.new)

        def current():
            return self._pg_sequence_of(self.new) or self._pg_sequence_of(self.old)

        def sql_for(seq):
            if not seq or seq == wanted:
                return []
            return ["ALTER SEQUENCE %s RENAME TO %s" % (self.q(seq), self.q(wanted))]

        def done(live):
            if live.table(self.new) is None:
                return False
            seq = self._pg_sequence_of(self.new)
            return seq is None or seq == wanted

        def run(ctx):
            for statement in sql_for(current()):
                ctx.ddl(statement, table=self.new)

        return self._step("sequence_name", "rename the id sequence to %s, the name PostgreSQL gives it under %s" % (
            wanted, self.new), self.new, sql=sql_for(current()), done=done, run=run)

    # -- extra columns -------------------------------------------------------------
    def _add_column_sql(self, extra):
        parts = ["ALTER TABLE %s ADD COLUMN %s %s" % (self.q(self.new), self.q(extra.name), extra.type)]
        if extra.has_default:
            lit = literal(self.d, extra.default)
            if self.engine == "mysql" and self.d.vendor == "mysql" and re.match(
                    r"^(tiny|medium|long)?(text|blob)|json", extra.type, re.I):
                lit = "(%s)" % lit  # MySQL 8: TEXT/BLOB/JSON defaults are expressions
            parts.append("DEFAULT %s" % lit)
        parts.append("NULL" if extra.null else "NOT NULL")
        return " ".join(parts)

    def add_columns(self):
        out = []
        for extra in self.extras:
            out.append(self._add_column(extra))
            if extra.has_default:
                out.append(self._drop_default(extra))
        return out

    def _add_column(self, extra):
        sql = self._add_column_sql(extra)

        def done(live):
            t = live.table(self.new)
            return t is not None and t.has_column(extra.name)

        return self._step("add_column", "add the custom model's column %s (%s%s)" % (
            extra.name, extra.type, ", default %s" % literal(self.d, extra.default) if extra.has_default else ""),
            self.new, key="%s.%s" % (self.new, extra.name), sql=[sql], done=done)

    def _drop_default(self, extra):
        q = self.q
        if self.engine == "sqlite":
            definition = "%s %s" % (extra.type, "NULL" if extra.null else "NOT NULL")
            sql = ["-- table rebuild of %s without the column default: CREATE TABLE new__%s (... %s %s ...); "
                   "INSERT ... SELECT; DROP; RENAME; indexes" % (self.new, self.new, q(extra.name), definition)]
        else:
            sql = ["ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT" % (q(self.new), q(extra.name))]

        def done(live):
            t = live.table(self.new)
            col = t.column(extra.name) if t is not None else None
            return col is not None and col.default is None

        def run(ctx):
            if self.engine != "sqlite":
                ctx.ddl(sql[0], table=self.new)
                return
            ran = sqlite_rebuild.rebuild(ctx, self.new, {extra.name: definition})
            ctx.report.setdefault("sqlite_rebuilds", {})[self.new] = len(ran)

        return self._step("drop_default", "drop the database default of %s, as Django leaves none" % extra.name,
                          self.new, key="%s.%s" % (self.new, extra.name), sql=sql, done=done, run=run)

    # -- DOT's later widenings (skipped by Django for a swapped model) ------------------------
    @staticmethod
    def _widen_targets(table):
        """[(column, length)] of varchar columns of ``table`` shorter than DOT 3.4 has them."""
        out = []
        for name, length in sorted(LATE_WIDENED.items()):
            col = table.column(name)
            m = re.match(r"^varchar\((\d+)\)$", col.type) if col is not None else None
            if m and int(m.group(1)) < length:
                out.append((name, length))
        return out

    def widen_columns(self):
        """ALTER the new table's columns DOT widened after 0011: on the still empty new table with the copy
        strategy, a catalog-only varchar widening with the rename strategy (SQLite: a rebuild of the small
        application table; the copy's CREATE TABLE already has the new lengths)."""
        targets = self._widen_targets(self.source)
        if not targets:
            return []
        q = self.q
        run = None
        if self.engine == "sqlite":
            sql = ["-- table rebuild of %s with %s: CREATE TABLE new__%s (...); INSERT ... SELECT; DROP; RENAME; "
                   "indexes" % (self.new, ", ".join("%s varchar(%d)" % (q(c), n) for c, n in targets), self.new)]

            def run(ctx):
                ran = sqlite_rebuild.rebuild(ctx, self.new, {}, transform=sqlite_widened)
                ctx.report.setdefault("sqlite_rebuilds", {})[self.new] = len(ran)
        elif self.engine == "postgresql":
            sql = ["ALTER TABLE %s %s" % (q(self.new), ", ".join(
                "ALTER COLUMN %s TYPE varchar(%d)" % (q(c), n) for c, n in targets))]
        else:
            sql = ["ALTER TABLE %s %s, ALGORITHM=INPLACE, LOCK=NONE" % (q(self.new), ", ".join(
                "MODIFY %s varchar(%d) %s" % (q(c), n, "NULL" if self.source.column(c).nullable else "NOT NULL")
                for c, n in targets))]

        def done(live):
            t = live.table(self.new)
            return t is not None and not self._widen_targets(t)

        return [self._step("widen", "widen %s as DOT's 0013/0020 do (Django skips them for a swapped model)" % (
            ", ".join("%s to varchar(%d)" % (c, n) for c, n in targets)), self.new, sql=sql, done=done, run=run,
            changes_type=self.spec.strategy == "rename")]  # the live table's column types (cached plans)

    # -- names of the application table ------------------------------------------
    def _sqlite_index_sql(self, name):
        return self.conn.scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = %s", [name])

    def _retarget_index_sql(self, sql, new_name, table):
        """CREATE INDEX text of one index, for ``table`` and under ``new_name``."""
        m = re.match(r"^(CREATE\s+(?:UNIQUE\s+)?INDEX\s+)(?:IF\s+NOT\s+EXISTS\s+)?(\S+)(\s+ON\s+(?:ONLY\s+)?)(\S+)"
                     r"(\s*(?:USING\s.*|\(.*))$", sql.strip(), re.I | re.S)
        if not m:
            raise OAuthRepairError("cannot read the definition of index: %s" % sql[:200], obj=table,
                                   fix="re-create the index by hand after the swap")
        return "%s%s%s%s%s" % (m.group(1), self.q(new_name), m.group(3), self.q(table), m.group(5))

    def name_actions(self, t, table_name):
        """[(description, [statements])] that give the objects of ``t`` (the application table, old or new) the
        names Django gives them under the new table."""
        q, actions = self.q, []
        if t is None:
            return actions
        tn = q(table_name)
        if self.engine == "postgresql":
            for fk in t.foreign_keys:
                new = self.names.own_fk(fk.name, fk.columns, fk.ref_table, fk.ref_columns)
                if new and new != fk.name:
                    actions.append(("%s -> %s" % (fk.name, new), [
                        "ALTER TABLE %s RENAME CONSTRAINT %s TO %s" % (tn, q(fk.name), q(new))]))
            for idx in t.indexes:
                new = self.names.index(idx.name, idx.columns)
                if not new or new == idx.name:
                    continue
                if idx.constraint:
                    stmt = "ALTER TABLE %s RENAME CONSTRAINT %s TO %s" % (tn, q(idx.name), q(new))
                else:
                    stmt = "ALTER INDEX %s RENAME TO %s" % (q(idx.name), q(new))
                actions.append(("%s -> %s" % (idx.name, new), [stmt]))
        elif self.engine == "mysql":
            fk_renamed = set()
            for fk in t.foreign_keys:
                new = self.names.own_fk(fk.name, fk.columns, fk.ref_table, fk.ref_columns)
                if not new or new == fk.name:
                    continue
                clauses = ["DROP FOREIGN KEY %s" % q(fk.name)]
                if any(i.name == fk.name for i in t.indexes):
                    clauses.append("RENAME INDEX %s TO %s" % (q(fk.name), q(new)))
                    fk_renamed.add(fk.name)
                clauses.append("ADD CONSTRAINT %s %s" % (q(new), self._mysql_fk_clause(fk, fk.ref_table)))
                actions.append(("%s -> %s" % (fk.name, new), self._mysql_unchecked(
                    "ALTER TABLE %s %s, ALGORITHM=INPLACE, LOCK=NONE" % (tn, ", ".join(clauses)))))
            renames = []
            for idx in t.indexes:
                if idx.primary or idx.name in fk_renamed:
                    continue
                new = self.names.index(idx.name, idx.columns)
                if new and new != idx.name:
                    renames.append("RENAME INDEX %s TO %s" % (q(idx.name), q(new)))
                    actions.append(("%s -> %s" % (idx.name, new), []))
            if renames:
                actions.append(("indexes", ["ALTER TABLE %s %s, ALGORITHM=INPLACE, LOCK=NONE" % (
                    tn, ", ".join(renames))]))
        else:
            for idx in t.indexes:
                if idx.primary or idx.name.startswith("sqlite_autoindex_"):
                    continue
                new = self.names.index(idx.name, idx.columns)
                if not new or new == idx.name:
                    continue
                sql = self._sqlite_index_sql(idx.name)
                if not sql:
                    continue
                actions.append(("%s -> %s" % (idx.name, new), [
                    self._retarget_index_sql(sql, new, table_name), "DROP INDEX %s" % q(idx.name)]))
        return actions

    def _mysql_unchecked(self, statement):
        return ["SET SESSION foreign_key_checks = 0", statement, "SET SESSION foreign_key_checks = 1"]

    def _mysql_fk_clause(self, fk, ref_table):
        clause = "FOREIGN KEY (%s) REFERENCES %s (%s)" % (
            self.d.quote_list(fk.columns), self.q(ref_table), self.d.quote_list(fk.ref_columns))
        for what, rule in (("DELETE", fk.on_delete), ("UPDATE", fk.on_update)):
            if rule and rule.upper() not in ("RESTRICT", "NO ACTION"):
                if rule.upper() not in ("CASCADE", "SET NULL", "SET DEFAULT"):
                    raise OAuthRepairError("unknown ON %s rule %r of %s" % (what, rule, fk.name), obj=fk.table)
                clause += " ON %s %s" % (what, rule.upper())
        return clause

    def _statements(self, actions):
        return [s for _desc, stmts in actions for s in stmts]

    def _run_statements(self, ctx, statements, table):
        try:
            for statement in statements:
                ctx.ddl(statement, table=table)
        finally:
            if self.engine == "mysql" and "SET SESSION foreign_key_checks = 0" in statements:
                self.conn.execute("SET SESSION foreign_key_checks = 1", record=False)

    def rename_names(self, table_name):
        current = self.table(self.new)
        if current is None and self.spec.strategy == "copy":
            # CREATE TABLE ... LIKE copies the indexes (with their names), not the foreign keys
            current = dataclasses.replace(self.source, foreign_keys=[])
        planned = self.name_actions(current or self.source, self.new)

        def done(live):
            t = live.table(self.new)
            return t is not None and not self.name_actions(t, self.new)

        def run(ctx):
            self._run_statements(ctx, self._statements(self.name_actions(ctx.live.table(self.new), self.new)),
                                 self.new)

        return self._step("names", "give %s's indexes, constraints and foreign keys the names Django gives them "
                          "under %s%s" % (table_name, self.new, " (%s)" % "; ".join(
                              d for d, _s in planned) if planned else ""),
                          table_name, sql=self._statements(planned), done=done, run=run)

    def referencing_name_actions(self, t):
        """Renames of ``t``'s foreign keys to the application table (rename strategy)."""
        q, actions = self.q, []
        for fk in t.foreign_keys:
            if fk.ref_table not in (self.old, self.new) or len(fk.columns) != 1 or not fk.name:
                continue
            if fk.name != self.names.old_referencing_fk(t.name, fk.columns, fk.ref_columns):
                continue  # not a name Django gave: left alone
            new = self.names.referencing_fk(t.name, fk.columns, fk.ref_columns)
            if new == fk.name:
                continue
            if self.engine == "postgresql":
                actions.append(("%s.%s -> %s" % (t.name, fk.name, new), [
                    "ALTER TABLE %s RENAME CONSTRAINT %s TO %s" % (q(t.name), q(fk.name), q(new))]))
            elif self.engine == "mysql":
                clauses = ["DROP FOREIGN KEY %s" % q(fk.name)]
                if any(i.name == fk.name for i in t.indexes):
                    clauses.append("RENAME INDEX %s TO %s" % (q(fk.name), q(new)))
                clauses.append("ADD CONSTRAINT %s %s" % (q(new), self._mysql_fk_clause(fk, self.new)))
                actions.append(("%s.%s -> %s" % (t.name, fk.name, new), self._mysql_unchecked(
                    "ALTER TABLE %s %s, ALGORITHM=INPLACE, LOCK=NONE" % (q(t.name), ", ".join(clauses)))))
        return actions

    def rename_referencing_names(self):
        if self.engine == "sqlite":
            return []  # SQLite's foreign keys have no names
        out = []
        for name in sorted(set(fk.table for fk in self.references_before)):
            if self.referencing_name_actions(self.table(name)):
                out.append(self._referencing_names_step(name))
        return out

    def _referencing_names_step(self, name):
        planned = self.referencing_name_actions(self.table(name))

        def done(live):
            t = live.table(name)
            return t is None or not self.referencing_name_actions(t)

        def run(ctx):
            self._run_statements(ctx, self._statements(self.referencing_name_actions(ctx.live.table(name))), name)

        return self._step("names", "rename %s's foreign keys to the application table as Django names them for "
                          "%s" % (name, self.new), name, sql=self._statements(planned), done=done, run=run)

    # -- copy: the new table -----------------------------------------------------
    def _pg_create_sql(self):
        q = self.q
        cols = []
        for (name, ftype, notnull, default, identity, collation) in self.conn.query(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                "pg_get_expr(d.adbin, d.adrelid), a.attidentity, "
                "CASE WHEN a.attcollation <> ty.typcollation THEN co.collname END "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type ty ON ty.oid = a.atttypid "
                "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
                "WHERE c.relname = %s AND n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum", [self.old]):
            parts = [q(name), ftype]
            if collation:
                parts.append("COLLATE %s" % q(collation))
            if identity or (default or "").startswith("nextval("):
                parts.append("NOT NULL GENERATED BY DEFAULT AS IDENTITY")
            else:
                if default is not None:
                    parts.append("DEFAULT %s" % default)
                parts.append("NOT NULL" if notnull else "NULL")
            cols.append(" ".join(parts))
        for extra in self.extras:
            cols.append("%s %s %s" % (q(extra.name), extra.type, "NULL" if extra.null else "NOT NULL"))
        for name, contype, definition in self.conn.query(
                "SELECT con.conname, con.contype, pg_get_constraintdef(con.oid) FROM pg_constraint con "
                "JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = %s AND n.nspname = current_schema() AND con.contype IN ('p', 'u', 'c') "
                "ORDER BY con.contype, con.conname", [self.old]):
            columns = self._pg_constraint_columns(name)
            new = self.names.index(name, columns) or self.names.copied(name)
            cols.append("CONSTRAINT %s %s" % (q(new), definition))
        return "CREATE TABLE %s (%s)" % (q(self.new), ", ".join(cols))

    def _pg_constraint_columns(self, name):
        row = self.conn.query_one(
            "SELECT ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord) "
            "FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND n.nspname = current_schema() AND con.conname = %s", [self.old, name])
        return list(row[0]) if row else []

    def _sqlite_create_sql(self):
        sql = self.conn.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [self.old])
        m = re.match(r'^\s*CREATE\s+TABLE\s+(?:"%s"|`%s`|\[%s\]|%s)\s*\(' % ((re.escape(self.old),) * 4), sql, re.I)
        if not m:
            raise OAuthRepairError("cannot read the definition of %s" % self.old, obj=self.old,
                                   fix="create %s by hand from 'manage.py sqlmigrate', then re-run" % self.new)
        body = sql[m.end():sql.rindex(")")]
        body = sqlite_widened(body)
        for extra in self.extras:
            body += ", %s %s %s" % (self.q(extra.name), extra.type, "NULL" if extra.null else "NOT NULL")
        return "CREATE TABLE %s (%s)" % (self.q(self.new), body)

    def _create_sql(self):
        if not self.old_exists:
            return []
        if self.engine == "postgresql":
            return [self._pg_create_sql()]
        if self.engine == "mysql":
            return ["CREATE TABLE %s LIKE %s" % (self.q(self.new), self.q(self.old))]
        return [self._sqlite_create_sql()]

    def create_table(self):
        sql = self._create_sql()

        def done(live):
            return live.table(self.new) is not None

        what = {"postgresql": "its columns, primary key and unique constraints",
                "mysql": "CREATE TABLE ... LIKE: columns, indexes and checks",
                "sqlite": "its CREATE TABLE"}[self.engine]
        return self._step("create_table", "create %s from %s's catalog (%s) with the custom model's columns" % (
            self.new, self.old, what), self.new, sql=sql, done=done)

    def _index_copies(self, new_table):
        """[(new name, CREATE INDEX statement)] of the old table's plain (non-constraint) indexes."""
        out = []
        if not self.old_exists:
            return out
        if self.engine == "postgresql":
            rows = self.conn.query(
                "SELECT ic.relname, pg_get_indexdef(i.indexrelid), "
                "ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
                "      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) "
                "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE t.relname = %s "
                "AND n.nspname = current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint con "
                "WHERE con.conindid = i.indexrelid) ORDER BY ic.relname", [self.old])
            for name, definition, columns in rows:
                new = self.names.index(name, list(columns)) or self.names.copied(name)
                out.append((new, self._retarget_index_sql(definition, new, new_table)))
        else:
            for name, sql in self.conn.query(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL "
                    "ORDER BY name", [self.old]):
                cols = [r[0] for r in self.conn.query("SELECT name FROM pragma_index_info(%s) ORDER BY seqno", [name])]
                new = self.names.index(name, cols) or self.names.copied(name)
                out.append((new, self._retarget_index_sql(sql, new, new_table)))
        return out

    def create_indexes(self):
        copies = self._index_copies(self.new)

        def done(live):
            t = live.table(self.new)
            return t is not None and all(any(i.name == n for i in t.indexes) for n, _s in copies)

        def run(ctx):
            have = set(i.name for i in ctx.live.table(self.new).indexes)
            for name, statement in copies:
                if name not in have:
                    ctx.ddl(statement, table=self.new)

        return self._step("indexes", "create %s's indexes on %s under Django's names (%s)" % (
            self.old, self.new, ", ".join(n for n, _s in copies) or "none"), self.new,
            sql=[s for _n, s in copies], done=done, run=run)

    def _own_fk_sql(self):
        """[(columns, ref_table, statement)] adding the old table's own foreign keys (user_id) to the new table."""
        out = []
        if not self.old_exists or self.engine == "sqlite":
            return out
        defs = {}
        if self.engine == "postgresql":
            defs = dict(self.conn.query(
                "SELECT con.conname, pg_get_constraintdef(con.oid) FROM pg_constraint con "
                "JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = %s AND n.nspname = current_schema() AND con.contype = 'f'", [self.old]))
        for fk in self.source.foreign_keys:
            new = self.names.own_fk(fk.name, fk.columns, fk.ref_table, fk.ref_columns) or self.names.copied(fk.name)
            if self.engine == "postgresql":
                clause = defs[fk.name]
            else:
                clause = self._mysql_fk_clause(fk, fk.ref_table)
            out.append((fk.columns, fk.ref_table, "ALTER TABLE %s ADD CONSTRAINT %s %s" % (
                self.q(self.new), self.q(new), clause)))
        return out

    def own_foreign_keys(self):
        adds = self._own_fk_sql()

        def missing(t):
            return [(cols, ref, s) for cols, ref, s in adds
                    if not any(fk.columns == list(cols) and fk.ref_table == ref for fk in t.foreign_keys)]

        def done(live):
            t = live.table(self.new)
            return t is not None and not missing(t)

        def run(ctx):
            for _cols, _ref, statement in missing(ctx.live.table(self.new)):
                ctx.ddl(statement, table=self.new)

        return self._step("own_foreign_keys", "add %s's own foreign keys (%s) to %s under Django's names" % (
            self.old, ", ".join("%s -> %s" % (",".join(c), r) for c, r, _s in adds) or "none", self.new),
            self.new, sql=[s for _c, _r, s in adds], done=done, run=run)

    # -- copy: rows ------------------------------------------------------------------
    def _columns(self):
        return [c.name for c in self.source.columns]

    def _copy_sql(self):
        q = self.q
        cols = self._columns()
        target = [q(c) for c in cols] + [q(e.name) for e in self.extras]
        values = ["o.%s" % q(c) for c in cols] + [literal(self.d, e.default) for e in self.extras]
        return ("INSERT INTO %s (%s) SELECT %s FROM %s o WHERE o.%s >= %%s AND o.%s < %%s AND NOT EXISTS "
                "(SELECT 1 FROM %s n WHERE n.%s = o.%s)" % (
                    q(self.new), ", ".join(target), ", ".join(values), q(self.old), q("id"), q("id"),
                    q(self.new), q("id"), q("id")))

    def _missing_count(self):
        q = self.q
        return int(self.conn.scalar("SELECT COUNT(*) FROM %s o WHERE NOT EXISTS (SELECT 1 FROM %s n WHERE n.%s = o.%s)"
                                    % (q(self.old), q(self.new), q("id"), q("id"))))

    def _same(self, column):
        a, b = "o.%s" % self.q(column), "n.%s" % self.q(column)
        if self.engine == "postgresql":
            col = self.source.column(column)
            if col is not None and col.raw_type in ("json", "xml", "point"):
                a, b = "%s::text" % a, "%s::text" % b
            return "%s IS NOT DISTINCT FROM %s" % (a, b)
        if self.engine == "mysql":
            return "BINARY %s <=> BINARY %s" % (a, b)
        return "%s IS %s" % (a, b)

    def _changed_ids(self, limit=1000):
        q = self.q
        cond = " AND ".join(self._same(c) for c in self._columns())
        return [r[0] for r in self.conn.query(
            "SELECT o.%s FROM %s o JOIN %s n ON n.%s = o.%s WHERE NOT (%s) ORDER BY o.%s %s" % (
                q("id"), q(self.old), q(self.new), q("id"), q("id"), cond, q("id"), self.d.limit(limit)))]

    def _refresh_sql(self):
        q = self.q
        sets = ", ".join("%s = (SELECT o.%s FROM %s o WHERE o.%s = %s.%s)" % (
            q(c), q(c), q(self.old), q("id"), q(self.new), q("id")) for c in self._columns() if c != "id")
        return "UPDATE %s SET %s WHERE %s = %%s" % (q(self.new), sets, q("id"))

    def catch_up(self, ctx, progress_key=None):
        """Copy the old table's rows missing from the new one, then refresh the rows changed since (by id).
        Safe to repeat; refuses to go on if the new table holds rows that are not copies."""
        if ctx.live.table(self.old) is None or ctx.live.table(self.new) is None:
            return 0, 0
        bad = self.foreign_rows()
        if bad:
            raise OAuthRepairError(
                "%s holds rows that are not copies of %s's (ids %s): something wrote to it during the swap" % (
                    self.new, self.old, ", ".join(str(i) for i in bad[:10])), obj=self.new,
                fix="stop the new code until the swap is complete; remove those rows after checking them")
        copied = self._copy_missing(ctx, progress_key) if progress_key or self._missing_count() else 0
        refreshed = self._refresh(ctx)
        return copied, refreshed

    def _copy_missing(self, ctx, progress_key=None):
        q = self.q
        sql = self._copy_sql()
        lo, hi = self.conn.query_one("SELECT MIN(%s), MAX(%s) FROM %s" % (q("id"), q("id"), q(self.old)))
        if lo is None:
            return 0
        lo, hi = int(lo), int(hi)
        batch = self.spec.batch_size
        total = hi - lo + 1
        started = time.monotonic()
        copied = 0
        start = lo
        next_sql = "SELECT MIN(%s) FROM %s WHERE %s >= %%s" % (q("id"), q(self.old), q("id"))
        while start is not None and start <= hi:
            end = start + batch
            copied += max(0, ctx.ddl(sql, (start, end), table=self.new))
            if progress_key:
                ctx.progress.update(progress_key, min(end, hi + 1) - lo, total, started, copied)
            ctx.throttle()
            start = self.conn.scalar(next_sql, [end])  # skip gaps in the ids
            start = int(start) if start is not None else None
        queries = ctx.conn.executed_queries
        while len(queries) > 1 and queries[-1] == sql and queries[-2] == sql:
            queries.pop()
        ctx.report["rows_copied"] = ctx.report.get("rows_copied", 0) + copied
        return copied

    def _refresh(self, ctx):
        sql = self._refresh_sql()
        refreshed = 0
        for _round in range(1000):
            ids = self._changed_ids()
            if not ids:
                break
            for row_id in ids:
                refreshed += max(0, ctx.ddl(sql, (row_id,), table=self.new))
            ctx.throttle()
        queries = ctx.conn.executed_queries
        while len(queries) > 1 and queries[-1] == sql and queries[-2] == sql:
            queries.pop()
        ctx.report["rows_refreshed"] = ctx.report.get("rows_refreshed", 0) + refreshed
        return refreshed

    def copy_rows(self):
        key = "swap:copy_rows:%s" % self.new

        def done(live):
            if live.table(self.new) is None:
                return False
            if live.table(self.old) is None:
                return True  # the old table is retired: the new one is the truth
            return self._missing_count() == 0

        def run(ctx):
            self.catch_up(ctx, progress_key=key)

        return self._step("copy_rows", "copy every row of %s into %s with the same id (client ids, hashed secrets "
                          "and all), in batches of %d ids, each its own short transaction; rows already copied "
                          "are skipped" % (self.old, self.new, self.spec.batch_size), self.new,
                          duration="batched", sql=[self._copy_sql()] if self.old_exists else [], done=done, run=run)

    def refresh_rows(self):
        def done(live):
            if live.table(self.new) is None:
                return False
            if live.table(self.old) is None:
                return True
            return not self._changed_ids(limit=1)

        def run(ctx):
            self.catch_up(ctx)

        return self._step("refresh_rows", "update the copies of rows of %s changed since they were copied" % self.old,
                          self.new, duration="proportional", sql=[self._refresh_sql()] if self.old_exists else [],
                          done=done, run=run)

    # -- copy: foreign keys ----------------------------------------------------------
    def repoint_all(self):
        if not self.old_exists:
            return []
        out = []
        for fk in self.references(self.old):
            if fk.table in (self.new, self.kept):
                continue
            out.append(self._repoint(fk))
        return out

    def _pg_fk_definition(self, table, name):
        return self.conn.query_one(
            "SELECT pg_get_constraintdef(con.oid), con.convalidated FROM pg_constraint con "
            "JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND n.nspname = current_schema() AND con.conname = %s", [table, name])

    def _repoint_sql(self, fk, new_name, definition=None):
        q = self.q
        if self.engine == "postgresql":
            definition = definition or self._pg_fk_definition(fk.table, fk.name)[0]
            retargeted, n = re.subn(r'REFERENCES\s+(?:(?:"[^"]+"|\w+)\.)?(?:"%s"|%s)\(' % (
                re.escape(self.old), re.escape(self.old)), "REFERENCES %s(" % q(self.new), definition)
            if n != 1:
                raise OAuthRepairError("cannot read the definition of foreign key %s: %s" % (fk.name, definition),
                                       obj="%s.%s" % (fk.table, fk.name), fix="re-point it by hand")
            return [
                "ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID" % (q(fk.table), q(new_name), retargeted),
                "ALTER TABLE %s VALIDATE CONSTRAINT %s" % (q(fk.table), q(new_name)),
                "ALTER TABLE %s DROP CONSTRAINT %s" % (q(fk.table), q(fk.name)),
            ]
        if self.engine == "mysql":
            clauses = ["DROP FOREIGN KEY %s" % q(fk.name)]
            t = self.table(fk.table)
            if t is not None and fk.name != new_name and any(i.name == fk.name for i in t.indexes):
                clauses.append("RENAME INDEX %s TO %s" % (q(fk.name), q(new_name)))
            clauses.append("ADD CONSTRAINT %s %s" % (q(new_name), self._mysql_fk_clause(fk, self.new)))
            return self._mysql_unchecked("ALTER TABLE %s %s, ALGORITHM=INPLACE, LOCK=NONE" % (
                q(fk.table), ", ".join(clauses)))
        return ["-- table rebuild of %s: CREATE TABLE new__%s (... %s ... REFERENCES %s ...); INSERT ... SELECT; "
                "DROP; RENAME; indexes; PRAGMA foreign_key_check" % (
                    fk.table, fk.table, q(fk.columns[0]), q(self.new))]

    def _orphans(self, table, column, target):
        q = self.q
        return int(self.conn.scalar(
            "SELECT COUNT(*) FROM %s x WHERE x.%s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %s a WHERE a.%s = x.%s)"
            % (q(table), q(column), q(target), q("id"), q(column))))

    def _repoint(self, fk):
        table, columns = fk.table, list(fk.columns)
        new_name = self.names.referencing_fk(table, columns, fk.ref_columns)
        planned = self._repoint_sql(fk, new_name)

        def state(t):
            to_old = [f for f in t.foreign_keys if f.columns == columns and f.ref_table == self.old]
            to_new = [f for f in t.foreign_keys if f.columns == columns and f.ref_table == self.new]
            return to_old, to_new

        def done(live):
            t = live.table(table)
            if t is None:
                return True
            to_old, to_new = state(t)
            return bool(to_new) and not to_old and (self.engine != "postgresql" or all(
                self._pg_fk_definition(table, f.name)[1] for f in to_new))

        def run(ctx):
            self.catch_up(ctx)
            t = ctx.live.table(table)
            to_old, to_new = state(t)
            if self.engine == "postgresql":
                if not to_new:
                    definition = self._pg_fk_definition(table, to_old[0].name)[0]
                    ctx.ddl(self._repoint_sql(to_old[0], new_name, definition)[0], table=table)
                    name = new_name
                else:
                    name = to_new[0].name
                try:
                    ctx.ddl("ALTER TABLE %s VALIDATE CONSTRAINT %s" % (self.q(table), self.q(name)), table=table)
                except OAuthRepairError as exc:
                    raise OAuthRepairError(
                        "%s.%s holds values that are not ids of %s (%d rows): %s" % (
                            table, columns[0], self.new, self._orphans(table, columns[0], self.new), exc.msg),
                        obj="%s.%s" % (table, columns[0]),
                        fix="re-run (rows added to %s meanwhile are copied first); rows referencing no application "
                            "at all must be fixed by hand" % self.old, changed=True)
                for f in to_old:
                    ctx.ddl("ALTER TABLE %s DROP CONSTRAINT %s" % (self.q(table), self.q(f.name)), table=table)
                return
            if self.engine == "mysql":
                if not to_old:
                    return
                orphans = self._orphans(table, columns[0], self.new)
                if orphans:
                    raise OAuthRepairError(
                        "%d row(s) of %s reference an %s id that is neither in %s nor in %s" % (
                            orphans, table, columns[0], self.new, self.old), obj="%s.%s" % (table, columns[0]),
                        fix="fix or delete those rows, then re-run")
                self._run_statements(ctx, self._repoint_sql(to_old[0], new_name), table)
                # rows written between the check and the ALTER: their applications are copied now
                self.catch_up(ctx)
                late = self._orphans(table, columns[0], self.new)
                if late:
                    raise OAuthRepairError(
                        "%d row(s) of %s written during the re-pointing reference applications missing from %s"
                        % (late, table, self.new), obj="%s.%s" % (table, columns[0]),
                        fix="re-run to copy them", changed=True)
                return
            ran = sqlite_rebuild.rebuild(ctx, table, {}, transform=self._sqlite_retarget)
            ctx.report.setdefault("sqlite_rebuilds", {})[table] = len(ran)

        return self._step("repoint", "re-point %s.%s from %s to %s as %s (%s)" % (
            table, ",".join(columns), self.old, self.new, new_name,
            {"postgresql": "added NOT VALID, validated online, then the old constraint dropped",
             "mysql": "every row checked by the module, then the constraint swapped in place",
             "sqlite": "the table is rebuilt as Django rebuilds tables"}[self.engine]),
            table, key="%s.%s" % (table, ",".join(columns)), lock_kind="repoint",
            duration="proportional" if self.engine != "mysql" else "instant", sql=planned, done=done, run=run)

    def _sqlite_retarget(self, create_sql):
        return re.sub(r'REFERENCES\s+(?:"%s"|`%s`|\[%s\]|%s)(?=\s*\()' % ((re.escape(self.old),) * 4),
                      "REFERENCES %s" % self.q(self.new), create_sql)

    # -- copy: the old table ------------------------------------------------------
    def retire_old(self):
        keep = self.spec.keep_old_table
        sql = [self._rename_sql(self.old, self.kept)] if keep else ["DROP TABLE %s" % self.q(self.old)]

        def done(live):
            return live.table(self.old) is None

        def run(ctx):
            self.catch_up(ctx)
            still = [f for f in self.references(self.old) if f.table not in (self.old, self.kept)]
            if still:
                raise OAuthRepairError(
                    "foreign keys still reference %s: %s" % (self.old, ", ".join(
                        "%s.%s" % (f.table, ",".join(f.columns)) for f in still)), obj=self.old,
                    fix="re-run: they are re-pointed first (a table created meanwhile?)", changed=True)
            if self._missing_count() or self._changed_ids(limit=1):
                raise OAuthRepairError("%s and %s still differ" % (self.old, self.new), obj=self.new,
                                       fix="re-run", changed=True)
            if keep:
                self._rename(ctx, self.old, self.kept)
            else:
                ctx.ddl(sql[0], table=self.old)

        what = ("rename %s to %s, kept for a rollback until you drop it" % (self.old, self.kept) if keep else
                "drop %s (keep_old_table=false), once every row is verified in %s" % (self.old, self.new))
        return self._step("retire_old", "after a last catch-up copy, " + what, self.old, sql=sql, done=done, run=run)

    # -- copy: the sequence -------------------------------------------------------
    def _next_id(self, table):
        """The id the table's sequence/auto-increment hands out next (None when it has none)."""
        if self.engine == "postgresql":
            seq = self._pg_sequence_of(table)
            if seq is None:
                return None
            last, called = self.conn.query_one("SELECT last_value, is_called FROM %s" % self.q(seq))
            return int(last) + 1 if called else int(last)
        if self.engine == "mysql":
            if self.d.vendor == "mysql":
                self.conn.execute("SET SESSION information_schema_stats_expiry = 0", record=False)
            value = self.conn.scalar("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                                     "DATABASE() AND TABLE_NAME = %s", [table])
            return int(value) if value is not None else None
        if not self.conn.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"):
            return None
        value = self.conn.scalar("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        return int(value) + 1 if value is not None else 1

    def _wanted_next(self):
        top = self.conn.scalar("SELECT MAX(%s) FROM %s" % (self.q("id"), self.q(self.new)))
        wanted = int(top) + 1 if top is not None else 1
        for other in (self.old, self.kept):
            if self.table(other) is not None:
                value = self._next_id(other)
                if value is not None:
                    wanted = max(wanted, value)
        return wanted

    def _sequence_sql(self):
        q = self.q
        if self.engine == "postgresql":
            return ["SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, false)"]
        if self.engine == "mysql":
            return ["ALTER TABLE %s AUTO_INCREMENT = %%s" % q(self.new)]
        return ["UPDATE sqlite_sequence SET seq = %s WHERE name = %s"]

    def sequence(self):
        def done(live):
            if live.table(self.new) is None:
                return False
            current = self._next_id(self.new)
            return current is None or current >= self._wanted_next()

        def run(ctx):
            wanted = self._wanted_next()
            if self.engine == "postgresql":
                ctx.ddl(self._sequence_sql()[0], (self.q(self.new), wanted), table=self.new)
            elif self.engine == "mysql":
                ctx.ddl(self._sequence_sql()[0] % int(wanted), table=self.new)
                ctx.conn.executed_queries[-1] = self._sequence_sql()[0]
            else:
                if ctx.ddl(self._sequence_sql()[0], (wanted - 1, self.new), table=self.new) < 1:
                    ctx.ddl("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", (self.new, wanted - 1),
                            table=self.new)
            ctx.report["next_id"] = wanted

        return self._step("sequence", "move %s's id sequence past the highest id (and past %s's own sequence, so "
                          "no id is ever handed out twice)" % (self.new, self.old), self.new,
                          sql=self._sequence_sql(), done=done, run=run)

    # -- history --------------------------------------------------------------------
    def record_migration(self):
        app, name = self.spec.migration_app, self.spec.migration_name

        def done(live):
            return history.is_recorded(self.conn, app, name)

        def run(ctx):
            if self.spec.expected is not None:
                # recording 0001_initial says the table is what it creates: never while a model column is missing
                ctx.live.invalidate()
                live = ctx.live.table(self.new)
                missing = [c.name for c in self.spec.expected.tables[self.new].columns
                           if live is None or not live.has_column(c.name)]
                if missing:
                    raise OAuthRepairError(
                        "%s has no column %s that the swapped model has: %s.%s is not recorded" % (
                            self.new, ", ".join(missing), app, name), obj="%s.%s" % (self.new, missing[0]),
                        fix="let the swap add it (run again), or add it with a migration of your app")
            history.record(self.conn, app, name)

        return Step("swap:record_migration:%s.%s" % (app, name), self.FINDINGS["record_migration"],
                    "record %s.%s as applied (its table now exists as it creates it), so that Django's "
                    "check_consistent_history passes; nothing else is recorded" % (app, name),
                    "django_migrations", _lock("record_migration", self.engine),
                    sql=[history.insert_sql(self.conn)], done=done, run=run, migration="%s.%s" % (app, name))

    # -- reporting ----------------------------------------------------------------------
    def foreign_keys_now(self):
        out = []
        for name in (self.old, self.new, self.kept):
            out.extend(_fk_dict(fk) for fk in self.references(name))
        return sorted(out, key=lambda f: (f["table"], f["columns"], f["ref_table"]))

    def tables_touched(self):
        names = set([self.old, self.new, self.kept])
        names.update(fk.table for fk in self.references_before)
        return sorted(names)
