# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remove what killed runs left behind: the collection's own scratch databases.

Only names of :data:`..dialects.base.SCRATCH_DATABASE` (``oar_verify_<site>_<hex>``, ``oar_truth_<site>_<hex>``)
made for the database the module connects to, only when no session is connected to them (checked again right
before the drop), and only when the ``fix`` list names ``leftover_scratch_database``: ``fix: all`` never chooses
it.
"""

from __future__ import annotations

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.base import SCRATCH_DATABASE, site_tag
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Step

#: chosen only when the fix list names it, never by ``fix: all``
CODES = ("leftover_scratch_database",)


def scan(conn):
    """What oauth_info returns as ``leftovers``: the scratch databases on the server with the sessions connected
    to each and whether they were made for this site's database (``own``; a name made before names carried the
    site's tag, or made for another site on the same server, is listed but never dropped from here). Not findings
    of the site: a run in progress elsewhere must not make a healthy site unhealthy."""
    try:
        found = conn.dialect.scratch_databases(conn)
    except Exception:  # pylint: disable=broad-except
        return dict(scratch_databases=[], readable=False)  # a user who may not list databases
    tag = site_tag(conn.database)
    out = []
    for name in sorted(found):
        match = SCRATCH_DATABASE.match(name)
        out.append(dict(name=name, sessions=found[name], own=bool(match and match.group("site") == tag)))
    return dict(scratch_databases=out, readable=True)


def as_finding(found):
    """The pseudo-finding that ``fix: [leftover_scratch_database]`` repairs, or None when nothing is to drop:
    this site's scratch databases with no session connected."""
    mine = [d for d in found.get("scratch_databases", []) if d.get("own")]
    idle = [d["name"] for d in mine if not d["sessions"]]
    busy = [d["name"] for d in mine if d["sessions"]]
    if not idle:
        return None
    return dict(code=CODES[0], severity="warning", objects=idle, details=dict(idle=idle, in_use=busy),
                message="scratch database(s) left by killed runs: %s%s" % (
                    ", ".join(idle), "; in use now (left alone): %s" % ", ".join(busy) if busy else ""))


def build(snapshot, findings, options):
    conn = snapshot.conn
    steps = []
    for finding in findings:
        if finding["code"] not in CODES:
            continue
        for name in finding["details"].get("idle") or []:
            if not SCRATCH_DATABASE.match(name):  # pragma: no cover - the detector lists only these
                continue
            steps.append(_drop(conn, name))
    return steps


def _drop(conn, name):
    dialect = conn.dialect

    def done(_live):
        return name not in dialect.scratch_databases(conn)

    def run(ctx):
        sessions = dialect.scratch_databases(ctx.conn).get(name)
        if sessions:
            raise OAuthRepairError("scratch database %s has %d session(s) connected: a run may be using it" % (
                name, sessions), obj=name, fix="run again once that run has finished")
        ctx.conn.execute("DROP DATABASE IF EXISTS %s" % dialect.quote(name))

    return Step("drop_leftover:%s" % name, "leftover_scratch_database",
                "drop the collection's scratch database %s, left behind by a killed run" % name, name,
                lock="none on the site's tables (DROP DATABASE of the scratch copy)",
                sql=["DROP DATABASE IF EXISTS %s" % dialect.quote(name)], done=done, run=run)
