"""oauth_repair on field report 000 (shared/seeds/000_*.txt), end to end on real servers.

The broken site is built the way it arises (tests/seed000_legacy.py): Django's apps migrated by the real
``manage.py migrate``, DOT's tables from the report's legacy DDL (int ids, old index names, bigint columns
whose foreign keys InnoDB refused, no created/updated on application and grant), the pre-squash migration
names recorded, rows inserted by SQL (access tokens valid for years), then the real ``manage.py migrate``:
on MariaDB it dies half-way through 0004, on PostgreSQL 0004 passes and 0006 dies on the missing
``created`` column. That state is built once per engine (a template database) and copied for each test.

Then ``oauth_repair`` (+ ``django_migration`` for what it completed) and the real ``migrate`` must run to
the end, ``makemigrations --check`` be clean, ``showmigrations`` list nothing unapplied, the rows of every
legacy table be unchanged, and the access tokens inserted before the repair authenticate on DOT's
protected view. Runs killed between the steps (in-process) or by SIGKILL (in a subprocess, while a lock
held by the test makes the next statement wait) converge when run again.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.findings_helpers import Databases, drop_column
from tests.seed000_legacy import (
    APP, AT, GRANT, IDT, LEGACY_TABLES, M0004, PRE_SQUASH, RT, SHOP, build_legacy, migrate_dies)
from tests.support import data
from tests.support.django import migrate, run_manage, showmigrations, token_authenticates
from tests.support.modules import ROOT, module_utils, run_module
# pytest fixtures, found by name:
from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    _templates_mysql, _templates_postgresql, _templates_sqlite, make_db, template)

DOT = "oauth2_provider"
STATE = "django_ops_oauth_repair_state"
M0001 = "0001_initial"
M0010 = "0010_application_allowed_origins"
M0022 = "0022_refreshtoken_token_family_index"

MYSQL = pytest.param("mysql", marks=pytest.mark.mysql, id="mysql")
POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql")
SQLITE = pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite")

#: the foreign keys to the application after the repair: (table, column) -> name
FK_NAMES = {
    (AT, "application_id"): "oauth2_provider_acce_application_id_b22886e1_fk_oauth2_pr",
    (RT, "application_id"): "oauth2_provider_refr_application_id_2d1c311b_fk_oauth2_pr",
    (IDT, "application_id"): "oauth2_provider_idto_application_id_08c5ff4f_fk_oauth2_pr",
    # the legacy names are kept (PostgreSQL cut this one to 63 characters when it was created)
    (GRANT, "application_id"): "oauth2_application_id_81923564_fk_oauth2_provider_application_id",
    (SHOP, "application_id"): "shop_order_application_fk",
}


def ok(result):
    assert not result.get("failed"), json.dumps(result, indent=1, default=str)[:6000]
    return result


def repair(target, check_mode=False, diff=False, **options):
    return run_module("oauth_repair", dict(target.params, **options), check_mode=check_mode, diff=diff)


def info(target):
    return ok(run_module("oauth_info", target.params))


def codes(result):
    return sorted(set(f["code"] for f in result["findings"]))


def statuses(result):
    return dict((r["key"], r["status"]) for r in result["plan"])


def qi(target, name):
    return "`%s`" % name if target.engine == "mysql" else '"%s"' % name


# --------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------


def _norm(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value


def content(target, columns=None, skip=()):
    """{table: (row count, sha256 of the sorted rows, columns)} of the legacy tables, over ``columns``
    (default: every column they have now); ``skip``: (table, column) pairs left out."""
    out = {}
    for table in LEGACY_TABLES:
        cols = columns[table][2] if columns else [c.name for c in data.table_columns(target, table)]
        cols = [c for c in cols if (table, c) not in skip]
        rows = target.query("SELECT %s FROM %s" % (", ".join(qi(target, c) for c in cols), qi(target, table)))
        text = "\n".join(sorted(repr(tuple(_norm(v) for v in row)) for row in rows))
        out[table] = (len(rows), hashlib.sha256(text.encode("utf-8")).hexdigest(), cols)
    return out


def assert_content_unchanged(target, before):
    after = content(target, columns=before)
    changed = [t for t in before if after[t][:2] != before[t][:2]]
    assert not changed, "row counts / content hashes changed in %s" % changed


def fk_definitions(target, table):
    """{name: (column, referenced table, referenced column, on delete, on update[, deferrable, validated])}."""
    if target.engine == "mysql":
        rows = target.query(
            "SELECT k.constraint_name, k.column_name, k.referenced_table_name, k.referenced_column_name, "
            "r.delete_rule, r.update_rule FROM information_schema.key_column_usage k JOIN "
            "information_schema.referential_constraints r ON r.constraint_schema = k.constraint_schema "
            "AND r.constraint_name = k.constraint_name AND r.table_name = k.table_name "
            "WHERE k.table_schema = DATABASE() AND k.table_name = %s AND k.referenced_table_name IS NOT NULL",
            (table,))
        return dict((r[0], tuple(r[1:])) for r in rows)
    rows = target.query(
        "SELECT con.conname, pg_get_constraintdef(con.oid), con.convalidated FROM pg_constraint con "
        "JOIN pg_class t ON t.oid = con.conrelid WHERE con.contype = 'f' AND t.relname = %s", (table,))
    return dict((r[0], (r[1], r[2])) for r in rows)


def column_type(target, table, column):
    if target.engine == "mysql":
        rows = target.query("SELECT column_type, extra, column_default FROM information_schema.columns WHERE "
                            "table_schema = DATABASE() AND table_name = %s AND column_name = %s", (table, column))
    else:
        rows = target.query("SELECT data_type, is_identity, column_default FROM information_schema.columns WHERE "
                            "table_schema = current_schema() AND table_name = %s AND column_name = %s", (table, column))
    return rows[0] if rows else None


def schema(target):
    """A comparable description of the legacy tables, the idtoken table and the state table."""
    out = {}
    for table in LEGACY_TABLES + (IDT, STATE):
        if table not in target.tables():
            out[table] = None
            continue
        cols = sorted((c.name, c.data_type, c.nullable, c.has_default, c.auto)
                      for c in data.table_columns(target, table))
        out[table] = dict(columns=cols, fks=sorted(fk_definitions(target, table).items()))
    return out


def state_rows(target):
    if STATE not in target.tables():
        return None
    return [r[0] for r in target.query("SELECT name FROM %s" % qi(target, STATE))]


def interrupted(result):
    """The repair_interrupted findings of an oauth_info / oauth_repair result."""
    return [f for f in result["findings"] if f["code"] == "repair_interrupted"]


def assert_interrupted(db, missing, severity="error"):
    """oauth_info reports one repair_interrupted finding for application.id naming exactly the foreign keys
    ``missing`` [(table, column)] (dropped on MariaDB, NOT VALID on PostgreSQL) and how to finish it."""
    [f] = interrupted(info(db))
    assert f["severity"] == severity and f["seed"] == "000" and f["repair"] == "widen_integer_keys"
    assert f["details"]["primary_key"] == {"table": APP, "column": "id"}
    names = [FK_NAMES[m] if db.engine == "mysql" else FK_NAMES[m][:63] for m in missing]
    assert sorted((x["table"], x["columns"][0], x["name"]) for x in f["details"]["foreign_keys"]) == sorted(
        (t, c, n) for (t, c), n in zip(missing, names))
    for name in names:
        assert name in f["message"]
    assert "run oauth_repair again" in f["message"] and "fix: [repair_interrupted]" in f["message"]
    assert f["objects"][0] == "%s.id" % APP
    assert set("%s.%s" % m for m in missing) <= set(f["objects"])
    if db.engine == "mysql":
        assert STATE in f["objects"] and f["details"]["state_key"] == "widen:%s.id" % APP
        assert f["details"]["state"] == ("foreign_keys_dropped" if missing else "state_left")
    else:
        assert "NOT VALID" in f["message"] and f["details"]["state"] == "not_validated"
    return f


# --------------------------------------------------------------------------
# The broken site, built once per engine
# --------------------------------------------------------------------------


class Template(object):
    def __init__(self, target, legacy, died):
        self.target = target
        self.legacy = legacy
        self.died = died  # the CompletedProcess of the real migrate that failed


def _template_fixture(engine, server, tmp_path_factory):
    dbs = Databases(engine, server, tmp_path_factory.mktemp("oar_s000_tpl_" + engine))
    cache = []

    def get():
        if not cache:
            target = dbs.empty()
            legacy = build_legacy(target)
            cache.append(Template(target, legacy, migrate_dies(target)))
        return cache[0]

    try:
        yield get
    finally:
        dbs.close()


@pytest.fixture(scope="session")
def _s000_tpl_mysql(mariadb_server, tmp_path_factory):
    yield from _template_fixture("mysql", mariadb_server, tmp_path_factory)


@pytest.fixture(scope="session")
def _s000_tpl_postgresql(postgres_server, tmp_path_factory):
    yield from _template_fixture("postgresql", postgres_server, tmp_path_factory)


class Site(object):
    def __init__(self, template, db):
        self.db = db
        self.legacy = template.legacy
        self.died = template.died


class _Sites(object):
    def __init__(self, request, tmp_path):
        self.request = request
        self.tmp_path = tmp_path
        self.dbs = {}

    def __call__(self, engine):
        template = self.request.getfixturevalue("_s000_tpl_" + engine)()
        if engine not in self.dbs:
            server = self.request.getfixturevalue({"mysql": "mariadb_server", "postgresql": "postgres_server"}[engine])
            self.dbs[engine] = Databases(engine, server, self.tmp_path)
        return Site(template, self.dbs[engine].copy(template.target))

    def close(self):
        for dbs in self.dbs.values():
            dbs.close()


@pytest.fixture
def site(request, tmp_path):
    """``site(engine)``: a private copy of the broken legacy site of ``engine``."""
    sites = _Sites(request, tmp_path)
    try:
        yield sites
    finally:
        sites.close()


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def finish_with_django(s, completed, expect_completed):
    """Record what the repair completed, run the real migrate to the end, check makemigrations and
    showmigrations."""
    assert completed == expect_completed
    if completed:
        recorded = ok(run_module("django_migration", dict(s.db.params, app=DOT, names=completed)))
        assert recorded["changed"] and recorded["added"] == completed
    migrate(s.db)
    run_manage(s.db, "makemigrations", "--check", "--dry-run")
    shown = showmigrations(s.db)
    assert shown and all(shown.values()), shown
    assert shown["0022_refreshtoken_token_family_index"] is True


def assert_tokens_authenticate(s, count=3):
    ids = sorted(s.legacy.tokens)
    chosen = [ids[0], ids[2], ids[-1]][:count]  # application 4, application 1, the non-ASCII token
    for token_id in chosen:
        assert token_authenticates(s.db, s.legacy.tokens[token_id]), s.legacy.tokens[token_id]


def next_id(target, table):
    """Insert a row the way the site would (no id) and return the id it got; the row is deleted again."""
    if table == APP:
        row = dict(client_id="probe-%d" % time.time_ns(), redirect_uris="", client_type="public",
                   authorization_grant_type="client-credentials", client_secret="", name="probe", user_id=1,
                   skip_authorization=False)
    else:
        raise ValueError(table)
    new_id = data.insert_row(target, table, row)
    target.execute("DELETE FROM %s WHERE id = %s" % (qi(target, table), target.placeholder), (new_id,))
    return new_id


def timestamps(target, table):
    return target.query("SELECT DISTINCT created, updated FROM %s" % qi(target, table))


def run_partial(db, stop_after, **options):
    """Build the plan the module would build and execute it up to the step whose key starts with
    ``stop_after``, included: a run killed right after that step."""
    connection, diagnosis, repairs, plan = (module_utils(n) for n in ("connection", "diagnosis", "repairs", "plan"))
    opts = dict(lock_timeout=5000, statement_timeout=0, batch_size=10000, throttle=0, checksum_mode="complete",
                checksum_duplicates="fail")
    opts.update(options)
    conn = connection.connect(dict(db.params, connect_timeout=10))
    try:
        found, snap = diagnosis.diagnose(conn, opts)
        full = repairs.build_plan(snap, found["findings"], opts)
        keys = [s.key for s in full.steps]
        index = [i for i, k in enumerate(keys) if k.startswith(stop_after)]
        assert index, "no step %s in %s" % (stop_after, keys)
        reports = plan.Plan(full.steps[:index[0] + 1]).execute(plan.Context(conn, opts, plan.Progress()))
        return keys, reports
    finally:
        conn.close()


_RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.support.modules import run_module
print(json.dumps(run_module("oauth_repair", json.loads(sys.argv[2]))))
"""


def start_repair_process(db, **options):
    params = dict(db.params, **options)
    return subprocess.Popen([sys.executable, "-c", _RUNNER, ROOT, json.dumps(params)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def wait_for(condition, proc, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "oauth_repair ended before %s: %s" % (what, proc.communicate()[0][-3000:])
        assert time.monotonic() < deadline, "timed out waiting for %s" % what
        time.sleep(0.05)


def kill(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


# --------------------------------------------------------------------------
# 1. MariaDB: 0004 died half-way
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.mysql
def test_seed000_mariadb_end_to_end(site):
    s = site("mysql")
    # the real migrate died half-way through 0004, on InnoDB's refusal of the bigint -> int foreign key
    assert s.died.returncode != 0
    assert "Applying oauth2_provider.%s..." % M0004 in s.died.stdout
    assert "errno: 150" in s.died.stderr and "Foreign key constraint is incorrectly formed" in s.died.stderr
    assert showmigrations(s.db)[M0004] is False
    db = s.db
    before = content(db)
    # DOT's own 0006 hashes the client secrets once migrate goes on: that column alone is expected to change
    before_but_secret = content(db, skip=((APP, "client_secret"),))
    schema_before = schema(db)
    assert column_type(db, APP, "id")[0] == "int(11)"

    found = info(db)
    assert codes(found) == ["int_width_mismatch", "migration_half_applied", "migration_stale_names",
                            "missing_timestamp_columns"]

    # check mode: the whole plan with its SQL and lock profile, nothing changed
    checked = ok(repair(db, check_mode=True, diff=True))
    assert checked["changed"] is True
    assert schema(db) == schema_before and content(db) == before
    would = [r for r in checked["plan"] if r["status"] == "would_run"]
    assert checked["executed_queries"] == [q for r in would for q in r["sql"]]
    assert all(r["lock"] and r["sql"] and r["duration"] for r in would)
    assert checked["completed_migrations"] == [M0004]
    assert checked["not_repaired"] == []
    keys = [r["key"] for r in checked["plan"]]
    assert keys.index("int_width_mismatch:widen_pk:%s.id" % APP) < keys.index(
        "missing_timestamp_columns:add_timestamps:%s" % APP)
    widen_grant = [r for r in would if r["key"].startswith("int_width_mismatch:widen_refs:%s" % GRANT)][0]
    assert widen_grant["sql"] == [
        "SET SESSION foreign_key_checks = 0",
        "ALTER TABLE `%s` MODIFY `application_id` bigint NOT NULL, ADD CONSTRAINT `%s` FOREIGN KEY "
        "(`application_id`) REFERENCES `%s` (`id`)" % (GRANT, FK_NAMES[(GRANT, "application_id")], APP),
        "SET SESSION foreign_key_checks = 1"]
    assert "one table copy" in widen_grant["lock"]
    shop = [r for r in would if r["key"].startswith("int_width_mismatch:widen_refs:%s" % SHOP)][0]
    assert "ON DELETE CASCADE ON UPDATE CASCADE" in shop["sql"][1]
    at = [r for r in would if r["key"].startswith("int_width_mismatch:widen_refs:%s" % AT)][0]
    assert at["sql"][1].endswith("ALGORITHM=INPLACE, LOCK=NONE") and at["online"] is True
    assert STATE not in db.tables()

    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0, tzinfo=None)
    result = ok(repair(db, diff=True))
    assert result["changed"] is True and result["not_repaired"] == []
    assert result["completed_migrations"] == [M0004]
    assert codes(result) == ["migration_half_applied"]
    [left] = result["findings"]
    assert left["details"]["migration"] == M0004 and left["details"]["missing"] == []
    assert result["report"]["removed_migration_rows"] == PRE_SQUASH
    assert "  id int NOT NULL AUTO" in result["diff"]["before"] and "  id bigint NOT NULL AUTO" in result["diff"]["after"]

    # keys and every column referencing them are bigint; auto-increment kept
    assert column_type(db, APP, "id")[:2] == ("bigint(20)", "auto_increment")
    for table in (AT, RT, IDT, GRANT, SHOP):
        assert column_type(db, table, "application_id")[0] == "bigint(20)", table
    # foreign keys: the exact legacy names and actions, DOT's names where InnoDB had refused them
    for (table, column), name in FK_NAMES.items():
        fks = fk_definitions(db, table)
        assert name in fks, (table, fks)
        rules = ("CASCADE", "CASCADE") if table == SHOP else ("RESTRICT", "RESTRICT")
        assert fks[name] == (column, APP, "id") + rules
    assert fk_definitions(db, IDT)["oauth2_provider_idtoken_user_id_dd512b59_fk_auth_user_id"][:2] == (
        "user_id", "auth_user")
    assert STATE not in db.tables()
    # created/updated: the time of the repair on every row, and no default left behind
    finished = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for table in (APP, GRANT):
        [(created, updated)] = timestamps(db, table)
        assert created == updated and started <= created <= finished
        assert column_type(db, table, "created")[2] in (None, "NULL")
        assert column_type(db, table, "updated")[2] in (None, "NULL")
    assert_content_unchanged(db, before)
    recorded = [r[0] for r in db.query("SELECT name FROM django_migrations WHERE app = %s", (DOT,))]
    assert not set(PRE_SQUASH) & set(recorded) and M0001 in recorded

    again = ok(repair(db))
    assert again["changed"] is False and again["executed_queries"] == []
    assert again["completed_migrations"] == [M0004]

    finish_with_django(s, result["completed_migrations"], [M0004])
    assert_content_unchanged(db, before_but_secret)
    assert_tokens_authenticate(s)
    final = ok(repair(db))
    assert final["changed"] is False and final["findings"] == []
    assert next_id(db, APP) == 5  # the counter went on past the old maximum (AUTO_INCREMENT=5)


# --------------------------------------------------------------------------
# 2. PostgreSQL: 0004 passed, 0006 died on the missing created column
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgresql
def test_seed000_postgresql_end_to_end(site):
    s = site("postgresql")
    assert s.died.returncode != 0
    assert "Applying oauth2_provider.%s... OK" % M0004 in s.died.stdout
    assert "Applying oauth2_provider.0006_alter_application_client_secret..." in s.died.stdout
    assert "column oauth2_provider_application.created does not exist" in s.died.stderr
    shown = showmigrations(s.db)
    assert shown[M0004] is True and shown["0006_alter_application_client_secret"] is False
    db = s.db
    before = content(db)
    before_but_secret = content(db, skip=((APP, "client_secret"),))
    schema_before = schema(db)
    found = info(db)
    assert codes(found) == ["int_width_mismatch", "migration_stale_names", "missing_timestamp_columns"]

    checked = ok(repair(db, check_mode=True))
    assert schema(db) == schema_before and content(db) == before
    widen = [r for r in checked["plan"] if r["key"] == "int_width_mismatch:widen_pk:%s.id" % APP][0]
    assert widen["sql"][0] == "BEGIN" and widen["sql"][-1] == "COMMIT"
    assert 'ALTER TABLE "%s" ALTER COLUMN "id" TYPE bigint' % APP in widen["sql"]
    assert "ALTER SEQUENCE public.oauth2_provider_application_id_seq AS bigint" in widen["sql"]
    assert all(q.endswith(" NOT VALID") for q in widen["sql"] if " ADD CONSTRAINT " in q)
    assert "ACCESS EXCLUSIVE" in widen["lock"]
    validate = [r for r in checked["plan"] if r["key"].startswith("int_width_mismatch:validate:")][0]
    assert validate["online"] is True and len(validate["sql"]) == 5

    result = ok(repair(db))
    assert result["changed"] is True and result["not_repaired"] == []
    assert result["completed_migrations"] == []
    assert result["findings"] == []
    assert column_type(db, APP, "id")[0] == "bigint"
    assert db.query("SELECT format_type(seqtypid, NULL) FROM pg_sequence WHERE seqrelid = "
                    "pg_get_serial_sequence('\"%s\"', 'id')::regclass" % APP) == [("bigint",)]
    for (table, column), name in FK_NAMES.items():
        name = name[:63]
        defs = fk_definitions(db, table)
        assert name in defs, (table, defs)
        definition, validated = defs[name]
        assert validated is True
        assert definition.startswith("FOREIGN KEY (%s) REFERENCES %s(id)" % (column, APP))
        if table == SHOP:
            assert definition.endswith("ON UPDATE CASCADE ON DELETE CASCADE")
        else:
            assert definition.endswith("DEFERRABLE INITIALLY DEFERRED")
        assert column_type(db, table, column)[0] == "bigint"
    assert_content_unchanged(db, before)
    for table in (APP, GRANT):
        [(created, updated)] = timestamps(db, table)
        assert created == updated
        assert column_type(db, table, "created")[2] is None
    assert ok(repair(db))["changed"] is False

    finish_with_django(s, result["completed_migrations"], [])
    assert_content_unchanged(db, before_but_secret)
    assert_tokens_authenticate(s)
    assert ok(repair(db))["changed"] is False
    assert next_id(db, APP) == 5


# --------------------------------------------------------------------------
# 3. Killed runs converge
# --------------------------------------------------------------------------


def assert_widened(db):
    """The end state of the widening on ``db`` (either engine)."""
    assert column_type(db, APP, "id")[0] in ("bigint(20)", "bigint")
    for (table, column), name in FK_NAMES.items():
        assert column_type(db, table, column)[0] in ("bigint(20)", "bigint"), table
        defs = fk_definitions(db, table)
        name = name if db.engine == "mysql" else name[:63]
        assert name in defs, (table, sorted(defs))
        if db.engine == "mysql":
            assert defs[name][3:] == (("CASCADE", "CASCADE") if table == SHOP else ("RESTRICT", "RESTRICT"))
        else:
            assert defs[name][1] is True, (table, defs[name])
            assert ("ON UPDATE CASCADE ON DELETE CASCADE" if table == SHOP else "DEFERRABLE INITIALLY DEFERRED") \
                in defs[name][0]
    assert STATE not in db.tables()


@pytest.mark.mysql
@pytest.mark.parametrize("stop_after", ["int_width_mismatch:save_drop_fks", "int_width_mismatch:widen_pk",
                                        "int_width_mismatch:widen_refs:%s" % GRANT])
def test_mariadb_killed_between_steps_converges(site, stop_after):
    """Killed after the foreign keys were dropped (and saved), after the key was widened, or after one
    referencing table was done: the saved definitions bring every foreign key back, exactly."""
    s = site("mysql")
    before = content(s.db)
    keys, reports = run_partial(s.db, stop_after)
    assert [r["status"] for r in reports] == ["ran"] * len(reports)
    # the state a killed run leaves: foreign keys of grant and shop_order gone, their definitions saved
    assert state_rows(s.db) == ["widen:%s.id" % APP]
    assert FK_NAMES[(SHOP, "application_id")] not in fk_definitions(s.db, SHOP)
    saved = json.loads(s.db.query("SELECT payload FROM %s" % STATE)[0][0])
    assert sorted(f["name"] for f in saved["foreign_keys"]) == sorted(
        [FK_NAMES[(GRANT, "application_id")], FK_NAMES[(SHOP, "application_id")]])
    assert [f for f in saved["foreign_keys"] if f["table"] == SHOP][0]["on_delete"] == "CASCADE"
    # oauth_info names the foreign keys still missing (grant's is back once its table is done)
    still_missing = [(SHOP, "application_id")] + ([] if GRANT in stop_after else [(GRANT, "application_id")])
    assert_interrupted(s.db, still_missing)

    resumed = ok(repair(s.db))
    assert "repair_interrupted" in resumed["findings_before"] and resumed["not_repaired"] == []
    assert interrupted(resumed) == []
    st = statuses(resumed)
    for key in keys[:keys.index([k for k in keys if k.startswith(stop_after)][0]) + 1]:
        assert st[key] == "done_already", key
    assert resumed["completed_migrations"] == [M0004]
    assert_widened(s.db)
    assert_content_unchanged(s.db, before)
    again = ok(repair(s.db))
    assert again["changed"] is False and again["executed_queries"] == []


@pytest.mark.mysql
def test_mariadb_killed_before_forgetting_the_state(site):
    """Killed after the last referencing table got its foreign keys back, before the saved state was deleted:
    nothing is missing, oauth_info says (info) that the state is left; the next run drops it."""
    s = site("mysql")
    keys, _reports = run_partial(s.db, "int_width_mismatch:widen_refs:%s" % SHOP)
    assert keys[keys.index([k for k in keys if k.startswith("int_width_mismatch:widen_refs:%s" % SHOP)][0]) + 1] \
        == "int_width_mismatch:forget_fks:%s.id" % APP
    assert state_rows(s.db) == ["widen:%s.id" % APP]
    assert_interrupted(s.db, [], severity="info")

    resumed = ok(repair(s.db, fix=["repair_interrupted"]))  # the finding's code alone finishes the widening
    assert resumed["not_repaired"] == []
    assert statuses(resumed)["int_width_mismatch:forget_fks:%s.id" % APP] == "ran"
    assert_widened(s.db)
    assert interrupted(info(s.db)) == []


def _mysql_threads(db, prefix):
    return [r[0] for r in db.query(
        "SELECT id FROM information_schema.processlist WHERE db = %s AND info LIKE %s", (db.name, prefix + "%"))]


@pytest.mark.mysql
def test_mariadb_sigkill_between_fk_drop_and_recreation(site):
    """A real kill: the widening of application.id waits for a lock the test holds, after it dropped the
    foreign keys; the module process is SIGKILLed and its statement killed on the server (a crashed
    host). The next run re-creates the foreign keys from the saved definitions."""
    s = site("mysql")
    db = s.db
    before = content(db)
    holder = db.connect()
    try:
        cur = holder.cursor()
        cur.execute("START TRANSACTION")
        cur.execute("SELECT id FROM %s FOR UPDATE" % APP)
        cur.fetchall()
        proc = start_repair_process(db, lock_timeout=60000)
        alter = "ALTER TABLE `%s` MODIFY" % APP
        wait_for(lambda: _mysql_threads(db, alter), proc, "the ALTER of %s to wait for its lock" % APP)
        kill(proc)
        for thread in _mysql_threads(db, alter):
            with contextlib.suppress(Exception):
                db.execute("KILL %d" % int(thread))
    finally:
        holder.rollback()
        holder.close()
    deadline = time.monotonic() + 30
    while _mysql_threads(db, "ALTER TABLE") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert column_type(db, APP, "id")[0] == "int(11)"
    assert FK_NAMES[(GRANT, "application_id")] not in fk_definitions(db, GRANT)
    assert FK_NAMES[(SHOP, "application_id")] not in fk_definitions(db, SHOP)
    assert state_rows(db) == ["widen:%s.id" % APP]
    # oauth_info says so: the two foreign keys dropped and not re-created, named, and how to finish
    found = assert_interrupted(db, [(GRANT, "application_id"), (SHOP, "application_id")])
    assert found["details"]["type_before"] == "int"
    assert "int_width_mismatch" in codes(info(db))  # the key itself is still int

    resumed = ok(repair(db))
    assert statuses(resumed)["int_width_mismatch:save_drop_fks:%s.id" % APP] == "done_already"
    assert "repair_interrupted" in resumed["findings_before"] and interrupted(resumed) == []
    assert_widened(db)
    assert_content_unchanged(db, before)
    assert interrupted(info(db)) == []
    assert ok(repair(db))["changed"] is False


def _pg_backends(db):
    return [r[0] for r in db.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE %s "
        "AND wait_event_type = 'Lock'", ("django_ops.oauth_repair%",))]


@pytest.mark.postgresql
def test_postgresql_sigkill_inside_the_widening_transaction(site):
    """Killed inside the widening transaction (waiting for a lock on grant after dropping the access token
    foreign key): PostgreSQL rolls all of it back, nothing is half-done, the next run converges."""
    s = site("postgresql")
    db = s.db
    before, schema_before = content(db), schema(db)
    holder = db.connect()
    try:
        holder.execute("BEGIN")
        holder.execute('LOCK TABLE "%s" IN ACCESS SHARE MODE' % GRANT)
        proc = start_repair_process(db, lock_timeout=60000)
        wait_for(lambda: _pg_backends(db), proc, "the widening transaction to wait for its lock")
        kill(proc)
        for pid in _pg_backends(db):
            db.query("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert schema(db) == schema_before
    assert_content_unchanged(db, before)
    assert interrupted(info(db)) == []  # rolled back: nothing half-done to report

    resumed = ok(repair(db))
    assert statuses(resumed)["int_width_mismatch:widen_pk:%s.id" % APP] == "ran"
    assert_widened(db)
    assert_content_unchanged(db, before)
    assert ok(repair(db))["changed"] is False


@pytest.mark.postgresql
def test_postgresql_killed_before_validation(site):
    """Killed after the widening transaction committed: the foreign keys are back NOT VALID (enforced for
    new rows); the next run validates them without blocking writers."""
    s = site("postgresql")
    db = s.db
    run_partial(db, "int_width_mismatch:widen_pk")
    defs = fk_definitions(db, GRANT)
    assert defs[FK_NAMES[(GRANT, "application_id")][:63]][1] is False
    assert column_type(db, GRANT, "application_id")[0] == "bigint"
    # oauth_info names the five foreign keys left NOT VALID
    assert_interrupted(db, sorted(FK_NAMES))

    resumed = ok(repair(db))
    st = statuses(resumed)
    assert st["int_width_mismatch:widen_pk:%s.id" % APP] == "done_already"
    assert st["int_width_mismatch:validate:%s.id" % APP] == "ran"
    assert sum(1 for q in resumed["executed_queries"] if " VALIDATE CONSTRAINT " in q) == 5
    assert "repair_interrupted" in resumed["findings_before"] and interrupted(resumed) == []
    assert_widened(db)
    assert interrupted(info(db)) == []


def _insert_orphan(db):
    """A grant whose application does not exist, slipped in with the foreign key checks off."""
    if db.engine == "mysql":
        conn = db.connect()
        try:
            cur = conn.cursor()
            cur.execute("SET SESSION foreign_key_checks = 0")
            cur.execute("INSERT INTO %s (id, code, expires, redirect_uri, scope, application_id, user_id, "
                        "code_challenge, code_challenge_method, nonce, claims) VALUES (77, 'orphan', NOW(), '', '', 999, 1, "
                        "'', '', '', '')"
                        % GRANT)
        finally:
            conn.close()
    else:
        db.execute_script("SET session_replication_role = replica; INSERT INTO %s (id, code, expires, redirect_uri, "
                          "scope, application_id, user_id, code_challenge, code_challenge_method, nonce, claims) "
                          "VALUES (77, 'orphan', now(), '', '', 999, 1, '', '', '', '')" % qi(db, GRANT))


@pytest.mark.parametrize("engine", [MYSQL, POSTGRESQL])
def test_orphan_rows_are_named_and_the_foreign_key_waits(site, engine):
    s = site(engine)
    db = s.db
    _insert_orphan(db)
    failed = repair(db)
    assert failed["failed"] is True
    assert "%s.application_id" % GRANT in failed["msg"] and "id=77" in failed["msg"] and "999" in failed["msg"]
    assert "Fix: delete those rows" in failed["msg"]
    assert failed["report"]["orphans"]["%s.application_id" % GRANT] == {"values": [999], "rows": [77]}
    name = FK_NAMES[(GRANT, "application_id")]
    if engine == "mysql":
        assert name not in fk_definitions(db, GRANT)  # not re-created over an orphan
        assert state_rows(db) == ["widen:%s.id" % APP]  # its definition is kept for the next run
    else:
        assert fk_definitions(db, GRANT)[name[:63]][1] is False  # NOT VALID: enforced for new rows only
    db.execute("DELETE FROM %s WHERE id = 77" % qi(db, GRANT))
    ok(repair(db))
    assert_widened(db)
    assert ok(repair(db))["changed"] is False


# --------------------------------------------------------------------------
# 4. The other repairs on Django-migrated databases
# --------------------------------------------------------------------------


@pytest.mark.sqlite
def test_stale_history_is_harmless_to_django_and_removed(make_db):
    """Django ignores rows of migrations it does not know (DOT's 0001_initial replaces nothing): migrate
    has nothing to do with them present. The repair removes them (check mode lists the DELETEs only)."""
    db = make_db("sqlite")
    for name in PRE_SQUASH:
        db.execute("INSERT INTO django_migrations (app, name, applied) VALUES (?, ?, '2016-03-01 10:00:00')",
                   (DOT, name))
    assert "No migrations to apply." in migrate(db).stdout
    assert not set(PRE_SQUASH) & set(showmigrations(db))
    count = db.query("SELECT COUNT(*) FROM django_migrations")[0][0]

    checked = ok(repair(db, check_mode=True, fix=["migration_stale_names"]))
    assert checked["changed"] is True
    assert checked["executed_queries"] == ['DELETE FROM "django_migrations" WHERE "id" = %s AND "app" = %s '
                                           'AND "name" = %s'] * len(PRE_SQUASH)
    assert db.query("SELECT COUNT(*) FROM django_migrations")[0][0] == count

    done = ok(repair(db, fix=["migration_stale_names"], diff=True))
    assert done["report"]["removed_migration_rows"] == PRE_SQUASH
    assert db.query("SELECT COUNT(*) FROM django_migrations")[0][0] == count - len(PRE_SQUASH)
    assert done["findings"] == []
    assert "No migrations to apply." in migrate(db).stdout
    assert ok(repair(db))["changed"] is False


@pytest.mark.sqlite
def test_sqlite_timestamps_added_without_default(make_db):
    db = make_db("sqlite", "tokens")
    for table, column in ((APP, "created"), (APP, "updated"), (GRANT, "updated")):
        drop_column(db, table, column)
    before = db.query("SELECT id, client_id, name FROM %s ORDER BY id" % APP)
    result = ok(repair(db))
    assert [r["status"] for r in result["plan"]] == ["ran"] * 4
    assert result["findings"] == []
    assert result["report"]["sqlite_rebuilds"] == {APP: 12, GRANT: 4} or set(result["report"]["sqlite_rebuilds"]) == {
        APP, GRANT}
    for table, column in ((APP, "created"), (APP, "updated"), (GRANT, "updated")):
        [col] = [c for c in data.table_columns(db, table) if c.name == column]
        assert col.data_type == "datetime" and not col.nullable and not col.has_default
    assert db.query("SELECT id, client_id, name FROM %s ORDER BY id" % APP) == before
    [(created, updated)] = db.query("SELECT DISTINCT created, updated FROM %s" % APP)
    assert created == updated and re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", created)
    run_manage(db, "makemigrations", "--check", "--dry-run")
    assert run_manage(db, "make_tokens", "1").returncode == 0  # DOT's models work again
    assert ok(repair(db))["changed"] is False


def _dot_schema(db, tables):
    """Columns, indexes and foreign keys of ``tables`` (MariaDB/PostgreSQL), names included."""
    out = {}
    for table in tables:
        cols = sorted((c.name, c.data_type, c.nullable, c.has_default) for c in data.table_columns(db, table))
        if db.engine == "mysql":
            idx = sorted(set(db.query("SELECT index_name, non_unique, column_name FROM information_schema.statistics "
                                      "WHERE table_schema = DATABASE() AND table_name = %s", (table,))))
        else:
            idx = sorted(db.query("SELECT ic.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class ic "
                                  "ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = %s",
                                  (table,)))
        fks = fk_definitions(db, table)
        out[table] = dict(columns=cols, indexes=idx, fks=sorted((k, v[:4] if db.engine == "mysql" else v)
                                                                for k, v in fks.items()))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("engine", [MYSQL, POSTGRESQL])
def test_half_applied_0004_completed_like_dot(make_db, template, engine):
    """0004 killed after its first operations (algorithm, nonce, claims added; no idtoken table, no
    accesstoken.id_token_id): the repair creates exactly the rest, with DOT's names and types, so that the
    schema equals the one DOT's own migrations build; recorded, migrate runs to the end."""
    db = make_db(engine, None)
    migrate(db, DOT, "0003_auto_20201211_1314")

    def q(name):
        return qi(db, name)

    db.execute("ALTER TABLE %s ADD COLUMN %s varchar(5) DEFAULT '' NOT NULL" % (q(APP), q("algorithm")))
    db.execute("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT" % (q(APP), q("algorithm")))
    db.execute("ALTER TABLE %s ADD COLUMN %s varchar(255) DEFAULT '' NOT NULL" % (q(GRANT), q("nonce")))
    db.execute("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT" % (q(GRANT), q("nonce")))
    found = info(db)
    half = [f for f in found["findings"] if f["code"] == "migration_half_applied"]
    assert [f["details"]["migration"] for f in half] == [M0004]
    assert IDT in half[0]["details"]["missing"]

    checked = ok(repair(db, check_mode=True))
    assert checked["completed_migrations"] == [M0004]
    result = ok(repair(db))
    assert result["completed_migrations"] == [M0004]
    assert result["findings"][0]["details"]["missing"] == []
    reference = template(engine)
    tables = [APP, AT, GRANT, IDT]
    migrated_0004 = _dot_schema(db, tables)
    assert ok(repair(db))["changed"] is False
    ok(run_module("django_migration", dict(db.params, app=DOT, names=[M0004])))
    migrate(db)
    run_manage(db, "makemigrations", "--check", "--dry-run")
    assert _dot_schema(db, tables) == _dot_schema(reference, tables)
    assert migrated_0004[IDT] == _dot_schema(reference, [IDT])[IDT]


@pytest.mark.parametrize("engine", [MYSQL, POSTGRESQL, SQLITE])
def test_recorded_migrations_missing_objects_completed(make_db, template, engine):
    """0010's column and 0022's index gone from a database where both are recorded: put back as DOT's
    migrations define them (names and types), the schema equals the reference again."""
    db = make_db(engine)
    drop_column(db, APP, "allowed_origins")
    if engine == "mysql":
        db.execute("DROP INDEX `oauth2_prov_token_f_996e8a_idx` ON `%s`" % RT)
    else:
        db.execute('DROP INDEX "oauth2_prov_token_f_996e8a_idx"')
    found = info(db)
    assert sorted(f["details"]["migration"] for f in found["findings"]) == [M0010, M0022]
    result = ok(repair(db))
    assert result["findings"] == [] and result["completed_migrations"] == []
    if engine != "sqlite":
        assert _dot_schema(db, [APP, RT]) == _dot_schema(template(engine), [APP, RT])
    else:
        [col] = [c for c in data.table_columns(db, APP) if c.name == "allowed_origins"]
        assert col.data_type == "text" and not col.nullable and not col.has_default
    run_manage(db, "makemigrations", "--check", "--dry-run")
    assert ok(repair(db))["changed"] is False


@pytest.mark.sqlite
def test_unsupported_completion_is_not_repaired_and_changes_nothing(make_db):
    """0013's device grant table gone (and with it what 0016 altered): creating it, with its unique
    constraint, is not done here; the findings are returned in not_repaired and nothing runs."""
    db = make_db("sqlite")
    db.execute('DROP TABLE "oauth2_provider_devicegrant"')
    result = ok(repair(db))
    assert result["changed"] is False and result["executed_queries"] == [] and result["plan"] == []
    assert sorted((n["code"], n["objects"][0]) for n in result["not_repaired"]) == [
        ("migration_half_applied", "oauth2_provider.0013_alter_application_authorization_grant_type_device"),
        ("migration_half_applied", "oauth2_provider.0016_alter_devicegrant_scope")]
