# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL Server (field report 002), as plans: findings and a T-SQL script from a catalog snapshot.

``engine: mssql`` never runs anything on a server. ``oauth_info`` reads the
snapshot (dialects/mssql.py) with the same detectors as every engine, except
what needs table data (token checksums): that is said in the result, never
guessed. ``oauth_repair`` builds the plan and returns it, with ``changed: false``
and no ``executed_queries``, and the whole script (``tsql_script``) to run with
``sqlcmd``. **The plan has not been run against a live SQL Server.**

Two repairs:

* ``nullable_unique_mssql``: a UNIQUE constraint/index over nullable columns lets
  one NULL only on SQL Server (Django and the SQL standard allow many). A filtered
  unique index ``WHERE col IS NOT NULL`` (the name mssql-django gives it) is built
  first (``ONLINE = ON`` where the edition can), then the old constraint is dropped:
  uniqueness is enforced at every moment.
* ``int_width_mismatch``: an ``int`` primary key referenced by ``bigint`` columns.
  SQL Server wants a foreign key and its key of the same type (error 1778) and
  refuses ``ALTER COLUMN`` on a column that a key, index, constraint or
  statistics object uses (error 5074), so one transaction drops every foreign key
  on the columns, their indexes and constraints and the primary key, widens the
  key and every ``int`` column that references it to ``bigint``, and recreates
  all of it under the same names (clustered as before), foreign keys ``WITH CHECK``,
  plus the foreign keys the migrations could not create. ``ALTER COLUMN`` keeps
  the IDENTITY property of an int -> bigint key; the script checks it before it
  commits.

Every step of the script is guarded by a condition read from the live catalog
when it runs, so running the script again skips what is done.
"""

from __future__ import annotations

import copy
import re

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import dot
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import Timer
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.diagnosis import Snapshot
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.mssql import (
    MSSQLForeignKey, MSSQLIndex)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.findings import SEVERITIES, Detector
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import connect, fail
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Step
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.repairs import schema_text, select

#: the finding codes this version has a SQL Server plan for
SUPPORTED = ("nullable_unique_mssql", "int_width_mismatch")

NOT_RUN = ("this plan has not been run against a live SQL Server: it was built from a catalog snapshot and "
           "checked by parsing its statements only; review it and run it on a restored copy first")

CHECKSUM_REASON = ("a catalog snapshot holds no table data: the token_checksum_empty, token_checksum_null, "
                   "token_checksum_duplicate and token_checksum_mismatch checks were not computed")

LIMITATIONS = [
    CHECKSUM_REASON + " (only token_checksum_unique_missing, a catalog fact, is reported)",
    "row counts are sys.partitions figures at snapshot time (rows_exact: false)",
    "the findings describe the database as it was when the snapshot was taken (taken_at)",
]


# ---------------------------------------------------------------------------
# Diagnosis from a snapshot
# ---------------------------------------------------------------------------

class CatalogSnapshot(Snapshot):
    """diagnosis.Snapshot fed by the catalog snapshot: migrations and row counts come from the file."""

    def _read_migrations(self):
        apps = set([dot.APP] + [self.models.app_label(k) for k in self.models.swapped_keys()])
        return [dict(r) for r in self.conn.catalog.migrations if r["app"] in apps]

    def _count_rows(self):
        for name, table in self.tables.items():
            if name != self.models.user_table:
                table.rows_exact = False


class CatalogDetector(Detector):
    """The detectors of findings.py; what needs data or is SQL Server specific is adapted here."""

    def _checksum_table(self, table, migration, unique_cols, recorded):
        if not table.unique_on(list(unique_cols)):
            self.add("token_checksum_unique_missing", "fatal" if recorded else "error",
                     "%s has no unique index on (%s)%s" % (
                         table.name, ", ".join(unique_cols),
                         " although %s is recorded as applied" % migration if recorded else
                         " (%s is half-applied)" % migration),
                     ["%s.token_checksum" % table.name], columns=list(unique_cols), migration=migration)
        self.ctx.checksum_checks[table.name] = dict(method="not_computed", rows_checked=0, mismatches=None,
                                                    reason=CHECKSUM_REASON)

    def int_width_mismatch(self):
        first = len(self.findings)
        super().int_width_mismatch()
        for finding in self.findings[first:]:
            pk, refs = finding.details["primary_key"], finding.details["referencing"]
            finding.severity = "fatal" if any(r["fk_missing"] for r in refs) else "error"
            finding.message = (
                "%s.%s is %s while %s reference it: SQL Server refuses a foreign key between columns of different "
                "types (error 1778), so the DOT migrations that create one fail; widening it means dropping and "
                "recreating every key, index and constraint on those columns" % (
                    pk["table"], pk["column"], pk["type"],
                    ", ".join("%s.%s (%s%s)" % (
                        r["table"], r["column"], r["type"], ", no foreign key" if r["fk_missing"] else "")
                        for r in refs)))

    def nullable_unique(self):
        """Every table of the snapshot, the site's own included: SQL Server gets them all wrong."""
        objs, details = [], []
        for name in sorted(self.conn.catalog.tables):
            table = self.ctx.load(name)
            for idx in sorted(table.indexes, key=lambda i: i.name):
                if not idx.unique or idx.primary or idx.partial:
                    continue
                nullable = [c for c in idx.columns if table.column(c) is not None and table.column(c).nullable]
                if nullable:
                    objs.extend("%s.%s" % (table.name, c) for c in nullable)
                    details.append(dict(table=table.name, index=idx.name, columns=idx.columns, nullable=nullable,
                                        constraint=idx.constraint))
        if objs:
            self.add("nullable_unique_mssql", "error",
                     "SQL Server treats NULLs as equal under UNIQUE: %s allow one NULL only; they need filtered "
                     "unique indexes (WHERE col IS NOT NULL)" % ", ".join(objs), objs, indexes=details)


def diagnose(conn, options=None):
    """What ``oauth_info`` returns for engine mssql: :func:`diagnosis.diagnose`'s result from the snapshot."""
    timer = Timer()
    snap = CatalogSnapshot(conn, options)
    findings = CatalogDetector(snap).run()
    by_severity = dict((s, 0) for s in SEVERITIES)
    for f in findings:
        by_severity[f.severity] += 1
    tables = dict((name, table.to_dict()) for name, table in sorted(snap.tables.items())
                  if name != snap.models.user_table)
    return dict(
        server=conn.describe(),
        tables=tables,
        user_table=snap.models.user_table,
        models=dict((k, dict(label=snap.models.labels[k], table=snap.models.table(k),
                             swapped=snap.models.is_swapped(k))) for k in dot.MODELS),
        migrations=dict(rows=snap.migration_rows, oauth2_provider=snap.migration_state),
        findings=[f.to_dict() for f in findings],
        checksum_checks=snap.checksum_checks,
        summary=dict(findings=len(findings), by_severity=by_severity,
                     codes=sorted(set(f.code for f in findings)),
                     healthy=not any(f.severity in ("fatal", "error") for f in findings)),
        catalog_snapshot=conn.catalog.describe(),
        limitations=list(LIMITATIONS),
        duration=timer.elapsed(),
    ), snap


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------

class MSSQLStep(Step):
    """A plan step whose T-SQL runs only in the script: ``guard`` is the T-SQL condition under which it still
    has to run, ``transaction`` wraps it in one transaction, ``verify`` lists conditions that must hold before
    that transaction commits."""

    def __init__(self, key, finding, description, table, lock, guard=None, transaction=False, verify=(),
                 notes=(), tables=None, **kwargs):
        super().__init__(key, finding, description, table, lock, **kwargs)
        self.tables = list(tables) if tables is not None else ([table] if table else [])
        self.guard = guard
        self.transaction = transaction
        self.verify = list(verify)
        self.notes = list(notes)

    def describe(self):
        d = super().describe()
        d.update(tables=list(self.tables), guard=self.guard, transaction=self.transaction,
                 verify=[entry[0] for entry in self.verify], notes=list(self.notes))
        return d


class Refused(Exception):
    """This finding cannot be planned safely from the snapshot; the reason goes to not_repaired."""


def resolve_online(option, catalog):
    """``mssql_online``: True/False as given, else from the edition (Enterprise, Developer, Azure)."""
    if option is None:
        return catalog.online_capable()
    return bool(option)


class PlanBuilder(object):
    """Build the steps from the snapshot, keeping ``work``: the schema as the steps so far leave it."""

    def __init__(self, snap, options):
        self.snap = snap
        self.conn = snap.conn
        self.d = snap.conn.dialect
        self.catalog = snap.conn.catalog
        self.work = copy.deepcopy(self.catalog.tables)
        self.online = resolve_online(options.get("mssql_online"), self.catalog)
        self.lock_timeout = options.get("lock_timeout")
        self.steps = []
        self.refused = []
        self.added_fks = {}      # (table, column) -> key of the step that creates its foreign key

    # -- entry point -------------------------------------------------------------
    def build(self, findings):
        for finding in findings:
            if finding["code"] == "nullable_unique_mssql":
                for detail in finding["details"]["indexes"]:
                    self._attempt(finding, "%s.%s" % (detail["table"], detail["index"]), self.filtered_unique,
                                  detail)
        for finding in findings:
            if finding["code"] == "int_width_mismatch":
                pk = finding["details"]["primary_key"]
                self._attempt(finding, "%s.%s" % (pk["table"], pk["column"]), self.widen, finding["details"])
        if self.steps:
            self.steps.insert(0, MSSQLStep(
                "session_settings", None,
                "session settings of the script: a failed statement rolls its transaction back, and no statement "
                "waits more than lock_timeout for a lock", None, "none",
                sql=["SET XACT_ABORT ON"] + self.d.session_timeouts(self.lock_timeout, None)))
        return self.steps

    def _attempt(self, finding, obj, method, detail):
        try:
            method(detail)
        except Refused as exc:
            self.refused.append(dict(code=finding["code"], objects=[obj], message=str(exc)))

    def _q(self, name):
        return self.d.quote(name)

    def _rows(self, table):
        rows = self.work[table].rows
        return "%s rows" % rows if rows is not None else "an unknown number of rows"

    # -- nullable UNIQUE -> filtered unique index ---------------------------------
    def filtered_unique(self, detail):
        table = self.work.get(detail["table"])
        idx = next((i for i in table.indexes if i.name == detail["index"]), None) if table else None
        if idx is None:
            raise Refused("index %s of %s is not in the snapshot" % (detail["index"], detail["table"]))
        if idx.clustered:
            raise Refused("%s is the CLUSTERED index of %s: a filtered index cannot be clustered; choose another "
                          "clustered index first" % (idx.name, table.name))
        users = [fk for t in sorted(self.work) for fk in self.work[t].foreign_keys
                 if fk.ref_table == table.name and fk.key_index == idx.name]
        if users:
            raise Refused("foreign key(s) %s rely on %s: drop or re-point them first" % (
                ", ".join("%s.%s" % (fk.table, fk.name) for fk in users), idx.name))
        new = copy.deepcopy(idx)
        new.name = self.d.django_index_name(table.name, idx.columns, "_uniq")
        new.constraint, new.clustered, new.kind, new.partial, new.valid = False, False, "NONCLUSTERED", True, True
        # over every column, as mssql-django writes it (the NOT NULL ones change nothing)
        new.where = " AND ".join("%s IS NOT NULL" % self._q(c) for c in idx.columns)
        create = self.d.create_index(new, online=self.online)
        drop = self.d.drop_index_or_constraint(idx)
        what = "%s %s (%s)" % ("UNIQUE constraint" if idx.constraint else "unique index", idx.name,
                               ", ".join(idx.columns))
        build_lock = ("online index build (ONLINE = ON): reads and writes go on; brief Sch-M at the end"
                      if self.online else
                      "index build holds a shared lock on %s: reads go on, writes wait (%s)" % (
                          table.name, self._rows(table.name)))
        notes = [] if idx.valid else ["%s was disabled: the new index checks uniqueness of the non-NULL values "
                                      "anew and fails on duplicates" % idx.name]
        if new.name == idx.name:
            # the old index already bears the name: replace it in one transaction
            self.steps.append(MSSQLStep(
                "filtered_unique_index:%s.%s" % (table.name, new.name), "nullable_unique_mssql",
                "replace %s of %s by a filtered unique index WHERE %s" % (what, table.name, new.where),
                table.name, "index build inside a transaction: writes to %s wait (%s)" % (
                    table.name, self._rows(table.name)),
                duration="proportional", online=False, sql=[drop, self.d.create_index(new)],
                guard="EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = %s AND name = %s AND has_filter = 0)" % (
                    self.d.object_id(table.name), self.d.name_literal(idx.name)),
                transaction=True, notes=notes))
        else:
            self.steps.append(MSSQLStep(
                "filtered_unique_index:%s.%s" % (table.name, new.name), "nullable_unique_mssql",
                "create the filtered unique index %s on %s (%s) WHERE %s: many NULLs allowed, non-NULL values "
                "unique (the old %s keeps enforcing uniqueness meanwhile)" % (
                    new.name, table.name, ", ".join(idx.columns), new.where, idx.name),
                table.name, build_lock, duration="proportional", online=self.online, sql=[create],
                guard="NOT " + self.d.index_exists(table.name, new.name), notes=notes))
            self.steps.append(MSSQLStep(
                "drop_nullable_unique:%s.%s" % (table.name, idx.name), "nullable_unique_mssql",
                "drop %s of %s, which lets one NULL only; the filtered index %s replaces it" % (
                    what, table.name, new.name),
                table.name, "Sch-M on %s, metadata only (instant once granted)" % table.name,
                sql=[drop], guard="%s AND %s" % (self.d.index_exists(table.name, idx.name),
                                                 self.d.index_exists(table.name, new.name))))
        table.indexes = [i for i in table.indexes if i.name != idx.name]
        stored = copy.deepcopy(new)
        stored.where = "(%s)" % new.where   # as sys.indexes.filter_definition spells it
        table.indexes.append(stored)

    # -- int -> bigint ---------------------------------------------------------------
    def widen(self, details):
        target = details.get("target_type") or "bigint"
        pk_table, pk_col = details["primary_key"]["table"], details["primary_key"]["column"]
        table = self.work.get(pk_table)
        if table is None or table.column(pk_col) is None:
            raise Refused("%s.%s is not in the snapshot" % (pk_table, pk_col))
        if table.column(pk_col).type == target:
            return
        # the key, and every integer column that references a column being widened (SQL Server wants equal types)
        alter, queue = [(pk_table, pk_col)], [(pk_table, pk_col)]
        while queue:
            t, col = queue.pop(0)
            for src in sorted(self.work):
                for fk in self.work[src].foreign_keys:
                    if fk.ref_table != t or col not in fk.ref_columns:
                        continue
                    pair = (fk.table, fk.columns[fk.ref_columns.index(col)])
                    column = self.work[pair[0]].column(pair[1])
                    if pair not in alter and column.integer_size is not None and column.type != target:
                        alter.append(pair)
                        queue.append(pair)
        altered = set(alter)
        for pair in alter:
            column = self.work[pair[0]].column(pair[1])
            if column.integer_size is None or column.integer_size > 8:
                raise Refused("%s.%s is %s, not an integer" % (pair[0], pair[1], column.raw_type))
        self._refuse_unsupported(altered)

        def touches(tname, cols):
            return any((tname, c) in altered for c in cols)

        tables = sorted(set(entry[0] for entry in alter))
        fks = sorted([fk for t in sorted(self.work) for fk in self.work[t].foreign_keys
                      if touches(fk.table, fk.columns) or touches(fk.ref_table, fk.ref_columns)],
                     key=lambda fk: (fk.table, fk.name))
        indexes = [i for t in tables for i in self.work[t].indexes if touches(t, i.columns + i.included)]
        checks = [(t, ck) for t in tables for ck in self.work[t].checks
                  if (ck["column"] and (t, ck["column"]) in altered) or (
                      not ck["column"] and any("[%s]" % c in ck["definition"] for tt, c in alter if tt == t))]
        defaults = [(t, self.work[t].column(c)) for t, c in alter if self.work[t].column(c).default is not None]
        stats = [(t, st) for t in tables for st in self.work[t].statistics if touches(t, st["columns"])]
        # foreign keys the migrations could not create (int key, bigint column): added once types agree
        missing, new_indexes = [], []
        for ref in details.get("referencing") or []:
            src = self.work.get(ref["table"])
            if not ref.get("fk_missing") or src is None:
                continue
            if any(fk.columns == [ref["column"]] and fk.ref_table == pk_table for fk in src.foreign_keys):
                continue
            missing.append(MSSQLForeignKey(
                name=self.d.django_fk_name(src.name, ref["column"], pk_table, pk_col), table=src.name,
                columns=[ref["column"]], ref_table=pk_table, ref_columns=[pk_col],
                key_index=next((i.name for i in table.indexes if i.primary), None)))
            if not src.index_on([ref["column"]]):
                new_indexes.append(MSSQLIndex(name=self.d.django_index_name(src.name, [ref["column"]]),
                                              table=src.name, columns=[ref["column"]]))

        q = self.d
        sql = [q.drop_constraint(fk.table, fk.name) for fk in fks]
        sql += [q.drop_statistics(t, st["name"]) for t, st in stats]
        sql += [q.drop_constraint(t, ck["name"]) for t, ck in checks]
        sql += [q.drop_constraint(t, col.default_name) for t, col in defaults]
        # nonclustered before clustered (dropping a clustered index first rebuilds the others), the key last
        for idx in sorted(indexes, key=lambda i: (i.clustered, i.primary, i.table, i.name)):
            sql.append(q.drop_index_or_constraint(idx))
        for t, c in alter:
            column = self.work[t].column(c)
            sql.append(q.alter_column_type(t, c, target, column.nullable))
        for idx in sorted(indexes, key=lambda i: (not i.clustered, not i.primary, not i.constraint, i.table,
                                                  i.name)):
            sql.append(q.recreate_index(idx))
        sql += [q.add_default(self.work[t], col) for t, col in defaults]
        sql += [q.add_check(t, ck) for t, ck in checks]
        sql += [q.create_statistics(t, st) for t, st in stats]
        sql += [q.create_index(idx) for idx in new_indexes]
        sql += [q.add_foreign_key(fk) for fk in fks + missing]

        verify = [(q.column_has_type(t, c, target),
                   "%s.%s is not %s" % (t, c, target)) for t, c in alter]
        for t, c in alter:
            if self.work[t].column(c).auto_increment:
                verify.append((q.is_identity(t, c), "%s.%s lost its IDENTITY property" % (t, c)))
        notes = ["ALTER COLUMN keeps the IDENTITY property (and its current value) of an int -> bigint column; "
                 "the script checks it before COMMIT and rolls everything back otherwise"]
        for fk in fks:
            if fk.disabled or fk.not_trusted:
                notes.append("foreign key %s was %s: it is recreated WITH CHECK, which validates every row and "
                             "rolls the whole step back on an orphan" % (
                                 fk.name, "disabled" if fk.disabled else "not trusted"))
        for t, ck in checks:
            if ck["disabled"] or ck["not_trusted"]:
                notes.append("check constraint %s was %s: it is recreated WITH CHECK" % (
                    ck["name"], "disabled" if ck["disabled"] else "not trusted"))
        if missing:
            notes.append("adds the foreign key(s) the migrations could not create while the types differed: %s" %
                         ", ".join("%s.%s" % (fk.table, fk.name) for fk in missing))
        touched = sorted(set(tables + [fk.table for fk in fks + missing]))
        rows = ", ".join("%s (%s)" % (t, self._rows(t)) for t in touched)
        self.steps.append(MSSQLStep(
            "widen_integer_keys:%s.%s" % (pk_table, pk_col), "int_width_mismatch",
            "widen %s.%s to %s with %s: drop %d foreign key(s), %d index(es)/key(s), %d constraint(s) and %d "
            "statistics, ALTER COLUMN, recreate them all under their names, foreign keys WITH CHECK" % (
                pk_table, pk_col, target, ", ".join("%s.%s" % p for p in alter[1:]) or "no referencing column",
                len(fks), len(indexes), len(checks) + len(defaults), len(stats)),
            pk_table,
            "Sch-M on %s for the whole transaction, reads and writes wait: the widened tables are rewritten and "
            "their keys rebuilt, the foreign keys validated - proportional to %s" % (", ".join(touched), rows),
            duration="proportional", online=False, sql=sql,
            guard=" OR ".join(q.column_has_type(t, c, self.work[t].column(c).raw_type) for t, c in alter),
            transaction=True, verify=verify, notes=notes, tables=touched))
        # the schema as the step leaves it
        for t, c in alter:
            column = self.work[t].column(c)
            column.type = column.raw_type = target
        for fk in missing:
            self.work[fk.table].foreign_keys.append(fk)
            self.added_fks[(fk.table, fk.columns[0])] = self.steps[-1].key
        for idx in new_indexes:
            self.work[idx.table].indexes.append(idx)

    def _refuse_unsupported(self, altered):
        for fk in self.catalog.foreign_schema_fks:
            sides = [(fk.get("table"), c) for c in fk.get("columns") or []] + [
                (fk.get("ref_table"), c) for c in fk.get("ref_columns") or []]
            if any(side in altered for side in sides):
                raise Refused("foreign key %s.%s crosses schemas (%s -> %s): this version plans one schema only" % (
                    fk.get("schema"), fk.get("name"), fk.get("schema"), fk.get("ref_schema")))
        for tname in sorted(set(entry[0] for entry in altered)):
            table = self.work[tname]
            for idx in table.indexes:
                cols = idx.columns + idx.included
                if any((tname, c) in altered for c in cols) and idx.kind not in ("CLUSTERED", "NONCLUSTERED"):
                    raise Refused("%s index %s of %s uses a column to widen: recreate it by hand" % (
                        idx.kind, idx.name, tname))
            for col in table.columns:
                if col.computed and any(re.search(r"\[%s\]" % re.escape(c), col.computed_definition or "")
                                        for t, c in altered if t == tname):
                    raise Refused("computed column %s.%s uses a column to widen: drop it first" % (tname, col.name))


# ---------------------------------------------------------------------------
# The script
# ---------------------------------------------------------------------------

_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def _comment(text):
    """Text safe in a ``--`` comment line: printable ASCII, no line break, no sqlcmd ``$(variable)``."""
    return _NOT_PRINTABLE.sub("?", str(text)).replace("$(", "$ (")


def _message(text):
    """Text safe inside N'...' (THROW messages)."""
    return re.sub(r"[^A-Za-z0-9 _.,:>()\-]", "?", str(text))


def render_script(steps, catalog, options, online):
    """The whole T-SQL script, one batch (``GO``) per step, each step under its guard."""
    statement_timeout = int(options.get("statement_timeout") or 0)
    out = [
        "-- django_ops.oauth_repair: T-SQL plan for database %s, schema %s" % (
            _comment(catalog.database), _comment(catalog.schema)),
        "-- SQL Server %s, %s" % (_comment(catalog.server_version), _comment(catalog.server.get("edition") or "?")),
        "-- built from catalog snapshot %s taken %s (sha256 %s)" % (
            _comment(catalog.source), _comment(catalog.taken_at or "?"), _comment(catalog.digest or "?")),
        "-- NOTE: %s." % NOT_RUN,
        "-- Run it whole with sqlcmd, stopping at the first error:",
        "--   sqlcmd -S <server> -d %s -b%s -i <this file>" % (
            _comment(catalog.database),
            " -t %d" % max(1, (statement_timeout + 999) // 1000) if statement_timeout else ""),
        "-- Each step runs only while its guard (read from the live catalog) says it is still to do, so running",
        "-- the script again skips what is done. Online index builds: %s." % ("on" if online else "off"),
    ]
    if not steps:
        out.append("-- Nothing to do: the snapshot shows none of the chosen findings this plan repairs.")
        return "\n".join(out) + "\n"
    for n, step in enumerate(steps, 1):
        out.append("")
        out.append("-- step %d/%d %s" % (n, len(steps), _comment(step.key)))
        out.append("-- %s" % _comment(step.description))
        out.append("-- lock: %s" % _comment(step.lock))
        body = ["%s;" % s for s in step.sql]
        if step.transaction:
            body = ["BEGIN TRANSACTION;"] + body
            for condition, message in step.verify:
                body.append("IF NOT (%s) THROW 50001, N'%s', 1;" % (condition, _message(message)))
            body.append("COMMIT TRANSACTION;")
        if step.guard:
            out.append("IF %s" % step.guard)
            out.append("BEGIN")
            out.extend("    %s" % line for line in body)
            out.append("END;")
        else:
            out.extend(body)
        out.append("GO")
    return "\n".join(out) + "\n"


_FK_LABEL = re.compile(r"^([A-Za-z0-9_$]+)\.([A-Za-z0-9_$]+) \(foreign key\)$")


def _why_not(finding, added_fks):
    """Why a chosen finding has no step; a half-applied migration may only lack the foreign keys a widening adds."""
    if finding["code"] == "migration_half_applied" and finding["details"].get("recorded"):
        labels = [_FK_LABEL.match(m) for m in finding["details"].get("missing") or []]
        keys = [added_fks.get(m.groups()) if m else None for m in labels]
        if keys and all(keys):
            return ("the foreign key(s) it lacks are created by step %s; the migration is already recorded, so "
                    "nothing else is needed" % ", ".join(sorted(set(keys))))
    return "no SQL Server plan for this finding in this version"


class _WorkView(object):
    """What repairs.schema_text reads: ``load(name)``."""

    def __init__(self, tables):
        self.tables = tables

    def load(self, name):
        return self.tables.get(name)


def repair(conn, options, fix, diff=False):
    """What ``oauth_repair`` returns for engine mssql: the plan and its script; nothing runs."""
    before, snap = diagnose(conn, options)
    chosen = select(before["findings"], fix)
    builder = PlanBuilder(snap, options)
    steps = builder.build([f for f in chosen if f["code"] in SUPPORTED])
    reports = []
    for step in steps:
        report = step.describe()
        report.update(status="would_run", changed=False)
        reports.append(report)
    not_repaired = [dict(code=f["code"], objects=f["objects"], message=f["message"],
                         reason=_why_not(f, builder.added_fks))
                    for f in chosen if f["code"] not in SUPPORTED]
    not_repaired += [dict(r, reason="refused") for r in builder.refused]
    result = dict(
        changed=False,
        executed_queries=[],
        plan=reports,
        tsql_script=render_script(steps, conn.catalog, options, builder.online),
        findings_before=[f["code"] for f in before["findings"]],
        findings=before["findings"],
        not_repaired=not_repaired,
        completed_migrations=[],
        report=dict(engine="mssql", plan_only=True, not_run_against_live_server=True, note=NOT_RUN,
                    online=builder.online, catalog_snapshot=conn.catalog.describe(),
                    limitations=list(LIMITATIONS)),
        progress={},
    )
    if diff:
        tables = sorted(set(t for s in steps for t in s.tables))
        result["diff"] = dict(before=schema_text(snap, tables), after=schema_text(_WorkView(builder.work), tables))
    return result


# ---------------------------------------------------------------------------
# Module entry points (oauth_info / oauth_repair branch here for engine mssql)
# ---------------------------------------------------------------------------

def _run(module, build):
    conn = connect(module)
    try:
        result = build(conn)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn)
    module.warn(NOT_RUN)
    module.exit_json(**result)


def info_module(module, options):
    """oauth_info, engine mssql: findings from the catalog snapshot."""
    def build(conn):
        result, _snap = diagnose(conn, options)
        result.update(changed=False, executed_queries=[])
        return result
    _run(module, build)


def repair_module(module, options):
    """oauth_repair, engine mssql: the plan and its T-SQL script, never executed (check-mode-like)."""
    _run(module, lambda conn: repair(conn, options, module.params["fix"], diff=module._diff))
