"""db_surrogate_pk takes the new key's type from the site's model (issue 11 item 4, case 3 of the issue).

The test project's ``shelf.Tag`` has a natural ``CharField`` primary key referenced by the M2M table
``shelf_item_tags``. Its next release (``OAR_SHELF_SURROGATE=1``: shelf/models.py and
``shelf.migrations_surrogate.0002_tag_surrogate_id``) gives Tag an implicit ``id`` typed by
``DEFAULT_AUTO_FIELD``. On a project that leaves ``DEFAULT_AUTO_FIELD`` undefined (AutoField, ``int``),
``db_surrogate_pk`` given the release's Django creates an ``int`` key, where its option default (``bigint``)
would disagree with the model forever; the release then migrates cleanly, ``makemigrations --check`` is clean and
the schema truth shows no breaking drift. A release that does not declare the surrogate, and a
``new_column_type`` that contradicts the model, are refused before anything changes.
"""

from __future__ import annotations

import pytest

from tests.support import django as dj
from tests.support.modules import run_module

OLD_RELEASE = {"OAR_EXTRA_APPS": "shelf", "OAR_DEFAULT_AUTO_FIELD": "unset"}
NEW_RELEASE = dict(OLD_RELEASE, OAR_SHELF_SURROGATE="1")
TAGS = ["alpha", "beta", "gamma"]


def _seed(db):
    ph = db.placeholder
    for name in TAGS:
        db.execute("INSERT INTO shelf_tag (name) VALUES (%s)" % ph, (name,))
    for i in range(1, 4):
        db.execute("INSERT INTO shelf_item (public_id, title, slug, edition, code, public, copies) VALUES "
                   "(%s, %s, %s, '', %s, %s, 1)" % (ph, ph, ph, ph, ph),
                   ("%032x" % i if db.engine != "postgresql" else "00000000-0000-0000-0000-%012d" % i,
                    "item %d" % i, "item-%d" % i, "c%d" % i, False))
    ids = [r[0] for r in db.query("SELECT id FROM shelf_item ORDER BY id")]
    for item_id, tag in zip(ids, TAGS):
        db.execute("INSERT INTO shelf_item_tags (item_id, tag_id) VALUES (%s, %s)" % (ph, ph), (item_id, tag))
    db.execute("INSERT INTO shelf_item_tags (item_id, tag_id) VALUES (%s, %s)" % (ph, ph), (ids[0], "gamma"))


def _pairs(db):
    if "id" in _columns(db, "shelf_tag"):
        sql = ("SELECT i.title, t.name FROM shelf_item_tags m JOIN shelf_item i ON i.id = m.item_id "
               "JOIN shelf_tag t ON t.id = m.tag_id ORDER BY 1, 2")
    else:
        sql = ("SELECT i.title, m.tag_id FROM shelf_item_tags m JOIN shelf_item i ON i.id = m.item_id ORDER BY 1, 2")
    return db.query(sql)


def _columns(db, table):
    if db.engine == "mysql":
        return [r[0] for r in db.query("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                       "DATABASE() AND table_name = %s", (table,))]
    if db.engine == "postgresql":
        return [r[0] for r in db.query("SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                                       (table,))]
    return [r[1] for r in db.query("PRAGMA table_info(%s)" % table)]


def _type(db, table, column):
    if db.engine == "mysql":
        return db.query("SELECT data_type FROM information_schema.columns WHERE table_schema = DATABASE() "
                        "AND table_name = %s AND column_name = %s", (table, column))[0][0]
    if db.engine == "postgresql":
        return db.query("SELECT data_type FROM information_schema.columns WHERE table_name = %s "
                        "AND column_name = %s", (table, column))[0][0]
    return [r[2] for r in db.query("PRAGMA table_info(%s)" % table) if r[1] == column][0].lower()


def test_surrogate_key_typed_by_the_model(any_db):
    db = any_db
    dj.migrate(db, extra_env=OLD_RELEASE)
    _seed(db)
    pairs = _pairs(db)
    params = dict(db.params, table="shelf_tag", migration_app="shelf", migration_name="0002_tag_surrogate_id")

    # the release being deployed must declare the surrogate key; nothing changes otherwise
    refused = run_module("db_surrogate_pk", dict(params, django=dj.site_option(db, OLD_RELEASE)))
    assert refused.get("failed") is True and refused["changed"] is False, refused
    assert "must declare the surrogate key first" in refused["msg"], refused["msg"]
    conflict = run_module("db_surrogate_pk", dict(params, new_column_type="bigint",
                                                  django=dj.site_option(db, NEW_RELEASE)))
    assert conflict.get("failed") is True and "declares shelf_tag.id as AutoField (int)" in conflict["msg"], conflict
    assert "id" not in _columns(db, "shelf_tag")

    planned = run_module("db_surrogate_pk", dict(params, django=dj.site_option(db, NEW_RELEASE)), check_mode=True)
    assert not planned.get("failed"), planned.get("msg")
    assert any(" integer" in q or " int" in q for q in planned["executed_queries"]), planned["executed_queries"]
    assert not any("bigint" in q for q in planned["executed_queries"]), planned["executed_queries"]

    done = run_module("db_surrogate_pk", dict(params, django=dj.site_option(db, NEW_RELEASE)))
    assert not done.get("failed"), done.get("msg")
    assert done["changed"] is True
    assert _type(db, "shelf_tag", "id") in ("int", "integer")
    assert _type(db, "shelf_item_tags", "tag_id") in ("int", "integer")
    assert _pairs(db) == pairs  # every M2M row still pairs the same item with the same tag

    # the release's Django agrees: nothing to migrate, no model change, no breaking drift
    out = dj.run_manage(db, "migrate", "--noinput", extra_env=NEW_RELEASE).stdout
    assert "No migrations to apply" in out
    check = dj.run_manage(db, "makemigrations", "--check", "--dry-run", extra_env=NEW_RELEASE, check=False)
    assert check.returncode == 0 and "No changes detected" in check.stdout, check.stdout + check.stderr
    info = run_module("oauth_info", dict(db.params, django=dj.site_option(db, NEW_RELEASE), drift_apps=["shelf"]))
    assert not info.get("failed"), info.get("msg")
    breaking = [f for f in info["findings"] if f["code"].startswith("schema_drift_") and f["severity"] != "info"]
    assert breaking == [], breaking
    again = run_module("db_surrogate_pk", dict(params, django=dj.site_option(db, NEW_RELEASE)))
    assert not again.get("failed") and again["changed"] is False, again.get("msg")


@pytest.mark.sqlite
def test_bigautofield_project_gets_bigint(sqlite_db):
    """The other half: with DEFAULT_AUTO_FIELD = BigAutoField the model's key is BigAutoField (bigint)."""
    db = sqlite_db
    big = {"OAR_EXTRA_APPS": "shelf"}
    dj.migrate(db, extra_env=big)
    params = dict(db.params, table="shelf_tag", migration_app="shelf", migration_name="0002_tag_surrogate_id",
                  django=dj.site_option(db, dict(big, OAR_SHELF_SURROGATE="1")))
    conflict = run_module("db_surrogate_pk", dict(params, new_column_type="int"))
    assert conflict.get("failed") is True and "declares shelf_tag.id as BigAutoField (bigint)" in conflict["msg"]
    planned = run_module("db_surrogate_pk", params, check_mode=True)
    assert not planned.get("failed"), planned.get("msg")
    assert any("bigint" in q for q in planned["executed_queries"]), planned["executed_queries"]
