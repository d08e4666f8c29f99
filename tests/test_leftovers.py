"""What killed runs leave behind (issue 13 item 9): the collection's scratch databases.

``oauth_info`` lists them under ``leftovers`` (not as findings: a run going on elsewhere must not make a
healthy site unhealthy), tagged ``own`` when made for this site's database; ``oauth_repair`` with
``fix: [leftover_scratch_database]`` drops this site's idle ones, never one with a session connected, never
another site's, and ``fix: all`` never chooses them.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    SERVER_ENGINES, _templates_mysql, _templates_postgresql, make_db)
from tests.support.modules import module_utils, run_module


def _admin(target, sql):
    raw = target.server.connect()
    try:
        if target.engine == "postgresql":
            raw.execute(sql)
        else:
            raw.cursor().execute(sql)
    finally:
        raw.close()


def _exists(target, name):
    if target.engine == "postgresql":
        return bool(target.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,)))
    return bool(target.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)))


@contextlib.contextmanager
def scratch(target, for_database):
    base = module_utils("dialects.base")
    name = base.scratch_name("oar_verify_", for_database)
    q = '"%s"' if target.engine == "postgresql" else "`%s`"
    _admin(target, "CREATE DATABASE " + q % name)
    try:
        yield name
    finally:
        _admin(target, "DROP DATABASE IF EXISTS " + q % name)


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_leftover_scratch_databases_listed_and_removed_only_when_asked(make_db, engine):
    target = make_db(engine, "tokens")
    with scratch(target, target.name) as mine, scratch(target, target.name) as busy, \
            scratch(target, "another_site") as theirs:
        held = (target.server.connect(busy))
        try:
            info = run_module("oauth_info", dict(target.params))
            assert not info.get("failed"), info.get("msg")
            assert info["findings"] == [] and info["summary"]["healthy"] is True
            listed = dict((d["name"], d) for d in info["leftovers"]["scratch_databases"])
            assert listed[mine] == dict(name=mine, sessions=0, own=True)
            assert listed[busy]["own"] is True and listed[busy]["sessions"] >= 1
            assert listed[theirs]["own"] is False

            everything = run_module("oauth_repair", dict(target.params))  # fix: all
            assert not everything.get("failed") and everything["changed"] is False
            assert _exists(target, mine)

            planned = run_module("oauth_repair", dict(target.params, fix=["leftover_scratch_database"]),
                                 check_mode=True)
            assert [s["key"] for s in planned["plan"]] == ["drop_leftover:%s" % mine]
            assert planned["plan"][0]["status"] == "would_run" and _exists(target, mine)

            cleaned = run_module("oauth_repair", dict(target.params, fix=["leftover_scratch_database"]))
            assert not cleaned.get("failed"), cleaned.get("msg")
            assert cleaned["changed"] is True
            assert not _exists(target, mine)
            assert _exists(target, busy) and _exists(target, theirs)  # in use, or another site's

            again = run_module("oauth_repair", dict(target.params, fix=["leftover_scratch_database"]))
            assert again["changed"] is False and again["plan"] == []
        finally:
            held.close()
