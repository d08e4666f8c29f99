"""How tests/data/mssql_snapshot_*.json were built: SQL Server catalog snapshots, as
files/mssql_catalog_snapshot.sql prints them, of three databases no one could run here.

``python -m tests.support.mssql_snapshots`` rewrites the three files. The JSON keys,
types and omissions are those of the query's ``FOR JSON PATH`` output (``NULL`` values
left out, ``bit`` as true/false). The tables are DOT 3.4.1's, column by column, as the
real migrations create them (read from a PostgreSQL database migrated by the test
project), with SQL Server types as mssql-django spells them (``nvarchar``, ``datetime2``,
``bit``, UUIDField as ``char(32)``, JSONField as ``nvarchar(max)`` with an ISJSON check),
and Django's index and foreign key names (computed by Django's ``names_digest``, SQL
Server's 128-character limit).

* ``seed002``: shaped like field report 002 - DOT 3.4.1 tables whose nullable one-to-one
  columns carry plain ``UNIQUE`` constraints with system names (``UQ__...``), as
  django-pyodbc-azure created them; the report's ``myapp_*`` tables, one of which has a
  nullable column under a unique *index*.
* ``intwidth``: ``oauth2_provider_application.id`` is still ``int`` (its IDENTITY from an old
  DOT), while the token tables' ``application_id`` are ``bigint`` without foreign key (SQL
  Server refuses one between int and bigint, error 1778); ``oauth2_provider_grant`` and the
  site's ``myapp_clientnote`` reference it with ``int`` columns and foreign keys, there is a
  user-created statistics object and a CHECK constraint on one of them.
* ``healthy``: DOT 3.4.1 as mssql-django leaves it: filtered unique indexes, bigint keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.db.backends.utils import names_digest

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

DOT_MIGRATIONS = [
    "0001_initial", "0002_auto_20190406_1805", "0003_auto_20201211_1314", "0004_auto_20200902_2022",
    "0005_auto_20211222_2352", "0006_alter_application_client_secret", "0007_application_post_logout_redirect_uris",
    "0008_alter_accesstoken_token", "0009_add_hash_client_secret", "0010_application_allowed_origins",
    "0011_refreshtoken_token_family", "0012_add_token_checksum",
    "0013_alter_application_authorization_grant_type_device", "0014_alter_help_text",
    "0015_refreshtoken_token_checksum", "0016_alter_devicegrant_scope", "0017_application_dcr_created",
    "0018_resource_indicators", "0019_application_registration_source", "0020_cimd_application_fields",
    "0021_translatable_field_labels", "0022_refreshtoken_token_family_index",
]


def django_name(table, columns, suffix=""):
    """Django's _create_index_name with SQL Server's 128 characters (never truncated here)."""
    name = "%s_%s_%s" % (table, "_".join(columns), names_digest(table, *columns, length=8) + suffix)
    assert len(name) <= 128, name
    return name


def django_fk(table, column, ref_table, ref_column="id"):
    return django_name(table, [column], "_fk_%s_%s" % (ref_table, ref_column))


def system_name(prefix, table, salt=""):
    """SQL Server's generated constraint name, e.g. PK__oauth2_p__3213E83F0A1B2C3D."""
    digest = hashlib.sha1(("%s/%s/%s" % (prefix, table, salt)).encode()).hexdigest().upper()
    return "%s__%s__%s" % (prefix, table[:8], digest[:16])


# -- columns ------------------------------------------------------------------------------

def c(name, type_, n=None, null=False, identity=False, default=None):
    """One column: type_ is int, bigint, bit, datetime2, nvarchar (n chars, None = max), char (n)."""
    sizes = {"int": (4, 10, 0), "bigint": (8, 19, 0), "bit": (1, 1, 0), "datetime2": (8, 27, 7),
             "smallint": (2, 5, 0)}
    if type_ in sizes:
        max_length, precision, scale = sizes[type_]
    elif type_ == "nvarchar":
        max_length, precision, scale = (-1 if n is None else 2 * n), 0, 0
    elif type_ == "char":
        max_length, precision, scale = n, 0, 0
    else:
        raise ValueError(type_)
    col = dict(name=name, type=type_, max_length=max_length, precision=precision, scale=scale,
               nullable=null, identity=identity, computed=False)
    if identity:
        col.update(identity_seed="1", identity_increment="1")
    if type_ in ("nvarchar", "char"):
        col["collation"] = "SQL_Latin1_General_CP1_CI_AS"
    if default is not None:
        col.update(default_name=default[0], default_definition=default[1])
    return col


def ts(name, null=False):
    return c(name, "datetime2", null=null)


class Db(object):
    def __init__(self, database, edition="Standard Edition (64-bit)", engine_edition=2):
        self.database = database
        self.server = dict(product_version="16.0.4135.4", product_level="RTM", edition=edition,
                           engine_edition=engine_edition, compatibility_level=160)
        self.tables, self.columns, self.indexes, self.fks, self.checks, self.stats = [], [], [], [], [], []
        self._index_ids = {}

    def table(self, name, rows, columns, pk="id"):
        self.tables.append(dict(name=name, rows=rows))
        for i, col in enumerate(columns, 1):
            entry = dict(table=name, column_id=i)
            entry.update(col)
            self.columns.append(entry)
        if pk:
            self.index(name, system_name("PK", name), [pk], unique=True, primary=True, clustered=True)

    def index(self, table, name, columns, unique=False, primary=False, constraint=False, clustered=False,
              filter_=None, included=(), descending=()):
        index_id = 1 if clustered else max(2, self._index_ids.get(table, 1) + 1)
        if not clustered:
            self._index_ids[table] = index_id
        entry = dict(table=table, name=name, index_id=index_id, type="CLUSTERED" if clustered else "NONCLUSTERED",
                     unique=unique, primary=primary, unique_constraint=constraint and not primary, disabled=False,
                     columns=[dict(name=col, key_ordinal=i, descending=col in descending, included=False)
                              for i, col in enumerate(columns, 1)]
                     + [dict(name=col, key_ordinal=0, descending=False, included=True) for col in included])
        if filter_:
            entry["filter"] = filter_
        self.indexes.append(entry)

    def unique_constraint(self, table, column, name=None):
        """A UNIQUE constraint declared inline (system name), as django-pyodbc-azure did."""
        self.index(table, name or system_name("UQ", table, column), [column], unique=True, constraint=True)

    def filtered_unique(self, table, column):
        """A unique index WHERE col IS NOT NULL, as mssql-django creates for unique=True, null=True."""
        self.index(table, django_name(table, [column], "_uniq"), [column], unique=True,
                   filter_="([%s] IS NOT NULL)" % column)

    def fk(self, table, column, ref_table, ref_column="id", on_delete="NO_ACTION", name=None, index=True,
           key_index=None):
        self.fks.append(dict(
            name=name or django_fk(table, column, ref_table, ref_column), schema="dbo", table=table,
            ref_schema="dbo", ref_table=ref_table, key_index=key_index or system_name("PK", ref_table),
            on_delete=on_delete, on_update="NO_ACTION", disabled=False, not_trusted=False,
            columns=[dict(column=column, ref_column=ref_column)]))
        if index:
            self.index(table, django_name(table, [column]), [column])

    def check(self, table, name, definition, column=None):
        entry = dict(table=table, name=name, definition=definition, disabled=False, not_trusted=False)
        if column:
            entry["column"] = column
        self.checks.append(entry)

    def statistics(self, table, name, columns):
        self.stats.append(dict(table=table, name=name, columns=[dict(name=x) for x in columns]))

    def document(self, migrations):
        return {
            "format": "django_ops.oauth_repair/mssql-catalog",
            "format_version": 1,
            "taken_at": "2026-01-12T09:30:00.1234567",
            "database": self.database,
            "schema": "dbo",
            "server": self.server,
            "tables": sorted(self.tables, key=lambda t: t["name"]),
            "columns": sorted(self.columns, key=lambda x: (x["table"], x["column_id"])),
            "indexes": sorted(self.indexes, key=lambda x: (x["table"], x["index_id"])),
            "foreign_keys": sorted(self.fks, key=lambda x: (x["table"], x["name"])),
            "check_constraints": sorted(self.checks, key=lambda x: (x["table"], x["name"])),
            "statistics": sorted(self.stats, key=lambda x: (x["table"], x["name"])),
            "django_migrations": migrations,
        }


AT, RT, APP = "oauth2_provider_accesstoken", "oauth2_provider_refreshtoken", "oauth2_provider_application"
GRANT, IDT, DG = "oauth2_provider_grant", "oauth2_provider_idtoken", "oauth2_provider_devicegrant"


def migrations_rows(extra=()):
    rows = [("contenttypes", "0001_initial"), ("contenttypes", "0002_remove_content_type_name"),
            ("auth", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    rows += [("oauth2_provider", m) for m in DOT_MIGRATIONS] + list(extra) + [("sessions", "0001_initial")]
    return [dict(app=a, name=n, applied="2025-11-%02dT10:00:00.0000000" % (1 + i % 28))
            for i, (a, n) in enumerate(rows)]


def _json_check(table, column):
    """mssql-django's JSONField check, declared inline (system name)."""
    return (table, system_name("CK", table, column), "(isjson([%s])=(1))" % column, column)


def dot_tables(db, app_id="bigint", nullable_unique="filtered", fk_to_app=True, rows=None):
    """DOT 3.4.1's tables (and auth_user, django_migrations) on SQL Server."""
    rows = rows or {}
    db.table("auth_user", 3, [c("id", "int", identity=True), c("password", "nvarchar", 128),
                              ts("last_login", null=True), c("is_superuser", "bit"),
                              c("username", "nvarchar", 150), c("email", "nvarchar", 254),
                              c("is_active", "bit"), ts("date_joined")])
    db.unique_constraint("auth_user", "username")
    db.table("django_migrations", 60, [c("id", "int", identity=True), c("app", "nvarchar", 255),
                                       c("name", "nvarchar", 255), ts("applied")])
    db.table(APP, rows.get(APP, 12), [
        c("id", app_id, identity=True), c("client_id", "nvarchar", 255), c("redirect_uris", "nvarchar"),
        c("client_type", "nvarchar", 32), c("authorization_grant_type", "nvarchar", 44),
        c("client_secret", "nvarchar", 255), c("name", "nvarchar", 255), c("user_id", "int", null=True),
        c("skip_authorization", "bit"), ts("created"), ts("updated"), c("algorithm", "nvarchar", 5),
        c("post_logout_redirect_uris", "nvarchar"), c("hash_client_secret", "bit"),
        c("allowed_origins", "nvarchar"), c("registration_source", "nvarchar", 32),
        ts("cimd_expires_at", null=True)])
    db.unique_constraint(APP, "client_id")
    db.index(APP, django_name(APP, ["client_secret"]), ["client_secret"])
    db.fk(APP, "user_id", "auth_user")
    db.table(IDT, rows.get(IDT, 40), [
        c("id", "bigint", identity=True), c("jti", "char", 32), ts("expires"), c("scope", "nvarchar"),
        ts("created"), ts("updated"), c("application_id", "bigint", null=True), c("user_id", "int", null=True)])
    db.unique_constraint(IDT, "jti")
    db.fk(IDT, "user_id", "auth_user")
    db.table(AT, rows.get(AT, 250000), [
        c("id", "bigint", identity=True), c("token", "nvarchar"), ts("expires"), c("scope", "nvarchar"),
        c("application_id", "bigint", null=True), c("user_id", "int", null=True), ts("created"), ts("updated"),
        c("source_refresh_token_id", "bigint", null=True), c("id_token_id", "bigint", null=True),
        c("token_checksum", "nvarchar", 64), c("resource", "nvarchar")])
    db.index(AT, django_name(AT, ["token_checksum"], "_uniq"), ["token_checksum"], unique=True, constraint=True)
    db.fk(AT, "user_id", "auth_user")
    db.table(RT, rows.get(RT, 180000), [
        c("id", "bigint", identity=True), c("token", "nvarchar"), c("access_token_id", "bigint", null=True),
        c("application_id", "bigint"), c("user_id", "int"), ts("created"), ts("updated"), ts("revoked", null=True),
        c("token_family", "char", 32, null=True), c("token_checksum", "nvarchar", 64), c("resource", "nvarchar")])
    together = ["token_checksum", "revoked"]
    if nullable_unique == "constraint":   # unique_together as a plain constraint: one NULL revoked only
        db.index(RT, django_name(RT, together, "_uniq"), together, unique=True, constraint=True)
    else:   # mssql-django: a filtered unique index over every column of the unique_together
        db.index(RT, django_name(RT, together, "_uniq"), together, unique=True,
                 filter_="([token_checksum] IS NOT NULL AND [revoked] IS NOT NULL)")
    db.index(RT, "oauth2_prov_token_f_996e8a_idx", ["token_family"])
    db.fk(RT, "user_id", "auth_user")
    db.table(GRANT, rows.get(GRANT, 300), [
        c("id", "bigint", identity=True), c("code", "nvarchar", 255), ts("expires"), c("redirect_uri", "nvarchar"),
        c("scope", "nvarchar"), c("application_id", "int" if app_id == "int" else "bigint"), c("user_id", "int"),
        ts("created"), ts("updated"), c("code_challenge", "nvarchar", 128), c("code_challenge_method", "nvarchar", 10),
        c("nonce", "nvarchar", 255), c("claims", "nvarchar"), c("resource", "nvarchar")])
    db.unique_constraint(GRANT, "code")
    db.fk(GRANT, "application_id", APP)
    db.fk(GRANT, "user_id", "auth_user")
    db.table(DG, rows.get(DG, 0), [
        c("id", "bigint", identity=True), c("device_code", "nvarchar", 100), c("user_code", "nvarchar", 100),
        c("scope", "nvarchar"), c("interval", "int"), ts("expires"), c("status", "nvarchar", 64),
        c("client_id", "nvarchar", 100), ts("last_checked"), c("user_id", "int", null=True)])
    db.index(DG, "oauth2_provider_devicegrant_unique_device_code", ["device_code"], unique=True, constraint=True)
    db.index(DG, django_name(DG, ["client_id"]), ["client_id"])
    db.fk(DG, "user_id", "auth_user")
    db.check(DG, system_name("CK", DG, "interval"), "([interval]>=(0))", "interval")
    for table, name, definition, column in (_json_check(AT, "resource"), _json_check(RT, "resource"),
                                            _json_check(GRANT, "resource")):
        db.check(table, name, definition, column)
    # the nullable one-to-one columns
    for table, column, ref in ((AT, "source_refresh_token_id", RT), (AT, "id_token_id", IDT),
                               (RT, "access_token_id", AT)):
        if nullable_unique == "constraint":
            db.unique_constraint(table, column)
        else:
            db.filtered_unique(table, column)
        db.fk(table, column, ref, on_delete="NO_ACTION", index=False)
    # the token tables' application foreign keys
    for table in (AT, RT, IDT):
        if fk_to_app:
            db.fk(table, "application_id", APP)
        else:  # the migration could not create it (error 1778); Django's index on the column exists
            db.index(table, django_name(table, ["application_id"]), ["application_id"])


def seed002():
    db = Db("proposal")
    dot_tables(db, nullable_unique="constraint")
    db.table("myapp_course", 9000, [
        c("id", "char", 32), ts("effective_start_date", null=True), ts("effective_end_date", null=True),
        c("last_mod_user_name", "nvarchar", 80, null=True), ts("last_mod_date"),
        c("school_bulletin_prefix_code", "nvarchar", 10), c("suffix_two", "nvarchar", 2),
        c("subject_area_code", "nvarchar", 10), c("course_number", "nvarchar", 10),
        c("course_identifier", "nvarchar", 10), c("course_name", "nvarchar", 80), c("course_description", "nvarchar"),
        c("catalog_url", "nvarchar", 200, null=True)])
    db.index("myapp_course", "UQ__myapp_co__845E0C43A4915951", ["course_identifier"], unique=True, constraint=True)
    # a nullable column under a unique index (not a constraint): another one SQL Server gets wrong
    db.index("myapp_course", "myapp_course_catalog_url_uniq", ["catalog_url"], unique=True)
    db.table("myapp_courseterm", 14000, [
        c("id", "char", 32), ts("effective_start_date", null=True), ts("effective_end_date", null=True),
        c("last_mod_user_name", "nvarchar", 80, null=True), ts("last_mod_date"),
        c("term_identifier", "nvarchar", 14), c("audit_permitted_code", "int"), c("exam_credit_flag", "bit"),
        c("course_id", "char", 32)])
    db.unique_constraint("myapp_courseterm", "term_identifier")
    db.fk("myapp_courseterm", "course_id", "myapp_course",
          name="myapp_courseterm_course_id_edb833e8_fk_myapp_course_id")
    db.table("myapp_instructor", 800, [
        c("id", "char", 32), ts("effective_start_date", null=True), ts("effective_end_date", null=True),
        c("last_mod_user_name", "nvarchar", 80, null=True), ts("last_mod_date"), c("instr_name", "nvarchar", 100)])
    db.unique_constraint("myapp_instructor", "instr_name")
    db.table("myapp_instructor_course_terms", 2500, [
        c("id", "int", identity=True), c("instructor_id", "char", 32), c("courseterm_id", "char", 32)])
    db.index("myapp_instructor_course_terms",
             "myapp_instructor_course_terms_instructor_id_courseterm_id_8f50dbb5_uniq",
             ["instructor_id", "courseterm_id"], unique=True, constraint=True)
    db.fk("myapp_instructor_course_terms", "instructor_id", "myapp_instructor",
          name="myapp_instructor_course_terms_instructor_id_c1121f18_fk_myapp_instructor_id")
    db.fk("myapp_instructor_course_terms", "courseterm_id", "myapp_courseterm",
          name="myapp_instructor_course_terms_courseterm_id_5af9ffbe_fk_myapp_courseterm_id")
    return db.document(migrations_rows([("myapp", "0001_initial"), ("myapp", "0002_auto_20181019_1821"),
                                        ("myapp", "0003_unique_term_identifier"), ("myapp", "0005_instructor")]))


def intwidth():
    db = Db("site", edition="Enterprise Edition: Core-based Licensing (64-bit)", engine_edition=3)
    dot_tables(db, app_id="int", fk_to_app=False)
    db.table("myapp_clientnote", 40, [
        c("id", "bigint", identity=True), c("application_id", "int", null=True), c("note", "nvarchar"),
        c("priority", "smallint", default=("DF__myapp_cli__prior__5EBF139D", "((0))"))])
    db.fk("myapp_clientnote", "application_id", APP, on_delete="CASCADE")
    db.check("myapp_clientnote", "myapp_clientnote_application_id_positive", "([application_id]>(0))",
             "application_id")
    db.statistics(GRANT, "st_grant_application_user", ["application_id", "user_id"])
    return db.document(migrations_rows([("myapp", "0001_initial")]))


def healthy():
    db = Db("site")
    dot_tables(db)
    return db.document(migrations_rows())


SNAPSHOTS = {"seed002": seed002, "intwidth": intwidth, "healthy": healthy}


def path(kind):
    return DATA_DIR / ("mssql_snapshot_%s.json" % kind)


def write_all():
    for kind, build in SNAPSHOTS.items():
        path(kind).write_text(json.dumps(build(), indent=1) + "\n")


if __name__ == "__main__":
    write_all()
