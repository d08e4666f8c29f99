# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between AnsibleModule and the core: argument specs and error handling."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import connection as connection_mod
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError, redact


def diagnosis_argument_spec():
    """Options of the modules that diagnose a database (documented by the DIAGNOSIS doc fragment)."""
    return dict(
        application_model=dict(type="str"),
        application_table=dict(type="str"),
        access_token_model=dict(type="str", no_log=False),
        refresh_token_model=dict(type="str", no_log=False),
        id_token_model=dict(type="str", no_log=False),
        grant_model=dict(type="str"),
        swapped_initial_migration=dict(type="str", default="0001_initial"),
        user_table=dict(type="str"),
        natural_pk_tables=dict(type="list", elements="str", default=[]),
        target_engines=dict(type="list", elements="str", choices=["mssql"], default=[]),
        exact_count_limit=dict(type="int", default=2000000),
        checksum_full_check_limit=dict(type="int", default=250000),
        checksum_sample_size=dict(type="int", default=20000),
        preupgrade_min_rows=dict(type="int", default=10000),
        expected_schema=dict(type="str", choices=["auto", "dot", "django_models", "django_migrate"],
                             default="auto"),
        django=dict(type="dict", options=dict(
            project_dir=dict(type="path", required=True),
            python=dict(type="path"),
            settings=dict(type="str"),
            environment=dict(type="dict", default={}),
            secret_environment=dict(type="dict", default={}, no_log=True),
            timeout=dict(type="int", default=300),
        )),
        drift_apps=dict(type="list", elements="str", default=[]),
        drift_allow=dict(type="list", elements="str", default=[]),
    )


#: for AnsibleModule(required_by=...): options that make sense only with another one
DIAGNOSIS_REQUIRED_BY = {"application_table": ("application_model",)}


def diagnosis_options(params):
    opts = dict((k, params.get(k)) for k in diagnosis_argument_spec())
    if opts.get("application_table") and opts.get("application_model"):
        opts["application_model"] = {"label": opts["application_model"], "table": opts["application_table"]}
    opts.pop("application_table", None)
    return opts


def connect(module):
    """Connect with the module's parameters, failing the module cleanly on error."""
    engine = module.params["engine"]
    if engine == "mysql" and connection_mod.pymysql is None:
        module.fail_json(msg=missing_required_lib("PyMySQL"), exception=connection_mod.PYMYSQL_IMPORT_ERROR)
    if engine == "postgresql" and connection_mod.psycopg is None:
        module.fail_json(msg=missing_required_lib("psycopg"), exception=connection_mod.PSYCOPG_IMPORT_ERROR)
    try:
        return connection_mod.connect(module.params)
    except OAuthRepairError as exc:
        fail(module, exc)


def fail(module, exc, conn=None, **result):
    """Fail the module with a message that names the object and the fix; never leaks the password."""
    secrets = [module.params.get("login_password")]
    if isinstance(exc, OAuthRepairError):
        msg = exc.full_message()
        result.setdefault("changed", exc.changed)
        if exc.obj:
            result.setdefault("object", exc.obj)
        if exc.fix:
            result.setdefault("fix", exc.fix)
    else:
        msg = "unexpected error: %s" % exc
        result["exception"] = traceback.format_exc()
        result.setdefault("changed", False)
    if conn is not None:
        result.setdefault("executed_queries", list(conn.executed_queries))
    module.fail_json(msg=redact(msg, secrets), **redact(result, secrets))
