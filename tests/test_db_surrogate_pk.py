"""db_surrogate_pk on field report 003 (a natural primary key replaced by a surrogate id), end to end.

The database is built by the real Django 5.2 test project with the ``library`` app (installed with
``OAR_EXTRA_APPS=library``): ``manage.py migrate library 0001_initial`` creates ``Author(name primary key)``,
``Article.authors`` (an M2M pivot table) and ``Quote.author`` (a nullable foreign key), exactly as Django
builds them on each engine. The template then gets the seed's six authors, three articles and seven pivot
rows, plus thousands of generated authors, articles with random author sets and quotes (and, on MariaDB,
pivot values that differ from the author's name in case and trailing spaces, which the case- and
pad-insensitive foreign key accepted). Each test works on a private copy.

``db_surrogate_pk`` then adds ``Author.id``, rewrites every reference and records ``library.0002`` - the
migration ``makemigrations`` generated for the final models - and the real ``manage.py migrate`` must then
complete, ``makemigrations --check`` be clean, every article keep exactly its authors (by name), names stay
unique, new authors get ids past the maximum, and the foreign keys point at the new id under Django's names.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.findings_helpers import Databases
from tests.support.django import migrate, run_manage, showmigrations
from tests.support.modules import ROOT, module_utils, run_module

LIB = {"OAR_EXTRA_APPS": "library"}
AUTHOR, ARTICLE, PIVOT, QUOTE = "library_author", "library_article", "library_article_authors", "library_quote"
M0002 = "0002_author_surrogate_id"
SHADOW = "author_id_oar_new"

MYSQL = pytest.param("mysql", marks=pytest.mark.mysql, id="mysql")
POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql")
SQLITE = pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite")
ENGINES = [MYSQL, POSTGRESQL, SQLITE]

# the seed's data (field report 003)
SEED_AUTHORS = ["A. Visioli", "C. Pedret", "F. Padula", "R. Vilanova", "S. Alcántara", "S. Skogestad"]
SEED_ARTICLES = [
    (1, "PID control in terms of robustness/performance and servo/regulator trade-offs"),
    (2, "H-infinity control of fractional linear systems"),
    (3, "Simple analytic rules for model reduction and PID controller tuning"),
]
SEED_PIVOT = [(1, 1, "C. Pedret"), (3, 1, "R. Vilanova"), (2, 1, "S. Alcántara"), (5, 2, "A. Visioli"),
              (4, 2, "F. Padula"), (6, 2, "S. Alcántara"), (7, 3, "S. Skogestad")]

BIG = dict(authors=3000, articles=2000, quotes=1000)
SMALL = dict(authors=60, articles=40, quotes=20)
# MariaDB: pivot rows whose value differs from the author's name in case / trailing spaces (article id, value)
MYSQL_VARIANTS = [(9001, "c. pedret"), (9001, "A. VISIOLI "), (9002, "s. alcántara")]


def ok(result):
    assert not result.get("failed"), json.dumps(result, indent=1, default=str)[:8000]
    return result


def surgery(db, check_mode=False, diff=False, **options):
    params = dict(db.params, table=AUTHOR, migration_app="library", migration_name=M0002)
    params.update(options)
    return run_module("db_surrogate_pk", params, check_mode=check_mode, diff=diff)


def ph(db):
    return db.placeholder


def run_many(db, sql, rows):
    conn = db.connect()
    try:
        cur = conn.cursor()
        if db.engine == "sqlite":
            cur.execute("BEGIN")
        cur.executemany(sql.replace("%s", ph(db)), rows)
        if db.engine == "sqlite":
            cur.execute("COMMIT")
        elif db.engine == "postgresql":
            conn.commit()
        cur.close()
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Data: the seed's rows plus generated ones
# --------------------------------------------------------------------------


def load_data(db, size):
    rng = random.Random(3)
    names = list(SEED_AUTHORS) + ["Autor %05d %s" % (i, rng.choice(["Ωmega", "Ærø", "Zoë", "Łukasz", "Li"]))
                                  for i in range(size["authors"])]
    run_many(db, "INSERT INTO %s (name) VALUES (%%s)" % AUTHOR, [(n,) for n in names])
    articles = list(SEED_ARTICLES) + [(100 + i, "Generated article %d" % i) for i in range(size["articles"])]
    run_many(db, "INSERT INTO %s (id, title) VALUES (%%s, %%s)" % ARTICLE, articles)
    pivot = list(SEED_PIVOT)
    next_id = 100
    for article_id, _title in articles[3:]:
        for name in sorted(rng.sample(names, rng.randint(1, 4))):
            pivot.append((next_id, article_id, name))
            next_id += 1
    if db.engine == "mysql":
        run_many(db, "INSERT INTO %s (id, title) VALUES (%%s, %%s)" % ARTICLE,
                 [(9001, "case variants"), (9002, "case variants 2")])
        for article_id, value in MYSQL_VARIANTS:
            pivot.append((next_id, article_id, value))
            next_id += 1
    rng.shuffle(pivot)  # pivot ids not in name order
    run_many(db, "INSERT INTO %s (id, article_id, author_id) VALUES (%%s, %%s, %%s)" % PIVOT, pivot)
    quotes = [(i + 1, "quote %d" % i, rng.choice(names) if i % 5 else None) for i in range(size["quotes"])]
    run_many(db, "INSERT INTO %s (id, text, author_id) VALUES (%%s, %%s, %%s)" % QUOTE, quotes)
    if db.engine == "postgresql":  # explicit ids: move the sequences on, as a dump restore does
        for table in (ARTICLE, PIVOT, QUOTE):
            db.execute("SELECT setval(pg_get_serial_sequence('%s', 'id'), MAX(id)) FROM %s" % (table, table))
    return len(names), len(pivot), sum(1 for q in quotes if q[2] is not None)


class Template(object):
    def __init__(self, target, authors, pivot_rows, quotes_with_author):
        self.target = target
        self.authors = authors
        self.pivot_rows = pivot_rows
        self.quotes_with_author = quotes_with_author


def _template_fixture(engine, server, tmp_path_factory):
    dbs = Databases(engine, server, tmp_path_factory.mktemp("oar_sp_tpl_" + engine))
    cache = {}

    def get(kind):
        if kind not in cache:
            target = dbs.empty()
            migrate(target, "library", "0001_initial", extra_env=LIB)
            cache[kind] = Template(target, *load_data(target, BIG if kind == "big" else SMALL))
        return cache[kind]

    try:
        yield get
    finally:
        dbs.close()


@pytest.fixture(scope="session")
def _sp_tpl_mysql(mariadb_server, tmp_path_factory):
    yield from _template_fixture("mysql", mariadb_server, tmp_path_factory)


@pytest.fixture(scope="session")
def _sp_tpl_postgresql(postgres_server, tmp_path_factory):
    yield from _template_fixture("postgresql", postgres_server, tmp_path_factory)


@pytest.fixture(scope="session")
def _sp_tpl_sqlite(tmp_path_factory):
    yield from _template_fixture("sqlite", None, tmp_path_factory)


class Site(object):
    def __init__(self, template, db):
        self.db = db
        self.template = template


class _Sites(object):
    def __init__(self, request, tmp_path):
        self.request = request
        self.tmp_path = tmp_path
        self.dbs = {}

    def __call__(self, engine, kind="big"):
        template = self.request.getfixturevalue("_sp_tpl_" + engine)(kind)
        if engine not in self.dbs:
            server = None if engine == "sqlite" else self.request.getfixturevalue(
                {"mysql": "mariadb_server", "postgresql": "postgres_server"}[engine])
            self.dbs[engine] = Databases(engine, server, self.tmp_path)
        return Site(template, self.dbs[engine].copy(template.target))

    @contextlib.contextmanager
    def scratch(self, engine, kind="big"):
        """A private copy dropped as soon as the block ends (for tests that make many)."""
        template = self.request.getfixturevalue("_sp_tpl_" + engine)(kind)
        server = None if engine == "sqlite" else self.request.getfixturevalue(
            {"mysql": "mariadb_server", "postgresql": "postgres_server"}[engine])
        dbs = Databases(engine, server, self.tmp_path)
        try:
            yield Site(template, dbs.copy(template.target))
        finally:
            dbs.close()

    def close(self):
        for dbs in self.dbs.values():
            dbs.close()


@pytest.fixture
def site(request, tmp_path):
    """``site(engine, kind)``: a private copy of the engine's template (library at 0001 with the seed's data
    and generated rows; ``kind`` ``big`` or ``small``)."""
    sites = _Sites(request, tmp_path)
    try:
        yield sites
    finally:
        sites.close()


# --------------------------------------------------------------------------
# Fingerprints and catalog checks (independent of the module's own catalog code)
# --------------------------------------------------------------------------


def author_key(db):
    """The author column the references hold: the name before the surgery, the id after."""
    if db.engine == "mysql":
        rows = db.query("SELECT data_type FROM information_schema.columns WHERE table_schema = DATABASE() "
                        "AND table_name = %s AND column_name = 'author_id'", (PIVOT,))
    elif db.engine == "postgresql":
        rows = db.query("SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() "
                        "AND table_name = %s AND column_name = 'author_id'", (PIVOT,))
    else:
        rows = [(r[2],) for r in db.query("SELECT * FROM pragma_table_info(?)", (PIVOT,)) if r[1] == "author_id"]
    return "id" if "int" in rows[0][0].lower() else "name"


def fingerprint(db):
    """{article id: sorted author names} and {quote id: author name or None}, through the database's own
    comparison of the reference with the author (the name before, the id after)."""
    key = author_key(db)
    articles = {}
    for article_id, name in db.query("SELECT p.article_id, a.name FROM %s p JOIN %s a ON a.%s = p.author_id" % (
            PIVOT, AUTHOR, key)):
        articles.setdefault(article_id, []).append(name)
    assert sum(len(v) for v in articles.values()) == db.query("SELECT COUNT(*) FROM %s" % PIVOT)[0][0], \
        "a pivot row matches no author"
    quotes = dict(db.query("SELECT q.id, a.name FROM %s q LEFT JOIN %s a ON a.%s = q.author_id" % (
        QUOTE, AUTHOR, key)))
    return dict((k, sorted(v)) for k, v in articles.items()), quotes


def authors(db):
    return db.query("SELECT name FROM %s ORDER BY name" % AUTHOR)


def ids_by_name(db):
    return dict(db.query("SELECT name, id FROM %s" % AUTHOR))


def assert_ids_complete(db, n):
    """Every author has an id; ids are 1..n in the order of the names (as the database orders them)."""
    ordered = [r[0] for r in db.query("SELECT id FROM %s ORDER BY name" % AUTHOR)]
    assert ordered == list(range(1, n + 1))


def primary_key(db, table):
    if db.engine == "mysql":
        return [r[0] for r in db.query(
            "SELECT column_name FROM information_schema.statistics WHERE table_schema = DATABASE() "
            "AND table_name = %s AND index_name = 'PRIMARY' ORDER BY seq_in_index", (table,))]
    if db.engine == "postgresql":
        return [r[0] for r in db.query(
            "SELECT a.attname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_attribute a "
            "ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey) WHERE t.relname = %s AND i.indisprimary",
            (table,))]
    return [r[1] for r in sorted(db.query("SELECT * FROM pragma_table_info(?)", (table,)), key=lambda r: r[5])
            if r[5]]


def foreign_keys_to_author(db):
    """{(table, column): (constraint name or None, referenced column)} of the foreign keys to library_author."""
    out = {}
    if db.engine == "mysql":
        for table, name, column, ref_col in db.query(
                "SELECT table_name, constraint_name, column_name, referenced_column_name FROM "
                "information_schema.key_column_usage WHERE table_schema = DATABASE() AND referenced_table_name = %s",
                (AUTHOR,)):
            out[(table, column)] = (name, ref_col)
    elif db.engine == "postgresql":
        for table, name, column, ref_col, valid in db.query(
                "SELECT t.relname, con.conname, a.attname, ra.attname, con.convalidated FROM pg_constraint con "
                "JOIN pg_class t ON t.oid = con.conrelid JOIN pg_class r ON r.oid = con.confrelid "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = con.conkey[1] "
                "JOIN pg_attribute ra ON ra.attrelid = r.oid AND ra.attnum = con.confkey[1] "
                "WHERE con.contype = 'f' AND r.relname = %s", (AUTHOR,)):
            assert valid, name
            out[(table, column)] = (name, ref_col)
    else:
        for table in (PIVOT, QUOTE):
            for row in db.query("SELECT * FROM pragma_foreign_key_list(?)", (table,)):
                if row[2] == AUTHOR:
                    out[(table, row[3])] = (None, row[4])
    return out


def index_names(db, table):
    if db.engine == "mysql":
        return set(r[0] for r in db.query("SELECT DISTINCT index_name FROM information_schema.statistics WHERE "
                                          "table_schema = DATABASE() AND table_name = %s", (table,)))
    if db.engine == "postgresql":
        return set(r[0] for r in db.query("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                                          "AND tablename = %s", (table,)))
    return set(r[1] for r in db.query("SELECT * FROM pragma_index_list(?)", (table,)))


def schema_dump(db):
    """A text of the library tables' schema, to prove that something changed nothing."""
    if db.engine == "sqlite":
        return db.query("SELECT type, name, sql FROM sqlite_master WHERE tbl_name LIKE 'library%' ORDER BY name")
    if db.engine == "mysql":
        return [db.query("SHOW CREATE TABLE %s" % t)[0][1] for t in (AUTHOR, ARTICLE, PIVOT, QUOTE)]
    return (db.query("SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity "
                     "FROM information_schema.columns WHERE table_name LIKE 'library%%' ORDER BY 1, 2"),
            db.query("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'library%%' "
                     "ORDER BY 1, 2"),
            db.query("SELECT conname, contype, convalidated, pg_get_constraintdef(oid) FROM pg_constraint "
                     "WHERE conrelid::regclass::text LIKE 'library%%' ORDER BY 1"))


def names_django_gives(db):
    """The names Django's schema editor gives the objects of the final state (computed by the dialect as
    Django's _create_index_name / _fk_constraint_name do; hashes only depend on table and column names)."""
    dialect = module_utils("dialects").get_dialect(db.engine, "10.11-MariaDB" if db.engine == "mysql" else "15")
    return dict(
        uniq=dialect.django_index_name(AUTHOR, ["name"], "_uniq"),
        pivot_fk=dialect.django_fk_name(PIVOT, "author_id", AUTHOR, "id"),
        quote_fk=dialect.django_fk_name(QUOTE, "author_id", AUTHOR, "id"),
    )


def assert_final_schema(db):
    assert primary_key(db, AUTHOR) == ["id"]
    fks = foreign_keys_to_author(db)
    assert set(fks) == {(PIVOT, "author_id"), (QUOTE, "author_id")}, fks
    assert all(ref_col == "id" for _name, ref_col in fks.values()), fks
    names = names_django_gives(db)
    if db.engine != "sqlite":
        assert fks[(PIVOT, "author_id")][0] == names["pivot_fk"]
        assert fks[(QUOTE, "author_id")][0] == names["quote_fk"]
        assert names["uniq"] == "library_author_name_ab7b0c91_uniq"  # what sqlmigrate library 0002 names it
        assert names["uniq"] in index_names(db, AUTHOR)
    pivot_indexes = index_names(db, PIVOT)
    assert "library_article_authors_article_id_author_id_256d2852_uniq" in pivot_indexes
    if db.engine == "mysql":
        assert names["pivot_fk"] in pivot_indexes  # InnoDB's index of the foreign key, named after it
    else:
        assert "library_article_authors_author_id_6235214c" in pivot_indexes
    if db.engine == "postgresql":
        assert names["pivot_fk"] == "library_article_authors_author_id_6235214c_fk_library_author_id"
        assert "library_article_authors_author_id_6235214c_like" not in pivot_indexes  # integer now
        assert "library_author_name_ab7b0c91_like" in index_names(db, AUTHOR)  # name is still a varchar
    assert not any("oar" in name for name in pivot_indexes | index_names(db, QUOTE) | index_names(db, AUTHOR))
    for table in (PIVOT, QUOTE):
        assert SHADOW not in _columns(db, table)


def _columns(db, table):
    if db.engine == "sqlite":
        return [r[1] for r in db.query("SELECT * FROM pragma_table_info(?)", (table,))]
    schema = "DATABASE()" if db.engine == "mysql" else "current_schema()"
    return [r[0] for r in db.query("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                                   "AND table_name = %%s" % schema, (table,))]


DJANGO_CHECKS = r"""
import json
from django.db import IntegrityError, transaction
from library.models import Article, Author
out = {"max_before": Author.objects.order_by("-id").values_list("id", flat=True).first()}
new = Author.objects.create(name="Brand New Author")
out["new_id"] = new.id
try:
    with transaction.atomic():
        Author.objects.create(name="C. Pedret")
    out["duplicate"] = "accepted"
except IntegrityError:
    out["duplicate"] = "rejected"
article = Article.objects.create(title="written after the surgery")
article.authors.add(new, Author.objects.get(name="S. Alcántara"))
out["new_article"] = sorted(article.authors.values_list("name", flat=True))
out["seed"] = dict((str(a.pk), sorted(a.authors.values_list("name", flat=True)))
                   for a in Article.objects.filter(pk__lte=3))
out["pedret_articles"] = sorted(Author.objects.get(name="C. Pedret").articles.values_list("pk", flat=True))
# the names Django's own schema editor gives the objects of the final models
from django.db import connection
from library.models import Quote
editor = connection.schema_editor()
through = Article.authors.through
fk_suffix = "_fk_%(to_table)s_%(to_column)s"
out["names"] = {
    "pivot_fk": str(editor._fk_constraint_name(through, through._meta.get_field("author"), fk_suffix)).strip('"`'),
    "quote_fk": str(editor._fk_constraint_name(Quote, Quote._meta.get_field("author"), fk_suffix)).strip('"`'),
    "uniq": editor._create_index_name(Author._meta.db_table, ["name"], suffix="_uniq"),
    "pivot_index": editor._create_index_name(through._meta.db_table, ["author_id"]),
    "pivot_unique": editor._create_index_name(through._meta.db_table, ["article_id", "author_id"], suffix="_uniq"),
}
print(json.dumps(out))
"""


def django_works(db):
    """The real migrate/makemigrations/showmigrations, then Django's ORM on the new schema."""
    migrate(db, extra_env=LIB)
    run_manage(db, "makemigrations", "--check", "--dry-run", extra_env=LIB)
    shown = showmigrations(db, "library", extra_env=LIB)
    assert shown == {"0001_initial": True, M0002: True}, shown
    out = json.loads(run_manage(db, "shell", "-c", DJANGO_CHECKS, extra_env=LIB).stdout.strip().splitlines()[-1])
    assert out["new_id"] > out["max_before"], out
    assert out["duplicate"] == "rejected"
    assert out["new_article"] == ["Brand New Author", "S. Alcántara"]
    assert out["seed"] == {"1": ["C. Pedret", "R. Vilanova", "S. Alcántara"],
                           "2": ["A. Visioli", "F. Padula", "S. Alcántara"], "3": ["S. Skogestad"]}
    return out


def duplicate_name_rejected(db, name):
    with pytest.raises(Exception) as err:
        db.execute("INSERT INTO %s (name) VALUES (%s)" % (AUTHOR, ph(db)), (name,))
    assert re.search(r"(?i)duplicate|unique", str(err.value)), err.value


def natural_pk_findings(db):
    found = ok(run_module("oauth_info", dict(db.params, natural_pk_tables=[AUTHOR])))["findings"]
    return [f for f in found if f["code"] == "natural_pk_referenced"]


def statuses(result):
    return [(r["key"], r["status"]) for r in result["plan"]]


# --------------------------------------------------------------------------
# 1. End to end
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_seed003_end_to_end(site, engine):
    s = site(engine)
    db, tpl = s.db, s.template
    before = fingerprint(db)
    names_before = authors(db)
    schema_before = schema_dump(db)
    assert len(before[0]) == 3 + 2000 + (2 if engine == "mysql" else 0)
    # oauth_info's finding for seed 003 names what the surgery must rewrite
    found = natural_pk_findings(db)
    assert [f["objects"] for f in found] == [["library_author.name", "%s.author_id" % PIVOT, "%s.author_id" % QUOTE]]

    # check mode: the plan with its SQL and locks, nothing changed
    planned = ok(surgery(db, check_mode=True, diff=True))
    assert planned["changed"] is True
    assert all(r["status"] == "would_run" for r in planned["plan"])
    assert all(r["lock"] and r["sql"] for r in planned["plan"]), planned["plan"]
    assert planned["executed_queries"] == [q for r in planned["plan"] for q in r["sql"]]
    kinds = [r["key"].split(":")[1] for r in planned["plan"]]
    assert kinds[:2] == ["add_id", "backfill_id"] and kinds[-1] == "record_migration"
    assert "switch" in kinds or "switch_pk" in kinds
    assert planned["diff"]["before"] in planned["diff"]["after"]
    assert schema_dump(db) == schema_before and fingerprint(db) == before
    assert showmigrations(db, "library", extra_env=LIB) == {"0001_initial": True, M0002: False}

    result = ok(surgery(db, diff=True, batch_size=700))
    assert result["changed"] is True and result["migration_recorded"] is True
    assert [r["status"] for r in result["plan"]] == ["ran"] * len(result["plan"])
    assert result["ids_assigned"] == tpl.authors
    # every referencing row rewritten once (MySQL/PostgreSQL/SQLite catch-ups find nothing left to do)
    assert result["rows_rewritten"] == tpl.pivot_rows + tpl.quotes_with_author
    assert sorted((r["table"], r["column"], r["nullable"]) for r in result["references"]) == [
        (PIVOT, "author_id", False), (QUOTE, "author_id", True)]
    assert result["diff"]["before"] != result["diff"]["after"]
    if engine == "mysql":
        assert result["collation"].endswith("_ci")
        ids = ids_by_name(db)
        variants = db.query("SELECT article_id, author_id FROM %s WHERE article_id IN (9001, 9002) "
                            "ORDER BY article_id, author_id" % PIVOT)
        assert variants == sorted([(9001, ids["A. Visioli"]), (9001, ids["C. Pedret"]),
                                   (9002, ids["S. Alcántara"])])

    # nothing lost: every article keeps exactly its authors, every quote its author
    assert fingerprint(db) == before
    assert authors(db) == names_before
    assert_ids_complete(db, tpl.authors)
    ids = ids_by_name(db)
    # as in the seed's post, ids follow the names, and its pivot rows now hold them
    assert sorted(SEED_AUTHORS, key=lambda name: ids[name]) == SEED_AUTHORS
    assert sorted(db.query("SELECT id, article_id, author_id FROM %s WHERE id <= 7" % PIVOT)) == sorted(
        (pivot_id, article_id, ids[name]) for pivot_id, article_id, name in SEED_PIVOT)
    assert_final_schema(db)
    duplicate_name_rejected(db, "C. Pedret")
    if engine == "mysql":
        duplicate_name_rejected(db, "c. pedret ")  # the natural key's collation still decides

    again = ok(surgery(db, diff=True))
    assert again["changed"] is False and again["executed_queries"] == []
    assert again["migration_recorded"] is False
    assert again["diff"]["before"] == again["diff"]["after"] == result["diff"]["after"]
    # without column: the natural column is found from the catalog, still nothing to do
    assert ok(surgery(db, column=None))["changed"] is False

    assert natural_pk_findings(db) == []
    out = django_works(db)
    assert out["new_id"] > tpl.authors
    # the catalog's names are the ones Django's schema editor computes for the final models
    django_names = out["names"]
    fks = foreign_keys_to_author(db)
    if engine != "sqlite":
        assert fks[(PIVOT, "author_id")][0] == django_names["pivot_fk"] == names_django_gives(db)["pivot_fk"]
        assert fks[(QUOTE, "author_id")][0] == django_names["quote_fk"]
        assert django_names["uniq"] in index_names(db, AUTHOR)
    assert django_names["pivot_unique"] in index_names(db, PIVOT)
    if engine != "mysql":
        assert django_names["pivot_index"] in index_names(db, PIVOT)
    assert fingerprint(db)[0][1] == before[0][1]


# --------------------------------------------------------------------------
# 2. Killed runs converge
# --------------------------------------------------------------------------

_RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.support.modules import run_module
print(json.dumps(run_module("db_surrogate_pk", json.loads(sys.argv[2]))))
"""


def kill_during(db, progress_file, key, **options):
    """Run db_surrogate_pk in a subprocess (small batches, 10 ms apart) and SIGKILL it once the progress file
    shows the batched step ``key`` part-way."""
    params = dict(db.params, table=AUTHOR, migration_app="library", migration_name=M0002, batch_size=50,
                  throttle=0.01, progress_file=str(progress_file), **options)
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, ROOT, json.dumps(params)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 90
    entry = None
    try:
        while True:
            assert proc.poll() is None, "db_surrogate_pk ended before it could be killed: %s" % (
                proc.communicate()[0][-3000:],)
            assert time.monotonic() < deadline, "no progress of %s within 90 s" % key
            try:
                with open(progress_file) as fh:
                    entry = json.load(fh)["steps"].get(key)
            except (OSError, ValueError):
                entry = None
            if entry and entry["rows_total"] and entry["rows_done"] >= entry["rows_total"] // 4:
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return entry


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("where", ["backfill_id", "backfill_fk"])
def test_killed_mid_backfill_converges(site, engine, where, tmp_path):
    s = site(engine)
    db = s.db
    before = fingerprint(db)
    key = "surrogate_pk:%s:%s" % (where, AUTHOR if where == "backfill_id" else PIVOT + ".author_id")
    entry = kill_during(db, tmp_path / "progress.json", key)
    assert 0 < entry["rows_done"] < entry["rows_total"], entry
    # the kill left the work half done: some rows with a new value, some without
    column, table = ("id", AUTHOR) if where == "backfill_id" else (SHADOW, PIVOT)
    done, missing = db.query("SELECT SUM(CASE WHEN %s IS NULL THEN 0 ELSE 1 END), SUM(CASE WHEN %s IS NULL THEN 1 "
                             "ELSE 0 END) FROM %s" % (column, column, table))[0]
    assert done > 0 and missing > 0, (done, missing)
    assert primary_key(db, AUTHOR) == ["name"]
    assert fingerprint(db) == before  # the site still works on the natural key

    resumed = ok(surgery(db, batch_size=1000))
    st = dict((k.split(":")[1] + ":" + k.split(":")[2], v) for k, v in statuses(resumed))
    assert st["add_id:%s" % AUTHOR] == "done_already"
    if where == "backfill_fk":
        assert st["backfill_id:%s" % AUTHOR] == "done_already"
        assert st["add_shadow:%s.author_id" % PIVOT] == "done_already"
        # only the rows the killed run had not reached were rewritten (then the quotes)
        assert resumed["rows_rewritten"] == missing + s.template.quotes_with_author
    else:
        assert resumed["ids_assigned"] == missing
    assert fingerprint(db) == before
    assert_ids_complete(db, s.template.authors)  # ids still follow the names: batches are transactions
    assert_final_schema(db)
    assert ok(surgery(db))["changed"] is False
    if where == "backfill_fk":
        migrate(db, "library", extra_env=LIB)
        assert showmigrations(db, "library", extra_env=LIB) == {"0001_initial": True, M0002: True}


def _run_first_steps(db, k, **options):
    """Run the first ``k`` steps of the plan in-process and stop there: a run that died between steps."""
    connection = module_utils("connection")
    sp = module_utils("surrogate_pk")
    plan_mod = module_utils("plan")
    params = dict(db.params, connect_timeout=10, ssl_mode="disable", table=AUTHOR, migration_app="library",
                  migration_name=M0002, lock_timeout=5000, statement_timeout=0, batch_size=7)
    params.update(options)
    conn = connection.connect(params)
    try:
        plan, _target, _repair = sp.build(conn, params)
        partial = plan_mod.Plan(plan.steps[:k])
        reports = partial.execute(plan_mod.Context(conn, params, plan_mod.Progress()))
        return [r["key"] for r in reports], len(plan.steps)
    finally:
        conn.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_stopped_after_any_step_converges(site, engine):
    """For every k, a run that stopped after its k-th step (killed between two steps) is finished by the next
    run, whose end state is exactly the uninterrupted run's."""
    straight_site = site(engine, "small")
    before = fingerprint(straight_site.db)
    straight = ok(surgery(straight_site.db, diff=True))
    n = len(straight["plan"])
    assert n >= 8
    reference = (straight["diff"]["after"], sorted(ids_by_name(straight_site.db).items()),
                 sorted(straight_site.db.query("SELECT id, article_id, author_id FROM %s" % PIVOT)))
    stops = [k for k in range(1, n) if not straight["plan"][k - 1]["key"].endswith(QUOTE + ".author_id")]
    assert len(stops) >= n // 2  # the quote's own steps are the pivot's again, on another table
    for k in stops:
        with site.scratch(engine, "small") as s:
            ran, total = _run_first_steps(s.db, k)
            assert total == n and len(ran) == k
            resumed = ok(surgery(s.db, diff=True))
            assert [st for _key, st in statuses(resumed)] == ["done_already"] * k + ["ran"] * (n - k), (
                k, resumed["plan"])
            assert (resumed["diff"]["after"], sorted(ids_by_name(s.db).items()),
                    sorted(s.db.query("SELECT id, article_id, author_id FROM %s" % PIVOT))) == reference, k
            assert fingerprint(s.db) == before, k
            if k == stops[-1]:
                assert ok(surgery(s.db))["changed"] is False
    migrate(straight_site.db, "library", extra_env=LIB)


# --------------------------------------------------------------------------
# 3. Prepare online, the site writes, then the switch
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_prepare_then_live_writes_then_switch(site, engine):
    s = site(engine, "small")
    db = s.db
    prepared = ok(surgery(db, phase="prepare"))
    assert prepared["changed"] is True and prepared["migration_recorded"] is False
    kinds = set(r["key"].split(":")[1] for r in prepared["plan"])
    assert not kinds & {"switch", "switch_pk", "swap", "record_migration"}
    assert primary_key(db, AUTHOR) == ["name"]
    assert ok(surgery(db, phase="prepare"))["changed"] is False

    # the code still on the natural key keeps writing: new authors (no id), pivot rows and quotes by name,
    # a quote moved to another author, a pivot row removed
    run_many(db, "INSERT INTO %s (name) VALUES (%%s)" % AUTHOR, [("Late Author",), ("Aaron Early",)])
    run_many(db, "INSERT INTO %s (article_id, author_id) VALUES (%%s, %%s)" % PIVOT,
             [(1, "Late Author"), (2, "Aaron Early"), (3, "C. Pedret")])
    run_many(db, "INSERT INTO %s (text, author_id) VALUES (%%s, %%s)" % QUOTE, [("late quote", "Late Author")])
    db.execute("UPDATE %s SET author_id = %s WHERE id = 2" % (QUOTE, ph(db)), ("S. Skogestad",))
    db.execute("UPDATE %s SET author_id = NULL WHERE id = 3" % QUOTE)
    db.execute("DELETE FROM %s WHERE id = 7" % PIVOT)
    before = fingerprint(db)
    assert before[1][2] == "S. Skogestad" and before[1][3] is None

    done = ok(surgery(db))
    assert done["changed"] is True and done["migration_recorded"] is True
    assert fingerprint(db) == before
    ids = ids_by_name(db)
    assert len(set(ids.values())) == len(ids) == s.template.authors + 2
    assert ids["Late Author"] > s.template.authors and ids["Aaron Early"] > s.template.authors
    assert_final_schema(db)
    assert ok(surgery(db))["changed"] is False


@pytest.mark.parametrize("engine", ENGINES)
def test_references_leave_out_a_to_field_foreign_key(site, engine):
    """``references`` lists what to rewrite: a foreign key left out (a ForeignKey(to_field='name')) keeps
    referencing the natural column, which stays unique (PostgreSQL: re-attached to its unique constraint)."""
    s = site(engine, "small")
    db = s.db
    quotes_before = dict(db.query("SELECT id, author_id FROM %s" % QUOTE))
    articles_before = fingerprint(db)[0]
    result = ok(surgery(db, references=["%s.author_id" % PIVOT], migration_app=None, migration_name=None))
    assert [r["table"] for r in result["references"]] == [PIVOT]
    assert result["kept_references"] == ["%s.author_id" % QUOTE]
    assert primary_key(db, AUTHOR) == ["id"]
    fks = foreign_keys_to_author(db)
    assert fks[(PIVOT, "author_id")][1] == "id" and fks[(QUOTE, "author_id")][1] == "name"
    assert dict(db.query("SELECT id, author_id FROM %s" % QUOTE)) == quotes_before
    ids = ids_by_name(db)
    assert dict((a, sorted(n)) for a, n in articles_before.items()) == dict(
        (a, sorted(n)) for a, n in _articles_by_id(db, ids).items())
    if engine == "sqlite":  # the kept foreign key still checks against the names
        assert db.query("PRAGMA foreign_key_check(%s)" % QUOTE) == []
        db.execute("INSERT INTO %s (text, author_id) VALUES ('x', 'Nobody')" % QUOTE)
        assert len(db.query("PRAGMA foreign_key_check(%s)" % QUOTE)) == 1
        db.execute("DELETE FROM %s WHERE author_id = 'Nobody'" % QUOTE)
    else:
        with pytest.raises(Exception):  # the kept foreign key is enforced
            db.execute("INSERT INTO %s (text, author_id) VALUES ('x', 'Nobody')" % QUOTE)
    again = ok(surgery(db, references=["%s.author_id" % PIVOT], migration_app=None, migration_name=None))
    assert again["changed"] is False


def _articles_by_id(db, ids):
    names = dict((i, n) for n, i in ids.items())
    out = {}
    for article_id, author_id in db.query("SELECT article_id, author_id FROM %s" % PIVOT):
        out.setdefault(article_id, []).append(names[author_id])
    return out


# --------------------------------------------------------------------------
# 4. Locks, bad input
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", [MYSQL, POSTGRESQL])
def test_switch_under_lock_timeout_applies_nothing(site, engine):
    s = site(engine, "small")
    db = s.db
    ok(surgery(db, phase="prepare"))
    before_schema = schema_dump(db)
    held, release = threading.Event(), threading.Event()

    def hold():
        conn = db.connect()
        try:
            cur = conn.cursor()
            if engine == "mysql":
                cur.execute("START TRANSACTION")
                cur.execute("SELECT COUNT(*) FROM %s" % AUTHOR)  # a metadata lock until the transaction ends
                cur.fetchall()
            else:
                conn.autocommit = False
                cur.execute("LOCK TABLE %s IN ACCESS SHARE MODE" % AUTHOR)  # what any reader holds
            held.set()
            release.wait(60)
            conn.rollback()
        finally:
            conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(30)
        started = time.monotonic()
        failed = surgery(db, lock_timeout=1000)
        assert failed.get("failed") is True
        assert time.monotonic() - started < 30
        assert "lock_timeout" in failed["msg"] and failed["object"] == AUTHOR, failed["msg"]
        assert schema_dump(db) == before_schema and primary_key(db, AUTHOR) == ["name"]
    finally:
        release.set()
        thread.join()
    ok(surgery(db))
    assert_final_schema(db)


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_input_changes_nothing(site, engine):
    s = site(engine, "small")
    db = s.db
    before = (schema_dump(db), fingerprint(db))

    def refused(expect, **options):
        result = surgery(db, **options)
        assert result.get("failed") is True, result
        assert result["changed"] is False and result.get("executed_queries", []) == []
        assert re.search(expect, result["msg"]), result["msg"]
        assert "Fix:" in result["msg"]
        assert (schema_dump(db), fingerprint(db)) == before
        return result

    r = refused(r"table library_writer does not exist", table="library_writer")
    assert r["object"] == "library_writer"
    r = refused(r"column surname does not exist in table library_author", column="surname")
    assert r["object"] == "library_author.surname"
    refused(r"primary key of library_article, id, is already an integer", table=ARTICLE, new_column="sid")
    refused(r"primary key of library_article is already the integer column id", table=ARTICLE, column=None,
            new_column="id")
    refused(r"already has a column name of type varchar", table=AUTHOR, new_column="name")
    refused(r"is not table.column", references=["library_article_authors"])
    refused(r"column writer_id does not exist in table library_article_authors",
            references=["library_article_authors.writer_id"])
    refused(r"refusing table name", table="library_author; DROP TABLE x")
    r = run_module("db_surrogate_pk", dict(db.params, table=AUTHOR, migration_app="library"))
    assert r.get("failed") is True and "migration_name" in r["msg"]
    assert (schema_dump(db), fingerprint(db)) == before
    # and the site is still at 0001, intact: the surgery then works
    ok(surgery(db))
    assert fingerprint(db) == before[1]
