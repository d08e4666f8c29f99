"""Issue 11's five cases, end to end through ``playbooks/repair_oauth.yml`` with the documented inventory
(``oauth_repair_db`` and ``oauth_repair_django``; nothing typed by hand about the schema).

1. An old install whose DOT keys are ``integer`` everywhere on PostgreSQL, consistently: nothing to see for a
   key-versus-reference comparison, but the site's models want ``bigint``; the rollout widens every one.
2. Swapping to a custom Application model with a field of its own, without ``repair_swap_extra_columns``: the
   column comes from the model, the initial migration is recorded only with it.
3. ``db_surrogate_pk`` is not a stage of the rollout (it needs a release that declares the surrogate key);
   tests/test_surrogate_from_model.py covers the key type taken from the model.
4. MariaDB ``char(32)`` UUID columns left by Django 4.2 under today's Django 5.2: DOT cannot issue refresh
   tokens before, can after.
5. A SELECT-only database user on a healthy MariaDB site: no phantom finding, nothing planned, the rollout
   ends ``unchanged``.

After each successful rollout: ``migrate`` has nothing to do, ``makemigrations --check`` is clean, tokens
issued before authenticate and DOT issues new access and refresh tokens.
"""

from __future__ import annotations

import contextlib
import secrets

import pytest

from tests import rollout_sites
from tests.findings_helpers import Databases
from tests.support import django as dj
from tests.support.legacy import DJANGO_42, build_legacy_uuid_site, legacy_python
from tests.support.modules import run_module
from tests.test_playbook import playbook, report, show, write_inventory


def _databases(request, engine, tmp_path):
    if engine == "sqlite":
        return Databases("sqlite", None, tmp_path)
    server = request.getfixturevalue("mariadb_server" if engine == "mysql" else "postgres_server")
    return Databases(engine, server, tmp_path)


def _rollout(tmp_path, host_name, host):
    inv = write_inventory(tmp_path, {"staging": {host_name: host}, "production": {}},
                          {"backup_dir": str(tmp_path / "backups")})
    reports = tmp_path / "reports"
    run = playbook(inv, {"oauth_repair_report_dir": str(reports)})
    return run, reports, inv


def _django_agrees(target, extra_env=None):
    out = dj.run_manage(target, "migrate", "--noinput", extra_env=extra_env).stdout
    assert "No migrations to apply" in out, out
    check = dj.run_manage(target, "makemigrations", "--check", "--dry-run", extra_env=extra_env, check=False)
    assert check.returncode == 0 and "No changes detected" in check.stdout, check.stdout + check.stderr
    roundtrip = dj.token_roundtrip(target, extra_env=extra_env)
    assert roundtrip["ok"] is True, roundtrip


def _bigint_columns(target):
    return sorted(target.query(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name LIKE 'oauth2_provider_%%' AND data_type = 'bigint'"))


@pytest.mark.slow
@pytest.mark.postgresql
def test_case1_integer_keys_everywhere_are_widened(request, tmp_path):
    dbs = _databases(request, "postgresql", tmp_path)
    try:
        target = dbs.empty()
        dj.migrate(target)
        issued = dj.issue_tokens(target, 3)
        narrow = _bigint_columns(target)
        assert len(narrow) >= 10
        for table, column in narrow:  # what an install from before BigAutoField looks like, consistently
            target.execute('ALTER TABLE "%s" ALTER COLUMN "%s" TYPE integer' % (table, column))
        without_truth = run_module("oauth_info", target.params)
        assert [f["code"] for f in without_truth["findings"]] == []  # keys and references agree: nothing to see

        run, reports, _inv = _rollout(tmp_path, "ints-1", rollout_sites.host_vars(target, issued))
        assert run.returncode == 0, show(run)
        r = report(reports, "ints-1")
        assert r["outcome"] == "success", r
        assert r["drift_summary"]["before"]["breaking"] >= 1 and r["drift_summary"]["after"]["breaking"] == 0, r
        assert _bigint_columns(target) == narrow  # every key and reference the models want bigint is bigint
        for token in issued["access_tokens"]:
            assert dj.token_authenticates(target, token)
        _django_agrees(target)
    finally:
        dbs.close()


@pytest.mark.slow
@pytest.mark.parametrize("engine", [pytest.param("mysql", marks=pytest.mark.mysql),
                                    pytest.param("sqlite", marks=pytest.mark.sqlite)])
def test_case2_swap_takes_the_models_columns(request, tmp_path, engine):
    dbs = _databases(request, engine, tmp_path)
    try:
        target = dbs.empty(create_sqlite=True)
        issued = rollout_sites.seed001(target)
        host = rollout_sites.host_vars(target, issued, state="seed001")
        host.pop("repair_swap_extra_columns")  # nothing typed by hand: the model says what it has
        run, reports, _inv = _rollout(tmp_path, "swap-1", host)
        assert run.returncode == 0, show(run)
        r = report(reports, "swap-1")
        assert r["outcome"] == "success" and r["swap"]["recorded_migration"] == "swapapp.0001_initial", r
        swapped = {"OAR_APPLICATION_MODEL": "swapapp.MyApplication"}
        assert target.query("SELECT DISTINCT logo_url FROM swapapp_myapplication") == [("",)]
        for token in issued["access_tokens"]:
            assert dj.token_authenticates(target, token, extra_env=swapped)
        _django_agrees(target, swapped)
    finally:
        dbs.close()


@pytest.mark.slow
@pytest.mark.mysql
def test_case4_mariadb_char32_uuid_through_the_rollout(request, tmp_path):
    python42 = legacy_python(DJANGO_42)
    dbs = _databases(request, "mysql", tmp_path)
    try:
        target = dbs.empty()
        tokens = build_legacy_uuid_site(target, python42)
        assert dj.token_roundtrip(target)["ok"] is False  # Django 5.2 cannot write a refresh token family
        run, reports, _inv = _rollout(tmp_path, "uuid-1", rollout_sites.host_vars(target, tokens))
        assert run.returncode == 0, show(run)
        r = report(reports, "uuid-1")
        assert r["outcome"] == "success", r
        assert r["drift_summary"]["before"]["breaking"] == 2 and r["drift_summary"]["after"]["breaking"] == 0, r
        types = dict(((t, c), ty) for t, c, ty in target.query(
            "SELECT table_name, column_name, column_type FROM information_schema.columns WHERE table_schema = "
            "DATABASE() AND (table_name, column_name) IN (('oauth2_provider_refreshtoken', 'token_family'), "
            "('oauth2_provider_idtoken', 'jti'))"))
        assert set(types.values()) == {"uuid"}, types
        for token in tokens["access_tokens"]:
            assert dj.token_authenticates(target, token)
        _django_agrees(target)
    finally:
        dbs.close()


@pytest.mark.slow
@pytest.mark.mysql
def test_case5_select_only_user_sees_a_healthy_site(request, tmp_path, mariadb_server):
    dbs = _databases(request, "mysql", tmp_path)
    user, password = "oar_ro_%s" % secrets.token_hex(4), "ro-%s" % secrets.token_hex(8)
    try:
        target = dbs.empty()
        dj.migrate(target)
        issued = dj.issue_tokens(target, 3)
        with contextlib.closing(mariadb_server.connect()) as conn:
            cur = conn.cursor()
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            cur.execute("GRANT SELECT ON `%s`.* TO %s@'%%'" % (target.name, "'%s'" % user))
        host = rollout_sites.host_vars(target, issued)
        host["oauth_repair_db"].update(user=user, password=password)
        run, reports, _inv = _rollout(tmp_path, "ro-1", host)
        assert run.returncode == 0, show(run)
        r = report(reports, "ro-1")
        assert r["outcome"] == "unchanged", r
        assert not [f for f in r.get("findings_before_detail", []) if f.get("severity") in ("fatal", "error")], r
        assert password not in run.stdout + run.stderr
    finally:
        with contextlib.closing(mariadb_server.connect()) as conn:
            conn.cursor().execute("DROP USER IF EXISTS %s@'%%'", (user,))
        dbs.close()
