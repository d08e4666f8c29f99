# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalogue of known breakages and the detectors that find them in a live database.

Every finding has a stable ``code`` (documented in docs/findings.md), a
``severity`` (fatal: Django's migrate or DOT itself fails; error: data or
behaviour is wrong; warning: works today, breaks later; info: advice), the
``objects`` involved (``table`` or ``table.column``), the ``seed`` report it
corresponds to and the ``repair`` that fixes it.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import asdict, dataclass, field
from typing import Dict, List

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import dot, repair_checksum, repair_seed000
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.diagnose.drift import DRIFT_CODES, drift_findings

SEVERITIES = ("fatal", "error", "warning", "info")

#: code -> (seed, repair, title)
CATALOGUE = {
    "int_width_mismatch": ("000", "widen_integer_keys",
                           "a primary key and the columns that reference it have different integer widths"),
    "repair_interrupted": ("000", "widen_integer_keys",
                           "a widen_integer_keys repair was interrupted half-way: foreign keys dropped and saved "
                           "(MariaDB/MySQL) or left NOT VALID (PostgreSQL)"),
    "migration_half_applied": ("000", "complete_migration",
                               "a DOT migration is half-applied: recorded without its objects, or its objects "
                               "exist without the record"),
    "missing_timestamp_columns": ("000", "add_timestamp_columns",
                                  "DOT tables lack the created/updated columns DOT's models define"),
    "migration_stale_names": ("000", "clean_migration_history",
                              "django_migrations holds oauth2_provider names from before DOT 1.3's squash"),
    "migration_unknown_names": ("000", None,
                                "django_migrations holds oauth2_provider names this collection does not know"),
    "token_checksum_empty": ("004", "backfill_token_checksum", "tokens whose token_checksum is ''"),
    "token_checksum_null": ("004", "backfill_token_checksum", "tokens whose token_checksum is NULL"),
    "token_checksum_duplicate": ("004", "report_checksum_duplicates",
                                 "token_checksum values that occur more than once"),
    "token_checksum_mismatch": ("004", "backfill_token_checksum",
                                "token_checksum is not the sha256 of the token"),
    "token_checksum_unique_missing": ("004", "create_checksum_unique_index",
                                      "token_checksum lacks the unique index DOT's migration creates"),
    "token_checksum_preupgrade": ("004", "preupgrade_token_checksum",
                                  "DOT's 0012 backfill has yet to run on a large table; do it online first"),
    "swapped_model_inconsistent_history": ("001", "record_swapped_initial_migration",
                                           "the swapped model's initial migration is not recorded although "
                                           "oauth2_provider.0001_initial is: InconsistentMigrationHistory"),
    "swapped_model_table_missing": ("001", "swap_application_model",
                                    "the swapped model's table does not exist"),
    "swapped_model_stale_fk": ("001", "swap_application_model",
                               "foreign keys still point at the table of the model that was swapped out"),
    "nullable_unique_mssql": ("002", "filtered_unique_index",
                              "nullable columns under a UNIQUE constraint: SQL Server treats their NULLs as equal"),
    "natural_pk_referenced": ("003", "surrogate_pk",
                              "a natural (non-integer) primary key is referenced by other tables"),
    # not a finding of the site (oauth_info returns it under 'leftovers'); a code so that fix can name its clean-up
    "leftover_scratch_database": ("leftover", "drop_leftover_scratch_databases",
                                  "scratch databases of the collection left behind by a killed run (a backup "
                                  "verification restore holds a copy of the OAuth tables, secrets included)"),
}


CATALOGUE.update((code, ("drift", repair, title)) for code, (repair, title) in DRIFT_CODES.items())


@dataclass
class Finding:
    code: str
    severity: str
    message: str
    objects: List[str] = field(default_factory=list)
    details: Dict = field(default_factory=dict)

    def to_dict(self):
        seed, repair, title = CATALOGUE[self.code]
        d = asdict(self)
        d.update(title=title, seed=seed, repair=repair)
        return d


def _col(table, column):
    return "%s.%s" % (table, column)


class Detector(object):
    """Runs every detector over a :class:`~.diagnosis.Snapshot`-like context."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.conn = ctx.conn
        self.dialect = ctx.conn.dialect
        self.models = ctx.models
        self.tables = ctx.tables
        self.findings = []

    def add(self, code, severity, message, objects=(), **details):
        self.findings.append(Finding(code=code, severity=severity, message=message,
                                     objects=list(objects), details=details))

    def run(self):
        self.int_width_mismatch()
        self.repair_interrupted()
        self.missing_timestamp_columns()
        self.migrations()
        self.token_checksums()
        self.swapped_models()
        self.nullable_unique()
        self.natural_pks()
        self.schema_drift()
        order = dict((s, i) for i, s in enumerate(SEVERITIES))
        self.findings.sort(key=lambda f: (order[f.severity], f.code, f.objects))
        return self.findings

    # -- seed 000 ------------------------------------------------------------
    def _table_of(self, key):
        return self.tables.get(self.models.table(key)) if self.models.table(key) else None

    def int_width_mismatch(self):
        if self.conn.engine == "sqlite":
            return  # every SQLite integer is 64-bit: Django's "integer" PK and "bigint" FK agree
        by_pk = {}
        seen = set()

        def consider(table, column, target_table, fk_name, expected_fk):
            tcol = table.column(column)
            if tcol is None or target_table is None or len(target_table.primary_key) != 1:
                return
            pk = target_table.column(target_table.primary_key[0])
            if tcol.integer_size is None or pk.integer_size is None or tcol.type == pk.type:
                return
            key = (table.name, column)
            if key in seen:
                return
            seen.add(key)
            by_pk.setdefault((target_table.name, pk.name, pk.type), []).append(dict(
                table=table.name, column=column, type=tcol.type, foreign_key=fk_name,
                fk_missing=fk_name is None and expected_fk))

        for model, relations in dot.RELATIONS.items():
            table = self._table_of(model)
            if table is None:
                continue
            for column, target in relations.items():
                target_table = self.tables.get(self.models.table(target)) if self.models.table(target) else None
                fks = table.fk_on(column)
                if fks:
                    for fk in fks:
                        consider(table, column, self.tables.get(fk.ref_table) or self.ctx.load(fk.ref_table),
                                 fk.name, True)
                else:
                    consider(table, column, target_table, None, True)
        # foreign keys of any other table of the database that reference a DOT table
        for fk in self.ctx.external_references():
            src = self.ctx.load(fk.table)
            if src is not None and len(fk.columns) == 1:
                consider(src, fk.columns[0], self.tables.get(fk.ref_table), fk.name, True)
        for (ptable, pcol, ptype), refs in sorted(by_pk.items()):
            missing_fk = [r for r in refs if r["fk_missing"]]
            if self.conn.engine == "mysql":
                severity = "fatal" if missing_fk else "error"
                effect = ("InnoDB refuses a foreign key between integers of different widths, so DOT's "
                          "migrations that create one die half-way")
            else:
                severity = "warning"
                effect = ("PostgreSQL accepts the mismatch silently; inserts fail once ids pass the narrower "
                          "type's maximum")
            self.add("int_width_mismatch", severity,
                     "%s.%s is %s while %s reference it: %s" % (
                         ptable, pcol, ptype,
                         ", ".join("%s.%s (%s)" % (r["table"], r["column"], r["type"]) for r in refs), effect),
                     [_col(ptable, pcol)] + [_col(r["table"], r["column"]) for r in refs],
                     primary_key=dict(table=ptable, column=pcol, type=ptype), referencing=refs,
                     target_type="bigint")

    def repair_interrupted(self):
        """A widening killed half-way (repair_seed000.interrupted_widenings); the next oauth_repair run finishes
        it, whatever its fix."""
        if self.conn.engine not in ("mysql", "postgresql"):
            return
        state_table = repair_seed000.STATE_TABLE
        resume = ("run oauth_repair again (any fix, e.g. fix: [repair_interrupted]; or the playbook again): its "
                  "widen_integer_keys repair resumes")
        for entry in repair_seed000.interrupted_widenings(self.ctx):
            pk, fks = entry["primary_key"], entry["foreign_keys"]
            key = _col(pk["table"], pk["column"])
            listed = [dict(name=f["name"], table=f["table"], columns=list(f["columns"]), ref_table=f["ref_table"],
                           ref_columns=list(f["ref_columns"])) for f in fks]
            named = ", ".join("%s on %s.%s -> %s.%s" % (
                f["name"], f["table"], ",".join(f["columns"]), f["ref_table"], ",".join(f["ref_columns"]))
                for f in listed)
            objects = [key] + [_col(f["table"], f["columns"][0]) for f in listed]
            details = dict(primary_key=dict(table=pk["table"], column=pk["column"]), foreign_keys=listed)
            if self.conn.engine == "postgresql":
                self.add("repair_interrupted", "error",
                         "%d foreign key(s) referencing %s are NOT VALID (%s): a widening was interrupted between "
                         "re-adding them NOT VALID and VALIDATE CONSTRAINT; they are enforced for new rows only, the "
                         "existing rows were never checked; %s and validates them (after an orphan check) without "
                         "blocking writers" % (len(listed), key, named, resume),
                         objects, state="not_validated", **details)
                continue
            details.update(state_table=state_table, state_key=entry["key"], saved=entry["saved"],
                           type_before=pk.get("type"))
            if listed:
                self.add("repair_interrupted", "error",
                         "the widening of %s was interrupted after dropping %d foreign key(s) that are still "
                         "missing: %s; nothing enforces those references until they are back. Their definitions "
                         "are saved in %s (since %s UTC): %s and re-creates them, after an orphan check" % (
                             key, len(listed), named, state_table, str(entry["saved"])[:19], resume),
                         objects + [state_table], state="foreign_keys_dropped", **details)
            else:
                self.add("repair_interrupted", "info",
                         "the widening of %s was interrupted before it deleted its saved state from %s (every "
                         "foreign key it saved is back in place): %s and deletes it" % (
                             key, state_table, resume),
                         objects + [state_table], state="state_left", **details)

    def missing_timestamp_columns(self):
        missing = []
        for model in dot.TIMESTAMPED:
            table = self._table_of(model)
            if table is None:
                continue
            for column in ("created", "updated"):
                if not table.has_column(column):
                    missing.append(_col(table.name, column))
        if missing:
            self.add("missing_timestamp_columns", "fatal",
                     "DOT's models select %s, which do not exist: every query on these models fails with "
                     "'Unknown column'" % ", ".join(missing), missing, columns=missing)

    def migrations(self):
        state = self.ctx.migration_state
        for entry in state["state"]:
            if entry["status"] in ("half_applied", "unrecorded_complete", "recorded_missing_objects"):
                recorded = entry["recorded"]
                if recorded:
                    msg = ("oauth2_provider.%s is recorded as applied but %s missing" %
                           (entry["name"], ", ".join(entry["missing"])))
                    severity = "fatal"
                else:
                    msg = ("oauth2_provider.%s is not recorded but %s already exist%s" % (
                        entry["name"], ", ".join(entry["present"]),
                        (" (missing: %s)" % ", ".join(entry["missing"])) if entry["missing"] else ""))
                    severity = "fatal"
                self.add("migration_half_applied", severity, msg,
                         ["oauth2_provider.%s" % entry["name"]] + (entry["missing"] if recorded else entry["present"]),
                         migration=entry["name"], recorded=recorded, present=entry["present"],
                         missing=entry["missing"])
        if state["stale"]:
            self.add("migration_stale_names", "warning",
                     "django_migrations records oauth2_provider migrations squashed away in DOT 1.3: %s"
                     % ", ".join(state["stale"]),
                     ["django_migrations"], names=state["stale"])
        if state["unknown"]:
            self.add("migration_unknown_names", "info",
                     "django_migrations records oauth2_provider migrations unknown to this collection "
                     "(a newer DOT?): %s" % ", ".join(state["unknown"]), ["django_migrations"],
                     names=state["unknown"])

    # -- seed 004 ------------------------------------------------------------
    def token_checksums(self):
        applied = set(self.ctx.migration_state["applied"])
        for model, migration, unique_cols in dot.CHECKSUMS:
            table = self._table_of(model)
            if table is None:
                continue
            if not table.has_column("token_checksum"):
                idx = dot.MIGRATION_NAMES.index(migration)
                previous = dot.MIGRATION_NAMES[idx - 1]
                if (model == "accesstoken" and migration not in applied and previous in applied
                        and (table.rows or 0) >= self.ctx.options.get("preupgrade_min_rows", 10000)):
                    self.add("token_checksum_preupgrade", "info",
                             "%s holds %s rows and %s has not run: DOT's own migration backfills them row "
                             "by row under a lock; run the online pre-upgrade first" % (
                                 table.name, table.rows, migration),
                             [table.name], rows=table.rows, migration=migration)
                continue
            self._checksum_table(table, migration, unique_cols, migration in applied)

    def _checksum_table(self, table, migration, unique_cols, recorded):
        q = self.dialect.quote
        t, c = q(table.name), q("token_checksum")
        total, nulls, empties = self.conn.query_one(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN %s IS NULL THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN %s = '' THEN 1 ELSE 0 END), 0) FROM %s" % (c, c, t))
        total, nulls, empties = int(total), int(nulls), int(empties)
        obj = _col(table.name, "token_checksum")
        if empties:
            self.add("token_checksum_empty", "error",
                     "%d of %d rows of %s have token_checksum '' (they no longer authenticate, and the "
                     "duplicates of '' block the unique index)" % (empties, total, table.name),
                     [obj], rows=empties, total=total, migration=migration)
        if nulls:
            self.add("token_checksum_null", "error",
                     "%d of %d rows of %s have a NULL token_checksum (an interrupted backfill?)" % (
                         nulls, total, table.name), [obj], rows=nulls, total=total, migration=migration)
        has_unique = bool(table.unique_on(list(unique_cols)))
        if not has_unique:
            # two passes, shared with the repair: a GROUP BY over a prefix of the checksum, then an exact one
            # over the candidates only (repair_checksum.duplicate_groups)
            dup_groups, groups = repair_checksum.duplicate_groups(self.conn, table.name, unique_cols, limit=20,
                                                                  skip_empty=True)
            if groups:
                self.add("token_checksum_duplicate", "error",
                         "%d token_checksum value(s) of %s occur more than once; the unique index cannot be "
                         "built until they are resolved" % (dup_groups, table.name), [obj],
                         groups=dup_groups, examples=[dict(checksum=g[0], rows=int(g[-1])) for g in groups])
            invalid = [i.name for i in table.indexes if not i.valid and list(i.columns) == list(unique_cols)]
            self.add("token_checksum_unique_missing", "fatal" if recorded else "error",
                     "%s has no valid unique index on (%s)%s%s" % (
                         table.name, ", ".join(unique_cols),
                         " although %s is recorded as applied" % migration if recorded else
                         " (%s is half-applied)" % migration,
                         "; %s exists but is INVALID (a concurrent build that failed or was cancelled), the repair "
                         "drops it and builds it again" % ", ".join(invalid) if invalid else ""),
                     [obj], columns=list(unique_cols), migration=migration,
                     **(dict(invalid_indexes=invalid) if invalid else {}))
        self._checksum_mismatch(table, total, migration)

    def _checksum_mismatch(self, table, total, migration):
        q = self.dialect.quote
        t, c, tok = q(table.name), q("token_checksum"), q("token")
        pk = q(table.primary_key[0]) if len(table.primary_key) == 1 else None
        limit = int(self.ctx.options.get("checksum_full_check_limit", 250000))
        sample = int(self.ctx.options.get("checksum_sample_size", 20000))
        cond = "%s <> '' AND %s IS NOT NULL AND %s <> '' AND %s <> %s" % (
            tok, c, c, c, self.dialect.sha256_hex(tok))
        if total <= limit or pk is None:
            method = "full"
            checked = total
            bad = int(self.conn.scalar("SELECT COUNT(*) FROM %s WHERE %s" % (t, cond)))
            examples = [r[0] for r in self.conn.query(
                "SELECT %s FROM %s WHERE %s %s" % (pk or c, t, cond, self.dialect.limit(5)))] if bad else []
        else:
            method = "sample"
            lo, hi = self.conn.query_one("SELECT MIN(%s), MAX(%s) FROM %s" % (pk, pk, t))
            chunks = 10
            per = max(1, sample // chunks)
            rng = random.Random(zlib.crc32(table.name.encode("utf-8")))  # the same sample on every run
            bad, checked, examples = 0, 0, []
            for _chunk in range(chunks):
                start = rng.randint(int(lo), int(hi))
                rows = self.conn.query(
                    "SELECT %s, CASE WHEN %s THEN 1 ELSE 0 END FROM %s WHERE %s >= %%s ORDER BY %s %s" % (
                        pk, cond, t, pk, pk, self.dialect.limit(per)), [start])
                checked += len(rows)
                for row_id, is_bad in rows:
                    if is_bad:
                        bad += 1
                        if len(examples) < 5:
                            examples.append(row_id)
        self.ctx.checksum_checks[table.name] = dict(method=method, rows_checked=checked, mismatches=bad)
        if bad:
            self.add("token_checksum_mismatch", "error",
                     "%d row(s) of %s (%s check of %d rows) have a token_checksum that is not sha256(token): "
                     "those tokens do not authenticate" % (bad, table.name, method, checked),
                     [_col(table.name, "token_checksum")], rows=bad, method=method, rows_checked=checked,
                     example_ids=examples, migration=migration)

    # -- seed 001 ------------------------------------------------------------
    def swapped_models(self):
        applied = set(self.ctx.migration_state["applied"])
        for key in self.models.swapped_keys():
            new_table = self.models.table(key)
            old_table = self.models.default_table(key)
            label = self.models.labels[key]
            app_label = self.models.app_label(key)
            initial = self.ctx.options.get("swapped_initial_migration") or "0001_initial"
            if new_table not in self.tables:
                self.add("swapped_model_table_missing", "fatal",
                         "%s is swapped to %s but its table %s does not exist" % (key, label, new_table),
                         [new_table], model=label, table=new_table, old_table=old_table)
            recorded = set(self.ctx.migration_rows_for(app_label))
            if "0001_initial" in applied and initial not in recorded:
                self.add("swapped_model_inconsistent_history", "fatal",
                         "oauth2_provider.0001_initial is applied but %s.%s (which must run before it) is not: "
                         "Django raises InconsistentMigrationHistory" % (app_label, initial),
                         ["django_migrations", "%s.%s" % (app_label, initial)],
                         app=app_label, migration=initial, model=label)
            stale = []
            for fk in self.ctx.references_to(old_table):
                if fk.table in (old_table, new_table):
                    continue
                stale.append(dict(table=fk.table, columns=fk.columns, name=fk.name, ref_table=fk.ref_table))
            if stale and old_table != new_table:
                self.add("swapped_model_stale_fk", "fatal",
                         "%d foreign key(s) still reference %s instead of %s: %s" % (
                             len(stale), old_table, new_table,
                             ", ".join("%s.%s" % (s["table"], ",".join(s["columns"])) for s in stale)),
                         [old_table] + ["%s.%s" % (s["table"], s["columns"][0]) for s in stale],
                         foreign_keys=stale, old_table=old_table, new_table=new_table)

    # -- the site's own models ------------------------------------------------
    def schema_drift(self):
        """The differences from the expected schema. One that a finding above already names (the same column or
        index: a missing timestamp column, a half-applied migration's object, a checksum unique index, a width
        mismatch) is not a second finding: it is that finding's ``details.drift``, so two detectors never report
        the same object twice nor plan two repairs of it."""
        expected = getattr(self.ctx, "expected", None)
        if expected is None:
            return
        named = {}
        for finding in self.findings:
            for obj in finding.objects:
                named.setdefault(obj, finding)
        for code, severity, message, objects, details in drift_findings(
                self.ctx.drift, expected, self.ctx.options.get("drift_allow")):
            owner = named.get(objects[0]) if objects else None
            if owner is not None:
                owner.details.setdefault("drift", []).append(dict(code=code, severity=severity, object=objects[0],
                                                                  message=message))
                continue
            self.add(code, severity, message, objects, **details)

    # -- seed 002 ------------------------------------------------------------
    def nullable_unique(self):
        targets = set(self.ctx.options.get("target_engines") or [])
        if "mssql" not in targets and self.conn.engine != "mssql":
            return
        objs, details = [], []
        for table in sorted(self.tables.values(), key=lambda x: x.name):
            for idx in table.indexes:
                if not idx.unique or idx.primary or idx.partial:
                    continue
                nullable = [c for c in idx.columns if table.column(c) is not None and table.column(c).nullable]
                if nullable:
                    objs.extend(_col(table.name, c) for c in nullable)
                    details.append(dict(table=table.name, index=idx.name, columns=idx.columns, nullable=nullable))
        if objs:
            self.add("nullable_unique_mssql", "error" if self.conn.engine == "mssql" else "info",
                     "SQL Server treats NULLs as equal under UNIQUE: %s would allow one NULL only; they need "
                     "filtered unique indexes (WHERE col IS NOT NULL)" % ", ".join(objs), objs, indexes=details)

    # -- seed 003 ------------------------------------------------------------
    def natural_pks(self):
        for name in self.ctx.options.get("natural_pk_tables") or []:
            table = self.ctx.load(name)
            if table is None or len(table.primary_key) != 1:
                continue
            pk = table.column(table.primary_key[0])
            if pk.integer_size is not None:
                continue
            refs = [fk for fk in self.dialect.referencing_foreign_keys(self.conn, name) if fk.table != name]
            if not refs:
                continue
            pivots = []
            for fk in refs:
                src = self.ctx.load(fk.table)
                if src is not None and len(src.foreign_keys) == 2 and len(src.columns) == 3:
                    pivots.append(fk.table)
            self.add("natural_pk_referenced", "warning",
                     "%s's primary key %s is a %s referenced by %s; replacing it needs every referencing "
                     "column rewritten" % (
                         name, pk.name, pk.type, ", ".join("%s.%s" % (f.table, f.columns[0]) for f in refs)),
                     [_col(name, pk.name)] + [_col(f.table, f.columns[0]) for f in refs],
                     table=name, primary_key=pk.name, type=pk.type, pivot_tables=sorted(set(pivots)),
                     referencing=[dict(table=f.table, columns=f.columns, name=f.name) for f in refs])
