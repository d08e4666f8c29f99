#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_privileges
short_description: Check that the database user has the privileges a repair, its backup and its window need
version_added: 0.1.0
description:
  - Answers, before anything runs, whether the connected user may do the work - C(alter) (change the tables - on
    PostgreSQL only their owner may), C(write) (change their rows), C(migrations) (record and remove rows of
    C(django_migrations)), C(restore) (put a backup back - C(alter) and, on MariaDB/MySQL, C(LOCK TABLES)),
    C(backup) (read them), C(scratch_database) (create and drop the database a backup is verified in),
    C(sessions) (see every session, to wait for the application's to drain) and C(terminate) (end other
    sessions). A failed check has a C(fix) - the GRANT that gives what is missing.
  - The modules that change the database run the same checks before their first statement and, outside check
    mode, fail with nothing run when one fails.
  - MariaDB/MySQL - from C(SHOW GRANTS) (global and database-level grants, roles that are active included).
    PostgreSQL - table ownership, C(rolsuper), C(rolcreatedb), C(pg_signal_backend). SQLite - whether the file and
    its directory are writable.
  - Read-only.
author:
  - Django Ops maintainers (@django-ops)
extends_documentation_fragment:
  - django_ops.oauth_repair.connection
options:
  checks:
    description: What to check.
    type: list
    elements: str
    choices: [alter, write, migrations, restore, backup, scratch_database, sessions, terminate]
    default: [alter, backup]
  tables:
    description: Tables the work changes or reads. Default - every C(oauth2_provider_*) table.
    type: list
    elements: str
    default: []
  fail_on_missing:
    description:
      - Fail when any check but C(sessions) and C(terminate) fails. C(sessions) and C(terminate) only warn.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Nothing to show.
notes:
  - Table-level grants on MariaDB/MySQL count for the tables they name (O(tables)); column-level grants do not.
'''

EXAMPLES = r'''
- name: May this user repair, back up and verify the backup?
  django_ops.oauth_repair.db_privileges:
    engine: postgresql
    login_user: django
    db: site
    checks: [alter, backup, scratch_database]
'''

RETURN = r'''
privileges:
  description: Per check, C(ok) and a C(detail) sentence.
  returned: always
  type: dict
  sample: {alter: {ok: false, detail: "ALTER TABLE needs the owner: app does not own oauth2_provider_accesstoken",
                   fix: "run as the tables' owner, or make app a member of it: GRANT \"django\" TO \"app\""}}
missing:
  description: The failed checks that stop the work, as sentences.
  returned: always
  type: list
  elements: str
warnings:
  description: The failed checks that only limit it.
  returned: when there are any
  type: list
  elements: str
changed:
  description: Always false.
  returned: always
  type: bool
executed_queries:
  description: Always empty.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import fingerprint as fp
from ansible_collections.django_ops.oauth_repair.plugins.module_utils import sessions as sess
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import connect, fail


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        checks=dict(type="list", elements="str", default=["alter", "backup"], choices=list(sess.CHECKS)),
        tables=dict(type="list", elements="str", default=[]),
        fail_on_missing=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    conn = connect(module)
    try:
        tables = fp.resolve_tables(conn, p["tables"])
        privileges = sess.check_privileges(conn, p["checks"], tables)
        hard, soft = sess.missing_privileges(privileges)
    except OAuthRepairError as exc:
        fail(module, exc, conn)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn)
    finally:
        conn.close()
    result = dict(changed=False, executed_queries=[], privileges=privileges, missing=hard)
    if soft:
        result["warnings"] = soft
    if hard and p["fail_on_missing"]:
        module.fail_json(msg="user %r lacks privileges on database %s: %s. Fix: grant them, or connect as a user "
                         "who has them" % (p.get("login_user"), p["db"], "; ".join(hard)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
