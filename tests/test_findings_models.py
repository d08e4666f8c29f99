"""Findings of field reports 001 (swapping OAUTH2_PROVIDER_APPLICATION_MODEL after DOT's migrations
ran), 002 (SQL Server: NULLs equal under UNIQUE) and 003 (a natural primary key referenced by an M2M
pivot table).

Covers ``swapped_model_inconsistent_history``, ``swapped_model_table_missing``,
``swapped_model_stale_fk``, ``nullable_unique_mssql`` and ``natural_pk_referenced``, on databases
migrated by the real DOT migrations through the real Django test project.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.findings_helpers import (
    APP, AT, ENGINES, GRANT, IDT, RT, assert_codes, drop_unique, info, one, qi, record_migration,
    sqlite_rebuild)
# pytest fixtures, found by name:
from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    _templates_mysql, _templates_postgresql, _templates_sqlite, make_db, template)
from tests.support import data
from tests.support.django import SWAPPED_APPLICATION_MODEL, run_manage, token_authenticates

SWAP_ENV = {"OAR_APPLICATION_MODEL": SWAPPED_APPLICATION_MODEL}
NEW_APP = "swapapp_myapplication"
REFERENCING_APP = [AT, GRANT, IDT, RT]  # every DOT table with an application_id foreign key


# --------------------------------------------------------------------------
# Seed 001: the Application model swapped mid-project
# --------------------------------------------------------------------------


def application_fks(target, ref_table):
    """{table: foreign key name or None} of the application_id foreign keys referencing ``ref_table``."""
    if target.engine == "sqlite":
        out = {}
        for table in REFERENCING_APP:
            for row in target.query("SELECT \"table\", \"from\" FROM pragma_foreign_key_list(?)", (table,)):
                if row == (ref_table, "application_id"):
                    out[table] = None
        return out
    if target.engine == "mysql":
        return dict(target.query(
            "SELECT table_name, constraint_name FROM information_schema.key_column_usage "
            "WHERE table_schema = DATABASE() AND referenced_table_name = %s AND column_name = 'application_id'",
            (ref_table,)))
    return dict(target.query(
        "SELECT t.relname, c.conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_class r ON r.oid = c.confrelid WHERE c.contype = 'f' AND r.relname = %s", (ref_table,)))


def create_swapped_table(target):
    """What the report's author does by hand: the swapped model's table from ``sqlmigrate`` (the exact DDL
    Django would run), its rows copied from the old table, and swapapp.0001_initial recorded."""
    ddl = run_manage(target, "sqlmigrate", "swapapp", "0001_initial", extra_env=SWAP_ENV).stdout
    target.execute_script(ddl)
    old = [c.name for c in data.table_columns(target, APP)]
    new = [c.name for c in data.table_columns(target, NEW_APP)]
    common = [c for c in old if c in new]
    assert set(new) - set(common) == {"logo_url"}
    cols = ", ".join(qi(target, c) for c in common)
    target.execute("INSERT INTO %s (%s, %s) SELECT %s, '' FROM %s" % (
        qi(target, NEW_APP), cols, qi(target, "logo_url"), cols, qi(target, APP)))
    record_migration(target, "swapapp", "0001_initial")


def repoint_application_fks(target):
    """Re-point every application_id foreign key from the old table to the swapped model's table."""
    if target.engine == "sqlite":
        for table in REFERENCING_APP:
            sqlite_rebuild(target, table, lambda sql: sql.replace(
                'REFERENCES "%s" ("id")' % APP, 'REFERENCES "%s" ("id")' % NEW_APP))
        return
    for table, name in application_fks(target, APP).items():
        new_name = "%s_application_id_fk_swap" % table.replace("oauth2_provider_", "oar_")
        if target.engine == "mysql":
            target.execute("ALTER TABLE `%s` DROP FOREIGN KEY `%s`, ADD CONSTRAINT `%s` FOREIGN KEY "
                           "(`application_id`) REFERENCES `%s` (`id`)" % (table, name, new_name, NEW_APP))
        else:
            target.execute('ALTER TABLE "%s" DROP CONSTRAINT "%s", ADD CONSTRAINT "%s" FOREIGN KEY '
                           '("application_id") REFERENCES "%s" ("id") DEFERRABLE INITIALLY DEFERRED'
                           % (table, name, new_name, NEW_APP))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_swapped_application_model(make_db, engine):
    """Seed 001 from start to end: DOT migrated with the default Application and a token issued; then
    the model is swapped. Django's migrate dies with InconsistentMigrationHistory and the diagnosis
    names all three breakages; creating the table and recording swapapp.0001 leaves only the stale
    foreign keys; re-pointing them leaves nothing, and the old token authenticates through the
    swapped model."""
    target = make_db(engine, "tokens")
    token = target.query("SELECT token FROM %s ORDER BY id" % qi(target, AT))[0][0]
    old_fks = application_fks(target, APP)
    assert sorted(old_fks) == REFERENCING_APP

    # the Django side of the report
    proc = run_manage(target, "migrate", "--noinput", extra_env=SWAP_ENV, check=False)
    assert proc.returncode != 0
    assert "InconsistentMigrationHistory" in proc.stderr
    assert "oauth2_provider.0001_initial is applied before its dependency swapapp.0001_initial" in proc.stderr

    opts = dict(application_model=SWAPPED_APPLICATION_MODEL)
    result = info(target, **opts)
    assert result["models"]["application"] == {"label": SWAPPED_APPLICATION_MODEL, "table": NEW_APP, "swapped": True}
    assert_codes(result, "swapped_model_table_missing", "swapped_model_inconsistent_history",
                 "swapped_model_stale_fk")
    missing = one(result, "swapped_model_table_missing")
    assert missing["severity"] == "fatal"
    assert missing["objects"] == [NEW_APP]
    assert missing["details"] == {"model": SWAPPED_APPLICATION_MODEL, "table": NEW_APP, "old_table": APP}
    assert missing["seed"] == "001" and missing["repair"] == "swap_application_model"
    history = one(result, "swapped_model_inconsistent_history")
    assert history["severity"] == "fatal"
    assert history["objects"] == ["django_migrations", "swapapp.0001_initial"]
    assert history["details"] == {"app": "swapapp", "migration": "0001_initial", "model": SWAPPED_APPLICATION_MODEL}
    assert history["repair"] == "record_swapped_initial_migration"
    stale = one(result, "swapped_model_stale_fk")
    assert stale["severity"] == "fatal"
    assert stale["objects"] == [APP] + ["%s.application_id" % t for t in REFERENCING_APP]
    assert stale["details"]["old_table"] == APP and stale["details"]["new_table"] == NEW_APP
    assert stale["details"]["foreign_keys"] == [
        {"table": t, "columns": ["application_id"], "name": old_fks[t], "ref_table": APP} for t in REFERENCING_APP]

    # the table created by hand and swapapp.0001 recorded: only the foreign keys are left
    create_swapped_table(target)
    result = info(target, **opts)
    assert_codes(result, "swapped_model_stale_fk")
    assert one(result, "swapped_model_stale_fk")["objects"] == stale["objects"]
    assert NEW_APP in result["tables"]

    # foreign keys re-pointed: healthy, and Django agrees
    repoint_application_fks(target)
    assert sorted(application_fks(target, NEW_APP)) == REFERENCING_APP
    assert application_fks(target, APP) == {}
    result = info(target, **opts)
    assert result["findings"] == []
    run_manage(target, "migrate", "--noinput", extra_env=SWAP_ENV)  # no InconsistentMigrationHistory any more
    assert token_authenticates(target, token, extra_env=SWAP_ENV) is True


@pytest.mark.parametrize("engine", ENGINES)
def test_default_model_is_not_swapped(template, engine):
    """Without application_model nothing is swapped and no swap finding is raised."""
    result = info(template(engine, "tokens"))
    assert all(not m["swapped"] for m in result["models"].values())
    assert result["models"]["application"]["table"] == APP
    assert not [f for f in result["findings"] if f["code"].startswith("swapped_model")]


# --------------------------------------------------------------------------
# Seed 002: nullable columns under UNIQUE, for SQL Server
# --------------------------------------------------------------------------

#: Every nullable column DOT 3.4.1's migrations put under a UNIQUE constraint: its three nullable
#: OneToOneFields, and ``revoked`` in refresh tokens' unique (token_checksum, revoked).
NULLABLE_UNIQUE = {
    (AT, ("source_refresh_token_id",), ("source_refresh_token_id",)),
    (AT, ("id_token_id",), ("id_token_id",)),
    (RT, ("access_token_id",), ("access_token_id",)),
    (RT, ("token_checksum", "revoked"), ("revoked",)),
}


def nullable_unique_set(finding):
    return set((i["table"], tuple(sorted(i["columns"])), tuple(i["nullable"])) for i in finding["details"]["indexes"])


@pytest.mark.parametrize("engine", ENGINES)
def test_nullable_unique_for_mssql(template, engine):
    """A clean, Django-migrated database checked for portability to SQL Server: an info finding with
    the exact list of nullable columns under UNIQUE; without target_engines nothing."""
    target = template(engine, "migrated")
    result = info(target, target_engines=["mssql"])
    assert_codes(result, "nullable_unique_mssql")
    f = one(result, "nullable_unique_mssql")
    assert f["severity"] == "info"
    assert sorted(f["objects"]) == sorted([
        AT + ".source_refresh_token_id", AT + ".id_token_id", RT + ".access_token_id", RT + ".revoked"])
    assert len(f["objects"]) == 4
    assert nullable_unique_set(f) == set(
        (t, tuple(sorted(cols)), nullable) for t, cols, nullable in NULLABLE_UNIQUE)
    assert f["seed"] == "002" and f["repair"] == "filtered_unique_index"
    assert result["summary"]["healthy"] is True

    assert info(target)["findings"] == []


@pytest.mark.parametrize("engine", [p for p in ENGINES if p.id != "mysql"])
def test_filtered_unique_index_is_not_reported(make_db, engine):
    """Once a column's UNIQUE is a filtered index (WHERE col IS NOT NULL, the fix of seed 002) it is no
    longer listed. MariaDB/MySQL have no partial indexes, so PostgreSQL and SQLite only."""
    target = make_db(engine)
    drop_unique(target, AT, ["id_token_id"])
    target.execute('CREATE UNIQUE INDEX "oar_accesstoken_id_token_id_uniq" ON "%s" ("id_token_id") '
                   'WHERE "id_token_id" IS NOT NULL' % AT)
    result = info(target, target_engines=["mssql"])
    f = one(result, "nullable_unique_mssql")
    assert AT + ".id_token_id" not in f["objects"]
    assert len(f["objects"]) == 3
    partial = [i for i in result["tables"][AT]["indexes"] if i["name"] == "oar_accesstoken_id_token_id_uniq"]
    assert partial and partial[0]["partial"] is True and partial[0]["unique"] is True


# --------------------------------------------------------------------------
# Seed 003: a natural primary key referenced by an M2M pivot table
# --------------------------------------------------------------------------

AUTHORS = ["A. Visioli", "C. Pedret", "F. Padula", "R. Vilanova", "S. Alcántara", "S. Skogestad"]
ARTICLES = [
    (1, "PID control in terms of robustness/performance and servo/regulator trade-offs"),
    (2, "H-infinity control of fractional linear systems"),
    (3, "Simple analytic rules for model reduction and PID controller tuning"),
]
PIVOT = [(1, 1, "C. Pedret"), (3, 1, "R. Vilanova"), (2, 1, "S. Alcántara"), (5, 2, "A. Visioli"),
         (4, 2, "F. Padula"), (6, 2, "S. Alcántara"), (7, 3, "S. Skogestad")]
FK_AUTHOR = "app_article_authors_author_id_fk_app_author_name"
FK_ARTICLE = "app_article_authors_article_id_fk_app_article_id"

SEED003_DDL = {
    # as Django's MySQL backend creates them (the names the report's migration looks up)
    "mysql": """
CREATE TABLE `app_author` (`name` varchar(30) NOT NULL PRIMARY KEY);
CREATE TABLE `app_article` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `title` varchar(140) NOT NULL);
CREATE TABLE `app_article_authors` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `article_id` integer NOT NULL, `author_id` varchar(30) NOT NULL);
ALTER TABLE `app_article_authors` ADD CONSTRAINT `app_article_authors_article_id_author_id_uniq`
  UNIQUE (`article_id`, `author_id`);
ALTER TABLE `app_article_authors` ADD CONSTRAINT `%(fk_article)s` FOREIGN KEY (`article_id`)
  REFERENCES `app_article` (`id`);
ALTER TABLE `app_article_authors` ADD CONSTRAINT `%(fk_author)s` FOREIGN KEY (`author_id`)
  REFERENCES `app_author` (`name`);
""",
    "postgresql": """
CREATE TABLE "app_author" ("name" varchar(30) NOT NULL PRIMARY KEY);
CREATE TABLE "app_article" ("id" serial NOT NULL PRIMARY KEY, "title" varchar(140) NOT NULL);
CREATE TABLE "app_article_authors" ("id" serial NOT NULL PRIMARY KEY, "article_id" integer NOT NULL,
  "author_id" varchar(30) NOT NULL);
ALTER TABLE "app_article_authors" ADD CONSTRAINT "app_article_authors_article_id_author_id_uniq"
  UNIQUE ("article_id", "author_id");
ALTER TABLE "app_article_authors" ADD CONSTRAINT "%(fk_article)s" FOREIGN KEY ("article_id")
  REFERENCES "app_article" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "app_article_authors" ADD CONSTRAINT "%(fk_author)s" FOREIGN KEY ("author_id")
  REFERENCES "app_author" ("name") DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX "app_article_authors_author_id_like" ON "app_article_authors" ("author_id" varchar_pattern_ops);
""",
    "sqlite": """
CREATE TABLE "app_author" ("name" varchar(30) NOT NULL PRIMARY KEY);
CREATE TABLE "app_article" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "title" varchar(140) NOT NULL);
CREATE TABLE "app_article_authors" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  "article_id" integer NOT NULL REFERENCES "app_article" ("id") DEFERRABLE INITIALLY DEFERRED,
  "author_id" varchar(30) NOT NULL REFERENCES "app_author" ("name") DEFERRABLE INITIALLY DEFERRED);
CREATE UNIQUE INDEX "app_article_authors_article_id_author_id_uniq" ON "app_article_authors" ("article_id", "author_id");
CREATE INDEX "app_article_authors_article_id" ON "app_article_authors" ("article_id");
CREATE INDEX "app_article_authors_author_id" ON "app_article_authors" ("author_id");
""",
}


def load_seed003(target):
    target.execute_script(SEED003_DDL[target.engine] % dict(fk_article=FK_ARTICLE, fk_author=FK_AUTHOR))
    p = target.placeholder
    with contextlib.closing(target.connect()) as conn:
        cur = conn.cursor()
        cur.executemany("INSERT INTO %s (%s) VALUES (%s)" % (qi(target, "app_author"), qi(target, "name"), p),
                        [(a,) for a in AUTHORS])
        cur.executemany("INSERT INTO %s (%s, %s) VALUES (%s, %s)" % (
            qi(target, "app_article"), qi(target, "id"), qi(target, "title"), p, p), ARTICLES)
        cur.executemany("INSERT INTO %s (%s, %s, %s) VALUES (%s, %s, %s)" % (
            qi(target, "app_article_authors"), qi(target, "id"), qi(target, "article_id"), qi(target, "author_id"),
            p, p, p), PIVOT)
    record_migration(target, "app", "0001_initial")
    assert target.query("SELECT COUNT(*) FROM %s WHERE %s = %s" % (
        qi(target, "app_article_authors"), qi(target, "author_id"), p), ("S. Alcántara",)) == [(2,)]


@pytest.mark.parametrize("engine", ENGINES)
def test_natural_pk_referenced_by_pivot(make_db, engine):
    """The report's app_author (name varchar(30) primary key) referenced by the app_article_authors
    pivot, with its data, in a Django database next to DOT's tables."""
    target = make_db(engine)
    load_seed003(target)
    result = info(target, natural_pk_tables=["app_author"])
    assert_codes(result, "natural_pk_referenced")
    f = one(result, "natural_pk_referenced")
    assert f["severity"] == "warning"
    assert f["objects"] == ["app_author.name", "app_article_authors.author_id"]
    d = f["details"]
    assert d["table"] == "app_author" and d["primary_key"] == "name" and d["type"] == "varchar(30)"
    assert d["pivot_tables"] == ["app_article_authors"]
    assert d["referencing"] == [{"table": "app_article_authors", "columns": ["author_id"],
                                 "name": None if engine == "sqlite" else FK_AUTHOR}]
    assert f["seed"] == "003" and f["repair"] == "surrogate_pk"

    # an integer primary key, even referenced, and a natural key nobody references: nothing to report
    result = info(target, natural_pk_tables=["app_article", "django_session"])
    assert result["findings"] == []
