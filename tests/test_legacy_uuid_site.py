"""A site built by Django 4.2, then run by Django 5.2: UUID columns on MariaDB.

Django < 5.0 created ``UUIDField`` columns as ``char(32)`` on MariaDB; Django
5.0+ expects MariaDB 10.7+'s ``uuid`` type and sends 36-character values. The
upgraded site migrates and checks clean and its old tokens still work, but DOT
can no longer issue a refresh token (``token_family`` is too long). On
PostgreSQL both Django versions use ``uuid`` and nothing breaks. With the site's
Django 5.2 as the schema truth, oauth_info reports both columns
(schema_drift_uuid_char32) and oauth_repair converts them, every value kept.
"""

from __future__ import annotations

import sys

import pytest

from tests.support import django
from tests.support.modules import run_module
from tests.support.legacy import DJANGO_42, build_legacy_uuid_site, legacy_python

UUID_COLUMNS = [("oauth2_provider_refreshtoken", "token_family"), ("oauth2_provider_idtoken", "jti")]


@pytest.fixture(scope="module")
def django42_python():
    """The python of the Django 4.2 + DOT 3.4.1 virtualenv (made on first use)."""
    return legacy_python(DJANGO_42)


def _column_types(target) -> dict[tuple[str, str], str]:
    schema = "DATABASE()" if target.engine == "mysql" else "current_schema()"
    kind = "column_type" if target.engine == "mysql" else "data_type"
    rows = target.query(f"SELECT table_name, column_name, {kind} FROM information_schema.columns "
                        f"WHERE table_schema = {schema} AND column_name IN ('token_family', 'jti')")
    return {(table, column): kind.lower() for table, column, kind in rows}


def _upgrade_checks_clean(target) -> None:
    """Django 5.2 (this virtualenv) finds nothing to migrate and no model change."""
    out = django.migrate(target).stdout
    assert "No migrations to apply" in out, out
    check = django.run_manage(target, "makemigrations", "--check", "--dry-run", check=False)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
@pytest.mark.mysql
def test_mariadb_char32_uuid_breaks_refresh_tokens(mysql_db, django42_python):
    tokens = build_legacy_uuid_site(mysql_db, django42_python)
    assert _column_types(mysql_db) == {column: "char(32)" for column in UUID_COLUMNS}
    families = mysql_db.query("SELECT token_family FROM oauth2_provider_refreshtoken "
                              "WHERE token_family IS NOT NULL")
    assert families and all(len(family) == 32 for (family,) in families)  # hex, no dashes

    _upgrade_checks_clean(mysql_db)
    for token in tokens["access_tokens"]:
        assert django.token_authenticates(mysql_db, token)

    result = django.token_roundtrip(mysql_db)
    assert result["ok"] is False
    assert result["password_status"] is None  # the token request itself raised
    assert "token_family" in result["error"] and "Data too long" in result["error"]

    # the schema truth (the site's own Django 5.2) finds both columns, and oauth_repair converts them
    site = dict(project_dir=str(django.PROJECT_DIR), python=sys.executable, settings="testproject.settings",
                environment=dict((k, v) for k, v in django.manage_env(mysql_db).items() if k.startswith("OAR_")))
    params = dict(mysql_db.params, django=site)
    found = run_module("oauth_info", params)
    drift = sorted((f["code"], f["objects"][0], f["severity"]) for f in found["findings"]
                   if f["code"].startswith("schema_drift_"))
    assert drift == [("schema_drift_uuid_char32", "%s.%s" % column, "fatal") for column in UUID_COLUMNS[::-1]]
    repaired = run_module("oauth_repair", params)
    assert not repaired.get("failed"), repaired.get("msg")
    assert repaired["changed"] and [f for f in repaired["findings"] if f["severity"] != "info"] == []
    assert repaired["report"]["uuid_conversions"]["oauth2_provider_refreshtoken.token_family"] == dict(
        values=len(families), compared=len(families), deleted_meanwhile=0, values_equal=True)
    assert _column_types(mysql_db) == {column: "uuid" for column in UUID_COLUMNS}
    assert sorted(r[0].replace("-", "") for r in mysql_db.query(
        "SELECT CAST(token_family AS CHAR) FROM oauth2_provider_refreshtoken WHERE token_family IS NOT NULL")) \
        == sorted(f.lower() for (f,) in families)
    _upgrade_checks_clean(mysql_db)
    for token in tokens["access_tokens"]:
        assert django.token_authenticates(mysql_db, token)
    assert django.token_roundtrip(mysql_db)["ok"] is True
    assert run_module("oauth_repair", params)["changed"] is False


@pytest.mark.slow
@pytest.mark.postgresql
def test_postgresql_uuid_columns_keep_working(pg_db, django42_python):
    tokens = build_legacy_uuid_site(pg_db, django42_python)
    assert _column_types(pg_db) == {column: "uuid" for column in UUID_COLUMNS}

    _upgrade_checks_clean(pg_db)
    assert django.token_authenticates(pg_db, tokens["access_tokens"][0])
    assert django.token_roundtrip(pg_db) == {"ok": True, "password_status": 200, "refresh_status": 200,
                                             "api_status": 200, "error": None}
