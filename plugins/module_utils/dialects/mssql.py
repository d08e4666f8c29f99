# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL Server, as plans: a catalog snapshot in, T-SQL out.

No SQL Server runs where this collection is tested, so SQL Server is supported
as far as it honestly can be: the catalog is read from a **snapshot**, a JSON
document printed by :data:`CATALOG_QUERY` (``files/mssql_catalog_snapshot.sql``,
run with ``sqlcmd``) or, when ``pymssql`` is importable, fetched with that same
query over a live connection (that path exists but has never run here). The
snapshot is loaded into the engine-neutral classes of ``schema/model.py`` so the
detectors of ``findings.py`` work on it unchanged; the DDL builders below only
*write* T-SQL, nothing here executes any.

Every identifier that reaches T-SQL (schema, table, column, index, constraint,
statistics names) is validated against ``[A-Za-z_][A-Za-z0-9_$]*`` (at most 128
characters) when the snapshot is loaded, then quoted with brackets. Expressions
copied from the catalog (CHECK and DEFAULT definitions, index filters) must be
one parenthesised expression without ``;`` or comments, else they are refused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.schema.model import (
    Column, ForeignKey, Index, Table)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.base import BaseDialect

try:
    import pymssql
    PYMSSQL_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - pymssql is optional and absent where the tests run
    pymssql = None
    PYMSSQL_IMPORT_ERROR = traceback.format_exc()

SNAPSHOT_FORMAT = "django_ops.oauth_repair/mssql-catalog"
SNAPSHOT_FORMAT_VERSION = 1
SNAPSHOT_QUERY_FILE = "files/mssql_catalog_snapshot.sql"
#: biggest snapshot file read (bytes); a catalog of thousands of tables stays far below
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024

#: SERVERPROPERTY('EngineEdition') values whose engine builds indexes online:
#: 3 Enterprise (also Developer and Evaluation), 5 Azure SQL Database, 8 Azure SQL Managed Instance.
ONLINE_ENGINE_EDITIONS = (3, 5, 8)

#: The query that prints the snapshot; files/mssql_catalog_snapshot.sql is this text after its comment header.
CATALOG_QUERY = r"""SET NOCOUNT ON;
DECLARE @schema_id int = SCHEMA_ID();
DECLARE @migrations nvarchar(max);
IF OBJECT_ID(N'django_migrations', N'U') IS NOT NULL
    EXEC sp_executesql
        N'SET @m = (SELECT app, name, CONVERT(nvarchar(33), applied, 126) AS applied FROM django_migrations ORDER BY id FOR JSON PATH);',
        N'@m nvarchar(max) OUTPUT', @m = @migrations OUTPUT;
DECLARE @snapshot nvarchar(max) = (
SELECT
    N'django_ops.oauth_repair/mssql-catalog' AS [format],
    1 AS [format_version],
    CONVERT(nvarchar(33), SYSUTCDATETIME(), 126) AS [taken_at],
    DB_NAME() AS [database],
    SCHEMA_NAME(@schema_id) AS [schema],
    JSON_QUERY((SELECT
        CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS [product_version],
        CAST(SERVERPROPERTY('ProductLevel') AS nvarchar(128)) AS [product_level],
        CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS [edition],
        CAST(SERVERPROPERTY('EngineEdition') AS int) AS [engine_edition],
        (SELECT d.compatibility_level FROM sys.databases d WHERE d.database_id = DB_ID()) AS [compatibility_level]
        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER)) AS [server],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [name],
        (SELECT SUM(p.rows) FROM sys.partitions p
          WHERE p.object_id = t.object_id AND p.index_id IN (0, 1)) AS [rows]
        FROM sys.tables t
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0
        ORDER BY t.name
        FOR JSON PATH), N'[]')) AS [tables],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [table], c.name AS [name], c.column_id AS [column_id],
        COALESCE(TYPE_NAME(c.system_type_id), TYPE_NAME(c.user_type_id)) AS [type], c.max_length AS [max_length],
        c.precision AS [precision], c.scale AS [scale],
        c.is_nullable AS [nullable], c.is_identity AS [identity],
        CAST(ic.seed_value AS nvarchar(40)) AS [identity_seed],
        CAST(ic.increment_value AS nvarchar(40)) AS [identity_increment],
        c.is_computed AS [computed], cc.definition AS [computed_definition],
        c.collation_name AS [collation],
        dc.name AS [default_name], dc.definition AS [default_definition]
        FROM sys.columns c
        JOIN sys.tables t ON t.object_id = c.object_id
        LEFT JOIN sys.identity_columns ic ON ic.object_id = c.object_id AND ic.column_id = c.column_id
        LEFT JOIN sys.computed_columns cc ON cc.object_id = c.object_id AND cc.column_id = c.column_id
        LEFT JOIN sys.default_constraints dc ON dc.object_id = c.default_object_id
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0
        ORDER BY t.name, c.column_id
        FOR JSON PATH), N'[]')) AS [columns],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [table], i.name AS [name], i.index_id AS [index_id], i.type_desc AS [type],
        i.is_unique AS [unique], i.is_primary_key AS [primary],
        i.is_unique_constraint AS [unique_constraint],
        i.filter_definition AS [filter], i.is_disabled AS [disabled],
        JSON_QUERY(ISNULL((SELECT
            COL_NAME(ixc.object_id, ixc.column_id) AS [name], ixc.key_ordinal AS [key_ordinal],
            ixc.is_descending_key AS [descending], ixc.is_included_column AS [included]
            FROM sys.index_columns ixc
            WHERE ixc.object_id = i.object_id AND ixc.index_id = i.index_id
            ORDER BY ixc.is_included_column, ixc.key_ordinal, ixc.index_column_id
            FOR JSON PATH), N'[]')) AS [columns]
        FROM sys.indexes i
        JOIN sys.tables t ON t.object_id = i.object_id
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0 AND i.type > 0 AND i.is_hypothetical = 0
        ORDER BY t.name, i.index_id
        FOR JSON PATH), N'[]')) AS [indexes],
    JSON_QUERY(ISNULL((SELECT
        fk.name AS [name],
        OBJECT_SCHEMA_NAME(fk.parent_object_id) AS [schema], OBJECT_NAME(fk.parent_object_id) AS [table],
        OBJECT_SCHEMA_NAME(fk.referenced_object_id) AS [ref_schema],
        OBJECT_NAME(fk.referenced_object_id) AS [ref_table],
        (SELECT ki.name FROM sys.indexes ki
          WHERE ki.object_id = fk.referenced_object_id AND ki.index_id = fk.key_index_id) AS [key_index],
        fk.delete_referential_action_desc AS [on_delete], fk.update_referential_action_desc AS [on_update],
        fk.is_disabled AS [disabled], fk.is_not_trusted AS [not_trusted],
        JSON_QUERY(ISNULL((SELECT
            COL_NAME(fkc.parent_object_id, fkc.parent_column_id) AS [column],
            COL_NAME(fkc.referenced_object_id, fkc.referenced_column_id) AS [ref_column]
            FROM sys.foreign_key_columns fkc
            WHERE fkc.constraint_object_id = fk.object_id
            ORDER BY fkc.constraint_column_id
            FOR JSON PATH), N'[]')) AS [columns]
        FROM sys.foreign_keys fk
        WHERE OBJECTPROPERTY(fk.parent_object_id, 'SchemaId') = @schema_id
           OR OBJECTPROPERTY(fk.referenced_object_id, 'SchemaId') = @schema_id
        ORDER BY OBJECT_NAME(fk.parent_object_id), fk.name
        FOR JSON PATH), N'[]')) AS [foreign_keys],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [table], ck.name AS [name],
        CASE WHEN ck.parent_column_id > 0 THEN COL_NAME(ck.parent_object_id, ck.parent_column_id) END AS [column],
        ck.definition AS [definition], ck.is_disabled AS [disabled], ck.is_not_trusted AS [not_trusted]
        FROM sys.check_constraints ck
        JOIN sys.tables t ON t.object_id = ck.parent_object_id
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0
        ORDER BY t.name, ck.name
        FOR JSON PATH), N'[]')) AS [check_constraints],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [table], s.name AS [name], s.filter_definition AS [filter],
        JSON_QUERY(ISNULL((SELECT COL_NAME(sc.object_id, sc.column_id) AS [name]
            FROM sys.stats_columns sc
            WHERE sc.object_id = s.object_id AND sc.stats_id = s.stats_id
            ORDER BY sc.stats_column_id
            FOR JSON PATH), N'[]')) AS [columns]
        FROM sys.stats s
        JOIN sys.tables t ON t.object_id = s.object_id
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0 AND s.user_created = 1
        ORDER BY t.name, s.name
        FOR JSON PATH), N'[]')) AS [statistics],
    JSON_QUERY(ISNULL(@migrations, N'[]')) AS [django_migrations]
FOR JSON PATH, WITHOUT_ARRAY_WRAPPER);
SELECT @snapshot AS [snapshot];
"""

_INTEGERS = ("tinyint", "smallint", "int", "bigint")
_FK_ACTIONS = {"NO_ACTION": "NO ACTION", "CASCADE": "CASCADE", "SET_NULL": "SET NULL",
               "SET_DEFAULT": "SET DEFAULT"}
_PLAIN_TYPES = {
    "int": "int", "bigint": "bigint", "smallint": "smallint", "tinyint": "tinyint", "bit": "bool",
    "text": "text", "ntext": "text", "uniqueidentifier": "uuid", "date": "date", "time": "time",
    "datetime": "datetime", "datetime2": "datetime", "smalldatetime": "datetime", "datetimeoffset": "datetime",
    "float": "double", "real": "float", "image": "bytes", "xml": "text", "money": "decimal(19,4)",
}


# ---------------------------------------------------------------------------
# Catalog classes: the shared ones, with what SQL Server DDL also needs
# ---------------------------------------------------------------------------

@dataclass
class MSSQLColumn(Column):
    identity_seed: Optional[str] = None
    identity_increment: Optional[str] = None
    computed: bool = False
    computed_definition: Optional[str] = None
    default_name: Optional[str] = None


@dataclass
class MSSQLIndex(Index):
    clustered: bool = False
    kind: str = "NONCLUSTERED"               # sys.indexes.type_desc
    descending: List[str] = field(default_factory=list)
    included: List[str] = field(default_factory=list)


@dataclass
class MSSQLForeignKey(ForeignKey):
    key_index: Optional[str] = None          # the unique index/constraint of ref_table it relies on
    disabled: bool = False
    not_trusted: bool = False


@dataclass
class MSSQLTable(Table):
    schema: str = "dbo"
    checks: List[Dict] = field(default_factory=list)       # {name, column, definition, disabled, not_trusted}
    statistics: List[Dict] = field(default_factory=list)   # {name, columns, filter}

    def unique_on(self, columns, include_partial=False):
        """Also counts a unique index filtered on ``col IS NOT NULL`` of its own columns only: that is how
        SQL Server (mssql-django) gives nullable columns the SQL standard's UNIQUE."""
        want = sorted(columns)
        return [i for i in self.indexes
                if (i.unique or i.primary) and sorted(i.columns) == want and i.valid
                and (include_partial or not i.partial or nulls_only_filter(i))]


_NOT_NULL_TERM = re.compile(r"^\[([A-Za-z_][A-Za-z0-9_$]*)\] IS NOT NULL$", re.IGNORECASE)


def nulls_only_filter(index):
    """True when ``index.where`` is ``([a] IS NOT NULL AND [b] IS NOT NULL ...)`` over its key columns only."""
    text = (index.where or "").strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    terms = [t.strip() for t in re.split(r"\s+AND\s+", text, flags=re.IGNORECASE)] if text else []
    names = [_NOT_NULL_TERM.match(t) for t in terms]
    return bool(terms) and all(names) and set(m.group(1) for m in names) <= set(index.columns)


class Catalog(object):
    """A loaded snapshot: the tables of one schema of one database, and its django_migrations rows."""

    def __init__(self, source, database, schema, server, taken_at, tables, migrations, foreign_schema_fks,
                 digest):
        self.source = source
        self.database = database
        self.schema = schema
        self.server = server
        self.taken_at = taken_at
        self.tables = tables
        self.migrations = migrations
        self.foreign_schema_fks = foreign_schema_fks
        self.digest = digest

    @property
    def server_version(self):
        return self.server.get("product_version") or ""

    def online_capable(self):
        return self.server.get("engine_edition") in ONLINE_ENGINE_EDITIONS

    def describe(self):
        return dict(source=self.source, sha256=self.digest, taken_at=self.taken_at, database=self.database,
                    schema=self.schema, product_version=self.server_version,
                    product_level=self.server.get("product_level"), edition=self.server.get("edition"),
                    engine_edition=self.server.get("engine_edition"),
                    compatibility_level=self.server.get("compatibility_level"), tables=len(self.tables))


# ---------------------------------------------------------------------------
# Loading a snapshot
# ---------------------------------------------------------------------------

_FIX_RETAKE = ("take the snapshot again with files/mssql_catalog_snapshot.sql as docs/sqlserver.md shows, and give "
               "that file unedited")


def _decode(raw, source):
    if raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff"):
        return raw.decode("utf-16")          # sqlcmd -u writes UTF-16
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OAuthRepairError("catalog snapshot %s is not UTF-8 text (%s)" % (source, exc), obj=source,
                               fix="run sqlcmd with -f 65001 so that it writes UTF-8")


def parse_snapshot_text(text, source):
    """The JSON document in ``text`` (sqlcmd output: possibly a message line before it, line breaks inside)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("{")), None)
    if start is None:
        raise OAuthRepairError(
            "catalog snapshot %s holds no JSON document (%s)" % (
                source, "the file is empty" if not text.strip() else "no line starts with '{'"),
            obj=source, fix=_FIX_RETAKE)
    # FOR JSON escapes every control character, so a line break in the output is only ever sqlcmd's.
    body = "".join(line.strip("\r\n") for line in lines[start:]).strip()
    try:
        doc = json.loads(body)
    except ValueError as exc:
        cut = not body.endswith("}")
        raise OAuthRepairError(
            "catalog snapshot %s is not valid JSON: %s%s" % (
                source, exc, " - the document is cut short (sqlcmd -y 0 stops at 1 MB)" if cut else ""),
            obj=source, fix=("run the query with a client that returns the whole nvarchar(max) value, or use "
                             "pymssql (the module runs the query itself)" if cut else _FIX_RETAKE))
    return doc


def load_snapshot(path):
    """Read and check the snapshot file at ``path``; return a :class:`Catalog`."""
    source = str(path)
    if not os.path.isfile(source):
        raise OAuthRepairError("catalog snapshot %s does not exist (or is not a file)" % source, obj=source,
                               fix="give catalog_snapshot the path of the JSON file printed by "
                                   "files/mssql_catalog_snapshot.sql (see docs/sqlserver.md)")
    size = os.path.getsize(source)
    if size > MAX_SNAPSHOT_BYTES:
        raise OAuthRepairError("catalog snapshot %s is %d bytes, more than a catalog ever needs" % (source, size),
                               obj=source, fix=_FIX_RETAKE)
    try:
        with open(source, "rb") as fh:
            raw = fh.read()
    except (IOError, OSError) as exc:
        raise OAuthRepairError("cannot read catalog snapshot %s: %s" % (source, exc), obj=source,
                               fix="make the file readable by the user that runs the module")
    doc = parse_snapshot_text(_decode(raw, source), source)
    return build_catalog(doc, source, hashlib.sha256(raw).hexdigest())


def live_snapshot(params):
    """Run :data:`CATALOG_QUERY` over a pymssql connection and return the :class:`Catalog`.

    Untested: no SQL Server runs where this collection is tested. The connection only runs the read-only
    catalog query and is closed before this returns.
    """
    if pymssql is None:
        raise OAuthRepairError(
            "engine mssql needs catalog_snapshot, or the pymssql library to read the catalog itself",
            obj="catalog_snapshot",
            fix="produce a snapshot with sqlcmd and files/mssql_catalog_snapshot.sql (docs/sqlserver.md) and "
                "set catalog_snapshot, or pip install pymssql on the host that runs the module")
    raw = pymssql.connect(server=params.get("login_host") or "127.0.0.1", port=str(params.get("login_port") or 1433),
                          user=params.get("login_user"), password=params.get("login_password"),
                          database=params["db"], login_timeout=params.get("connect_timeout") or 10,
                          autocommit=True)
    try:
        cur = raw.cursor()
        cur.execute(CATALOG_QUERY)
        text = None
        while True:  # the document is the one row of the last result set
            if cur.description is not None:
                rows = cur.fetchall()
                if rows:
                    text = rows[-1][0]
            if not cur.nextset():
                break
    finally:
        raw.close()
    source = "pymssql:%s" % params["db"]
    if not text:
        raise OAuthRepairError("the catalog query returned nothing on %s" % source, obj=params["db"],
                               fix="check that login_user may read the catalog views (VIEW DEFINITION)")
    return build_catalog(parse_snapshot_text(text, source), source,
                         hashlib.sha256(text.encode("utf-8")).hexdigest())


def _need(mapping, key, kind, source, where):
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise OAuthRepairError("catalog snapshot %s: %s has no valid %r" % (source, where, key), obj=source,
                               fix=_FIX_RETAKE)
    return value


def _list(doc, key, source):
    value = doc.get(key)
    if value is None:
        return []   # FOR JSON omits what is empty
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise OAuthRepairError("catalog snapshot %s: %r is not a list of objects" % (source, key), obj=source,
                               fix=_FIX_RETAKE)
    return value


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def check_name(name, what, source, max_length=128):
    """Validate one identifier read from a snapshot; refuse it naming the object and the fix."""
    if not isinstance(name, str) or not _IDENT.match(name) or len(name) > max_length:
        raise OAuthRepairError(
            "catalog snapshot %s: refusing %s %r - only letters, digits, '_' and '$' (not first) are accepted in "
            "names this collection writes into T-SQL, at most %d characters" % (source, what, name, max_length),
            obj=str(name), fix="rename the object on the server (sp_rename) or repair it by hand; a name is never "
                               "pasted into SQL unchecked")
    return name


_EXPR_CHARS = re.compile(r"^[A-Za-z0-9_ ()<>=!.,+\-*/%&|^~]*$")


def check_expression(text, what, source):
    """Validate a CHECK/DEFAULT definition or an index filter copied from the catalog.

    SQL Server stores them as one parenthesised expression, e.g. ``([c] IS NOT NULL)`` or ``((0))``. Accepted:
    exactly that shape (the first parenthesis closes at the very end), outside string literals no ``;`` and no
    comment, bracketed names that pass :func:`check_name`; refused otherwise.
    """
    bad = None
    if not isinstance(text, str) or not text or len(text) > 4000:
        bad = "empty or longer than 4000 characters"
    elif not text.startswith("("):
        bad = "it does not start with '('"
    elif "$(" in text:
        bad = "'$(', which sqlcmd would replace by a scripting variable"
    else:
        depth, i, n = 0, 0, len(text)
        outside = []
        while i < n and bad is None:
            ch = text[i]
            if ch == "'":
                j = i + 1
                while True:
                    j = text.find("'", j)
                    if j < 0:
                        bad = "an unterminated string literal"
                        break
                    if j + 1 < n and text[j + 1] == "'":
                        j += 2
                        continue
                    break
                if bad is None and any(ord(c) < 32 for c in text[i:j]):
                    bad = "a control character"
                i = j + 1
                continue
            if ch == "[":
                j = text.find("]", i)
                if j < 0:
                    bad = "an unterminated [name]"
                    break
                check_name(text[i + 1:j], "name inside %s" % what, source)
                i = j + 1
                continue
            outside.append(ch)
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0 and i != n - 1:
                    bad = "text after its closing parenthesis"
            i += 1
        if bad is None and depth != 0:
            bad = "unbalanced parentheses"
        rest = "".join(outside)
        if bad is None and not _EXPR_CHARS.match(rest):
            bad = "characters outside names and literals that an expression does not need"
        if bad is None and ("--" in rest or "/*" in rest or "*/" in rest):
            bad = "a comment"
    if bad:
        raise OAuthRepairError(
            "catalog snapshot %s: refusing %s %r: %s" % (source, what, text, bad), obj=what,
            fix="recreate that constraint/index by hand after the plan, or take an unedited snapshot")
    return text


def _type_spelling(type_name, max_length, precision, scale):
    t = type_name.lower()
    if t in ("varchar", "nvarchar", "varbinary", "char", "nchar", "binary"):
        if max_length == -1:
            return "%s(max)" % t
        n = max_length // 2 if t in ("nvarchar", "nchar") else max_length
        return "%s(%d)" % (t, n)
    if t in ("decimal", "numeric"):
        return "%s(%d,%d)" % (t, precision, scale)
    if t in ("datetime2", "datetimeoffset", "time") and scale not in (None, 7):
        return "%s(%d)" % (t, scale)
    return t


def normalize_type(type_name, max_length, precision, scale):
    """(normalised type as schema/model.py spells it, raw T-SQL spelling)."""
    t = type_name.lower()
    raw = _type_spelling(t, max_length, precision, scale)
    if t in _PLAIN_TYPES:
        return _PLAIN_TYPES[t], raw
    if t in ("varchar", "nvarchar"):
        if max_length == -1:
            return "text", raw
        return "varchar(%d)" % (max_length // 2 if t == "nvarchar" else max_length), raw
    if t in ("char", "nchar"):
        return "char(%d)" % (max_length // 2 if t == "nchar" else max_length), raw
    if t in ("varbinary", "binary"):
        return "bytes", raw
    if t in ("decimal", "numeric"):
        return "decimal(%d,%d)" % (precision, scale), raw
    return t, raw


def build_catalog(doc, source, digest=None):
    """Check a parsed snapshot document and load it into :class:`MSSQLTable` objects."""
    if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
        raise OAuthRepairError("%s is not a catalog snapshot of this collection (no \"format\": %r)" % (
            source, SNAPSHOT_FORMAT), obj=source, fix=_FIX_RETAKE)
    if doc.get("format_version") != SNAPSHOT_FORMAT_VERSION:
        raise OAuthRepairError("catalog snapshot %s has format_version %r; this version reads %d" % (
            source, doc.get("format_version"), SNAPSHOT_FORMAT_VERSION), obj=source,
            fix="take the snapshot with the files/mssql_catalog_snapshot.sql of this collection version")
    database = _need(doc, "database", str, source, "the document")
    schema = check_name(_need(doc, "schema", str, source, "the document"), "schema name", source)
    server = doc.get("server") if isinstance(doc.get("server"), dict) else {}
    tables = {}
    for entry in _list(doc, "tables", source):
        name = check_name(_need(entry, "name", str, source, "a tables entry"), "table name", source)
        if name in tables:
            raise OAuthRepairError("catalog snapshot %s lists table %s twice" % (source, name), obj=name,
                                   fix=_FIX_RETAKE)
        rows = entry.get("rows")
        tables[name] = MSSQLTable(name=name, schema=schema, rows=int(rows) if isinstance(rows, int) else None,
                                  rows_exact=False)

    def table_of(entry, what):
        name = _need(entry, "table", str, source, what)
        if name not in tables:
            raise OAuthRepairError(
                "catalog snapshot %s: %s belongs to table %r, which is not in its tables list: the file is "
                "inconsistent (edited, or assembled from two snapshots?)" % (source, what, name),
                obj=str(name), fix=_FIX_RETAKE)
        return tables[name]

    for entry in _list(doc, "columns", source):
        name = check_name(_need(entry, "name", str, source, "a columns entry"), "column name", source)
        table = table_of(entry, "column %s" % name)
        type_name = _need(entry, "type", str, source, "column %s.%s" % (table.name, name))
        check_name(type_name, "type of %s.%s" % (table.name, name), source)
        normalised, raw = normalize_type(type_name, entry.get("max_length") or 0, entry.get("precision") or 0,
                                         entry.get("scale") or 0)
        default = entry.get("default_definition")
        if default is not None:
            check_expression(default, "default of %s.%s" % (table.name, name), source)
            check_name(_need(entry, "default_name", str, source, "default of %s.%s" % (table.name, name)),
                       "default constraint name", source)
        table.columns.append((entry.get("column_id") or 0, MSSQLColumn(
            name=name, type=normalised, raw_type=raw, nullable=bool(entry.get("nullable")), default=default,
            auto_increment=bool(entry.get("identity")), charset=entry.get("collation"),
            identity_seed=entry.get("identity_seed"), identity_increment=entry.get("identity_increment"),
            computed=bool(entry.get("computed")), computed_definition=entry.get("computed_definition"),
            default_name=entry.get("default_name"))))
    for table in tables.values():
        table.columns = [entry[1] for entry in sorted(table.columns, key=lambda x: x[0])]

    def known_column(table, column, what):
        if table.column(column) is None:
            raise OAuthRepairError(
                "catalog snapshot %s: %s names column %s.%s, which the snapshot does not list" % (
                    source, what, table.name, column), obj="%s.%s" % (table.name, column), fix=_FIX_RETAKE)
        return column

    for entry in _list(doc, "indexes", source):
        name = check_name(_need(entry, "name", str, source, "an indexes entry"), "index name", source)
        table = table_of(entry, "index %s" % name)
        keys, desc, included = [], [], []
        for col in sorted(_list(entry, "columns", source), key=lambda c: (bool(c.get("included")),
                                                                          c.get("key_ordinal") or 0)):
            cname = known_column(table, check_name(col.get("name"), "column of index %s" % name, source),
                                 "index %s" % name)
            if col.get("included"):
                included.append(cname)
            else:
                keys.append(cname)
                if col.get("descending"):
                    desc.append(cname)
        where = entry.get("filter")
        if where is not None:
            check_expression(where, "filter of index %s" % name, source)
        kind = str(entry.get("type") or "NONCLUSTERED").upper()
        idx = MSSQLIndex(name=name, table=table.name, columns=keys, unique=bool(entry.get("unique")),
                         primary=bool(entry.get("primary")), partial=where is not None, where=where,
                         constraint=bool(entry.get("primary") or entry.get("unique_constraint")),
                         valid=not entry.get("disabled"), clustered=kind == "CLUSTERED", kind=kind,
                         descending=desc, included=included)
        table.indexes.append(idx)
        if idx.primary:
            table.primary_key = list(keys)

    foreign_schema = []
    for entry in _list(doc, "foreign_keys", source):
        name = check_name(_need(entry, "name", str, source, "a foreign_keys entry"), "foreign key name", source)
        fk_schema = entry.get("schema") or schema
        ref_schema = entry.get("ref_schema") or schema
        if fk_schema != schema or ref_schema != schema:
            # a foreign key to or from another schema: kept aside; plans refuse to touch what it involves
            foreign_schema.append(dict(name=name, schema=fk_schema, table=entry.get("table"),
                                       ref_schema=ref_schema, ref_table=entry.get("ref_table"),
                                       columns=[c.get("column") for c in _list(entry, "columns", source)],
                                       ref_columns=[c.get("ref_column") for c in _list(entry, "columns", source)]))
            continue
        table = table_of(entry, "foreign key %s" % name)
        ref_name = _need(entry, "ref_table", str, source, "foreign key %s" % name)
        if ref_name not in tables:
            raise OAuthRepairError(
                "catalog snapshot %s: foreign key %s references table %r, which is not in its tables list" % (
                    source, name, ref_name), obj=str(ref_name), fix=_FIX_RETAKE)
        ref = tables[ref_name]
        pairs = _list(entry, "columns", source)
        if not pairs:
            raise OAuthRepairError("catalog snapshot %s: foreign key %s has no columns" % (source, name),
                                   obj=name, fix=_FIX_RETAKE)
        cols = [known_column(table, check_name(p.get("column"), "column of foreign key %s" % name, source),
                             "foreign key %s" % name) for p in pairs]
        rcols = [known_column(ref, check_name(p.get("ref_column"), "column of foreign key %s" % name, source),
                              "foreign key %s" % name) for p in pairs]
        key_index = entry.get("key_index")
        if key_index is not None:
            check_name(key_index, "key index of foreign key %s" % name, source)
        table.foreign_keys.append(MSSQLForeignKey(
            name=name, table=table.name, columns=cols, ref_table=ref.name, ref_columns=rcols,
            on_delete=_FK_ACTIONS.get(entry.get("on_delete") or "NO_ACTION", "NO ACTION"),
            on_update=_FK_ACTIONS.get(entry.get("on_update") or "NO_ACTION", "NO ACTION"),
            key_index=key_index, disabled=bool(entry.get("disabled")), not_trusted=bool(entry.get("not_trusted"))))

    for entry in _list(doc, "check_constraints", source):
        name = check_name(_need(entry, "name", str, source, "a check_constraints entry"), "check constraint name",
                          source)
        table = table_of(entry, "check constraint %s" % name)
        column = entry.get("column")
        if column is not None:
            known_column(table, check_name(column, "column of check constraint %s" % name, source),
                         "check constraint %s" % name)
        table.checks.append(dict(name=name, column=column, definition=check_expression(
            entry.get("definition"), "definition of check constraint %s" % name, source),
            disabled=bool(entry.get("disabled")), not_trusted=bool(entry.get("not_trusted"))))

    for entry in _list(doc, "statistics", source):
        name = check_name(_need(entry, "name", str, source, "a statistics entry"), "statistics name", source)
        table = table_of(entry, "statistics %s" % name)
        cols = [known_column(table, check_name(c.get("name"), "column of statistics %s" % name, source),
                             "statistics %s" % name) for c in _list(entry, "columns", source)]
        where = entry.get("filter")
        if where is not None:
            check_expression(where, "filter of statistics %s" % name, source)
        table.statistics.append(dict(name=name, columns=cols, filter=where))

    migrations = []
    for entry in _list(doc, "django_migrations", source):
        app, mname = entry.get("app"), entry.get("name")
        if not isinstance(app, str) or not isinstance(mname, str):
            raise OAuthRepairError("catalog snapshot %s: a django_migrations row has no app/name" % source,
                                   obj=source, fix=_FIX_RETAKE)
        migrations.append(dict(app=app, name=mname, applied=entry.get("applied")))
    return Catalog(source=source, database=database, schema=schema, server=server,
                   taken_at=doc.get("taken_at"), tables=tables, migrations=migrations,
                   foreign_schema_fks=foreign_schema, digest=digest)


# ---------------------------------------------------------------------------
# The dialect: introspection answered from the snapshot, T-SQL builders
# ---------------------------------------------------------------------------

class MSSQLDialect(BaseDialect):
    engine = "mssql"
    vendor = "mssql"
    quote_char = "["
    max_name_length = 128
    minimum_version = (13,)          # SQL Server 2016: the oldest release mssql-django supports
    integer_ddl = {"int": "int", "bigint": "bigint", "smallint": "smallint"}

    def __init__(self, server_version, schema="dbo"):
        super().__init__(server_version)
        self.schema = schema

    # -- identifiers and literals ---------------------------------------------
    def quote(self, name):
        self.validate_identifier(name)
        return "[%s]" % name.replace("]", "]]")

    def table_ref(self, table):
        """``[schema].[table]``."""
        return "%s.%s" % (self.quote(self.schema), self.quote(table))

    def name_literal(self, name):
        """An identifier as an N'' string literal (validated: it holds no quote)."""
        self.validate_identifier(name)
        return "N'%s'" % name

    def object_id(self, table):
        return "OBJECT_ID(N'%s')" % self.table_ref(table)

    # -- introspection from the snapshot held by the stand-in connection -------
    def list_tables(self, conn):
        return sorted(conn.catalog.tables)

    def load_tables(self, conn, names):
        return dict((n, copy.deepcopy(conn.catalog.tables[n])) for n in names if n in conn.catalog.tables)

    def referencing_foreign_keys(self, conn, table):
        self.validate_identifier(table)
        return [copy.deepcopy(fk) for t in sorted(conn.catalog.tables)
                for fk in conn.catalog.tables[t].foreign_keys if fk.ref_table == table]

    def estimated_rows(self, conn, tables):
        return dict((t, conn.catalog.tables[t].rows if t in conn.catalog.tables else None) for t in tables)

    def exact_rows(self, conn, table):
        raise OAuthRepairError("a catalog snapshot holds no exact row count of %s" % table, obj=table,
                               fix="row counts of engine mssql are the snapshot's sys.partitions figures")

    def session_timeouts(self, lock_timeout_ms, statement_timeout_ms):
        """SQL Server bounds lock waits only; a statement timeout is the client's (sqlcmd -t)."""
        # SET LOCK_TIMEOUT 0 means "never wait" on SQL Server; our 0 means "no limit", which is -1 there.
        return ["SET LOCK_TIMEOUT %d" % (int(lock_timeout_ms) if lock_timeout_ms else -1)]

    def sha256_hex(self, expr):
        raise OAuthRepairError("token checksums cannot be computed from a catalog snapshot", obj="token_checksum",
                               fix="check them with a query on the server")

    # -- T-SQL builders (statements without a trailing ';') -------------------
    def _with(self, options):
        return " WITH (%s)" % ", ".join(options) if options else ""

    def _key_list(self, index):
        return ", ".join("%s%s" % (self.quote(c), " DESC" if c in index.descending else "")
                         for c in index.columns)

    def drop_constraint(self, table, name):
        return "ALTER TABLE %s DROP CONSTRAINT %s" % (self.table_ref(table), self.quote(name))

    def drop_index(self, table, name):
        return "DROP INDEX %s ON %s" % (self.quote(name), self.table_ref(table))

    def drop_index_or_constraint(self, index):
        if index.constraint:
            return self.drop_constraint(index.table, index.name)
        return self.drop_index(index.table, index.name)

    def create_index(self, index, online=False):
        """CREATE [UNIQUE] [CLUSTERED] INDEX ... [INCLUDE (...)] [WHERE ...] [WITH (ONLINE = ON)]."""
        kind = "CLUSTERED " if index.clustered else ""
        sql = "CREATE %s%sINDEX %s ON %s (%s)" % (
            "UNIQUE " if index.unique else "", kind, self.quote(index.name), self.table_ref(index.table),
            self._key_list(index))
        if index.included:
            sql += " INCLUDE (%s)" % self.quote_list(index.included)
        if index.where:
            sql += " WHERE %s" % index.where
        return sql + self._with(["ONLINE = ON"] if online else [])

    def add_key_constraint(self, index, online=False):
        """ALTER TABLE ... ADD CONSTRAINT [name] PRIMARY KEY|UNIQUE CLUSTERED|NONCLUSTERED (...)."""
        return "ALTER TABLE %s ADD CONSTRAINT %s %s %s (%s)%s" % (
            self.table_ref(index.table), self.quote(index.name), "PRIMARY KEY" if index.primary else "UNIQUE",
            "CLUSTERED" if index.clustered else "NONCLUSTERED", self._key_list(index),
            self._with(["ONLINE = ON"] if online else []))

    def recreate_index(self, index, online=False):
        if index.constraint:
            return self.add_key_constraint(index, online)
        return self.create_index(index, online)

    def alter_column_type(self, table, column, new_type, nullable, online=False):
        return "ALTER TABLE %s ALTER COLUMN %s %s %s%s" % (
            self.table_ref(table), self.quote(column), new_type, "NULL" if nullable else "NOT NULL",
            self._with(["ONLINE = ON"] if online else []))

    def add_foreign_key(self, fk):
        """Added WITH CHECK: every existing row is validated and the constraint is trusted."""
        sql = "ALTER TABLE %s WITH CHECK ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)" % (
            self.table_ref(fk.table), self.quote(fk.name), self.quote_list(fk.columns), self.table_ref(fk.ref_table),
            self.quote_list(fk.ref_columns))
        if fk.on_delete and fk.on_delete != "NO ACTION":
            sql += " ON DELETE %s" % fk.on_delete
        if fk.on_update and fk.on_update != "NO ACTION":
            sql += " ON UPDATE %s" % fk.on_update
        return sql

    def add_default(self, table, column):
        return "ALTER TABLE %s ADD CONSTRAINT %s DEFAULT %s FOR %s" % (
            self.table_ref(table.name), self.quote(column.default_name), column.default, self.quote(column.name))

    def add_check(self, table, check):
        return "ALTER TABLE %s WITH CHECK ADD CONSTRAINT %s CHECK %s" % (
            self.table_ref(table), self.quote(check["name"]), check["definition"])

    def drop_statistics(self, table, name):
        return "DROP STATISTICS %s.%s" % (self.table_ref(table), self.quote(name))

    def create_statistics(self, table, stats):
        sql = "CREATE STATISTICS %s ON %s (%s)" % (self.quote(stats["name"]), self.table_ref(table),
                                                   self.quote_list(stats["columns"]))
        if stats.get("filter"):
            sql += " WHERE %s" % stats["filter"]
        return sql

    # -- guards: T-SQL conditions read from the live catalog when the script runs
    def index_exists(self, table, name):
        return "EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = %s AND name = %s)" % (
            self.object_id(table), self.name_literal(name))

    def column_has_type(self, table, column, type_name):
        return ("EXISTS (SELECT 1 FROM sys.columns WHERE object_id = %s AND name = %s "
                "AND TYPE_NAME(system_type_id) = %s)" % (
                    self.object_id(table), self.name_literal(column), self.name_literal(type_name)))

    def is_identity(self, table, column):
        return "COLUMNPROPERTY(%s, %s, 'IsIdentity') = 1" % (self.object_id(table), self.name_literal(column))
