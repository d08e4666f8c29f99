"""Findings of field report 000 (shared/seeds/000_*.txt): an install from before DOT 1.3 with
int ids, migration 0004 dead half-way on MySQL, created/updated missing, pre-squash history.

Covers ``int_width_mismatch``, ``migration_half_applied``, ``missing_timestamp_columns``,
``migration_stale_names`` and ``migration_unknown_names`` on every engine where they can occur,
from the seed's own tables (tests/data/seed000_*.sql) and from databases migrated by the real DOT
migrations through the real Django project and then broken the way sites break them.
"""

from __future__ import annotations

import pytest

from tests.findings_helpers import (
    APP, AT, DATA_DIR, ENGINES, GRANT, IDT, M0001, M0004, M0010, M0011, M0012, M0022, PRE_SQUASH_SEED000, RT,
    all_of, assert_codes, drop_column, info, migration_state, one, qi, record_migration, unrecord_migration)
# pytest fixtures, found by name:
from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    _templates_mysql, _templates_postgresql, _templates_sqlite, make_db)
from tests.support.django import run_manage

SEED_OBJECTS_0004 = [
    APP + ".algorithm", IDT, AT + ".id_token_id", GRANT + ".nonce", GRANT + ".claims",
    IDT + ".user_id (foreign key)", AT + ".id_token_id (foreign key)",
]


def load_seed(make_db, engine):
    target = make_db(engine, None, create_sqlite=True)
    target.execute_script((DATA_DIR / ("seed000_%s.sql" % engine)).read_text())
    return target


# --------------------------------------------------------------------------
# The seed database itself
# --------------------------------------------------------------------------


@pytest.mark.mysql
def test_seed000_mariadb_every_finding(make_db):
    """The report's MariaDB tables: int(11) application.id referenced by bigint columns whose foreign keys
    InnoDB refused (fatal); 0004 half-applied; 0001 recorded with two foreign keys missing; created/updated
    missing on application and grant; pre-squash names recorded."""
    target = load_seed(make_db, "mysql")
    result = info(target)
    assert result["server"]["vendor"] == "mariadb"
    assert result["user_table"] == "user_user"
    assert_codes(result, "int_width_mismatch", "migration_half_applied", "missing_timestamp_columns",
                 "migration_stale_names")

    width = one(result, "int_width_mismatch")
    assert width["severity"] == "fatal"
    assert width["seed"] == "000" and width["repair"] == "widen_integer_keys"
    assert width["objects"] == [APP + ".id", AT + ".application_id", RT + ".application_id", IDT + ".application_id"]
    d = width["details"]
    assert d["primary_key"] == {"table": APP, "column": "id", "type": "int"}
    assert d["target_type"] == "bigint"
    assert d["referencing"] == [
        {"table": t, "column": "application_id", "type": "bigint", "foreign_key": None, "fk_missing": True}
        for t in (AT, RT, IDT)]
    # grant.application_id is int(11) like application.id: its foreign key exists and is not reported;
    # the user_id columns match user_user.id (int) too.
    assert not any(o.startswith(GRANT) or o.endswith(".user_id") for o in width["objects"])

    half = dict((f["details"]["migration"], f) for f in all_of(result, "migration_half_applied"))
    assert sorted(half) == [M0001, M0004]
    f0001 = half[M0001]
    assert f0001["severity"] == "fatal"
    assert f0001["objects"] == ["oauth2_provider." + M0001, AT + ".application_id (foreign key)",
                                RT + ".application_id (foreign key)"]
    assert f0001["details"]["recorded"] is True
    assert f0001["details"]["missing"] == [AT + ".application_id (foreign key)", RT + ".application_id (foreign key)"]
    f0004 = half[M0004]
    assert f0004["severity"] == "fatal"
    assert f0004["objects"] == ["oauth2_provider." + M0004] + SEED_OBJECTS_0004
    assert f0004["details"]["recorded"] is False
    assert f0004["details"]["present"] == SEED_OBJECTS_0004
    assert f0004["details"]["missing"] == [IDT + ".application_id (foreign key)"]
    assert migration_state(result, M0001)["status"] == "recorded_missing_objects"
    assert migration_state(result, M0004)["status"] == "half_applied"
    assert result["migrations"]["oauth2_provider"]["half_applied"] == [M0001, M0004]

    ts = one(result, "missing_timestamp_columns")
    expected_ts = [APP + ".created", APP + ".updated", GRANT + ".created", GRANT + ".updated"]
    assert ts["severity"] == "fatal" and ts["objects"] == expected_ts and ts["details"]["columns"] == expected_ts

    stale = one(result, "migration_stale_names")
    assert stale["severity"] == "warning"
    assert stale["objects"] == ["django_migrations"]
    assert stale["details"]["names"] == PRE_SQUASH_SEED000
    assert result["migrations"]["oauth2_provider"]["unknown"] == []
    assert result["summary"]["healthy"] is False
    assert result["summary"]["by_severity"] == {"fatal": 4, "error": 0, "warning": 1, "info": 0}


@pytest.mark.postgresql
def test_seed000_postgresql_width_mismatch_is_a_silent_warning(make_db):
    """The same legacy schema on PostgreSQL: the bigint -> integer foreign keys exist (PostgreSQL accepts
    them), so 0004 completed; the mismatch is a warning, each referencing column names its foreign key."""
    target = load_seed(make_db, "postgresql")
    fks = dict(target.query(
        "SELECT t.relname, c.conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_class r ON r.oid = c.confrelid WHERE c.contype = 'f' AND r.relname = %s "
        "AND t.relname <> 'oauth2_provider_grant'", (APP,)))
    assert set(fks) == {AT, RT, IDT}

    result = info(target)
    assert_codes(result, "int_width_mismatch", "missing_timestamp_columns", "migration_stale_names")
    width = one(result, "int_width_mismatch")
    assert width["severity"] == "warning"
    assert "silently" in width["message"]
    assert width["objects"] == [APP + ".id", AT + ".application_id", RT + ".application_id", IDT + ".application_id"]
    assert width["details"]["primary_key"] == {"table": APP, "column": "id", "type": "int"}
    assert width["details"]["referencing"] == [
        {"table": t, "column": "application_id", "type": "bigint", "foreign_key": fks[t], "fk_missing": False}
        for t in (AT, RT, IDT)]
    assert all_of(result, "migration_half_applied") == []
    assert one(result, "missing_timestamp_columns")["objects"] == [
        APP + ".created", APP + ".updated", GRANT + ".created", GRANT + ".updated"]
    assert one(result, "migration_stale_names")["details"]["names"] == PRE_SQUASH_SEED000


@pytest.mark.sqlite
def test_seed000_sqlite_has_no_width_to_mismatch(make_db):
    """The same legacy schema on SQLite ("integer" ids, "bigint" foreign key columns): every SQLite
    integer is 64-bit, int_width_mismatch is not reported; the other legacy findings are."""
    target = load_seed(make_db, "sqlite")
    result = info(target)
    assert result["tables"][APP]["columns"][0]["type"] == "int"
    assert [c["type"] for c in result["tables"][AT]["columns"] if c["name"] == "application_id"] == ["bigint"]
    assert_codes(result, "missing_timestamp_columns", "migration_stale_names")
    assert all_of(result, "int_width_mismatch") == []


@pytest.mark.mysql
def test_seed000_mariadb_manual_repair_half_done(make_db):
    """The report's steps 3 and 4 done by hand, but step 4 stopped after widening application.id: the
    foreign keys are gone (step 3) and grant.application_id, still int(11), now mismatches the bigint id."""
    target = load_seed(make_db, "mysql")
    target.execute_script(
        "ALTER TABLE oauth2_provider_accesstoken"
        " DROP FOREIGN KEY oauth2_provider_acce_id_token_id_85db651b_fk_oauth2_pr,"
        " DROP FOREIGN KEY oauth2_provider_acce_source_refresh_token_e66fbc72_fk_oauth2_pr;"
        "ALTER TABLE oauth2_provider_grant"
        " DROP FOREIGN KEY oauth2_application_id_81923564_fk_oauth2_provider_application_id;"
        "ALTER TABLE oauth2_provider_refreshtoken"
        " DROP FOREIGN KEY oauth2_provider_refr_access_token_id_775e84e8_fk_oauth2_pr,"
        " DROP FOREIGN KEY oauth2_provider_refreshtoken_user_id_da837fce_fk_user_user_id;"
        "ALTER TABLE oauth2_provider_accesstoken MODIFY id bigint AUTO_INCREMENT;"
        "ALTER TABLE oauth2_provider_application MODIFY id bigint AUTO_INCREMENT;")
    result = info(target)
    width = one(result, "int_width_mismatch")
    assert width["severity"] == "fatal"
    assert width["objects"] == [APP + ".id", GRANT + ".application_id"]
    assert width["details"]["primary_key"] == {"table": APP, "column": "id", "type": "bigint"}
    assert width["details"]["referencing"] == [
        {"table": GRANT, "column": "application_id", "type": "int", "foreign_key": None, "fk_missing": True}]
    f0001 = [f for f in all_of(result, "migration_half_applied") if f["details"]["migration"] == M0001][0]
    # every foreign key of 0001 that step 3 dropped (or InnoDB refused in the first place)
    assert sorted(f0001["details"]["missing"]) == sorted([
        AT + ".application_id (foreign key)", GRANT + ".application_id (foreign key)",
        RT + ".application_id (foreign key)", RT + ".access_token_id (foreign key)",
        RT + ".user_id (foreign key)", AT + ".source_refresh_token_id (foreign key)"])


@pytest.mark.postgresql
def test_site_tables_referencing_dot_with_int_columns_postgresql(make_db):
    """A site's own table whose integer columns reference DOT's bigint ids (PostgreSQL accepts the foreign
    keys): one warning per referenced primary key, naming the site's columns and foreign keys."""
    target = make_db("postgresql")
    target.execute_script(
        'CREATE TABLE "shop_order" ("id" serial PRIMARY KEY, '
        '"client_id" integer NULL CONSTRAINT "shop_order_client_fk" REFERENCES "%s" ("id"), '
        '"token_id" integer NULL CONSTRAINT "shop_order_token_fk" REFERENCES "%s" ("id"))' % (APP, AT))
    result = info(target)
    assert_codes(result, "int_width_mismatch")
    found = dict((f["details"]["primary_key"]["table"], f) for f in all_of(result, "int_width_mismatch"))
    assert sorted(found) == [AT, APP]
    for table, column, fk in ((APP, "client_id", "shop_order_client_fk"), (AT, "token_id", "shop_order_token_fk")):
        f = found[table]
        assert f["severity"] == "warning"
        assert f["objects"] == [table + ".id", "shop_order." + column]
        assert f["details"]["primary_key"] == {"table": table, "column": "id", "type": "bigint"}
        assert f["details"]["referencing"] == [
            {"table": "shop_order", "column": column, "type": "int", "foreign_key": fk, "fk_missing": False}]


# --------------------------------------------------------------------------
# migration_half_applied on real, Django-migrated databases
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_recorded_migration_missing_its_column(make_db, engine):
    """Every migration ran through Django, then a column of recorded 0010 was dropped by hand."""
    target = make_db(engine)
    drop_column(target, APP, "allowed_origins")
    result = info(target)
    assert_codes(result, "migration_half_applied")
    f = one(result, "migration_half_applied")
    assert f["severity"] == "fatal"
    assert f["objects"] == ["oauth2_provider." + M0010, APP + ".allowed_origins"]
    assert f["details"] == {"migration": M0010, "recorded": True, "present": [], "missing": [APP + ".allowed_origins"]}
    assert migration_state(result, M0010)["status"] == "recorded_missing_objects"
    assert result["migrations"]["oauth2_provider"]["half_applied"] == [M0010]


@pytest.mark.parametrize("engine", ENGINES)
def test_unrecorded_half_applied_0012(make_db, engine):
    """Migrated by Django to 0011, then 0012's first operation (the nullable token_checksum column) run
    by hand and never recorded: 0012 is half-applied."""
    target = make_db(engine, "at_0011")
    target.execute("ALTER TABLE %s ADD COLUMN %s varchar(64) NULL" % (qi(target, AT), qi(target, "token_checksum")))
    result = info(target)
    state = migration_state(result, M0012)
    assert state["status"] == "half_applied" and state["recorded"] is False
    f = one(result, "migration_half_applied")
    assert f["severity"] == "fatal"
    assert f["objects"] == ["oauth2_provider." + M0012, AT + ".token_checksum"]
    assert f["details"]["recorded"] is False
    assert f["details"]["present"] == [AT + ".token_checksum"]
    assert f["details"]["missing"] == [AT + ".token as text", AT + " (token_checksum) unique"]
    # the column is there without its unique index: reported as such (error, not fatal: 0012 is not recorded)
    unique = one(result, "token_checksum_unique_missing")
    assert unique["severity"] == "error" and unique["details"]["migration"] == M0012
    assert_codes(result, "migration_half_applied", "token_checksum_unique_missing")
    assert result["migrations"]["oauth2_provider"]["last_applied"] == M0011


@pytest.mark.parametrize("engine", ENGINES)
def test_objects_present_without_record(make_db, engine):
    """The index of 0022 exists but its django_migrations row is gone (a migrate killed between the DDL
    and the record, or a careless --fake): status unrecorded_complete."""
    target = make_db(engine)
    unrecord_migration(target, "oauth2_provider", M0022)
    result = info(target)
    assert_codes(result, "migration_half_applied")
    f = one(result, "migration_half_applied")
    assert migration_state(result, M0022)["status"] == "unrecorded_complete"
    assert f["objects"] == ["oauth2_provider." + M0022, RT + " (token_family) index"]
    assert f["details"] == {"migration": M0022, "recorded": False, "present": [RT + " (token_family) index"],
                            "missing": []}


# --------------------------------------------------------------------------
# missing_timestamp_columns
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_timestamps_dropped_after_real_migrate(make_db, engine):
    """created/updated dropped from application, updated from idtoken: reported, and DOT really breaks."""
    target = make_db(engine)
    for table, column in ((APP, "created"), (APP, "updated"), (IDT, "updated")):
        drop_column(target, table, column)
    result = info(target)
    assert_codes(result, "missing_timestamp_columns")
    f = one(result, "missing_timestamp_columns")
    expected = [APP + ".created", APP + ".updated", IDT + ".updated"]
    assert f["severity"] == "fatal"
    assert f["objects"] == expected
    assert f["details"] == {"columns": expected}
    assert f["seed"] == "000" and f["repair"] == "add_timestamp_columns"
    # the report's symptom: DOT's models select the missing column
    proc = run_manage(target, "make_tokens", "1", check=False)
    assert proc.returncode != 0
    assert "created" in proc.stderr


# --------------------------------------------------------------------------
# django_migrations names
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_stale_pre_squash_names(make_db, engine):
    """A site upgraded from DOT < 1.3 keeps the squashed-away rows next to the real ones."""
    target = make_db(engine)
    for name in PRE_SQUASH_SEED000:
        record_migration(target, "oauth2_provider", name)
    result = info(target)
    assert_codes(result, "migration_stale_names")
    f = one(result, "migration_stale_names")
    assert f["severity"] == "warning"
    assert f["objects"] == ["django_migrations"]
    assert f["details"]["names"] == PRE_SQUASH_SEED000
    assert f["repair"] == "clean_migration_history"
    assert result["migrations"]["oauth2_provider"]["unknown"] == []


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_names_from_a_newer_dot(make_db, engine):
    """DOT rolled back after a newer DOT migrated: django_migrations names migrations we do not know."""
    target = make_db(engine)
    record_migration(target, "oauth2_provider", "0023_application_future_field")
    record_migration(target, "other_app", "0099_not_ours")
    result = info(target)
    assert_codes(result, "migration_unknown_names")
    f = one(result, "migration_unknown_names")
    assert f["severity"] == "info"
    assert f["objects"] == ["django_migrations"]
    assert f["details"]["names"] == ["0023_application_future_field"]
    assert f["repair"] is None
    assert result["migrations"]["oauth2_provider"]["stale"] == []
    assert result["summary"]["healthy"] is True
