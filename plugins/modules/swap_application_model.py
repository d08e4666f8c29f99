#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: swap_application_model
short_description: Swap django-oauth-toolkit's OAUTH2_PROVIDER_APPLICATION_MODEL on a live database, losing nothing
version_added: 0.1.0
description:
  - For a site whose database was migrated with django-oauth-toolkit's (DOT) own C(Application) model and that now
    sets C(OAUTH2_PROVIDER_APPLICATION_MODEL) to a custom model (field report 001). Without it, Django's
    C(migrate) raises C(InconsistentMigrationHistory), the custom model's table does not exist and every token
    table's foreign key points at C(oauth2_provider_application); the usual way out drops the token tables and
    loses every OAuth application.
  - Moves the applications to the custom model's table with the same ids, client ids and (hashed) secrets, points
    every foreign key of every table that references the old table (DOT's tokens and grants, and the site's own
    tables, found in the catalog) at the new table, gives the objects the names Django gives them, then records
    the custom app's initial migration (and nothing else), so that C(migrate) completes and C(makemigrations
    --check) is clean.
  - O(strategy=rename) renames the table (every engine keeps the other tables' foreign keys on it), adds the custom
    model's extra columns with their default and then drops the default as Django does, and renames the sequence,
    indexes and constraints Django named after the old table. Everything is instant except, on SQLite, dropping a
    column default (a rebuild of the small application table).
  - O(strategy=copy) creates the new table from the old one's catalog, copies the rows in batches (resumable,
    online), re-points every foreign key (PostgreSQL - C(NOT VALID) then C(VALIDATE); MariaDB/MySQL - in place
    after the module checked every row; SQLite - Django's table rebuild), moves the sequence past the old one, and
    keeps the old table renamed (O(old_table_name)) for a rollback. O(phase=prepare) does only the online part
    (create and copy), which the running code does not notice; see the collection's C(docs/swap-application-model.md)
    for which step runs before and which after the deploy that sets the new setting.
  - Each step reads the live catalog first and is skipped when done, so a run killed anywhere converges when run
    again, and a second run reports RV(ignore:changed=false). Every statement runs under O(lock_timeout) and
    O(statement_timeout). Client secrets never leave the database (rows are copied by C(INSERT ... SELECT)).
author:
  - Django Ops maintainers (@django-ops)
extends_documentation_fragment:
  - django_ops.oauth_repair.connection
  - django_ops.oauth_repair.connection.django
options:
  model:
    description:
      - The custom model, as C(OAUTH2_PROVIDER_APPLICATION_MODEL) names it, for example C(myapp.MyApplication).
    type: str
    required: true
  table:
    description:
      - The custom model's table. Default - Django's naming, C(<app_label>_<modelname>) in lower case.
    type: str
  initial_migration:
    description:
      - The custom model's initial migration, as C(app_label.name) (or only the name, in the model's app). It must
        create the custom model (and only tables that exist when it is recorded) and have
        C(run_before = [("oauth2_provider", "0001_initial")]).
    type: str
    default: 0001_initial
  strategy:
    description:
      - C(rename) turns the old table into the new one; C(copy) builds the new table beside it and keeps the old one.
    type: str
    choices: [rename, copy]
    default: rename
  phase:
    description:
      - C(complete) does the whole swap. C(prepare) (with O(strategy=copy) only) creates and fills the new table
        without touching anything the running code uses; run it ahead of the deploy, then C(complete) in the
        deploy window.
    type: str
    choices: [complete, prepare]
    default: complete
  extra_columns:
    description:
      - The columns the custom model adds to DOT's C(AbstractApplication), as C(manage.py sqlmigrate <app>
        0001_initial) shows them for this engine.
      - With O(django), the model's own columns are read from the site's Django (type, nullability and the value
        existing applications get) and this list only overrides them; a NOT NULL column whose default is not a
        constant must be given here. With O(django), O(record_migration) also refuses to record the initial
        migration while the table lacks a column of the model.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The column name.
        type: str
        required: true
      type:
        description: The SQL type, for example C(varchar(200)), C(boolean), C(bigint), C(timestamp with time zone).
        type: str
        required: true
      default:
        description:
          - The value existing applications get (the field's default). Required unless O(extra_columns[].null).
            The database default is dropped afterwards, as Django leaves none.
        type: raw
      "null":
        description: Whether the column is nullable.
        type: bool
        default: false
  keep_old_table:
    description:
      - With O(strategy=copy), rename the old table to O(old_table_name) (kept for a rollback until you drop it)
        instead of dropping it.
    type: bool
    default: true
  old_table_name:
    description: The name the old table is kept under.
    type: str
    default: oauth2_provider_application_old_swap
  record_migration:
    description:
      - Record O(initial_migration) as applied once the table is complete, so that Django's
        C(check_consistent_history) passes. Nothing else is recorded.
    type: bool
    default: true
  batch_size:
    description: Application ids per batch of the copy (one short transaction each).
    type: int
    default: 1000
  throttle:
    description: Seconds to sleep between two batches.
    type: float
    default: 0
  progress_file:
    description: JSON file (mode 0600) rewritten after each batch of the copy with rows done, rate and ETA.
    type: path
attributes:
  check_mode:
    support: full
    description: Builds the same plan from the same live catalog and returns it with its SQL; changes nothing.
  diff_mode:
    support: full
    description: The schema of the application tables and of every table that references them, before and after.
notes:
  - Engines - MariaDB/MySQL, PostgreSQL and SQLite (3.26 or later).
  - The old table must be at DOT's 0011 or later. What DOT's 0013, 0019 and 0020 change in the Application table
    (Django skips it for a swapped model) is done on the new table - C(registration_source) (existing rows get
    C(manual)) and C(cimd_expires_at) added, C(client_id) and C(authorization_grant_type) widened - so that it is
    what the custom model's C(0001_initial) creates. A table still holding 0017's C(dcr_created) is refused.
  - Content types and permissions of the old model (C(oauth2_provider.application)) stay; Django creates the new
    model's on the next C(migrate). C(manage.py remove_stale_contenttypes) removes the old ones after checking
    that no group or user needs them.
seealso:
  - module: django_ops.oauth_repair.oauth_info
  - module: django_ops.oauth_repair.django_migration
'''

EXAMPLES = r'''
- name: Swap to accounts.OAuthClient, renaming the table (in the deploy, before the new code starts)
  django_ops.oauth_repair.swap_application_model:
    engine: postgresql
    login_host: db.example.com
    login_user: django
    login_password: "{{ vault_db_password }}"
    db: site
    model: accounts.OAuthClient
    initial_migration: accounts.0001_initial
    extra_columns:
      - {name: logo_url, type: varchar(200), default: ""}
      - {name: agreed_terms, type: boolean, default: false}

- name: Copy strategy, part 1 - any time before the deploy, online
  django_ops.oauth_repair.swap_application_model:
    engine: mysql
    db: site
    model: accounts.OAuthClient
    strategy: copy
    phase: prepare
    extra_columns:
      - {name: logo_url, type: varchar(200), default: ""}

- name: Copy strategy, part 2 - in the deploy window
  django_ops.oauth_repair.swap_application_model:
    engine: mysql
    db: site
    model: accounts.OAuthClient
    strategy: copy
    extra_columns:
      - {name: logo_url, type: varchar(200), default: ""}
  register: swap

- name: Preview the plan and its SQL
  django_ops.oauth_repair.swap_application_model:
    engine: sqlite
    db: /srv/site/db.sqlite3
    model: swapapp.MyApplication
    extra_columns: [{name: logo_url, type: varchar(200), default: ""}]
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
    - The SQL that ran, in order (values bound as C(%s)); in check mode the SQL that would run. A batched statement
      appears once.
  returned: always
  type: list
  elements: str
plan:
  description:
    - The steps in order, each with C(key), C(description), C(table), C(lock), C(duration), C(online), C(sql),
      C(migration) and C(status) (C(done_already), C(would_run), C(ran), C(failed)), C(seconds), and for the copy
      C(progress).
  returned: always
  type: list
  elements: dict
foreign_keys:
  description:
    - C(before) and C(after) - every foreign key that references the old table, the new table or the kept table,
      with C(table), C(columns), C(name) (none on SQLite), C(ref_table) and C(ref_columns).
  returned: always
  type: dict
rows_copied:
  description: Rows inserted into the new table by this run (copy strategy).
  returned: always
  type: int
rows_refreshed:
  description: Copied rows updated again because they changed in the old table since they were copied.
  returned: always
  type: int
tables:
  description: C(old), C(new) and C(kept) table names, and C(rows) - the row count of each that exists afterwards.
  returned: always
  type: dict
recorded_migration:
  description: The migration recorded (or to record) as C(app.name), or none when O(record_migration=false).
  returned: always
  type: str
report:
  description: Extra facts, such as C(sqlite_rebuilds) (statements per rebuilt table) or C(next_id).
  returned: always
  type: dict
progress:
  description: The last progress entry of the copy.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.sessions import plan_needs
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.sessions import require as require_privileges
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import connect, django_option_spec, fail, take_run_lock
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.truth.django_models import DjangoSite, expected_schema
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.plan import Context, Plan, Progress
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.repairs import schema_text
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.swap_application import (
    DEFAULT_KEPT_TABLE, Spec, Swap)

SUPPORTED_ENGINES = ("mysql", "postgresql", "sqlite")


class _Catalog(object):
    """What repairs.schema_text needs: load(name) from the live catalog."""

    def __init__(self, conn):
        self.conn = conn

    def load(self, name):
        return self.conn.dialect.load_tables(self.conn, [name]).get(name)


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        model=dict(type="str", required=True),
        table=dict(type="str"),
        initial_migration=dict(type="str", default="0001_initial"),
        strategy=dict(type="str", choices=["rename", "copy"], default="rename"),
        phase=dict(type="str", choices=["complete", "prepare"], default="complete"),
        extra_columns=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            type=dict(type="str", required=True),
            default=dict(type="raw"),
            null=dict(type="bool", default=False),
        )),
        keep_old_table=dict(type="bool", default=True),
        old_table_name=dict(type="str", default=DEFAULT_KEPT_TABLE),
        record_migration=dict(type="bool", default=True),
        batch_size=dict(type="int", default=1000),
        throttle=dict(type="float", default=0),
        progress_file=dict(type="path"),
        django=django_option_spec(),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    if p["engine"] not in SUPPORTED_ENGINES:
        module.fail_json(msg="engine %s is not supported by swap_application_model [object: engine]. Fix: use it "
                             "on MariaDB/MySQL, PostgreSQL or SQLite" % p["engine"], changed=False,
                         executed_queries=[])
    conn = connect(module)
    ctx = None
    result = {}
    try:
        take_run_lock(module, conn)
        options = dict(p)
        if p["django"]:
            # the truth: the swapped model's own columns come from the site's Django, extra_columns overrides
            options["expected"] = expected_schema(DjangoSite.from_options(p), conn.dialect)
        spec = Spec(conn.dialect, options)
        swap = Swap(conn, spec)
        swap.validate()
        plan = Plan(swap.steps())
        catalog = _Catalog(conn)
        tables = swap.tables_touched()
        diff_before = schema_text(catalog, tables)
        fks_before = swap.foreign_keys_now()
        ctx = Context(conn, dict(p), Progress(p["progress_file"]))
        # privileges first: a missing one fails here with nothing run (in check mode: a warning)
        for warning in require_privileges(conn, plan_needs(plan.steps, ctx.live), module.check_mode, "swap_application_model"):
            module.warn(warning)
        reports = plan.execute(ctx, check_mode=module.check_mode)
        changed = any(r["changed"] for r in reports)
        if module.check_mode or not changed:
            queries = [q for r in reports if r["status"] == "would_run" for q in r["sql"]]
        else:
            queries = list(conn.executed_queries)
        rows = {}
        for name in (swap.old, swap.new, swap.kept):
            if catalog.load(name) is not None:
                rows[name] = swap.count(name)
        result = dict(
            changed=changed,
            executed_queries=queries,
            plan=reports,
            foreign_keys=dict(before=fks_before, after=swap.foreign_keys_now()),
            rows_copied=ctx.report.pop("rows_copied", 0),
            rows_refreshed=ctx.report.pop("rows_refreshed", 0),
            tables=dict(old=swap.old, new=swap.new, kept=swap.kept, rows=rows),
            recorded_migration="%s.%s" % (spec.migration_app, spec.migration_name) if spec.record else None,
            report=ctx.report,
            progress=ctx.progress.steps,
        )
        if module._diff:
            if module.check_mode:
                after = diff_before + "".join("-- would run: %s\n" % q for q in queries)
            else:
                after = schema_text(catalog, tables)
            result["diff"] = dict(before=diff_before, after=after)
    except OAuthRepairError as exc:
        report = dict(ctx.report) if ctx else {}
        fail(module, exc, conn, plan=getattr(exc, "reports", []), report=report,
             changed=bool(conn.executed_queries) or exc.changed)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn, changed=bool(conn.executed_queries))
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
