# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between AnsibleModule and the core: argument specs and error handling."""

from __future__ import annotations

import re
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import connection as connection_mod
from ansible_collections.django_ops.oauth_repair.plugins.module_utils import run_lock, sessions
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError, redact
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.base import timeout_error


def django_option_spec():
    """The ``django`` option (the site's own Django, documented by the DJANGO doc fragment)."""
    return dict(type="dict", options=dict(
        project_dir=dict(type="path", required=True),
        python=dict(type="path"),
        settings=dict(type="str"),
        environment=dict(type="dict", default={}),
        secret_environment=dict(type="dict", default={}, no_log=True),
        timeout=dict(type="int", default=300),
    ))


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
        django=django_option_spec(),
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


#: table names in a statement (after FROM, JOIN, UPDATE, INTO, TABLE), quoted or not
_TABLES_IN_SQL = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO|TABLE)\s+[`\"\[]?([A-Za-z_][A-Za-z0-9_$]*)[`\"\]]?", re.I)
_CATALOG_NAMES = re.compile(r"^(information_schema|pg_|sqlite_|mysql$|performance_schema|sys$)", re.I)


def tables_in(statement):
    """The tables a statement names, in order, without catalog tables and schema names."""
    out = []
    for name in _TABLES_IN_SQL.findall(statement or ""):
        if not _CATALOG_NAMES.match(name) and name not in out and name.upper() not in ("SELECT", "ONLY", "IF"):
            out.append(name)
    return out


def timeout_failure(conn, exc, options):
    """For a lock wait or statement timeout that ran out in ``conn``'s last statement: an OAuthRepairError
    naming the table, the limit and the sessions holding the lock; None for any other error."""
    statement = conn.last_statement or ""
    tables = tables_in(statement)
    table = ", ".join(tables) or "the database"
    error = timeout_error(conn.dialect, exc, statement, table, options)
    if error is None:
        return None
    if conn.dialect.is_lock_timeout(exc):
        try:
            conn.dialect.rollback_failed(conn)
            holders = conn.dialect.lock_holders(conn, tables)
        except Exception:  # pylint: disable=broad-except
            holders = None  # the holder is a hint: the message stands without it
        if holders:
            error.msg += "; held by %s" % sessions.describe(holders)
        elif holders is not None:
            error.msg += "; the session that held it has gone"
        error.fix += " (django_ops.oauth_repair.db_sessions lists the sessions)"
    return error


def take_run_lock(module, conn):
    """One changing run per database (run_lock.py); check mode changes nothing and takes no lock."""
    if module.check_mode:
        return None
    return run_lock.take(conn, module._name)


def fail(module, exc, conn=None, **result):
    """Fail the module with a message that names the object and the fix; never leaks the password.

    A lock wait or statement timeout that ran out becomes a message naming the table, the limit and the
    sessions that hold the lock.
    """
    secrets = [module.params.get("login_password")]
    if conn is not None and not isinstance(exc, OAuthRepairError) and getattr(conn, "raw", None) is not None:
        exc = timeout_failure(conn, exc, module.params) or exc
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
