"""The test project's fixtures: the ``shelf`` app and the ``token_roundtrip`` command.

* ``shelf`` migrates from zero on every engine, with ``DEFAULT_AUTO_FIELD``
  left to Django (``AutoField``) or at the project's ``BigAutoField``, next
  to a swapped Application model, and its migration matches its models
  (``makemigrations --check``) either way;
* ``token_roundtrip`` gets tokens from DOT's real endpoint, refreshes them
  and uses them, also when run again on the same database.
"""

from __future__ import annotations

import pytest

from tests.support import django

SHELF_ENV = {"OAR_EXTRA_APPS": "shelf", "OAR_APPLICATION_MODEL": django.SWAPPED_APPLICATION_MODEL}

#: information_schema ``data_type`` of an AutoField / BigAutoField column.
INT_TYPES = {"mysql": ("int", "bigint"), "postgresql": ("integer", "bigint")}


def _data_type(target, table: str, column: str) -> str:
    schema = "DATABASE()" if target.engine == "mysql" else "current_schema()"
    rows = target.query("SELECT data_type FROM information_schema.columns "
                        f"WHERE table_schema = {schema} AND table_name = %s AND column_name = %s",
                        (table, column))
    assert len(rows) == 1, (table, column, rows)
    return rows[0][0].lower()


@pytest.mark.slow
@pytest.mark.parametrize("auto_field", ["unset", None], ids=["AutoField", "BigAutoField"])
def test_shelf_migrates_and_matches_its_models(any_db, auto_field):
    env = dict(SHELF_ENV)
    if auto_field is not None:
        env["OAR_DEFAULT_AUTO_FIELD"] = auto_field
    django.migrate(any_db, extra_env=env)
    assert {"shelf_tag", "shelf_item", "shelf_item_tags"} <= set(any_db.tables())
    check = django.run_manage(any_db, "makemigrations", "--check", "--dry-run",
                              extra_env=env, check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    if any_db.engine in INT_TYPES:  # SQLite says "integer" for both
        expected = INT_TYPES[any_db.engine][auto_field is None]
        assert _data_type(any_db, "shelf_item", "id") == expected
        assert _data_type(any_db, "shelf_item_tags", "item_id") == expected


@pytest.mark.slow
def test_token_roundtrip_twice(sqlite_db):
    env = {"OAR_APPLICATION_MODEL": django.SWAPPED_APPLICATION_MODEL}
    django.migrate(sqlite_db, extra_env=env)
    expected = {"ok": True, "password_status": 200, "refresh_status": 200,
                "api_status": 200, "error": None}
    assert django.token_roundtrip(sqlite_db, extra_env=env) == expected
    # Again: the user and application exist; new password and secret.
    assert django.token_roundtrip(sqlite_db, extra_env=env) == expected
    rows = sqlite_db.query("SELECT count(*) FROM swapapp_myapplication WHERE name = 'oar-roundtrip'")
    assert rows == [(1,)]
