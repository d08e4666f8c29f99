"""What oauth_info reports when nothing is broken, how it refuses bad input, and check mode.

* A database migrated by the real DOT 3.4.1 migrations through the real Django project (with and
  without tokens issued by DOT) has no finding on any engine.
* Bad connection options and hostile identifiers fail cleanly: a message naming the object and the
  fix, ``changed`` false, nothing changed in the database, no file created, no password echoed.
* Check mode returns the same findings, ``changed`` false, and ``executed_queries`` is always [].
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import oauth2_provider
import pytest

from tests.findings_helpers import (
    AT, DATA_DIR, ENGINES, M0022, RT, SERVER_ENGINES, info, info_fails, tables_and_counts)
# pytest fixtures, found by name:
from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    _templates_mysql, _templates_postgresql, _templates_sqlite, make_db, template)
from tests.support import servers
from tests.support.modules import run_module

DOT_MIGRATIONS = sorted(p.stem for p in (Path(oauth2_provider.__file__).parent / "migrations").glob("0*.py"))
PASSWORD = "S3cr3t-Wr0ng-pa55w0rd"


# --------------------------------------------------------------------------
# Clean state
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["migrated", "tokens"])
@pytest.mark.parametrize("engine", ENGINES)
def test_clean_real_migrated_database_has_no_finding(template, engine, kind):
    result = info(template(engine, kind))
    assert result["findings"] == []
    assert result["summary"] == {"findings": 0, "by_severity": {"fatal": 0, "error": 0, "warning": 0, "info": 0},
                                 "codes": [], "healthy": True}
    state = result["migrations"]["oauth2_provider"]
    assert len(DOT_MIGRATIONS) == 22 and DOT_MIGRATIONS[-1] == M0022
    assert state["applied"] == DOT_MIGRATIONS
    assert state["pending"] == [] and state["half_applied"] == []
    assert state["stale"] == [] and state["unknown"] == []
    assert all(s["status"] == "applied" for s in state["state"])
    assert result["user_table"] == "auth_user"
    assert result["server"]["engine"] == engine
    rows = 5 if kind == "tokens" else 0
    assert result["tables"][AT]["rows"] == rows and result["tables"][AT]["rows_exact"] is True
    assert result["checksum_checks"] == {AT: {"method": "full", "rows_checked": rows, "mismatches": 0},
                                         RT: {"method": "full", "rows_checked": rows, "mismatches": 0}}


# --------------------------------------------------------------------------
# Check mode
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_check_mode_same_findings_nothing_executed(make_db, engine):
    """The seed 000 database: every finding identical in check mode, changed false, no query executed,
    and the database byte-for-byte the same as far as tables and row counts go."""
    target = make_db(engine, None, create_sqlite=True)
    target.execute_script((DATA_DIR / ("seed000_%s.sql" % engine)).read_text())
    before = tables_and_counts(target)
    normal = run_module("oauth_info", target.params)
    checked = run_module("oauth_info", target.params, check_mode=True)
    for result in (normal, checked):
        assert not result.get("failed"), result.get("msg")
        assert result["changed"] is False
        assert result["executed_queries"] == []
        assert result["findings"]
    for key in ("findings", "summary", "tables", "migrations", "models", "checksum_checks", "user_table"):
        assert checked[key] == normal[key], key
    assert tables_and_counts(target) == before


# --------------------------------------------------------------------------
# Connection problems
# --------------------------------------------------------------------------


@pytest.mark.mysql
def test_wrong_password_mysql(template):
    target = template("mysql", "migrated")
    result = info_fails(target.params, login_password=PASSWORD)
    assert "cannot connect to mysql database %r" % target.name in result["msg"]
    assert "Access denied" in result["msg"]
    assert result["object"] == "db"
    assert "login_password" in result["fix"]
    assert PASSWORD not in json.dumps(result)
    assert "executed_queries" not in result or result["executed_queries"] == []


@pytest.mark.postgresql
def test_wrong_role_postgresql(template):
    """The test PostgreSQL trusts local TCP connections (any password is accepted), so the refused login
    is an unknown role; the password given along must not be echoed either."""
    target = template("postgresql", "migrated")
    result = info_fails(target.params, login_user="oar_no_such_role", login_password=PASSWORD)
    assert "cannot connect to postgresql database %r" % target.name in result["msg"]
    assert 'role "oar_no_such_role" does not exist' in result["msg"]
    assert result["object"] == "db"
    assert PASSWORD not in json.dumps(result)


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_database_does_not_exist(request, template, engine):
    target = template(engine, "migrated")
    missing = servers.new_database_name()
    result = info_fails(dict(target.params, db=missing))
    assert "cannot connect to %s database %r" % (engine, missing) in result["msg"]
    assert result["object"] == "db"
    assert result["fix"]
    assert not target.server.database_exists(missing)  # not created


@pytest.mark.parametrize("engine", ENGINES)
def test_not_a_django_database(make_db, engine):
    target = make_db(engine, None, create_sqlite=True)
    target.execute_script("CREATE TABLE customers (id integer PRIMARY KEY, name varchar(20))")
    result = info_fails(target.params)
    assert "has no django_migrations table" in result["msg"]
    assert repr(target.name) in result["msg"]
    assert result["object"] == "django_migrations"
    assert "Django site's database" in result["fix"]
    assert target.tables() == ["customers"]


@pytest.mark.sqlite
def test_sqlite_file_missing_is_not_created(tmp_path):
    path = tmp_path / "oar_t_nothere.sqlite3"
    result = info_fails({"engine": "sqlite", "db": str(path)})
    assert result["msg"].startswith("SQLite database file %s does not exist" % path)
    assert result["object"] == str(path)
    assert "never created" in result["fix"]
    assert not path.exists()
    assert os.listdir(tmp_path) == []


@pytest.mark.sqlite
@pytest.mark.parametrize("name", ["site#1.sqlite3", "site?x.sqlite3", "site%41.sqlite3"])
def test_sqlite_path_with_uri_characters(template, tmp_path, name):
    """A real Django SQLite file whose name holds URI syntax is diagnosed as itself; nothing is created."""
    path = tmp_path / name
    shutil.copyfile(template("sqlite", "migrated").name, path)
    result = run_module("oauth_info", {"engine": "sqlite", "db": str(path)})
    try:
        assert not result.get("failed"), result.get("msg")
        assert result["findings"] == []
    finally:
        assert sorted(os.listdir(tmp_path)) == [name]


# --------------------------------------------------------------------------
# Hostile and unknown identifiers
# --------------------------------------------------------------------------

HOSTILE = [
    ("natural_pk_tables", ["app_author; DROP TABLE django_session"], "table name"),
    ("natural_pk_tables", ["`django_session`"], "table name"),
    ("natural_pk_tables", ['django_session"; DROP TABLE "django_session'], "table name"),
    ("natural_pk_tables", ["django_session' --"], "table name"),
    ("user_table", "auth_user; DROP TABLE django_session", "user_table"),
    ("user_table", "`auth_user`", "user_table"),
    ("user_table", 'auth_user"--', "user_table"),
    ("application_model", "swapapp.MyApplication; DROP TABLE django_session", "application_model"),
    ("application_model", "swap`app.MyApplication", "application_model"),
    ("application_model", "swapapp.My'Application", "application_model"),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_hostile_identifiers_are_refused(make_db, engine):
    target = make_db(engine)
    before = tables_and_counts(target)
    assert "django_session" in before
    for option, value, what in HOSTILE:
        result = info_fails(target.params, **{option: value})
        bad = value[0] if isinstance(value, list) else value
        assert repr(bad) in result["msg"], (option, result["msg"])
        assert what in result["msg"]
        assert result["object"] in (bad, option)
        assert result["fix"]
        assert "exception" not in result  # a refusal, not a crash
    assert tables_and_counts(target) == before


@pytest.mark.parametrize("engine", ENGINES)
def test_hostile_application_table_is_refused(make_db, engine):
    target = make_db(engine)
    before = tables_and_counts(target)
    value = "x; DROP TABLE django_session"
    try:
        result = info_fails(target.params, application_model="swapapp.MyApplication", application_table=value)
        assert repr(value) in result["msg"]
        assert result["fix"]
    finally:
        assert tables_and_counts(target) == before


@pytest.mark.sqlite
@pytest.mark.parametrize("option", ["access_token_model", "refresh_token_model", "id_token_model"])
def test_bad_model_label_names_the_option_given(template, option):
    result = info_fails(template("sqlite", "migrated").params, **{option: "not a label"})
    assert result["object"] == option
    assert result["msg"].startswith("%s must look like 'app_label.ModelName'" % option)


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_natural_pk_table(template, engine):
    target = template(engine, "migrated")
    result = info_fails(target.params, natural_pk_tables=["app_nope"])
    assert result["msg"].startswith("table 'app_nope' named in natural_pk_tables does not exist in database %r"
                                    % target.name)
    assert result["object"] == "app_nope"
    assert "db_table" in result["fix"]
