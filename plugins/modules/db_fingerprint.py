#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_fingerprint
short_description: Row counts and content hashes of tables, to prove that nothing was lost
version_added: 0.1.0
description:
  - Reads the given tables (by default every C(oauth2_provider_*) table of the database) in primary-key order,
    in short batches, and returns for each its row count and one hash per column, computed from a canonical
    text form of every value. The same data gives the same fingerprint on every run, whatever the driver
    returns, and an C(int) widened to C(bigint) or a C(varchar) turned into C(text) keeps its hash.
  - With O(compare_to), compares with an earlier fingerprint (for example the one taken before a repair) and
    returns the differences - lost or extra rows, lost columns, changed values - apart from the changes
    O(ignore) declares intended. Columns and tables that only the new fingerprint has are reported as
    additions, not as differences.
  - Read-only. Runs the same in check mode.
author:
  - Django Ops maintainers (@django-ops)
extends_documentation_fragment:
  - django_ops.oauth_repair.connection
options:
  tables:
    description:
      - Tables to fingerprint. Default - every C(oauth2_provider_*) table. A table named here must exist.
    type: list
    elements: str
    default: []
  extra_tables:
    description:
      - Tables fingerprinted in addition to O(tables) (or to the default set) when they exist, for example the
        table of a swapped application model or every table a repair plan touches.
    type: list
    elements: str
    default: []
  exclude_tables:
    description: Tables left out.
    type: list
    elements: str
    default: [django_migrations]
  compare_to:
    description:
      - An earlier RV(fingerprint) (C(table -> {rows, columns, ...})) to compare with.
    type: dict
  ignore:
    description:
      - Intended changes when comparing - fnmatch patterns of C(table) or C(table.column), for example
        C(*.token_checksum) (filled by the checksum repair).
    type: list
    elements: str
    default: []
  renamed:
    description:
      - Tables renamed since O(compare_to) was taken, old name to new name (for example after swapping the
        application model with the rename strategy).
    type: dict
    default: {}
  fail_on_difference:
    description: Fail (naming the differences) when the comparison finds any.
    type: bool
    default: false
  batch_size:
    description: Rows read per query.
    type: int
    default: 5000
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Nothing to show; it changes nothing.
notes:
  - Reading every row is proportional to the table size (about a second per million values on a laptop); on
    a live database the rows read are not locked.
'''

EXAMPLES = r'''
- name: Fingerprint the DOT tables before the repair
  django_ops.oauth_repair.db_fingerprint:
    engine: postgresql
    db: site
  register: before

- name: After the repair, nothing may be lost apart from the checksums the repair filled in
  django_ops.oauth_repair.db_fingerprint:
    engine: postgresql
    db: site
    compare_to: "{{ before.fingerprint }}"
    ignore: ["*.token_checksum"]
    fail_on_difference: true
'''

RETURN = r'''
changed:
  description: Always false.
  returned: always
  type: bool
executed_queries:
  description: Always empty - the module only reads.
  returned: always
  type: list
  elements: str
tables:
  description: The tables fingerprinted, sorted.
  returned: always
  type: list
  elements: str
fingerprint:
  description:
    - Per table, C(rows), C(primary_key), C(columns) (column to hash) and C(digest) (a hash of the column
      hashes).
  returned: always
  type: dict
  sample: {oauth2_provider_application: {rows: 3, primary_key: [id], columns: {id: 5f1c..., name: 9a0b...},
           digest: 77aa...}}
rows:
  description: Per table, its row count.
  returned: always
  type: dict
  sample: {oauth2_provider_accesstoken: 201, oauth2_provider_application: 1}
equal:
  description: Whether the fingerprint equals O(compare_to), apart from intended changes.
  returned: when O(compare_to) is set
  type: bool
differences:
  description: What changed, each with C(table), C(kind) (C(table_missing), C(rows), C(column_missing),
    C(content)), C(column) where relevant and a C(message).
  returned: when O(compare_to) is set
  type: list
  elements: dict
added_columns:
  description: Columns that only the new fingerprint has (C(table.column)).
  returned: when O(compare_to) is set
  type: list
  elements: str
added_tables:
  description: Tables that only the new fingerprint has.
  returned: when O(compare_to) is set
  type: list
  elements: str
duration:
  description: Seconds the fingerprint took.
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import fingerprint as fp
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import (
    Timer, connection_argument_spec)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import connect, fail


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        tables=dict(type="list", elements="str", default=[]),
        extra_tables=dict(type="list", elements="str", default=[]),
        exclude_tables=dict(type="list", elements="str", default=["django_migrations"]),
        compare_to=dict(type="dict"),
        ignore=dict(type="list", elements="str", default=[]),
        renamed=dict(type="dict", default={}),
        fail_on_difference=dict(type="bool", default=False),
        batch_size=dict(type="int", default=5000),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    timer = Timer()
    conn = connect(module)
    try:
        tables = fp.resolve_tables(conn, p["tables"], p["extra_tables"], p["exclude_tables"])
        prints = fp.fingerprint(conn, tables, p["batch_size"])
        result = dict(changed=False, executed_queries=[], tables=tables, fingerprint=prints,
                      rows=fp.summary(prints))
        if p["compare_to"] is not None:
            result.update(fp.compare(p["compare_to"], prints, p["ignore"], p["renamed"]))
    except OAuthRepairError as exc:
        fail(module, exc, conn)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn)
    finally:
        conn.close()
    result["duration"] = timer.elapsed()
    if p["compare_to"] is not None and p["fail_on_difference"] and not result["equal"]:
        module.fail_json(msg="the data changed: %s. Fix: restore the backup taken before the change, or name "
                         "the intended changes in ignore" % "; ".join(d["message"] for d in result["differences"]),
                         **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
