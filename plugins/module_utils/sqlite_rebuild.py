# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite's table rebuild, done the way Django's schema editor does it.

SQLite cannot change a column's type, nullability or inline UNIQUE in place:
the table is re-created under a new name, the rows copied, the old table
dropped and the new one renamed, all in one transaction, then the table's own
indexes re-created and the foreign keys checked.
"""

from __future__ import annotations

import re

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError


def split_definitions(create_sql):
    """Split ``CREATE TABLE x (a, b, ...)`` into its head and its top-level definitions."""
    start = create_sql.index("(")
    end = create_sql.rindex(")")
    body = create_sql[start + 1:end]
    parts, depth, current, quote = [], 0, [], None
    for ch in body:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"`[":
            quote = "]" if ch == "[" else ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if current and "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def column_name(definition):
    m = re.match(r'^\s*["`\[]?([A-Za-z_][A-Za-z0-9_$]*)["`\]]?\s', definition + " ")
    return m.group(1) if m else None


def rebuild(ctx, table, replace_columns, drop_index_names=(), extra_indexes=(), transform=None):
    """Re-create ``table`` with some column definitions replaced.

    ``replace_columns``: {column: new definition text (without the name)}.
    ``drop_index_names``: explicit indexes not to re-create. ``extra_indexes``: CREATE INDEX
    statements to run after the rebuild. ``transform``: a function applied to the new table's
    CREATE TABLE statement (e.g. to re-target a REFERENCES clause).
    """
    conn = ctx.conn
    q = conn.dialect.quote
    create_sql = conn.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [table])
    if create_sql is None:
        raise OAuthRepairError("table %s does not exist" % table, obj=table)
    defs = split_definitions(create_sql)
    new_defs, columns = [], []
    for d in defs:
        name = column_name(d)
        is_column = name is not None and not re.match(r"^(CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN)\b", d, re.I)
        if is_column:
            columns.append(name)
            if name in replace_columns:
                d = "%s %s" % (q(name), replace_columns[name])
        new_defs.append(d)
    tmp = "new__%s" % table
    indexes = [sql for name, sql in conn.query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL", [table])
        if name not in drop_index_names]
    col_list = ", ".join(q(c) for c in columns)
    create = "CREATE TABLE %s (%s)" % (q(tmp), ", ".join(new_defs))
    if transform is not None:
        create = transform(create)
    statements = [
        create,
        "INSERT INTO %s (%s) SELECT %s FROM %s" % (q(tmp), col_list, col_list, q(table)),
        "DROP TABLE %s" % q(table),
        "ALTER TABLE %s RENAME TO %s" % (q(tmp), q(table)),
    ] + indexes + list(extra_indexes)
    conn.execute("PRAGMA foreign_keys = OFF", record=False)
    conn.execute("PRAGMA legacy_alter_table = ON", record=False)
    ctx.apply_timeouts()
    conn.execute("BEGIN IMMEDIATE")
    try:
        # DROP TABLE forgets an AUTOINCREMENT table's counter, and the copy only sets it to MAX(id): keep it, so
        # that the ids of deleted rows are never handed out again
        seq = None
        if conn.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"):
            seq = conn.scalar("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        conn.execute("DROP TABLE IF EXISTS %s" % q(tmp))
        for statement in statements:
            conn.execute(statement)
        if seq is not None:
            conn.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s AND seq < %s", (seq, table, seq))
        problems = conn.query("PRAGMA foreign_key_check(%s)" % q(table))
        if problems:
            raise OAuthRepairError("rebuilding %s would break %d foreign key reference(s)" % (table, len(problems)),
                                   obj=table, fix="repair the orphan rows first")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK", record=False)
        raise
    finally:
        conn.execute("PRAGMA legacy_alter_table = OFF", record=False)
        conn.execute("PRAGMA foreign_keys = ON", record=False)
    return statements
