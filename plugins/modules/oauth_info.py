#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: oauth_info
short_description: Diagnose the django-oauth-toolkit tables of a Django database
version_added: 0.1.0
description:
  - Reads the live catalog and data of a Django site's database and reports every
    django-oauth-toolkit (DOT) table, the C(django_migrations) state of C(oauth2_provider) and of the apps of
    swapped models, and the known breakages it finds (O(ignore:findings)), each with a stable code, a severity,
    the objects involved, the field report it corresponds to and the repair that fixes it.
  - Read-only. Runs the same in check mode.
  - Findings come from the live catalog and data only. On big tables row counts may be estimates and the
    checksum check a sample; the result says so (RV(tables), RV(checksum_checks)).
  - The codes are documented in the collection's C(docs/findings.md).
  - With O(engine=mssql) (SQL Server) the catalog comes from O(catalog_snapshot); the findings are those a
    catalog can show (C(nullable_unique_mssql) is an error there), the checks that need table data (token
    checksums) are not computed and RV(limitations) says so. Not run against a live SQL Server; see
    C(docs/sqlserver.md).
author:
  - Django Ops maintainers (@django-ops)
extends_documentation_fragment:
  - django_ops.oauth_repair.connection
  - django_ops.oauth_repair.connection.diagnosis
  - django_ops.oauth_repair.connection.django
attributes:
  check_mode:
    support: full
    description: Never changes anything.
  diff_mode:
    support: none
    description: Nothing to show; it changes nothing.
'''

EXAMPLES = r'''
- name: Diagnose a MariaDB database
  django_ops.oauth_repair.oauth_info:
    engine: mysql
    login_host: db.example.com
    login_user: django
    login_password: "{{ vault_db_password }}"
    db: site
  register: diag

- name: Stop when a fatal breakage is found
  ansible.builtin.assert:
    that: diag.summary.by_severity.fatal == 0
    fail_msg: "{{ diag.findings | map(attribute='message') | list }}"

- name: Diagnose a SQLite site whose application model is being swapped
  django_ops.oauth_repair.oauth_info:
    engine: sqlite
    db: /srv/site/db.sqlite3
    application_model: accounts.OAuthClient

- name: Check a natural-key table and portability to SQL Server
  django_ops.oauth_repair.oauth_info:
    engine: postgresql
    db: site
    natural_pk_tables: [app_author]
    target_engines: [mssql]
'''

RETURN = r'''
server:
  description: What was connected to.
  returned: always
  type: dict
  sample: {engine: mysql, vendor: mariadb, server_version: 10.11.6-MariaDB, database: site}
tables:
  description:
    - Every DOT table (and swapped model table) by name, with C(columns) (name, normalised C(type) such as
      C(int), C(bigint), C(varchar(255)), C(text), C(uuid), C(raw_type), C(nullable), C(default),
      C(auto_increment), C(charset)), C(primary_key), C(foreign_keys) (name, columns, ref_table, ref_columns,
      on_delete), C(indexes) (name, columns, unique, primary, partial, where, constraint), C(rows) and
      C(rows_exact) (false when C(rows) is the engine's estimate).
  returned: always
  type: dict
user_table:
  description: The table of C(AUTH_USER_MODEL) that DOT references.
  returned: always
  type: str
  sample: auth_user
models:
  description: For each DOT model, its label, its table and whether it is swapped.
  returned: always
  type: dict
migrations:
  description:
    - C(rows), the C(django_migrations) rows of C(oauth2_provider) and of the swapped models' apps;
      C(oauth2_provider), DOT's migration state - C(applied), C(last_applied), C(pending), C(stale)
      (names from before DOT 1.3's squash), C(unknown), C(half_applied) and, per known migration, C(state)
      entries with C(recorded), C(status) (C(applied), C(not_applied), C(half_applied),
      C(unrecorded_complete), C(recorded_missing_objects)) and the C(present) and C(missing) objects.
  returned: always
  type: dict
findings:
  description:
    - The breakages found, most severe first. Each has C(code), C(severity) (fatal, error, warning, info),
      C(title), C(message), C(objects), C(seed) (the field report), C(repair) (what fixes it) and C(details).
  returned: always
  type: list
  elements: dict
  sample:
    - code: missing_timestamp_columns
      severity: fatal
      objects: [oauth2_provider_application.created, oauth2_provider_application.updated]
      seed: '000'
      repair: add_timestamp_columns
checksum_checks:
  description: Per token table, how the checksums were compared with sha256(token) - C(full) or C(sample).
  returned: always
  type: dict
  sample: {oauth2_provider_accesstoken: {method: sample, rows_checked: 20000, mismatches: 0}}
schema_truth:
  description:
    - What the live schema was compared with (O(expected_schema)) - C(source) (C(dot), C(django_models) or
      C(django_migrate)), the site's C(django) version, the C(models) read and their C(tables), and the number of
      C(differences) (each one a C(schema_drift_*) finding; the collection's C(docs/drift.md)).
  returned: always
  type: dict
  sample: {source: django_models, django: 5.2.19, tables: [oauth2_provider_accesstoken], differences: 0}
leftovers:
  description:
    - The collection's scratch databases on the server (C(oar_verify_*), C(oar_truth_*)) that a killed run left
      behind, each with C(name), the C(sessions) connected to it and C(own) (made for this database). Not
      findings; M(django_ops.oauth_repair.oauth_repair) with C(fix=[leftover_scratch_database]) drops this site's
      idle ones. C(readable) is false when the user may not list databases.
  returned: always
  type: dict
  sample: {scratch_databases: [{name: oar_verify_1a2b3c4d_9f8e7d6c, sessions: 0, own: true}], readable: true}
summary:
  description: Number of findings, counts by severity, the codes, and C(healthy) (no fatal or error finding).
  returned: always
  type: dict
executed_queries:
  description: Statements that changed something. Always empty - the module only reads.
  returned: always
  type: list
  elements: str
catalog_snapshot:
  description: O(engine=mssql) only. The snapshot read - source, sha256, taken_at, database, schema, server.
  returned: when O(engine=mssql)
  type: dict
limitations:
  description:
    - What the diagnosis could not see, each naming the privilege that would show it (also returned as
      warnings). A live MariaDB hides the constraint rows of C(information_schema) from a user with only
      SELECT on a table - its foreign keys and unique constraints are then read from C(SHOW CREATE TABLE),
      never reported missing. O(engine=mssql) - what a catalog snapshot cannot tell (token checksums, exact
      row counts).
  returned: always
  type: list
  elements: str
duration:
  description: Seconds the diagnosis took.
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.diagnosis import diagnose
from ansible_collections.django_ops.oauth_repair.plugins.module_utils import mssql_plan
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import (
    DIAGNOSIS_REQUIRED_BY, connect, diagnosis_argument_spec, diagnosis_options, fail)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(diagnosis_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_by=DIAGNOSIS_REQUIRED_BY)
    if module.params["engine"] == "mssql":  # from a catalog snapshot, never a live server (docs/sqlserver.md)
        mssql_plan.info_module(module, diagnosis_options(module.params))
    conn = connect(module)
    try:
        result, _snap = diagnose(conn, diagnosis_options(module.params))
    except OAuthRepairError as exc:
        fail(module, exc, conn)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn)
    finally:
        conn.close()
    for limitation in result["limitations"]:
        module.warn(limitation)
    module.exit_json(changed=False, executed_queries=[], **result)


if __name__ == "__main__":
    main()
