# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content fingerprints of tables: row counts and one hash per column, engine-neutral.

A fingerprint proves that a repair (or a backup and its restore) kept every row and every
value. It is computed from the rows read in primary-key order, in batches keyed by the
primary key (short reads, no long scan holding anything), and hashed in Python with a
canonical text form of each value, so it is the same whatever the driver returns and
survives the intended type changes of a repair: an ``int`` widened to ``bigint`` or a
``varchar`` turned into ``text`` keep their hashes. One hash per column lets a comparison
ignore the columns a repair is meant to change (``token_checksum``) and tell added columns
(``created``/``updated``) from lost ones.
"""

from __future__ import annotations

import datetime
import decimal
import fnmatch
import hashlib
import json
import uuid

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError

DOT_PREFIX = "oauth2_provider_"
_SEP = "\x1f"
_NULL = "\x00N"
HASH_LENGTH = 32


def canonical(value):
    """A stable text for one value as any of the three drivers returns it."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return "NaN" if value.is_nan() else str(value.normalize())
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value.total_seconds())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\x00B" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def dot_tables(conn):
    """The django-oauth-toolkit tables of the database (``oauth2_provider_*``)."""
    return [t for t in conn.dialect.list_tables(conn) if t.startswith(DOT_PREFIX)]


def resolve_tables(conn, tables=None, extra_tables=(), exclude=()):
    """Tables to fingerprint: ``tables`` (default: DOT's) plus ``extra_tables`` that exist, minus ``exclude``."""
    existing = set(conn.dialect.list_tables(conn))
    wanted = list(tables) if tables else dot_tables(conn)
    for name in extra_tables or ():
        if name not in wanted:
            wanted.append(name)
    out = []
    for name in wanted:
        conn.dialect.validate_identifier(name, "table name")
        if name in exclude:
            continue
        if name not in existing:
            if tables and name in tables:
                raise OAuthRepairError("table %r does not exist in database %r" % (name, conn.database),
                                       obj=name, fix="name existing tables in tables/extra_tables")
            continue
        out.append(name)
    return sorted(set(out))


def table_fingerprint(conn, name, batch_size=5000):
    """``{rows, primary_key, columns: {column: hash}, digest}`` of one table."""
    dialect = conn.dialect
    table = dialect.load_tables(conn, [name]).get(name)
    if table is None:
        raise OAuthRepairError("table %r does not exist in database %r" % (name, conn.database), obj=name,
                               fix="check the table name")
    columns = [c.name for c in table.columns]
    pk = list(table.primary_key)
    hashers = dict((c, hashlib.sha256()) for c in columns)
    select = "SELECT %s FROM %s" % (dialect.quote_list(columns), dialect.quote(name))
    rows = 0
    if pk:
        positions = [columns.index(c) for c in pk]
        order = " ORDER BY %s" % dialect.quote_list(pk)
        key_expr = dialect.quote_list(pk)
        if len(pk) > 1:
            key_expr = "(%s)" % key_expr
        last = None
        while True:
            if last is None:
                batch = conn.query(select + order + " " + dialect.limit(batch_size))
            else:
                holders = ", ".join(["%s"] * len(pk))
                if len(pk) > 1:
                    holders = "(%s)" % holders
                batch = conn.query("%s WHERE %s > %s%s %s" % (
                    select, key_expr, holders, order, dialect.limit(batch_size)), last)
            if not batch:
                break
            _feed(hashers, columns, batch)
            rows += len(batch)
            last = [batch[-1][i] for i in positions]
            if len(batch) < batch_size:
                break
    else:
        batch = conn.query(select + " ORDER BY %s" % ", ".join(str(i + 1) for i in range(len(columns))))
        _feed(hashers, columns, batch)
        rows = len(batch)
    column_hashes = dict((c, hashers[c].hexdigest()[:HASH_LENGTH]) for c in columns)
    digest = hashlib.sha256(
        "".join("%s=%s;" % (c, column_hashes[c]) for c in sorted(columns)).encode("utf-8")).hexdigest()
    return dict(rows=rows, primary_key=pk, columns=column_hashes, digest=digest[:HASH_LENGTH])


def _feed(hashers, columns, batch):
    for i, column in enumerate(columns):
        text = _SEP.join(canonical(row[i]) for row in batch) + _SEP
        hashers[column].update(text.encode("utf-8", "surrogatepass"))


def fingerprint(conn, tables, batch_size=5000):
    """``{table: table_fingerprint}`` for every name of ``tables``."""
    return dict((name, table_fingerprint(conn, name, batch_size)) for name in tables)


def _ignored(patterns, table, column=None):
    subject = table if column is None else "%s.%s" % (table, column)
    return any(fnmatch.fnmatchcase(subject, p) for p in patterns or ())


def compare(before, after, ignore=(), renamed=None):
    """Compare two fingerprints.

    ``ignore`` holds fnmatch patterns of ``table`` or ``table.column`` whose changes are intended;
    ``renamed`` maps a table of ``before`` to its name in ``after``. Columns and tables that only
    ``after`` has are intended additions (reported, not differences); anything lost or changed is a
    difference.
    """
    renamed = renamed or {}
    differences, added_columns = [], []
    seen_after = set()
    for table in sorted(before):
        if _ignored(ignore, table):
            seen_after.add(renamed.get(table, table))
            continue
        new_name = renamed.get(table, table)
        seen_after.add(new_name)
        b = before[table]
        a = after.get(new_name)
        if a is None:
            differences.append(dict(table=table, kind="table_missing",
                                    message="table %s is gone" % new_name))
            continue
        if b["rows"] != a["rows"]:
            differences.append(dict(table=table, kind="rows", before=b["rows"], after=a["rows"],
                                    message="%s has %s rows, had %s" % (new_name, a["rows"], b["rows"])))
        for column, value in sorted(b["columns"].items()):
            if _ignored(ignore, table, column) or _ignored(ignore, new_name, column):
                continue
            if column not in a["columns"]:
                differences.append(dict(table=table, column=column, kind="column_missing",
                                        message="column %s.%s is gone" % (new_name, column)))
            elif a["columns"][column] != value:
                differences.append(dict(table=table, column=column, kind="content",
                                        message="the values of %s.%s changed" % (new_name, column)))
        for column in sorted(set(a["columns"]) - set(b["columns"])):
            added_columns.append("%s.%s" % (new_name, column))
    added_tables = sorted(set(after) - seen_after)
    return dict(equal=not differences, differences=differences, added_columns=added_columns,
                added_tables=added_tables)


def summary(fp):
    """``{table: rows}``: the short form shown in reports."""
    return dict((t, v["rows"]) for t, v in sorted(fp.items()))
