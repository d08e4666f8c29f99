#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: oauth_repair
short_description: Repair what django-oauth-toolkit's migrations could not do on a live database
version_added: 0.1.0
description:
  - Re-diagnoses the database (as M(django_ops.oauth_repair.oauth_info) does), then applies the repairs of the
    chosen findings as an ordered plan of small steps. Each step reads the live catalog first and skips itself
    when already done, so a run killed at any point converges when run again, and a second run reports
    RV(ignore:changed=false).
  - Repairs available in this version - the C(token_checksum_*) findings and a half-applied
    C(0012_add_token_checksum) / C(0015_refreshtoken_token_checksum) (field report 004), on MariaDB/MySQL,
    PostgreSQL and SQLite; and the findings of field report 000 (run before the checksum steps) - see
    C(docs/repairs-seed000.md). Findings without a repair here are returned in RV(not_repaired), never silently
    ignored.
  - C(int_width_mismatch) (MariaDB/MySQL, PostgreSQL) - the primary key and every column that references it
    (found in the catalog, in any table, and DOT's own relation columns) become C(bigint), AUTO_INCREMENT /
    sequence / identity kept. Each foreign key is re-created with its exact name, columns and ON DELETE/ON
    UPDATE read from the catalog, after a set-based orphan check; the foreign keys DOT expects but InnoDB
    refused are created with DOT's names. MariaDB/MySQL copy each referencing table once (MODIFY and ADD
    FOREIGN KEY in one ALTER with C(foreign_key_checks=0)); the dropped definitions are saved in the table
    C(django_ops_oauth_repair_state) until they are back, so a killed run resumes. PostgreSQL does it in one
    transaction, the foreign keys re-added C(NOT VALID) and then validated without blocking writers.
  - C(repair_interrupted) - a widening killed half-way (foreign keys saved and still missing, or C(NOT VALID))
    is finished first by every run, whatever O(fix) says; C(oauth_info) reports it meanwhile.
  - C(missing_timestamp_columns) - C(created)/C(updated) added as DOT defines them, existing rows getting
    the time of the repair (UTC), instantly, with no default left behind.
  - C(migration_half_applied) (other than 0012/0015) - the missing columns, tables, foreign keys, indexes and
    types created with DOT's own names and types, so that recording the migration afterwards is true.
  - C(migration_stale_names) - the C(django_migrations) rows of the migrations DOT 1.3 squashed away are
    removed (Django ignores them; they only make the history untrue).
  - Every statement, the diagnosis's reads included, runs under O(lock_timeout) and O(statement_timeout); a lock
    that cannot be had fails the step cleanly instead of queueing behind traffic, naming the table and the session
    that holds it.
  - The module does not record migrations; RV(completed_migrations) lists the ones whose work it completed, for
    M(django_ops.oauth_repair.django_migration) (or C(manage.py migrate --fake)) to record.
  - With O(engine=mssql) (SQL Server, field report 002) nothing is executed - the module reads the catalog
    snapshot O(catalog_snapshot) and returns the T-SQL plan for C(nullable_unique_mssql) (filtered unique
    indexes) and C(int_width_mismatch) (int to bigint keys) in RV(plan) and RV(tsql_script), always with
    RV(ignore:changed=false) and an empty RV(executed_queries), as check mode would. That plan has not been run
    against a live SQL Server; see the collection's C(docs/sqlserver.md).
author:
  - Django Ops maintainers (@django-ops)
extends_documentation_fragment:
  - django_ops.oauth_repair.connection
  - django_ops.oauth_repair.connection.diagnosis
  - django_ops.oauth_repair.connection.django
options:
  fix:
    description:
      - C(all), or the finding codes to repair.
      - C(leftover_scratch_database) drops the collection's scratch databases made for this database that a killed
        run left behind and no session uses (oauth_info's RV(django_ops.oauth_repair.oauth_info#module:leftovers));
        C(all) never includes it.
    type: list
    elements: str
    default: [all]
  checksum_mode:
    description:
      - C(complete) does all of DOT's checksum migration (token to text, backfill, NOT NULL, unique index), for
        a half-applied migration or inside the upgrade's window.
      - C(preupgrade) does, online, on a database still at 0011, the slow part ahead of the DOT upgrade - column,
        batched backfill, unique index - and leaves the column nullable so the running (older) code keeps
        working. Run C(complete) at the upgrade to finish in seconds.
    type: str
    choices: [complete, preupgrade]
    default: complete
  batch_size:
    description: Rows per batch (one short transaction each) of the backfills.
    type: int
    default: 10000
  throttle:
    description: Seconds to sleep between two batches, to leave room for live traffic.
    type: float
    default: 0
  progress_file:
    description:
      - JSON file (mode 0600) rewritten after each batch with rows done and total, rate and ETA; a role running
        this module asynchronously reads it to show progress.
      - It also holds the process id (C(pid)) and, before each step runs, the plan with each step's status so far
        (C(plan); C(running) for the step under way, C(pending) for those after it), so a killed run can be told
        apart (M(django_ops.oauth_repair.async_progress)).
    type: path
  checksum_duplicates:
    description:
      - What to do with token_checksum values that occur more than once. C(fail) stops before the unique index
        and reports the row ids; C(keep_newest) deletes all but the newest row of each group and reports the
        deleted ids.
    type: str
    choices: [fail, keep_newest]
    default: fail
  mssql_online:
    description:
      - O(engine=mssql) only. Whether the filtered unique indexes are built with C(ONLINE = ON) (Enterprise,
        Developer and Evaluation editions, Azure SQL). Omitted, it is decided from the edition in the snapshot.
    type: bool
attributes:
  check_mode:
    support: full
    description: Builds the same plan from the same live catalog and returns it with its SQL; changes nothing.
  diff_mode:
    support: full
    description: The schema of the tables the plan touches, before and after.
'''

EXAMPLES = r'''
- name: Finish DOT's half-applied token checksum migration
  django_ops.oauth_repair.oauth_repair:
    engine: postgresql
    db: site
    fix: [all]
    lock_timeout: 3000
  register: repair

- name: Record what the repair completed
  django_ops.oauth_repair.django_migration:
    engine: postgresql
    db: site
    app: oauth2_provider
    name: "{{ item }}"
  loop: "{{ repair.completed_migrations }}"

- name: Repair a site from before DOT 1.3 (int ids, 0004 dead half-way), then record what it completed
  django_ops.oauth_repair.oauth_repair:
    engine: mysql
    db: site
    fix: [int_width_mismatch, migration_half_applied, missing_timestamp_columns, migration_stale_names]
    lock_timeout: 3000
  register: seed000

- name: Record the migrations whose work is now complete (0004 here)
  django_ops.oauth_repair.django_migration:
    engine: mysql
    db: site
    app: oauth2_provider
    names: "{{ seed000.completed_migrations }}"
  when: seed000.completed_migrations | length > 0

- name: Before upgrading DOT, do 0012's slow work online on a live database
  django_ops.oauth_repair.oauth_repair:
    engine: mysql
    login_user: django
    login_password: "{{ vault_db_password }}"
    db: site
    fix: [token_checksum_preupgrade]
    checksum_mode: preupgrade
    batch_size: 5000
    throttle: 0.05
    progress_file: /tmp/oauth_repair_progress.json
  async: 7200
  poll: 0
'''

RETURN = r'''
changed:
  description: Whether any step ran.
  returned: always
  type: bool
executed_queries:
  description:
    - The SQL that ran, in order; in check mode, the SQL that would run. A batched statement appears once, with
      its placeholders.
  returned: always
  type: list
  elements: str
plan:
  description:
    - The steps, in order, each with C(key), C(finding), C(description), C(table), C(lock) (which lock it takes),
      C(duration) (C(instant), C(batched) or C(proportional) to the table size), C(online), C(sql),
      C(migration), C(changes_type) (the step changes a column's type, so long-lived application connections may
      need recycling), and C(status) (C(done_already), C(would_run), C(ran), C(failed)), C(seconds) and, for batched
      steps, C(progress).
  returned: always
  type: list
  elements: dict
findings_before:
  description: Codes of the findings before the repair.
  returned: always
  type: list
  elements: str
findings:
  description: The findings after the repair (in check mode, the findings before it).
  returned: always
  type: list
  elements: dict
not_repaired:
  description: Chosen findings this version has no repair for, with their code, objects and message.
  returned: always
  type: list
  elements: dict
completed_migrations:
  description:
    - oauth2_provider migrations whose work is now complete but not recorded; record them with
      M(django_ops.oauth_repair.django_migration). In check mode, those the plan would complete.
  returned: always
  type: list
  elements: str
report:
  description:
    - Extra facts of the run, such as C(checksum_duplicates) (groups and row ids), C(sqlite_rebuilds),
      C(saved_foreign_keys) and C(foreign_keys_created) (widening), C(orphans) (values and row ids that stop a
      foreign key) or C(removed_migration_rows).
  returned: always
  type: dict
progress:
  description: The last progress entry of each batched step.
  returned: always
  type: dict
tsql_script:
  description:
    - O(engine=mssql) only. The whole T-SQL plan, one C(GO) batch per step of RV(plan), each under a guard read
      from the live catalog (a re-run skips what is done), key widenings in one transaction each. Run it with
      C(sqlcmd -b). It has not been run against a live SQL Server by this collection.
  returned: when O(engine=mssql)
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.findings import CATALOGUE
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.diagnosis import diagnose
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import (
    DIAGNOSIS_REQUIRED_BY, connect, diagnosis_argument_spec, diagnosis_options, fail, take_run_lock)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils import mssql_plan
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Context, Progress
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.sessions import plan_needs
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.sessions import require as require_privileges
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.repairs import (
    build_plan, repairable, schema_text, select)


def _changed_something(conn):
    """Whether a statement that changes the database ran: session settings (SET SESSION) change nothing."""
    return any(not q.lstrip().upper().startswith("SET ") for q in conn.executed_queries)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(diagnosis_argument_spec())
    argument_spec.update(
        fix=dict(type="list", elements="str", default=["all"]),
        checksum_mode=dict(type="str", choices=["complete", "preupgrade"], default="complete"),
        batch_size=dict(type="int", default=10000),
        throttle=dict(type="float", default=0),
        progress_file=dict(type="path"),
        checksum_duplicates=dict(type="str", choices=["fail", "keep_newest"], default="fail"),
        mssql_online=dict(type="bool"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_by=DIAGNOSIS_REQUIRED_BY)
    p = module.params
    unknown = [c for c in p["fix"] if c != "all" and c not in CATALOGUE]
    if unknown:
        module.fail_json(msg="unknown finding code(s) in fix: %s. Fix: use 'all' or codes from docs/findings.md"
                         % ", ".join(unknown), changed=False, executed_queries=[])
    options = diagnosis_options(p)
    run_options = ("checksum_mode", "lock_timeout", "statement_timeout", "batch_size", "throttle",
                   "checksum_duplicates")
    options.update((k, p[k]) for k in run_options)
    if p["engine"] == "mssql":  # plan only, from a catalog snapshot; never executed (docs/sqlserver.md)
        options["mssql_online"] = p["mssql_online"]
        mssql_plan.repair_module(module, options)
    conn = connect(module)
    ctx = None
    try:
        take_run_lock(module, conn)
        # the diagnosis waits for locks too: connect() bounded every statement by lock_timeout/statement_timeout
        before, snap = diagnose(conn, options)
        chosen = select(before["findings"], p["fix"], before.get("leftovers"))
        plan = build_plan(snap, chosen, options)
        tables = sorted(set(s.table for s in plan.steps))
        diff_before = schema_text(snap, tables)
        ctx = Context(conn, options, Progress(p["progress_file"]))
        # privileges first: a missing one fails here with nothing run (in check mode: a warning)
        for warning in require_privileges(conn, plan_needs(plan.steps, ctx.live), module.check_mode, "oauth_repair"):
            module.warn(warning)
        reports = plan.execute(ctx, check_mode=module.check_mode)
        changed = any(r["changed"] for r in reports)
        if module.check_mode or not changed:
            after, after_snap = before, snap
            queries = [q for r in reports if r["status"] == "would_run" for q in r["sql"]]
        else:
            after, after_snap = diagnose(conn, options)
            queries = list(conn.executed_queries)
        if module.check_mode:
            completed = sorted(set(r["migration"] for r in reports if r["migration"] and r["status"] == "would_run"
                                   and r["migration"] not in before["migrations"]["oauth2_provider"]["applied"]))
        else:
            state = after["migrations"]["oauth2_provider"]["state"]
            completed = [s["name"] for s in state if s["status"] == "unrecorded_complete"]
        result = dict(
            changed=changed,
            executed_queries=queries,
            plan=reports,
            findings_before=[f["code"] for f in before["findings"]],
            findings=after["findings"],
            not_repaired=[dict(code=f["code"], objects=f["objects"], message=f["message"])
                          for f in chosen if not repairable(f, conn.engine)],
            completed_migrations=completed,
            report=ctx.report,
            progress=ctx.progress.steps,
        )
        if module._diff:
            after_text = schema_text(after_snap, tables) if not module.check_mode else diff_before + "".join(
                "-- would run: %s\n" % q for q in queries)
            result["diff"] = dict(before=diff_before, after=after_text)
    except OAuthRepairError as exc:
        fail(module, exc, conn, plan=getattr(exc, "reports", []), report=ctx.report if ctx else {},
             changed=_changed_something(conn) or exc.changed)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn, changed=_changed_something(conn))
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
