"""Know what you cannot see (issue 11 item 6).

* A MariaDB user with only SELECT on the database: the server hides the TABLE_CONSTRAINTS and
  REFERENTIAL_CONSTRAINTS rows of information_schema from it. ``oauth_info`` reads the same catalog as the
  site's own user would (foreign keys and unique constraints from SHOW CREATE TABLE), reports the database
  healthy - no phantom ``migration_half_applied`` or ``schema_drift_missing_fk`` - and says in ``limitations``
  (and a warning) what was hidden and the GRANT that shows it.
* The modules that change the database check their privileges before their first statement: without them
  ``oauth_repair`` and ``django_migration`` fail with ``changed: false``, nothing run, the database as it was,
  and a message naming the missing privilege and the GRANT; in check mode the same is a warning and the plan
  is still shown. On PostgreSQL a SELECT-only role (not the tables' owner) gets the same guarantees, while a
  non-owner with the row privileges may still run a repair that only changes rows.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import secrets
import sys

import pytest

from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    AT, M0022, SERVER_ENGINES, _templates_mysql, _templates_postgresql, drop_unique, make_db, qi,
    record_migration, tables_and_counts, token_rows, unrecord_migration)
from tests.support import django as dj
from tests.support.modules import run_module


@contextlib.contextmanager
def limited_user(target, server, grants):
    """A login of its own on ``target`` with only ``grants`` (MariaDB: privileges on the database; PostgreSQL:
    privileges on every table of the schema); dropped afterwards."""
    name = "oar_pv_" + secrets.token_hex(4)
    if target.engine == "mysql":
        with contextlib.closing(server.connect()) as conn:
            cur = conn.cursor()
            cur.execute("CREATE USER %s@'%%'", (name,))
            try:
                cur.execute("GRANT %s ON `%s`.* TO '%s'@'%%'" % (grants, target.name, name))
                yield dict(target.params, login_user=name)
            finally:
                cur.execute("DROP USER IF EXISTS %s@'%%'", (name,))
    else:
        with contextlib.closing(server.connect(target.name)) as conn:
            conn.execute('CREATE ROLE "%s" LOGIN' % name)
            try:
                conn.execute('GRANT %s ON ALL TABLES IN SCHEMA public TO "%s"' % (grants, name))
                yield dict(target.params, login_user=name)
            finally:
                conn.execute('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "%s"' % name)
                conn.execute('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "%s"' % name)
                conn.execute('DROP ROLE "%s"' % name)


def _server(request, engine):
    return request.getfixturevalue("mariadb_server" if engine == "mysql" else "postgres_server")


def site_option(target):
    env = dj.manage_env(target, {})
    return dict(project_dir=str(dj.PROJECT_DIR), python=sys.executable, settings="testproject.settings",
                environment=dict((k, v) for k, v in env.items() if k.startswith("OAR_") and "PASSWORD" not in k),
                secret_environment=dict((k, v) for k, v in env.items() if k.startswith("OAR_") and "PASSWORD" in k))


def state(target):
    """Everything a failed module must have left as it was: the catalog as the root user reads it, the row
    counts, the migration history and the tokens."""
    catalog = run_module("oauth_info", dict(target.params))
    assert not catalog.get("failed"), catalog.get("msg")
    history = target.query("SELECT app, name FROM django_migrations ORDER BY id")
    return dict(tables=catalog["tables"], counts=tables_and_counts(target), history=[list(r) for r in history],
                tokens=[list(r) for r in token_rows(target)])


def catalog_diff(seen, expected):
    return "\n".join(difflib.unified_diff(json.dumps(expected, indent=1, sort_keys=True).splitlines(),
                                          json.dumps(seen, indent=1, sort_keys=True).splitlines(), lineterm="", n=2))


def serious(result):
    return [(f["code"], f["objects"][:3]) for f in result["findings"] if f["severity"] in ("fatal", "error")]


def warnings_text(result):
    return json.dumps(result.get("warnings", []))


def assert_refused(result, *words):
    """Failed before its first statement: changed false, nothing executed, the privilege and the fix named."""
    assert result.get("failed") is True, json.dumps(result)[:3000]
    assert result["changed"] is False, result["msg"]
    assert result.get("executed_queries") == [], result.get("executed_queries")
    assert "nothing was run" in result["msg"] and "Fix:" in result["msg"], result["msg"]
    for word in words:
        assert word in result["msg"], (word, result["msg"])


@pytest.mark.mysql
def test_mariadb_select_only_user_sees_a_healthy_database(make_db, mariadb_server):
    target = make_db("mysql", "tokens")
    root = run_module("oauth_info", dict(target.params, expected_schema="django_models", django=site_option(target)))
    assert not root.get("failed"), root.get("msg")
    assert root["summary"]["healthy"]
    with limited_user(target, mariadb_server, "SELECT") as params:
        result = run_module("oauth_info", dict(params, expected_schema="django_models", django=site_option(target)))
        assert not result.get("failed"), result.get("msg")
        # no phantom migration_half_applied (foreign keys "missing") nor schema_drift_missing_fk
        assert serious(result) == [] and result["summary"]["healthy"], serious(result)
        assert result["findings"] == root["findings"]
        # the very catalog the root user reads: foreign keys with their rules, unique constraints
        assert result["tables"] == root["tables"], catalog_diff(result["tables"], root["tables"])
        assert result["schema_truth"]["differences"] == 0
        # what was hidden, and the privilege that shows it
        assert root["limitations"] == []
        assert len(result["limitations"]) == 1, result["limitations"]
        text = result["limitations"][0]
        assert "REFERENCES" in text and "SHOW CREATE TABLE" in text and AT in text
        assert "GRANT REFERENCES ON `%s`.* TO '%s'@'%%'" % (target.name, params["login_user"]) in text
        assert text in warnings_text(result)
    with limited_user(target, mariadb_server, "SELECT, REFERENCES") as params:
        seen = run_module("oauth_info", params)
        assert seen["limitations"] == [] and serious(seen) == [] and seen["tables"] == root["tables"]


@pytest.mark.postgresql
def test_postgresql_select_only_role_sees_a_healthy_database(make_db, postgres_server):
    """pg_catalog shows every constraint to any role: nothing hidden, nothing to say."""
    target = make_db("postgresql", "tokens")
    root = run_module("oauth_info", dict(target.params))
    with limited_user(target, postgres_server, "SELECT") as params:
        result = run_module("oauth_info", params)
        assert not result.get("failed"), result.get("msg")
        assert serious(result) == [] and result["summary"]["healthy"]
        assert result["tables"] == root["tables"], catalog_diff(result["tables"], root["tables"])
        assert result["limitations"] == []


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_repair_without_privileges_fails_with_nothing_run(make_db, request, engine):
    target = make_db(engine, "tokens")
    drop_unique(target, AT, ["token_checksum"])
    broken = run_module("oauth_info", dict(target.params))
    assert not broken["summary"]["healthy"], broken["findings"]
    before = state(target)
    with limited_user(target, _server(request, engine), "SELECT") as params:
        result = run_module("oauth_repair", params)
        if engine == "mysql":
            assert_refused(result, "lacks INSERT, UPDATE, DELETE, CREATE, ALTER",
                           "GRANT INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES ON `%s`.* TO '%s'@'%%'"
                           % (target.name, params["login_user"]))
        else:
            owner = target.params["login_user"]  # who created the tables
            assert_refused(result, "does not own", AT, 'GRANT "%s" TO "%s"' % (owner, params["login_user"]))
        assert [r for r in result.get("plan", []) if r.get("status") in ("ran", "failed")] == []
        assert state(target) == before
        # check mode: the plan, and the missing privilege as a warning
        checked = run_module("oauth_repair", params, check_mode=True)
        assert not checked.get("failed"), checked.get("msg")
        assert [r for r in checked["plan"] if r["status"] == "would_run"], checked["plan"]
        assert "lack of privileges" in warnings_text(checked), checked.get("warnings")
    if engine == "mysql":  # the same repair with the privileges runs: the check refuses nothing it need not
        with limited_user(target, _server(request, engine), "ALL") as params:
            done = run_module("oauth_repair", params)
            assert not done.get("failed"), done.get("msg")
            assert done["changed"] is True and "lack of privileges" not in warnings_text(done)
            assert run_module("oauth_info", dict(target.params))["summary"]["healthy"]


@pytest.mark.postgresql
def test_postgresql_non_owner_with_row_privileges_repairs_rows(make_db, postgres_server):
    """A repair that only changes rows (a checksum backfill) needs UPDATE, not ownership: not refused."""
    target = make_db("postgresql", "tokens")
    target.execute('UPDATE "%s" SET token_checksum = %%s WHERE id = (SELECT MIN(id) FROM "%s")' % (AT, AT),
                   ("0" * 64,))
    assert not run_module("oauth_info", dict(target.params))["summary"]["healthy"]
    with limited_user(target, postgres_server, "SELECT") as params:
        refused = run_module("oauth_repair", params)
        assert_refused(refused, "lacks UPDATE on %s" % AT, 'GRANT UPDATE ON "%s" TO "%s"' % (AT, params["login_user"]))
    with limited_user(target, postgres_server, "SELECT, INSERT, UPDATE, DELETE") as params:
        done = run_module("oauth_repair", params)
        assert not done.get("failed"), done.get("msg")
        assert done["changed"] is True and run_module("oauth_info", dict(target.params))["summary"]["healthy"]


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_django_migration_without_privileges_fails_with_nothing_run(make_db, request, engine):
    target = make_db(engine, "tokens")
    unrecord_migration(target, "oauth2_provider", M0022)
    before = state(target)
    with limited_user(target, _server(request, engine), "SELECT") as params:
        args = dict(params, app="oauth2_provider", name=[M0022])
        result = run_module("django_migration", args)
        if engine == "mysql":
            assert_refused(result, "INSERT, DELETE on django_migrations",
                           "GRANT INSERT, DELETE ON `%s`.`django_migrations`" % target.name)
        else:
            assert_refused(result, "lacks INSERT on django_migrations",
                           'GRANT INSERT ON "django_migrations" TO "%s"' % params["login_user"])
        assert state(target) == before
        checked = run_module("django_migration", args, check_mode=True)
        assert not checked.get("failed"), checked.get("msg")
        assert checked["changed"] is True and "lack of privileges" in warnings_text(checked)
        record_migration(target, "oauth2_provider", M0022)
        removed = run_module("django_migration", dict(args, state="absent"))
        assert_refused(removed, "DELETE")
        assert target.query("SELECT COUNT(*) FROM django_migrations WHERE name = %s".replace(
            "%s", target.placeholder), (M0022,))[0][0] == 1
