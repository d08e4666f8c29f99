#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_sessions
short_description: List the application's sessions on a database and wait until they drain
version_added: 0.1.0
description:
  - Lists the other sessions connected to the database (PostgreSQL C(pg_stat_activity), MariaDB/MySQL
    C(information_schema.PROCESSLIST)), leaving out this collection's own sessions. SQLite shows no sessions;
    there the module checks whether another process holds the database's write lock.
  - With O(wait_timeout), polls until no session matches (the application's workers are stopped and their
    connections closed), up to that many seconds. Then it fails naming the sessions that remain, or, with
    O(terminate=true), ends them.
  - Only O(terminate) changes anything.
author:
  - Django Ops maintainers (@django-ops)
extends_documentation_fragment:
  - django_ops.oauth_repair.connection
options:
  users:
    description: Only sessions of these database users count (for example the application's user). Default - any user.
    type: list
    elements: str
    default: []
  ignore_users:
    description: fnmatch patterns of database users whose sessions never count (monitoring, replication).
    type: list
    elements: str
    default: []
  include_idle:
    description:
      - Whether idle sessions count. A pooled connection (Django's C(CONN_MAX_AGE)) stays idle between requests;
        set V(false) to wait only for sessions that are running something.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the sessions to drain; C(0) only lists them.
    type: int
    default: 0
  poll_interval:
    description: Seconds between two looks.
    type: float
    default: 0.5
  terminate:
    description:
      - End the sessions still there after O(wait_timeout) (C(pg_terminate_backend), C(KILL CONNECTION)) instead of
        failing.
    type: bool
    default: false
  fail_on_timeout:
    description: Fail when sessions remain after O(wait_timeout) and O(terminate=false).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Lists and waits the same; never ends a session.
  diff_mode:
    support: none
    description: Nothing to show.
notes:
  - On MariaDB/MySQL a user without the C(PROCESS) privilege sees only its own user's sessions.
'''

EXAMPLES = r'''
- name: Wait up to a minute for the application's connections to close
  django_ops.oauth_repair.db_sessions:
    engine: postgresql
    db: site
    users: [django]
    wait_timeout: 60
'''

RETURN = r'''
changed:
  description: Whether sessions were ended.
  returned: always
  type: bool
sessions:
  description: The sessions still there at the end, each with C(id), C(user), C(client), C(state) and C(idle).
  returned: always
  type: list
  elements: dict
initial:
  description: How many sessions there were at the first look.
  returned: always
  type: int
drained:
  description: Whether no session remains (after ending them with O(terminate)).
  returned: always
  type: bool
waited:
  description: Seconds waited.
  returned: always
  type: float
terminated:
  description: Ids of the sessions ended.
  returned: always
  type: list
  elements: raw
executed_queries:
  description: Statements that changed something (ending sessions).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import sessions as sess
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import connect, fail


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        users=dict(type="list", elements="str", default=[]),
        ignore_users=dict(type="list", elements="str", default=[]),
        include_idle=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=0),
        poll_interval=dict(type="float", default=0.5),
        terminate=dict(type="bool", default=False),
        fail_on_timeout=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    conn = connect(module)
    filters = dict(users=p["users"], ignore_users=p["ignore_users"], include_idle=p["include_idle"])
    try:
        remaining, first, waited = sess.wait_drained(conn, max(p["wait_timeout"], 0), max(p["poll_interval"], 0.05),
                                                     **filters)
        terminated = []
        if remaining and p["terminate"] and not module.check_mode:
            terminated = sess.terminate(conn, remaining)
            remaining, _first, more = sess.wait_drained(conn, 5, 0.2, **filters)
            waited += more
        result = dict(changed=bool(terminated), sessions=remaining, initial=len(first), drained=not remaining,
                      waited=waited, terminated=terminated, executed_queries=list(conn.executed_queries))
    except OAuthRepairError as exc:
        fail(module, exc, conn)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn)
    finally:
        conn.close()
    if remaining and p["fail_on_timeout"] and p["wait_timeout"] > 0 and not (p["terminate"] and module.check_mode):
        module.fail_json(msg="%d session(s) still on database %s after %ss: %s. Fix: stop the application's workers "
                         "(maintenance window), raise wait_timeout, or set terminate" % (
                             len(remaining), p["db"], p["wait_timeout"], sess.describe(remaining)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
