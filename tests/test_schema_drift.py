"""The schema truth: the site's own Django says what the schema must be.

* A fresh ``migrate`` from zero shows zero drift on every engine, by both truths (the probe of the models and a
  scratch database migrated from zero), with a swapped Application model that has a field of its own, an app
  with an M2M to a model whose primary key is natural, and ``DEFAULT_AUTO_FIELD`` unset or ``BigAutoField``.
* The mutation suite: a freshly migrated database is changed the ways long-lived databases drift (a key
  narrowed, a column dropped, a unique dropped, an index dropped, a foreign key dropped, a UUID column made
  ``char(32)``); every change is reported with its own code, ``oauth_repair`` repairs it, and then the real
  ``migrate`` and ``makemigrations --check`` pass, DOT issues access and refresh tokens through ``/o/token/``,
  tokens issued before still authenticate and every row is unchanged. One database per engine carries all
  mutations at once, so the slow Django checks run once per engine.
"""

from __future__ import annotations

import sys

import pytest

from tests.support import django as dj
from tests.support.modules import module_utils, run_module

SITE_ENV = {"OAR_APPLICATION_MODEL": dj.SWAPPED_APPLICATION_MODEL, "OAR_EXTRA_APPS": "shelf"}
APP_TABLE = "swapapp_myapplication"


def site_option(target, extra_env):
    env = dj.manage_env(target, extra_env)
    return dict(project_dir=str(dj.PROJECT_DIR), python=sys.executable, settings="testproject.settings",
                environment=dict((k, v) for k, v in env.items() if k.startswith("OAR_") and "PASSWORD" not in k),
                secret_environment=dict((k, v) for k, v in env.items() if k.startswith("OAR_") and "PASSWORD" in k))


def info(target, extra_env, truth="django_models", **extra):
    params = dict(target.params, expected_schema=truth, django=site_option(target, extra_env),
                  application_model=dj.SWAPPED_APPLICATION_MODEL, drift_apps=["shelf"], **extra)
    result = run_module("oauth_info", params)
    assert not result.get("failed"), result.get("msg")
    return result


def drift(result):
    return sorted((f["code"], f["objects"][0], f["severity"]) for f in result["findings"]
                  if f["code"].startswith("schema_drift_"))


@pytest.mark.slow
@pytest.mark.parametrize("auto_field", ["default", "unset"])
def test_fresh_migrate_has_zero_drift(any_db, auto_field):
    env = dict(SITE_ENV)
    if auto_field == "unset":
        env["OAR_DEFAULT_AUTO_FIELD"] = "unset"
    dj.migrate(any_db, extra_env=env)
    for truth in ("django_models", "django_migrate"):
        result = info(any_db, env, truth)
        assert result["schema_truth"]["source"] == truth
        assert "shelf_book_tags" in result["schema_truth"]["tables"] or any(
            t.startswith("shelf_") and t.count("_") >= 2 for t in result["schema_truth"]["tables"])
        assert APP_TABLE in result["schema_truth"]["tables"]
        assert drift(result) == [], truth
        assert result["summary"]["healthy"]


def _mutate(target):
    """Drift a freshly migrated database; return the (code, object) pairs each change must be reported as."""
    def q(name):
        return ('`%s`' if target.engine == "mysql" else '"%s"') % name

    expected = []
    # a column of the swapped model's own is missing (the swap that forgot extra_columns)
    target.execute("ALTER TABLE %s DROP COLUMN %s" % (q(APP_TABLE), q("logo_url")))
    expected.append(("schema_drift_missing_column", APP_TABLE + ".logo_url"))
    # a named index of DOT's Meta.indexes is missing
    on = " ON %s" % q("oauth2_provider_refreshtoken") if target.engine == "mysql" else ""
    target.execute("DROP INDEX %s%s" % (q("oauth2_prov_token_f_996e8a_idx"), on))
    expected.append(("schema_drift_missing_index", "oauth2_provider_refreshtoken.token_family"))
    if target.engine == "sqlite":
        return expected
    # a unique index that integrity depends on is missing
    uniq = [r[0] for r in target.query(
        "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
        "AND COLUMN_NAME = 'client_id' AND NON_UNIQUE = 0" if target.engine == "mysql" else
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u' AND "
        "conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'client_id')]",
        [APP_TABLE] if target.engine == "mysql" else [APP_TABLE, APP_TABLE])]
    assert uniq
    if target.engine == "mysql":
        target.execute("ALTER TABLE %s DROP INDEX %s" % (q(APP_TABLE), q(uniq[0])))
    else:
        target.execute("ALTER TABLE %s DROP CONSTRAINT %s" % (q(APP_TABLE), q(uniq[0])))
    expected.append(("schema_drift_missing_unique", APP_TABLE + ".client_id"))
    # a foreign key is missing
    fk = [r[0] for r in target.query(
        "SELECT CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND "
        "TABLE_NAME = 'oauth2_provider_refreshtoken' AND COLUMN_NAME = 'user_id' AND REFERENCED_TABLE_NAME IS NOT NULL"
        if target.engine == "mysql" else
        "SELECT conname FROM pg_constraint WHERE conrelid = 'oauth2_provider_refreshtoken'::regclass "
        "AND contype = 'f' AND conname LIKE '%%user_id%%'")]
    assert len(fk) == 1
    what = "FOREIGN KEY" if target.engine == "mysql" else "CONSTRAINT"
    target.execute("ALTER TABLE %s DROP %s %s" % (q("oauth2_provider_refreshtoken"), what, q(fk[0])))
    expected.append(("schema_drift_missing_fk", "oauth2_provider_refreshtoken.user_id"))
    # a key narrower than the model, referenced by nothing (seed 000's grant.id)
    if target.engine == "mysql":
        target.execute("ALTER TABLE `oauth2_provider_grant` MODIFY `id` integer NOT NULL AUTO_INCREMENT")
        # and a UUID column as Django < 5.0 created it on MariaDB, values kept as 32 hex digits
        target.execute("ALTER TABLE `oauth2_provider_refreshtoken` MODIFY `token_family` char(36) NULL")
        target.execute("UPDATE `oauth2_provider_refreshtoken` SET `token_family` = REPLACE(`token_family`, '-', '')")
        target.execute("ALTER TABLE `oauth2_provider_refreshtoken` MODIFY `token_family` char(32) NULL")
        expected.append(("schema_drift_uuid_char32", "oauth2_provider_refreshtoken.token_family"))
    else:
        target.execute('ALTER TABLE "oauth2_provider_grant" ALTER COLUMN "id" TYPE integer')
    expected.append(("schema_drift_int_width", "oauth2_provider_grant.id"))
    return expected


@pytest.mark.slow
def test_mutation_suite_found_and_repaired(any_db):
    env = dict(SITE_ENV)
    dj.migrate(any_db, extra_env=env)
    issued = dj.issue_tokens(any_db, 3, extra_env=env)
    if any_db.engine == "mysql":
        # token families written before the drift must survive the char(32) round trip and the repair
        any_db.execute("UPDATE oauth2_provider_refreshtoken SET token_family = UUID()")
    expected = _mutate(any_db)
    fingerprint = module_utils("fingerprint")
    connection = module_utils("connection")

    def contents():
        conn = connection.connect(any_db.params)
        try:
            return fingerprint.fingerprint(conn, ["oauth2_provider_accesstoken", "oauth2_provider_refreshtoken",
                                                  "oauth2_provider_grant", APP_TABLE])
        finally:
            conn.close()

    before = contents()
    found = info(any_db, env)
    reported = set((code, obj) for code, obj, _severity in drift(found))
    for pair in expected:
        assert pair in reported, (pair, drift(found))
    assert not found["summary"]["healthy"]

    params = dict(any_db.params, expected_schema="django_models", django=site_option(any_db, env),
                  application_model=dj.SWAPPED_APPLICATION_MODEL, drift_apps=["shelf"])
    check = run_module("oauth_repair", params, check_mode=True)
    assert not check.get("failed"), check.get("msg")
    assert check["changed"] and check["executed_queries"]
    assert drift(info(any_db, env)) == drift(found)  # check mode changed nothing

    repaired = run_module("oauth_repair", params)
    assert not repaired.get("failed"), repaired.get("msg")
    assert repaired["changed"]
    left = [f for f in repaired["findings"] if f["code"].startswith("schema_drift_")]
    assert left == [], left
    assert info(any_db, env)["summary"]["healthy"]
    again = run_module("oauth_repair", params)
    assert not again.get("failed") and not again["changed"]

    # token_family changes representation (32 hex digits -> uuid): the repair compares its values itself
    same = fingerprint.compare(before, contents(), ignore=["oauth2_provider_refreshtoken.token_family"])
    assert same["differences"] == [], same
    assert repaired["report"].get("uuid_conversions", {}).get(
        "oauth2_provider_refreshtoken.token_family", {}).get("values_equal", any_db.engine != "mysql")
    dj.migrate(any_db, extra_env=env)
    dj.run_manage(any_db, "makemigrations", "--check", "--dry-run", extra_env=env)
    assert all(dj.token_authenticates(any_db, t, extra_env=env) for t in issued["access_tokens"])
    roundtrip = dj.token_roundtrip(any_db, extra_env=env)
    assert roundtrip["ok"], roundtrip
    print("mutation kinds found and repaired on %s: %d" % (any_db.engine, len(expected)))


@pytest.mark.parametrize("engine", ["mysql", "postgresql", "sqlite"])
def test_one_object_one_finding(request, engine, tmp_path):
    """Issue 11 item 2: a column both the timestamp detector and the diff see missing is one finding (the diff's
    view in its details.drift), repaired by one step; the checksum unique index likewise."""
    target = request.getfixturevalue({"mysql": "mysql_db", "postgresql": "pg_db", "sqlite": "sqlite_db"}[engine])
    env = dict(SITE_ENV)
    dj.migrate(target, extra_env=env)
    q = ('`%s`' if engine == "mysql" else '"%s"')
    target.execute("ALTER TABLE %s DROP COLUMN %s" % (q % "oauth2_provider_grant", q % "created"))
    found = info(target, env)
    objects = [(f["code"], o) for f in found["findings"] for o in f["objects"]]
    mine = [code for code, o in objects if o == "oauth2_provider_grant.created"]
    assert mine == ["missing_timestamp_columns"], found["findings"]
    legacy = [f for f in found["findings"] if f["code"] == "missing_timestamp_columns"][0]
    assert [d["code"] for d in legacy["details"]["drift"]] == ["schema_drift_missing_column"]
    params = dict(target.params, expected_schema="django_models", django=site_option(target, env),
                  application_model=dj.SWAPPED_APPLICATION_MODEL, drift_apps=["shelf"])
    repaired = run_module("oauth_repair", params)
    assert not repaired.get("failed"), repaired.get("msg")
    ran = [s["key"] for s in repaired["plan"] if s["status"] == "ran"]
    assert len([k for k in ran if "created" in k and "grant" in k]) <= 1 and ran, repaired["plan"]
    assert info(target, env)["summary"]["healthy"]


@pytest.mark.mysql
def test_uuid_conversion_under_concurrent_writes(mysql_db):
    """The char(32) -> uuid repair compares every value row by row (rows present before and after), so the
    site's inserts and deletes while it runs are not a difference (the whole-column count the benchmark caught)."""
    import threading
    env = dict(SITE_ENV)
    dj.migrate(mysql_db, extra_env=env)
    dj.issue_tokens(mysql_db, 3, extra_env=env)
    mysql_db.execute("ALTER TABLE oauth2_provider_refreshtoken MODIFY token_family char(36) NULL")
    mysql_db.execute("UPDATE oauth2_provider_refreshtoken SET token_family = REPLACE(UUID(), '-', '')")
    mysql_db.execute("ALTER TABLE oauth2_provider_refreshtoken MODIFY token_family char(32) NULL")
    # copies of an existing refresh token: every other column as DOT wrote it
    rt = "oauth2_provider_refreshtoken"
    others = [r[0] for r in mysql_db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s "
        "AND column_name NOT IN ('id', 'token', 'token_checksum', 'token_family', 'access_token_id')", (rt,))]
    first = mysql_db.query("SELECT MIN(id) FROM %s" % rt)[0][0]
    cols = ", ".join("`%s`" % c for c in others)

    def copy_sql(token_expr, source_from=""):
        return ("INSERT INTO %s (token, token_checksum, token_family, %s) SELECT %s, SHA2(%s, 256), "
                "REPLACE(UUID(), '-', ''), %s FROM %s r%s WHERE r.id = %d" % (
                    rt, cols, token_expr, token_expr, ", ".join("r.`%s`" % c for c in others), rt, source_from, first))

    mysql_db.execute(copy_sql("CONCAT('seed-', s.seq)", " JOIN seq_1_to_20000 s"))
    stop, written = threading.Event(), [0]

    def writer():
        conn = mysql_db.connect()
        try:
            cur = conn.cursor()
            while not stop.is_set():
                written[0] += 1
                token = "live-%d" % written[0]
                cur.execute(copy_sql("'%s'" % token))
                cur.execute("DELETE FROM oauth2_provider_refreshtoken WHERE token = %s", ("seed-%d" % written[0],))
        finally:
            conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        params = dict(mysql_db.params, django=site_option(mysql_db, env), application_model=dj.SWAPPED_APPLICATION_MODEL,
                      drift_apps=["shelf"], fix=["schema_drift_uuid_char32"])
        repaired = run_module("oauth_repair", params)
    finally:
        stop.set()
        thread.join(30)
    assert not repaired.get("failed"), repaired.get("msg")
    check = repaired["report"]["uuid_conversions"]["oauth2_provider_refreshtoken.token_family"]
    assert check["values_equal"] is True and check["compared"] > 0, check
    assert written[0] > 0
