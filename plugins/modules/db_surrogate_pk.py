#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_surrogate_pk
short_description: Replace a natural primary key with a surrogate auto-increment id on a live database
version_added: 0.1.0
description:
  - For a table whose primary key is a natural column (field report 003 - C(Author.name), a C(varchar)), adds an
    auto-increment O(new_column), makes it the primary key, keeps the natural column C(UNIQUE), and rewrites
    every column that references the table - M2M pivot tables included - from the natural value to the new id,
    with indexes and constraints recreated under the names Django gives them.
  - This is the migration Django cannot run (C(makemigrations) generates it, C(migrate) fails with "multiple
    primary keys" and could not rewrite the referencing rows anyway). Once done, the module records the
    model's migration that declares the change (O(migration_app), O(migration_name)) in C(django_migrations).
  - Two phases of small idempotent steps. C(prepare) is online - the new id, the batched backfills (short
    transactions), the unique index of the natural column, on PostgreSQL the indexes built C(CONCURRENTLY) -
    and can run days ahead while the code that uses the natural key is live. The switch (the rest of
    C(complete)) takes short locks and must coincide with the deploy of the code that declares the surrogate
    key. Each step reads the live catalog and skips itself when done, so a run killed at any point converges
    when run again and a second run reports RV(ignore:changed=false).
  - Natural values are matched to ids by the database, with the column's collation, as the foreign key matched
    them - on MariaDB/MySQL case- and trailing-space-insensitively (a pivot row holding C(c. pedret) gets the
    id of C(C. Pedret)).
  - Works on MariaDB/MySQL, PostgreSQL and SQLite (3.33 or later).
author:
  - Django Ops maintainers (@django-ops)
extends_documentation_fragment:
  - django_ops.oauth_repair.connection
  - django_ops.oauth_repair.connection.django
options:
  table:
    description: The table whose natural primary key is replaced, e.g. C(library_author).
    type: str
    required: true
  column:
    description:
      - The natural primary key column. Defaults to the current primary key; once a run has swapped the keys,
        the natural column is found from the catalog (the column foreign keys still reference, or the one
        under Django's C(_uniq) constraint name).
    type: str
  new_column:
    description: The surrogate key column to add and make the primary key.
    type: str
    default: id
  new_column_type:
    description:
      - C(bigint) as a C(BigAutoField) (Django's C(DEFAULT_AUTO_FIELD) in new projects) or C(int) as an
        C(AutoField). The referencing columns get the same type, as Django gives them.
      - With O(django), the type comes from the site's model (its field, or C(DEFAULT_AUTO_FIELD) and the app's
        C(default_auto_field) for an implicit C(id)); a value given here must agree with it. Without O(django) the
        default is C(bigint).
    type: str
    choices: [bigint, int]
  references:
    description:
      - The referencing columns to rewrite, as C(table.column). Default - every single-column foreign key of the
        database that references the natural key (M2M pivot tables included).
      - Give it to leave out foreign keys declared with C(to_field) (they keep referencing the natural column,
        which stays unique) or to add a column without a foreign key (C(db_constraint=False)). Give the same
        list on every run.
    type: list
    elements: str
  migration_app:
    description: App label of the migration that declares the surrogate key, e.g. C(library). With O(migration_name).
    type: str
  migration_name:
    description:
      - Name of that migration, e.g. C(0002_author_surrogate_id) - what C(makemigrations) generates after adding
        C(id = models.BigAutoField(primary_key=True)) and C(unique=True) on the natural field. It is recorded as
        applied once the schema is done, never run.
    type: str
  phase:
    description:
      - C(prepare) runs only the online steps (the code using the natural key keeps working).
      - C(complete) runs them and the switch, then records the migration.
    type: str
    choices: [prepare, complete]
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
      - JSON file (mode 0600) rewritten after each batch with rows done and total, rate and ETA.
    type: path
attributes:
  check_mode:
    support: full
    description: Builds the same plan from the live catalog and returns it, each step with its SQL and lock profile;
      changes nothing.
  diff_mode:
    support: full
    description: The schema of the table and of every referencing table, before and after.
notes:
  - Lock profile - C(prepare) takes no lock beyond a metadata lock per ALTER and row locks per batch. The switch
    holds, on PostgreSQL, C(ACCESS EXCLUSIVE) on the table and the referencing tables for one transaction (a
    catch-up scan of each referencing table, no rewrite); on MariaDB/MySQL it copies the table itself (writes
    to it wait) and rebuilds each referencing table online; on SQLite it rebuilds them under the write lock.
  - Do not run two instances on the same table at the same time.
  - See docs/surrogate-pk.md for the sequencing with a deploy and for rollback.
seealso:
  - module: django_ops.oauth_repair.django_migration
  - module: django_ops.oauth_repair.oauth_info
'''

EXAMPLES = r'''
- name: Online part, days ahead of the deploy (the site keeps running on the natural key)
  django_ops.oauth_repair.db_surrogate_pk:
    engine: postgresql
    login_user: django
    login_password: "{{ vault_db_password }}"
    db: site
    table: library_author
    phase: prepare
    batch_size: 5000
    throttle: 0.05

- name: At the deploy of the code whose migration 0002 declares Author.id - switch and record 0002
  django_ops.oauth_repair.db_surrogate_pk:
    engine: postgresql
    login_user: django
    login_password: "{{ vault_db_password }}"
    db: site
    table: library_author
    column: name
    migration_app: library
    migration_name: 0002_author_surrogate_id
    lock_timeout: 3000
  register: surgery

- name: Show what would run, without changing anything
  django_ops.oauth_repair.db_surrogate_pk:
    engine: mysql
    db: site
    table: library_author
    references:
      - library_article_authors.author_id
  check_mode: true
  diff: true
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
    - The steps, in order, each with C(key), C(finding) (C(natural_pk_referenced)), C(description), C(table),
      C(lock), C(duration) (C(instant), C(batched) or C(proportional)), C(online), C(sql), C(migration) and
      C(status) (C(done_already), C(would_run), C(ran), C(failed)), C(seconds) and, for batched steps,
      C(progress).
  returned: always
  type: list
  elements: dict
table:
  description: The table, its natural column, the new column and its type.
  returned: success
  type: dict
references:
  description: The referencing columns rewritten (C(table), C(column), C(nullable), C(foreign_key), C(batched_by)).
  returned: success
  type: list
  elements: dict
kept_references:
  description: Foreign keys to the natural column left as they are (not in O(references)).
  returned: success
  type: list
  elements: str
rows_rewritten:
  description: Referencing rows whose value was rewritten to the new id by this run.
  returned: always
  type: int
ids_assigned:
  description: Rows of the table given an id by this run.
  returned: always
  type: int
migration_recorded:
  description: Whether this run recorded the migration (in check mode, would record it).
  returned: always
  type: bool
collation:
  description: MariaDB/MySQL - the collation of the natural column, with which values were matched.
  returned: success
  type: str
progress:
  description: The last progress entry of each batched step.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import surrogate_pk
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.sessions import plan_needs
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.sessions import require as require_privileges
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import connect, django_option_spec, fail, take_run_lock
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.truth.django_models import DjangoSite, expected_schema
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Context, Progress
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.repairs import schema_text

OPTIONS = ("table", "column", "new_column", "new_column_type", "references", "migration_app", "migration_name",
           "phase", "batch_size", "throttle", "lock_timeout", "statement_timeout")


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        table=dict(type="str", required=True),
        column=dict(type="str"),
        new_column=dict(type="str", default="id"),
        new_column_type=dict(type="str", choices=["bigint", "int"]),
        django=django_option_spec(),
        references=dict(type="list", elements="str"),
        migration_app=dict(type="str"),
        migration_name=dict(type="str"),
        phase=dict(type="str", choices=list(surrogate_pk.PHASES), default="complete"),
        batch_size=dict(type="int", default=10000),
        throttle=dict(type="float", default=0),
        progress_file=dict(type="path"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_together=[("migration_app", "migration_name")])
    p = module.params
    options = dict((k, p[k]) for k in OPTIONS)
    conn = connect(module)
    ctx = None
    try:
        take_run_lock(module, conn)
        if p["django"]:
            expected = expected_schema(DjangoSite.from_options(p), conn.dialect, tables=[p["table"]])
            options["new_column_type"] = surrogate_pk.key_type_from_model(
                expected, p["table"], p["new_column"] or "id", p["new_column_type"])
        plan, target, repair = surrogate_pk.build(conn, options)
        snap = surrogate_pk.snapshot(conn)
        tables = repair.tables()
        diff_before = schema_text(snap, tables)
        ctx = Context(conn, options, Progress(p["progress_file"]))
        # privileges first: a missing one fails here with nothing run (in check mode: a warning)
        for warning in require_privileges(conn, plan_needs(plan.steps, ctx.live), module.check_mode, "db_surrogate_pk"):
            module.warn(warning)
        reports = plan.execute(ctx, check_mode=module.check_mode)
        changed = any(r["changed"] for r in reports)
        if module.check_mode or not changed:
            queries = [q for r in reports if r["status"] == "would_run" for q in r["sql"]]
        else:
            queries = list(conn.executed_queries)
        recorded = any(r["key"].startswith("surrogate_pk:record_migration:") and r["status"] in ("ran", "would_run")
                       for r in reports)
        result = dict(
            changed=changed,
            executed_queries=queries,
            plan=reports,
            table=dict(table=target.table, column=target.column, new_column=target.new_column,
                       new_column_type=target.id_type),
            references=[r.describe() for r in target.refs],
            kept_references=["%s.%s" % (fk.table, fk.columns[0]) for fk in target.kept],
            rows_rewritten=ctx.report.get("rows_rewritten", 0),
            ids_assigned=ctx.report.get("ids_assigned", 0),
            migration_recorded=recorded,
            progress=ctx.progress.steps,
        )
        if target.collation:
            result["collation"] = target.collation
        if module._diff:
            if module.check_mode:
                after = diff_before + "".join("-- would run: %s\n" % q for q in queries)
            else:
                after = schema_text(snap, tables)
            result["diff"] = dict(before=diff_before, after=after)
    except OAuthRepairError as exc:
        fail(module, exc, conn, plan=getattr(exc, "reports", []),
             changed=(bool(conn.executed_queries) or exc.changed) and not module.check_mode,
             rows_rewritten=ctx.report.get("rows_rewritten", 0) if ctx else 0)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn, changed=bool(conn.executed_queries) and not module.check_mode)
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
