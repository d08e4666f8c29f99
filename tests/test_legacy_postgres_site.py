"""A PostgreSQL site created before Django 4.1 (issue 13, item 1), on the real server.

The site is built the way it grew (tests/support/legacy.py, :func:`build_legacy_serial_site`): Django 2.2 with
django-oauth-toolkit 1.2.0, then DOT 1.5.0, each in its own virtualenv creating rows through its own models,
then today's project (Django 5.2 + DOT 3.4.x) upgrading it. Its ids are ``serial`` columns, not identity
columns, and DOT 1.2's 0005 (AutoField -> BigAutoField under Django < 4.0) left the sequences of the
application, access token, refresh token and grant ids owned by no column: ``pg_dump --table`` leaves them out,
and the verification restore failed with ``relation "public.oauth2_provider_accesstoken_id_seq" does not exist``.

* ``db_backup`` takes and verifies the backup of such a site; the dump holds every sequence of the tables with
  its value; the verification's scratch restore and a restore into the live database (the rollback) bring the
  sequences back at the values they had, and new rows get fresh ids;
* the rollout playbook (playbooks/repair_oauth.yml) on such a site before its upgrade: every stage passes (the
  backup, the repair, the deploy's ``migrate`` that upgrades it, the verification with tokens of DOT 1.x).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests import rollout_sites
from tests.findings_helpers import Databases
from tests.support import django, legacy
from tests.support.modules import run_module
from tests.test_playbook import playbook, recap, report, show, write_inventory

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]

APP = "oauth2_provider_application"
AT = "oauth2_provider_accesstoken"
RT = "oauth2_provider_refreshtoken"
GRANT = "oauth2_provider_grant"
IDT = "oauth2_provider_idtoken"
#: ids made by DOT 1.2's 0001 (AutoField) then 0005 (BigAutoField) under Django 2.2: sequences owned by nothing
UNOWNED = (APP, AT, GRANT, RT)


@pytest.fixture(scope="module")
def legacy_sites(postgres_server, tmp_path_factory):
    """Two template databases: ``legacy`` (the legacy history only: what a rollout finds before it deploys the
    new release) and ``upgraded`` (a copy then migrated by today's project); ``rows``: what each legacy step
    created."""
    dbs = Databases("postgresql", postgres_server, tmp_path_factory.mktemp("legacy-pg"))
    try:
        old = dbs.empty()
        rows = legacy.build_legacy_serial_site(old, upgrade=False)
        upgraded = dbs.copy(old)
        django.migrate(upgraded)
        yield dict(dbs=dbs, rows=rows, upgraded=upgraded, legacy=old)
    finally:
        dbs.close()


def ok(result):
    assert not result.get("failed"), json.dumps(result, indent=1, default=str)[:4000]
    return result


def id_columns(target):
    """{table: (pg_get_serial_sequence, attidentity, default)} of the id of each DOT table."""
    rows = target.query(
        "SELECT c.relname, pg_get_serial_sequence(quote_ident(c.relname), 'id'), a.attidentity, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'id' "
        "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'oauth2\\_provider\\_%' "
        "ORDER BY c.relname")
    return dict((name, (seq, identity, default)) for name, seq, identity, default in rows)


def sequences(target):
    """{sequence: (last_value, is_called)} of the sequences of the tables a backup holds (DOT's, django_migrations)."""
    names = [r[0] for r in target.query(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' "
        "AND n.nspname = current_schema() AND (c.relname LIKE 'oauth2\\_provider\\_%' OR c.relname LIKE "
        "'django\\_migrations\\_%') ORDER BY 1")]
    assert len(names) >= 6, names  # + devicegrant once upgraded
    return dict((n, target.query('SELECT last_value, is_called FROM "%s"' % n)[0]) for n in names)


def assert_legacy_ids(target):
    """The ids are serial columns of Django < 4.1, four of them with a sequence owned by nothing."""
    ids = id_columns(target)
    for table in UNOWNED:
        seq, identity, default = ids[table]
        assert seq is None and identity == "", (table, ids[table])
        assert default == "nextval('%s_id_seq'::regclass)" % table, (table, default)
    seq, identity, default = ids[IDT]  # created by DOT 1.5's 0004 under Django 2.2: an owned serial
    assert seq == "public.%s_id_seq" % IDT and identity == "" and default.startswith("nextval("), ids[IDT]


def test_backup_and_restore_of_a_django22_site_with_serial_ids(legacy_sites, tmp_path):
    dbs = legacy_sites["dbs"]
    rows = legacy_sites["rows"]
    target = dbs.copy(legacy_sites["upgraded"])
    assert_legacy_ids(target)
    assert id_columns(target)["oauth2_provider_devicegrant"][1] == "d"  # today's Django: an identity column
    before = sequences(target)
    # the sequences stand past the largest ids (a pair was deleted after each step)
    assert before["%s_id_seq" % AT] == (8, True) and target.query("SELECT MAX(id) FROM %s" % AT)[0][0] == 7

    folder = tmp_path / "backups"
    result = ok(run_module("db_backup", dict(target.params, backup_dir=str(folder))))
    assert result["verified"] is True and result["verification"]["differences"] == []
    assert result["rows"][AT] == 6 and result["rows"][RT] == 6 and result["rows"][APP] == 2
    # what the verification's scratch restore holds: every sequence, at its value
    restored = result["verification"]["sequences"]
    for table in UNOWNED + (IDT, "django_migrations"):
        name = "%s_id_seq" % table
        assert (restored["public." + name]["last_value"], restored["public." + name]["is_called"]) == before[name]
    with open(result["manifest"]) as f:
        manifest = json.load(f)
    recorded = manifest["sequences"]["public.%s_id_seq" % AT]
    assert recorded["owned"] is False and recorded["columns"] == [[AT, "id"]] and recorded["next_value"] == 9
    listing = subprocess.run(["pg_restore", "--list", result["path"]], capture_output=True, text=True, check=True).stdout
    for table in UNOWNED:
        assert "SEQUENCE public %s_id_seq" % table in listing and "SEQUENCE SET public %s_id_seq" % table in listing

    # After the backup: new rows through today's Django (the sequences move on), one sequence set back.
    django.issue_tokens(target, 2, "--username", "after-backup")
    target.execute("SELECT setval('%s_id_seq', 1, false)" % RT)
    assert sequences(target) != before

    # The rollback: the tables and their sequences as they were at the backup.
    back = ok(run_module("db_backup", dict(target.params, state="restored", path=result["path"])))
    assert back["equal"] is True and back["differences"] == []
    assert sequences(target) == before
    assert_legacy_ids(target)  # the defaults still name the same (unowned) sequences
    assert target.query("SELECT COUNT(*) FROM %s" % AT)[0][0] == 6

    # New rows get fresh ids, through Django and through plain SQL.
    issued = django.issue_tokens(target, 1, "--username", "after-restore")
    assert issued["access_token_ids"] == [9] and issued["refresh_token_ids"] == [9]
    assert issued["application_id"] == before["%s_id_seq" % APP][0] + 1
    new_id = target.query("INSERT INTO %s (token, expires, scope, created, updated, token_checksum, resource) "
                          "VALUES ('sql-token', now(), 'read', now(), now(), %%s, '[]') RETURNING id" % AT,
                          ("0" * 64,))[0][0]
    assert new_id == 10
    # the tokens DOT 1.2 and 1.5 issued still authenticate with today's Django
    assert django.token_authenticates(target, rows[0]["access_tokens"][0])
    assert django.token_authenticates(target, rows[1]["access_tokens"][-1])


def test_rollout_playbook_on_a_django22_site(legacy_sites, tmp_path):
    """Every stage of the rollout on the site before its upgrade (the deploy's migrate upgrades it): first with
    a failure injected at the end, rolled back (the backup restored, sequences included), then for real."""
    dbs = legacy_sites["dbs"]
    rows = legacy_sites["rows"]
    target = dbs.copy(legacy_sites["legacy"])
    assert_legacy_ids(target)
    before = sequences(target)
    tokens = {"access_tokens": [rows[0]["access_tokens"][0], rows[1]["access_tokens"][0]]}
    host = rollout_sites.host_vars(target, tokens)
    reports = tmp_path / "reports"

    failing = dict(host, oauth_repair_inject_failure="verify")
    inv = write_inventory(tmp_path, {"staging": {"old-site": failing}, "production": {}},
                          {"backup_dir": str(tmp_path / "backups")})
    run = playbook(inv, {"oauth_repair_report_dir": str(reports)})
    assert run.returncode != 0, show(run)
    r = report(reports, "old-site")
    assert r["outcome"] == "rolled_back" and r["failed_stage"] == "verify", json.dumps(r, indent=1, default=str)[:4000]
    assert r["backup"]["verified"] is True and "sequences" in r["backup"]["method"]
    assert "oauth2_provider.0022_refreshtoken_token_family_index" in r["deploy"]["migrated"]  # upgraded, then
    assert r["rollback"]["restored"] is True and r["rollback"]["equal_to_backup"] is True
    assert django.showmigrations(target)["0005_auto_20211222_2352"] is False
    assert sequences(target) == before
    assert_legacy_ids(target)

    inv = write_inventory(tmp_path, {"staging": {"old-site": host}, "production": {}},
                          {"backup_dir": str(tmp_path / "backups")})
    run = playbook(inv, {"oauth_repair_report_dir": str(reports)})
    assert run.returncode == 0, show(run)
    assert recap(run.stdout)["old-site"]["failed"] == 0
    r = report(reports, "old-site")
    assert r["outcome"] == "success", json.dumps(r, indent=1, default=str)[:4000]
    assert sorted(r["stages"]) == sorted(["preflight", "backup", "maintenance_window", "repair", "fake_migration",
                                          "deploy", "verify"])
    # the preflight also lists the drift against today's models (judged once the deploy's migrate ran); the
    # deploy repairs what that migrate leaves - the integer ids of Django 2.2's auto-created M2M tables - so one
    # run converges
    assert "migration_stale_names" in r["findings_before"]
    # left: only harmless drift (names a 2.2-era site gave its indexes and keys, info)
    assert set(r["findings_after"]) <= {"schema_drift_name", "schema_drift_extra_index"}, r["findings_after"]
    assert r["drift_summary"]["after"]["breaking"] == 0, r["drift_summary"]
    assert target.query("SELECT data_type FROM information_schema.columns WHERE table_name = 'auth_user_groups' "
                        "AND column_name = 'id'") == [("bigint",)]
    assert r["backup"]["verified"] is True and "sequences" in r["backup"]["method"]
    assert "oauth2_provider.0022_refreshtoken_token_family_index" in r["deploy"]["migrated"]
    assert r["healthy"] is True and all(c["ok"] for c in r["verification"]["checks"])
    assert django.showmigrations(target)["0022_refreshtoken_token_family_index"] is True
    for token in tokens["access_tokens"]:
        assert django.token_authenticates(target, token)
    assert_legacy_ids(target)
    issued = django.issue_tokens(target, 1, "--username", "after-rollout")
    assert issued["access_token_ids"] == [before["%s_id_seq" % AT][0] + 1]
