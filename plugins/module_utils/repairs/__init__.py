# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From findings to a repair plan, and the schema text shown in diff mode."""

from __future__ import annotations

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import repair_checksum, repair_seed000
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Plan
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.repairs import from_drift, leftovers

#: the finding codes oauth_repair can repair today, and the builder of their steps
SUPPORTED = set(repair_checksum.CODES) | set(repair_seed000.CODES) | set(leftovers.CODES)
CHECKSUM_MIGRATIONS = (repair_checksum.SPECS["accesstoken"]["migration"],
                       repair_checksum.SPECS["refreshtoken"]["migration"])


def repairable(finding, engine=None):
    if finding["code"].startswith("schema_drift_"):
        return from_drift.why_not(finding, engine) is None
    if finding["code"] in repair_seed000.CODES or (
            finding["code"] == "migration_half_applied"
            and finding["details"].get("migration") not in CHECKSUM_MIGRATIONS):
        return repair_seed000.repairable(finding, engine)
    if finding["code"] in SUPPORTED:
        return True
    return finding["code"] == "migration_half_applied" and finding["details"].get("migration") in CHECKSUM_MIGRATIONS


def select(findings, fix, found_leftovers=None):
    """Findings chosen by ``fix`` (``all`` or a list of codes); the collection's own leftovers (oauth_info's
    ``leftovers``) only when ``fix`` names ``leftover_scratch_database``."""
    fix = list(fix or ["all"])
    leftover = leftovers.as_finding(found_leftovers or {}) if leftovers.CODES[0] in fix else None
    if leftover:
        return select(findings, [c for c in fix if c not in leftovers.CODES] or ["none"]) + [leftover]
    if "all" in fix:
        # harmless drift (names, extra indexes, wider types, allowlisted) is reported, not chosen
        # nor are the collection's own leftovers: they are removed when fix names them
        return [f for f in findings if not (f["code"].startswith("schema_drift_") and f["severity"] == "info")]
    return [f for f in findings if f["code"] in fix]


def build_plan(snapshot, findings, options):
    chosen = [f for f in findings if repairable(f, snapshot.conn.engine)]
    plan = Plan()
    # seed 000 first: the checksum work of 0012/0015 comes after 0004 in DOT's history, and its ALTERs
    # must not fail on a key still being widened
    plan.extend(repair_seed000.build(snapshot, chosen, options))
    plan.extend(repair_checksum.build(snapshot, chosen, options.get("checksum_mode") or "complete"))
    plan.extend(from_drift.build(snapshot, chosen, options))
    plan.extend(leftovers.build(snapshot, chosen, options))
    return plan


def schema_text(snapshot, tables):
    """A readable, stable text of the tables' schema, for diff mode."""
    lines = []
    for name in sorted(tables):
        t = snapshot.load(name)
        lines.extend(t.text() if t is not None else ["%s: (absent)" % name])
    return "\n".join(lines) + "\n"
