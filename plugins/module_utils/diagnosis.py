# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the live catalog and data of a Django database and diagnose its DOT state.

``diagnose(conn, options)`` returns everything ``oauth_info`` reports; the
repair plans start from the same :class:`Snapshot`.
"""

from __future__ import annotations

import datetime

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import dot
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import Timer
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.findings import SEVERITIES, Detector
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.repairs import leftovers
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.schema.diff import diff
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.truth.source import expected_schema_for

MIGRATIONS_TABLE = "django_migrations"
NEGATIVE_EFFECTS = ("no_column", "no_unique")

DEFAULT_OPTIONS = dict(
    application_model=None, access_token_model=None, refresh_token_model=None, id_token_model=None,
    grant_model=None, user_table=None, swapped_initial_migration="0001_initial", natural_pk_tables=[],
    target_engines=[], exact_count_limit=2000000, checksum_full_check_limit=250000,
    checksum_sample_size=20000, preupgrade_min_rows=10000, expected_schema="auto", django=None, drift_apps=[],
    drift_allow=[],
)


def _iso(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value if value is None else str(value)


class Snapshot(object):
    """The live state: DOT tables, migration records, and lazy access to any other table."""

    def __init__(self, conn, options=None):
        self.conn = conn
        self.dialect = conn.dialect
        self.options = dict(DEFAULT_OPTIONS)
        self.options.update(dict((k, v) for k, v in (options or {}).items() if v is not None))
        swapped = {
            "application": self.options.get("application_model"),
            "accesstoken": self.options.get("access_token_model"),
            "refreshtoken": self.options.get("refresh_token_model"),
            "idtoken": self.options.get("id_token_model"),
            "grant": self.options.get("grant_model"),
        }
        self.models = dot.Models(swapped=swapped)
        for key in self.models.swapped_keys():
            self.dialect.validate_identifier(self.models.table(key), "table of %s" % dot.OPTION_NAMES[key])
        for name in self.options.get("natural_pk_tables") or []:
            self.dialect.validate_identifier(name, "table name")
        self.checksum_checks = {}
        self.expected = None  # the site's expected Schema (asked once), None when the truth is DOT's history
        self._truth_asked = False
        self._extra = {}
        self._refs = {}
        self.reload()

    # -- loading -------------------------------------------------------------
    def reload(self):
        conn = self.conn
        self.dialect.check_version()
        self.all_tables = set(self.dialect.list_tables(conn))
        if MIGRATIONS_TABLE not in self.all_tables:
            raise OAuthRepairError(
                "database %r has no django_migrations table: it is not a Django database, or not the "
                "right one" % conn.database, obj=MIGRATIONS_TABLE,
                fix="point db (and login_*) at the Django site's database")
        wanted = [t for t in self.all_tables if t.startswith(dot.APP + "_")]
        wanted += [t for t in self.models.all_tables() if t in self.all_tables]
        self.tables = self.dialect.load_tables(conn, sorted(set(wanted)))
        self._extra = {}
        self._refs = {}
        self.models.user_table = self._find_user_table()
        if self.models.user_table and self.models.user_table not in self.tables:
            user = self.load(self.models.user_table)
            if user is not None:
                self.tables[user.name] = user
                user.rows = None
        for name in self.options.get("natural_pk_tables") or []:
            if name not in self.all_tables:
                raise OAuthRepairError(
                    "table %r named in natural_pk_tables does not exist in database %r" % (name, conn.database),
                    obj=name, fix="give the db_table of the model whose primary key is natural")
        self.migration_rows = self._read_migrations()
        self._count_rows()
        self.migration_state = self._migration_state()
        self._compare_with_truth()

    def _compare_with_truth(self):
        """Read the expected schema (once) and diff it with the live tables it names."""
        if not self._truth_asked:
            self.expected = expected_schema_for(self.conn, self.options)
            self._truth_asked = True
        self.live_schema, self.drift = None, []
        if self.expected is not None:
            names = [t for t in self.expected.tables if t in self.all_tables]
            self.live_schema = self.dialect.load_schema(self.conn, names)
            self.drift = diff(self.expected, self.live_schema, self.dialect.integer_width_matters)

    def _find_user_table(self):
        if self.options.get("user_table"):
            return self.dialect.validate_identifier(self.options["user_table"], "user_table")
        app = self.tables.get(self.models.table("application"))
        if app is not None:
            for fk in app.fk_on("user_id"):
                return fk.ref_table
        for t in self.tables.values():
            for fk in t.fk_on("user_id"):
                return fk.ref_table
        return "auth_user" if "auth_user" in self.all_tables else None

    def load(self, name):
        """Catalog of any table of the database (cached); None when it does not exist."""
        if name in self.tables:
            return self.tables[name]
        if name not in self._extra:
            if name not in self.all_tables:
                self._extra[name] = None
            else:
                self._extra[name] = self.dialect.load_tables(self.conn, [name]).get(name)
        return self._extra[name]

    def references_to(self, table):
        """Every foreign key of the database that references ``table``."""
        if table not in self._refs:
            self._refs[table] = self.dialect.referencing_foreign_keys(self.conn, table) \
                if table in self.all_tables else []
        return self._refs[table]

    def external_references(self):
        """Foreign keys from tables outside DOT's that reference DOT's tables."""
        out = []
        dot_tables = set(self.tables) - {self.models.user_table}
        for name in sorted(dot_tables):
            for fk in self.references_to(name):
                if fk.table not in dot_tables:
                    out.append(fk)
        return out

    def _read_migrations(self):
        apps = sorted(set([dot.APP] + [self.models.app_label(k) for k in self.models.swapped_keys()]))
        rows = self.conn.query(
            "SELECT app, name, applied FROM %s WHERE app IN (%s) ORDER BY id" % (
                self.dialect.quote(MIGRATIONS_TABLE), ", ".join(["%s"] * len(apps))), apps)
        return [dict(app=a, name=n, applied=_iso(t)) for a, n, t in rows]

    def migration_rows_for(self, app):
        return [r["name"] for r in self.migration_rows if r["app"] == app]

    def _count_rows(self):
        limit = int(self.options.get("exact_count_limit") or 0)
        names = [n for n in self.tables if n != self.models.user_table]
        estimates = self.dialect.estimated_rows(self.conn, names)
        for name in names:
            est = estimates.get(name)
            table = self.tables[name]
            if est is not None and limit and est > limit:
                table.rows, table.rows_exact = est, False
            else:
                table.rows, table.rows_exact = int(self.dialect.exact_rows(self.conn, name)), True

    # -- migrations ----------------------------------------------------------
    def _effect_present(self, effect):
        """(applicable, present, label) for one migration effect against the live catalog."""
        if self.models.is_swapped(effect.model):
            return False, False, None
        tname = self.models.table(effect.model)
        table = self.tables.get(tname)
        kind, target = effect.kind, effect.target
        if kind == "table":
            return True, table is not None, tname
        if table is None:
            label = "%s.%s" % (tname, target if isinstance(target, str) else
                               ",".join(target) if kind != "type" else target[0])
            return True, False, label
        if kind == "column":
            return True, table.has_column(target), "%s.%s" % (tname, target)
        if kind == "no_column":
            return True, not table.has_column(target), "%s.%s (dropped)" % (tname, target)
        if kind == "type":
            column, wanted = target
            col = table.column(column)
            present = col is not None and (col.type == wanted or (
                wanted == "text" and col.type == "text") or (
                self.conn.engine == "sqlite" and wanted.startswith("varchar") and col.type.startswith("varchar")
                and col.type == wanted))
            return True, present, "%s.%s as %s" % (tname, column, wanted)
        if kind == "fk":
            return True, bool(table.fk_on(target)), "%s.%s (foreign key)" % (tname, target)
        if kind == "unique":
            return True, bool(table.unique_on(list(target))), "%s (%s) unique" % (tname, ", ".join(target))
        if kind == "no_unique":
            return True, not table.unique_on(list(target)), "%s (%s) not unique" % (tname, ", ".join(target))
        if kind == "index":
            return True, bool(table.index_on(list(target))), "%s (%s) index" % (tname, ", ".join(target))
        raise ValueError(kind)  # pragma: no cover

    def _migration_state(self):
        recorded = self.migration_rows_for(dot.APP)
        recorded_set = set(recorded)
        known = set(dot.MIGRATION_NAMES)
        state = []
        for name, effects in dot.MIGRATIONS:
            present, missing = [], []
            for effect in effects:
                undo = dot.SUPERSEDED.get((name, effect.kind, effect.model, effect.target))
                if undo and (undo[0] in recorded_set or self._effect_present(undo[1])[1]):
                    continue
                applicable, ok, label = self._effect_present(effect)
                if not applicable:
                    continue
                if effect.kind in NEGATIVE_EFFECTS and name not in recorded_set:
                    # the absence of an object is no evidence that a migration ran
                    continue
                (present if ok else missing).append(label)
            is_recorded = name in recorded_set
            if not present and not missing:
                status = "applied" if is_recorded else "not_applied"
            elif is_recorded:
                status = "applied" if not missing else "recorded_missing_objects"
            elif not present:
                status = "not_applied"
            else:
                status = "unrecorded_complete" if not missing else "half_applied"
            state.append(dict(name=name, recorded=is_recorded, status=status, present=present, missing=missing))
        applied = [n for n in dot.MIGRATION_NAMES if n in recorded_set]
        return dict(
            app=dot.APP,
            applied=applied,
            last_applied=applied[-1] if applied else None,
            pending=[n for n in dot.MIGRATION_NAMES if n not in recorded_set],
            stale=[n for n in recorded if n in dot.PRE_SQUASH],
            unknown=[n for n in recorded if n not in known and n not in dot.PRE_SQUASH],
            half_applied=[s["name"] for s in state if s["status"] in (
                "half_applied", "unrecorded_complete", "recorded_missing_objects")],
            state=state,
        )


def _truth_summary(snap):
    if snap.expected is None:
        return dict(source="dot", tables=[], differences=0)
    details = snap.expected.details
    return dict(source=snap.expected.source, django=details.get("django"), models=details.get("models"),
                tables=sorted(snap.expected.tables), differences=len(snap.drift))


def diagnose(conn, options=None):
    """Everything ``oauth_info`` returns, as a dict."""
    timer = Timer()
    snap = Snapshot(conn, options)
    findings = Detector(snap).run()
    by_severity = dict((s, 0) for s in SEVERITIES)
    for f in findings:
        by_severity[f.severity] += 1
    tables = {}
    for name, table in sorted(snap.tables.items()):
        if name == snap.models.user_table:
            continue
        tables[name] = table.to_dict()
    return dict(
        server=conn.describe(),
        tables=tables,
        user_table=snap.models.user_table,
        models=dict((k, dict(label=snap.models.labels[k], table=snap.models.table(k),
                             swapped=snap.models.is_swapped(k))) for k in dot.MODELS),
        migrations=dict(rows=snap.migration_rows, oauth2_provider=snap.migration_state),
        findings=[f.to_dict() for f in findings],
        checksum_checks=snap.checksum_checks,
        schema_truth=_truth_summary(snap),
        leftovers=leftovers.scan(conn),
        # what the catalog hid from this user (never reported as missing objects), naming the privilege
        limitations=conn.dialect.catalog_limitations(conn),
        summary=dict(findings=len(findings), by_severity=by_severity,
                     codes=sorted(set(f.code for f in findings)),
                     healthy=not any(f.severity in ("fatal", "error") for f in findings)),
        duration=timer.elapsed(),
    ), snap
