# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schema drift: each difference between the site's models and the live schema, as a finding.

The severity says what the difference breaks: ``fatal`` when writes fail (a missing column, a type too
narrow or too short, a ``char(32)`` UUID column that Django >= 5.0 writes 36 characters into on MariaDB, a
NOT NULL column the model does not know), ``error`` when integrity is not enforced (a missing or mis-targeted
foreign key, a missing unique constraint), ``warning`` for a later failure (an ``int`` key where the model
says ``bigint``, a missing index), ``info`` when it is harmless (another name, an extra index, a wider type).
The allowlist (option ``drift_allow``) turns any of them into ``info``.
"""

from __future__ import annotations

#: code -> (repair, title); the seed of every drift code is "drift"
DRIFT_CODES = {
    "schema_drift_missing_table": ("create_missing_table", "a table of the site's models does not exist"),
    "schema_drift_missing_column": ("add_missing_column", "a column of the site's models does not exist"),
    "schema_drift_uuid_char32": ("convert_uuid_columns",
                                 "a UUIDField column is char(32) but the site's Django (>= 5.0 on MariaDB >= 10.7) "
                                 "writes native 36-character UUIDs"),
    "schema_drift_int_width": ("widen_integer_keys", "an integer column is narrower than the site's model"),
    "schema_drift_column_type": (None, "a column's type differs from the site's model"),
    "schema_drift_nullable": (None, "a column's NULL/NOT NULL differs from the site's model"),
    "schema_drift_missing_auto": (None, "a model's auto-increment key has no sequence/identity/AUTO_INCREMENT"),
    "schema_drift_primary_key": (None, "a table's primary key differs from the site's model"),
    "schema_drift_unknown_column": (None, "a column the site's models do not know"),
    "schema_drift_missing_unique": ("create_missing_index", "a unique constraint of the site's models is missing"),
    "schema_drift_missing_index": ("create_missing_index", "an index of the site's models is missing"),
    "schema_drift_missing_fk": ("add_foreign_key", "a foreign key of the site's models is missing"),
    "schema_drift_fk_target": (None, "a foreign key points at another table than the site's model says"),
    "schema_drift_extra_index": (None, "an index the site's models do not declare"),
    "schema_drift_name": (None, "an index or foreign key has another name than Django would give it"),
}


def classify(diff, expected):
    """(code, severity, message) of one :class:`~..schema.diff.Difference`."""
    kind, obj = diff.kind, diff.object
    if kind == "missing_table":
        return "schema_drift_missing_table", "fatal", "table %s does not exist" % obj
    if kind == "missing_column":
        return ("schema_drift_missing_column", "fatal",
                "%s does not exist; the model defines it as %s: every query of the model fails" % (obj, diff.expected))
    if kind == "column_type":
        relation = diff.details.get("relation")
        if diff.expected == "uuid" and diff.actual == "char(32)":
            return ("schema_drift_uuid_char32", "fatal",
                    "%s is char(32) but the site's Django %s sends 36-character UUIDs to MariaDB's native uuid "
                    "type: writes fail with 'Data too long'" % (obj, expected.details.get("django") or ""))
        if relation == "narrower" and diff.expected.split(" ")[0] in ("bigint", "int", "smallint"):
            return ("schema_drift_int_width", "warning",
                    "%s is %s where the model says %s: values beyond the narrower range will fail" % (
                        obj, diff.actual, diff.expected))
        if relation == "narrower":
            return ("schema_drift_column_type", "fatal",
                    "%s is %s, narrower than the model's %s: longer values fail to write" % (
                        obj, diff.actual, diff.expected))
        if relation == "wider":
            return ("schema_drift_column_type", "info",
                    "%s is %s, wider than the model's %s: harmless" % (obj, diff.actual, diff.expected))
        return ("schema_drift_column_type", "error",
                "%s is %s where the model says %s" % (obj, diff.actual, diff.expected))
    if kind == "nullable":
        if diff.expected:
            return ("schema_drift_nullable", "fatal",
                    "%s is NOT NULL but the model allows NULL: writing NULL fails" % obj)
        return ("schema_drift_nullable", "error", "%s allows NULL but the model does not: not enforced" % obj)
    if kind == "missing_auto":
        return ("schema_drift_missing_auto", "fatal",
                "%s has no auto-increment (sequence/identity) although the model's key is an AutoField: "
                "inserts fail" % obj)
    if kind == "primary_key":
        return ("schema_drift_primary_key", "error",
                "the primary key of %s is (%s), the model's is (%s)" % (
                    obj, ", ".join(diff.actual or []), ", ".join(diff.expected or [])))
    if kind == "unknown_column":
        d = diff.details
        if not d.get("nullable") and d.get("default") is None and not d.get("auto_increment"):
            return ("schema_drift_unknown_column", "fatal",
                    "%s is NOT NULL without a default and the model does not know it: every insert of the model "
                    "fails" % obj)
        return "schema_drift_unknown_column", "info", "%s is not a column of the model (kept)" % obj
    if kind in ("missing_unique", "missing_index"):
        invalid = diff.details.get("invalid")
        left = ("; %s exists but is INVALID (a CREATE INDEX CONCURRENTLY that failed or was cancelled): it enforces "
                "nothing, no query uses it, every write maintains it; the repair drops it and builds it again" %
                ", ".join(invalid)) if invalid else ""
        if kind == "missing_unique":
            return ("schema_drift_missing_unique", "error",
                    "%s (%s) has no valid unique index: duplicates are not prevented%s" % (diff.table, diff.column, left))
        return ("schema_drift_missing_index", "warning",
                "%s (%s) has no valid index: queries on it scan the table%s" % (diff.table, diff.column, left))
    if kind == "missing_fk":
        return ("schema_drift_missing_fk", "error",
                "%s has no foreign key to %s: integrity is not enforced" % (obj, diff.expected))
    if kind == "fk_target":
        return ("schema_drift_fk_target", "error",
                "the foreign key of %s points at %s, the model's at %s" % (
                    obj, ", ".join(diff.actual or []), diff.expected))
    if kind == "extra_index":
        if not diff.details.get("valid", True):
            return ("schema_drift_extra_index", "warning",
                    "index %s on %s is INVALID (a failed concurrent build): it slows writes and enforces "
                    "nothing" % (diff.actual, diff.table))
        return ("schema_drift_extra_index", "info",
                "index %s on %s (%s) is not declared by the model (kept)" % (diff.actual, diff.table, diff.column))
    if kind in ("index_name", "fk_name"):
        return ("schema_drift_name", "info", "%s on %s is named %s; Django would name it %s" % (
            "foreign key" if kind == "fk_name" else "index", obj, diff.actual, diff.expected))
    raise ValueError(kind)  # pragma: no cover


def allowed(code, obj, allow):
    """Whether the allowlist names this finding: ``code``, ``object`` or ``code:object``."""
    for entry in allow or ():
        if entry in (code, obj, "%s:%s" % (code, obj)):
            return True
    return False


def drift_findings(differences, expected, allow=()):
    """[(code, severity, message, objects, details)] for the differences, allowlisted ones as info."""
    out = []
    for d in differences:
        code, severity, message = classify(d, expected)
        details = dict(kind=d.kind, expected=d.expected, actual=d.actual, source=expected.source)
        details.update(d.details)
        if severity != "info" and allowed(code, d.object, allow):
            details["allowed"] = True
            details["severity_without_allowlist"] = severity
            severity = "info"
        out.append((code, severity, message, [d.object], details))
    return out
