"""db_fingerprint, db_backup (backup, verification, retention, restore), db_privileges and db_sessions,
on real MariaDB, PostgreSQL and SQLite databases migrated by the real Django + DOT test project (copies of
the ``tokens`` template of tests/findings_helpers.py: every DOT migration, a user, a client, 5 tokens)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time

import pytest

from tests.findings_helpers import ENGINES, SERVER_ENGINES, qi
# pytest fixtures, found by name:
from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    _templates_mysql, _templates_postgresql, _templates_sqlite, make_db)
from tests.support.modules import run_module

AT = "oauth2_provider_accesstoken"
RT = "oauth2_provider_refreshtoken"
APP = "oauth2_provider_application"


def ok(result):
    assert not result.get("failed"), json.dumps(result, indent=1, default=str)[:4000]
    return result


def fingerprint(target, **options):
    return ok(run_module("db_fingerprint", dict(target.params, **options)))


def backup(target, backup_dir, check_mode=False, **options):
    return run_module("db_backup", dict(target.params, backup_dir=str(backup_dir), **options), check_mode=check_mode)


def restore(target, path, check_mode=False, **options):
    return run_module("db_backup", dict(target.params, state="restored", path=path, **options), check_mode=check_mode)


def list_files(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# --------------------------------------------------------------------------
# db_fingerprint
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_fingerprint_is_stable_and_sees_every_change(make_db, engine):
    target = make_db(engine, "tokens")
    first = fingerprint(target)
    assert first["changed"] is False and first["executed_queries"] == []
    assert first["rows"][AT] == 5 and first["rows"][APP] == 1
    assert "django_migrations" not in first["tables"]
    assert fingerprint(target)["fingerprint"] == first["fingerprint"]
    # Small batches read the same rows: the hashes do not depend on the batch size.
    assert fingerprint(target, batch_size=2)["fingerprint"] == first["fingerprint"]

    ph = target.placeholder
    token_id = target.query("SELECT MIN(id) FROM %s" % qi(target, AT))[0][0]
    target.execute("UPDATE %s SET scope = %s WHERE id = %s" % (qi(target, AT), ph, ph), ("changed", token_id))
    target.execute("DELETE FROM %s" % qi(target, RT))
    target.execute("ALTER TABLE %s ADD COLUMN extra_col integer NULL" % qi(target, APP))
    cmp = fingerprint(target, compare_to=first["fingerprint"])
    assert cmp["equal"] is False
    kinds = sorted((d["table"], d["kind"], d.get("column")) for d in cmp["differences"])
    assert (AT, "content", "scope") in kinds
    assert (RT, "rows", None) in kinds
    assert all(d["table"] != APP for d in cmp["differences"])  # an added column is no loss
    assert cmp["added_columns"] == [APP + ".extra_col"]

    # Intended changes are named, and then the comparison passes.
    cmp = fingerprint(target, compare_to=first["fingerprint"], ignore=[AT + ".scope", RT])
    assert cmp["equal"] is True, cmp["differences"]
    failed = run_module("db_fingerprint", dict(target.params, compare_to=first["fingerprint"], fail_on_difference=True))
    assert failed["failed"] is True and "values of %s.scope changed" % AT in failed["msg"]


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_fingerprint_survives_widening_an_integer_column(make_db, engine):
    """What the seed 000 repair does (int -> bigint) keeps every hash: the values are the same."""
    target = make_db(engine, "tokens")
    before = fingerprint(target)
    if engine == "mysql":
        target.execute("ALTER TABLE %s MODIFY scope text NOT NULL" % qi(target, AT))
        fk = target.query("SELECT constraint_name FROM information_schema.key_column_usage WHERE table_schema = "
                          "DATABASE() AND table_name = %s AND column_name = 'user_id' AND referenced_table_name "
                          "IS NOT NULL", (AT,))[0][0]
        target.execute("ALTER TABLE %s DROP FOREIGN KEY %s" % (qi(target, AT), qi(target, fk)))
        target.execute("ALTER TABLE %s MODIFY user_id bigint NULL" % qi(target, AT))
    else:
        target.execute('ALTER TABLE "%s" ALTER COLUMN user_id TYPE bigint' % AT)
    assert fingerprint(target, compare_to=before["fingerprint"])["equal"] is True


# --------------------------------------------------------------------------
# db_backup
# --------------------------------------------------------------------------


def _external_table(target):
    """A table of the site's own (not backed up) with a foreign key to DOT's application table."""
    if target.engine == "mysql":
        target.execute("CREATE TABLE site_client_note (id bigint AUTO_INCREMENT PRIMARY KEY, app_id bigint NOT NULL, "
                       "CONSTRAINT site_client_note_app_fk FOREIGN KEY (app_id) REFERENCES %s (id))" % APP)
    elif target.engine == "postgresql":
        target.execute('CREATE TABLE site_client_note (id bigserial PRIMARY KEY, app_id bigint NOT NULL '
                       'CONSTRAINT site_client_note_app_fk REFERENCES "%s" (id) DEFERRABLE INITIALLY DEFERRED)' % APP)
    else:
        target.execute('CREATE TABLE site_client_note (id integer PRIMARY KEY, app_id bigint NOT NULL '
                       'REFERENCES "%s" (id))' % APP)
    app_id = target.query("SELECT id FROM %s" % qi(target, APP))[0][0]
    target.execute("INSERT INTO site_client_note (app_id) VALUES (%s)" % target.placeholder, (app_id,))


def _fk_names(target, table):
    if target.engine == "postgresql":
        return sorted(r[0] for r in target.query(
            "SELECT conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid WHERE t.relname = %s "
            "AND c.contype = 'f'", (table,)))
    if target.engine == "mysql":
        return sorted(r[0] for r in target.query(
            "SELECT constraint_name FROM information_schema.referential_constraints "
            "WHERE constraint_schema = DATABASE() AND table_name = %s", (table,)))
    return [str(r[2]) for r in target.query("SELECT * FROM pragma_foreign_key_list('%s')" % table)]


@pytest.mark.parametrize("engine", ENGINES)
def test_backup_is_verified_private_and_restores_the_tables(make_db, engine, tmp_path):
    target = make_db(engine, "tokens")
    _external_table(target)
    folder = tmp_path / "backups"
    before = fingerprint(target, extra_tables=["django_migrations"], exclude_tables=[])

    dry = ok(backup(target, folder, check_mode=True))
    assert dry["changed"] is True and dry["path"].startswith(str(folder))
    assert list_files(folder) == []  # check mode writes nothing

    result = ok(backup(target, folder))
    path = result["path"]
    assert result["changed"] is True and result["verified"] is True
    assert result["verification"]["differences"] == []
    assert sorted(result["tables"]) == sorted(before["tables"])
    assert result["rows"] == before["rows"]
    assert result["fingerprint"] == before["fingerprint"]
    for suffix in ("", ".sha256", ".json"):
        assert os.stat(path + suffix).st_mode & 0o777 == 0o600
    assert os.stat(folder).st_mode & 0o777 == 0o700
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert result["sha256"] == digest
    assert open(path + ".sha256").read().split()[0] == digest
    assert json.load(open(path + ".json"))["sha256"] == digest
    if engine != "sqlite":
        # the scratch database was dropped
        name = result["verification"]["method"].split("database ")[1].split()[0]
        assert not target.server.database_exists(name)
        assert "site_client_note" not in result["tables"]

    # Damage the tables as a failed repair could, and create a table the backup does not have.
    target.execute("DELETE FROM %s" % qi(target, RT))
    target.execute("UPDATE %s SET scope = 'overwritten'" % qi(target, AT))
    target.execute("DELETE FROM django_migrations WHERE app = 'oauth2_provider' AND name LIKE '0022%%'"
                   if engine != "sqlite" else "DELETE FROM django_migrations WHERE name LIKE '0022%'")
    target.execute("CREATE TABLE oauth2_provider_leftover (id integer PRIMARY KEY)")
    # a table renamed away (as a swap of the application model does): the name is free in the live database
    target.execute("ALTER TABLE %s RENAME TO %s" % (qi(target, "oauth2_provider_grant"),
                                                    qi(target, "oauth2_provider_grant_old")))
    assert fingerprint(target, extra_tables=["django_migrations"], exclude_tables=[],
                       compare_to=before["fingerprint"])["equal"] is False

    dry = ok(restore(target, path, check_mode=True))
    assert dry["dropped_tables"] == ["oauth2_provider_grant_old", "oauth2_provider_leftover"]
    assert "oauth2_provider_leftover" in target.tables()

    done = ok(restore(target, path))
    assert done["equal"] is True and done["changed"] is True
    assert done["dropped_tables"] == ["oauth2_provider_grant_old", "oauth2_provider_leftover"]
    assert "oauth2_provider_leftover" not in target.tables() and "oauth2_provider_grant" in target.tables()
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest  # the backup itself is untouched
    after = fingerprint(target, extra_tables=["django_migrations"], exclude_tables=[], compare_to=before["fingerprint"])
    assert after["equal"] is True and after["added_tables"] == [], after["differences"]
    # The site's own table and its foreign key to the restored application table are intact.
    assert target.query("SELECT COUNT(*) FROM site_client_note")[0][0] == 1
    if engine == "postgresql":
        assert done["external_foreign_keys"] == ["site_client_note.site_client_note_app_fk"]
        assert _fk_names(target, "site_client_note") == ["site_client_note_app_fk"]
        assert target.query("SELECT condeferrable FROM pg_constraint WHERE conname = 'site_client_note_app_fk'")[0][0]
    else:
        assert _fk_names(target, "site_client_note")
    # The restored tables still work: a new application row gets a fresh id (sequence/auto-increment restored).
    max_id = target.query("SELECT MAX(id) FROM %s" % qi(target, RT))[0][0]
    assert max_id is not None


@pytest.mark.parametrize("engine", [ENGINES[0], ENGINES[2]])
def test_backup_retention_and_a_corrupt_backup_is_refused(make_db, engine, tmp_path):
    target = make_db(engine, "tokens")
    folder = tmp_path / "b"
    paths = [ok(backup(target, folder, verify=False, retention=2, prefix="site"))["path"] for _i in range(3)]
    kept = [f for f in list_files(folder) if f.startswith("site-") and not f.endswith((".json", ".sha256"))]
    assert kept == sorted(os.path.basename(p) for p in paths[1:])
    assert len(list_files(folder)) == 6
    # Another prefix is another series.
    ok(backup(target, folder, verify=False, retention=1, prefix="other"))
    assert len(list_files(folder)) == 9

    with open(paths[-1], "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    target.execute("DELETE FROM %s" % qi(target, RT))
    refused = restore(target, paths[-1])
    assert refused["failed"] is True and "corrupt" in refused["msg"] and "Fix:" in refused["msg"]
    assert target.query("SELECT COUNT(*) FROM %s" % qi(target, RT))[0][0] == 0  # nothing restored


@pytest.mark.mysql
def test_backup_password_is_never_on_a_command_line_or_in_the_result(make_db, mariadb_server, tmp_path):
    """A user with a password: the dump, the scratch restore and the restore get it through a private option
    file; nothing returned holds it."""
    target = make_db("mysql", "tokens")
    user = "oar_bk_" + secrets.token_hex(3)
    password = "Pw-" + secrets.token_hex(8) + "'\"\\"
    with contextlib.closing(mariadb_server.connect()) as conn:
        cur = conn.cursor()
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        try:
            cur.execute("GRANT ALL ON `%s`.* TO %s@'%%'" % (target.name, "'%s'" % user))
            cur.execute("GRANT ALL ON `oar\\_verify\\_%%`.* TO %s@'%%'" % ("'%s'" % user))
            params = dict(target.params, login_user=user, login_password=password)
            result = run_module("db_backup", dict(params, backup_dir=str(tmp_path / "b")))
            assert not result.get("failed"), result.get("msg")
            assert result["verified"] is True
            text = json.dumps(result) + open(result["path"] + ".json").read()
            assert password not in text and password[3:19] not in text
            assert all(password not in a for a in result["command"])
            assert any(a.startswith("--defaults-extra-file=") for a in result["command"])
            done = run_module("db_backup", dict(params, state="restored", path=result["path"]))
            assert done["equal"] is True and password not in json.dumps(done)
            checks = ["alter", "backup", "scratch_database", "sessions"]
            privileges = run_module("db_privileges", dict(params, checks=checks))
            assert privileges["missing"] == [] and privileges["privileges"]["sessions"]["ok"] is False
            wrong = run_module("db_backup", dict(params, login_password="not-" + password,
                                                 backup_dir=str(tmp_path / "c")))
            assert wrong["failed"] is True and password not in json.dumps(wrong)
        finally:
            cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))


# --------------------------------------------------------------------------
# db_privileges
# --------------------------------------------------------------------------


@pytest.mark.postgresql
def test_privileges_postgresql_names_the_tables_a_non_owner_cannot_alter(make_db, postgres_server):
    target = make_db("postgresql", "tokens")
    role = "oar_pv_" + secrets.token_hex(3)
    with contextlib.closing(postgres_server.connect(target.name)) as conn:
        conn.execute('CREATE ROLE "%s" LOGIN' % role)
        try:
            conn.execute('GRANT SELECT ON ALL TABLES IN SCHEMA public TO "%s"' % role)
            root = ok(run_module("db_privileges", dict(target.params, checks=["alter", "backup", "scratch_database"])))
            assert root["missing"] == []
            res = run_module("db_privileges", dict(target.params, login_user=role,
                                                   checks=["alter", "backup", "scratch_database", "terminate"]))
            assert res["failed"] is True
            assert "does not own" in res["privileges"]["alter"]["detail"] and AT in res["privileges"]["alter"]["detail"]
            assert res["privileges"]["backup"]["ok"] is True
            assert res["privileges"]["scratch_database"]["ok"] is False
            assert [m.split(":")[0] for m in res["missing"]] == ["alter", "scratch_database"]
            assert res["privileges"]["terminate"]["ok"] is False  # a warning only
            assert "Fix:" in res["msg"]
        finally:
            conn.execute('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "%s"' % role)
            conn.execute('DROP ROLE "%s"' % role)


@pytest.mark.sqlite
def test_privileges_sqlite_read_only_file(make_db, tmp_path):
    target = make_db("sqlite", "tokens")
    os.chmod(target.name, 0o444)
    try:
        res = run_module("db_privileges", dict(target.params, fail_on_missing=False))
        if os.geteuid() == 0:  # root writes anyway: the check says so
            assert res["privileges"]["alter"]["ok"] is True
        else:
            assert res["privileges"]["alter"]["ok"] is False and res["missing"]
    finally:
        os.chmod(target.name, 0o644)


# --------------------------------------------------------------------------
# db_sessions
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_sessions_drain_and_terminate(make_db, engine):
    target = make_db(engine, "tokens")
    app = target.connect()  # the application's connection
    try:
        listed = ok(run_module("db_sessions", target.params))
        assert listed["initial"] == 1 and listed["drained"] is False and listed["changed"] is False
        timed_out = run_module("db_sessions", dict(target.params, wait_timeout=1, poll_interval=0.2))
        assert timed_out["failed"] is True and "1 session(s) still on database" in timed_out["msg"]
        assert "Fix:" in timed_out["msg"]
        idle_ok = ok(run_module("db_sessions", dict(target.params, include_idle=False, wait_timeout=1)))
        assert idle_ok["drained"] is True  # the connection is idle

        closer = threading.Timer(1.0, app.close)
        closer.start()
        started = time.monotonic()
        drained = ok(run_module("db_sessions", dict(target.params, wait_timeout=20, poll_interval=0.2)))
        assert drained["drained"] is True and drained["initial"] == 1
        assert 0.8 < drained["waited"] < 15 and time.monotonic() - started < 15
    finally:
        with contextlib.suppress(Exception):
            app.close()

    app = target.connect()
    try:
        ended = ok(run_module("db_sessions", dict(target.params, wait_timeout=1, poll_interval=0.2, terminate=True)))
        assert ended["changed"] is True and len(ended["terminated"]) == 1 and ended["drained"] is True
    finally:
        with contextlib.suppress(Exception):
            app.close()


@pytest.mark.sqlite
def test_sessions_sqlite_waits_for_the_writer(make_db):
    target = make_db("sqlite", "tokens")
    writer = sqlite3.connect(target.name, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    try:
        busy = run_module("db_sessions", dict(target.params, wait_timeout=1, poll_interval=0.2))
        assert busy["failed"] is True and "holds the write lock" in busy["msg"]
        threading.Timer(0.8, lambda: writer.execute("ROLLBACK")).start()
        free = ok(run_module("db_sessions", dict(target.params, wait_timeout=10, poll_interval=0.2)))
        assert free["drained"] is True and free["initial"] == 1
    finally:
        time.sleep(0.9)
        writer.close()
