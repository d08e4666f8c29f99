# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and change Django's migration history (``django_migrations``) on any engine.

Everything goes through a core :class:`~.connection.Connection`: values (app,
name, applied) are always bound parameters and the table and column names are
quoted by the connection's dialect.

Rows are written the way Django's ``MigrationRecorder`` writes them with
``USE_TZ = True``: ``applied`` is the current time in UTC, bound as an aware
datetime on PostgreSQL (``timestamp with time zone``), as a naive UTC datetime
on MySQL/MariaDB (``datetime(6)``) and as Django's text form
``YYYY-MM-DD HH:MM:SS[.ffffff]`` of the naive UTC time on SQLite.

Matching is exact and done in Python, as Django does when it reads the table:
MySQL/MariaDB compare ``app = %s`` case-insensitively (and ignoring trailing
spaces) under the usual ``*_ci`` collations, so rows are selected by app and
then filtered, and deleted by their ``id``.

:func:`record` and :func:`remove` are idempotent. With ``check_mode=True``
they change nothing but append the statements they would run to
``conn.executed_queries``, so that a module can return "the SQL it ran, or
would run in check mode" from one list.
"""

from __future__ import annotations

import datetime

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError

TABLE = "django_migrations"

#: ``app`` and ``name`` are ``varchar(255)`` in Django's MigrationRecorder model.
MAX_LENGTH = 255


def _q(conn, name):
    return conn.dialect.quote(name)


def table_exists(conn):
    """True when the database has a ``django_migrations`` table."""
    return TABLE in set(conn.dialect.list_tables(conn))


def require_table(conn):
    """Raise :class:`OAuthRepairError` unless ``django_migrations`` exists."""
    if not table_exists(conn):
        raise OAuthRepairError(
            "database %r has no %s table: it is not a Django database, or not the right one, or "
            "manage.py migrate never ran on it" % (conn.database, TABLE), obj=TABLE,
            fix="point db (and login_*) at the Django site's database")


def check_value(value, what):
    """Validate an app label or migration name as a value (never as SQL): a non-empty string of at
    most 255 characters without NUL. Returns it unchanged."""
    if not isinstance(value, str) or value == "":
        raise OAuthRepairError("%s must be a non-empty string, got %r" % (what, value), obj=what,
                               fix="give the %s as Django names it" % what)
    if len(value) > MAX_LENGTH:
        raise OAuthRepairError(
            "%s %r is longer than %d characters, the size of django_migrations.%s" % (
                what, value[:40] + "...", MAX_LENGTH, "app" if what == "app" else "name"),
            obj=what, fix="give the %s as Django names it" % what)
    if "\x00" in value:
        raise OAuthRepairError("%s %r contains a NUL character" % (what, value), obj=what,
                               fix="give the %s as Django names it" % what)
    return value


def rows(conn, app):
    """The rows of ``app`` in recording order: dicts with ``id``, ``app``, ``name``, ``applied``.

    ``applied`` is returned as the driver gives it (datetime, or text on SQLite).
    """
    sql = "SELECT %s, %s, %s, %s FROM %s WHERE %s = %%s ORDER BY %s" % (
        _q(conn, "id"), _q(conn, "app"), _q(conn, "name"), _q(conn, "applied"), _q(conn, TABLE),
        _q(conn, "app"), _q(conn, "id"))
    result = []
    for row_id, row_app, row_name, row_applied in conn.query(sql, [app]):
        if row_app != app:  # case/pad-insensitive collations (MySQL) match more than Django does
            continue
        result.append(dict(id=row_id, app=row_app, name=row_name, applied=row_applied))
    return result


def names(conn, app):
    """The migration names recorded for ``app``, each once, in recording order."""
    seen = []
    for row in rows(conn, app):
        if row["name"] not in seen:
            seen.append(row["name"])
    return seen


def is_recorded(conn, app, name):
    return any(r["name"] == name for r in rows(conn, app))


def applied_value(conn, applied=None):
    """The value to bind for ``applied``: ``applied`` (default: now) in UTC, as Django stores it."""
    if applied is None:
        applied = datetime.datetime.now(datetime.timezone.utc)
    elif isinstance(applied, str):
        try:
            applied = datetime.datetime.fromisoformat(applied)
        except ValueError:
            raise OAuthRepairError("applied %r is not an ISO 8601 date and time" % applied, obj="applied",
                                   fix="give it as YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]")
    if not isinstance(applied, datetime.datetime):
        raise OAuthRepairError("applied must be a datetime, got %r" % (applied,), obj="applied",
                               fix="give a datetime (naive values are taken as UTC)")
    if applied.tzinfo is None:
        applied = applied.replace(tzinfo=datetime.timezone.utc)
    applied = applied.astimezone(datetime.timezone.utc)
    if conn.engine == "postgresql":
        return applied
    naive = applied.replace(tzinfo=None)
    if conn.engine == "sqlite":
        return str(naive)  # what django.db.backends.sqlite3 stores: str() of the naive UTC datetime
    return naive


def insert_sql(conn):
    return "INSERT INTO %s (%s, %s, %s) VALUES (%%s, %%s, %%s)" % (
        _q(conn, TABLE), _q(conn, "app"), _q(conn, "name"), _q(conn, "applied"))


def delete_sql(conn):
    return "DELETE FROM %s WHERE %s = %%s AND %s = %%s AND %s = %%s" % (
        _q(conn, TABLE), _q(conn, "id"), _q(conn, "app"), _q(conn, "name"))


def _wrap(conn, exc, action, app, name):
    if isinstance(exc, OAuthRepairError):
        return exc
    fix = "check that the user may write to %s" % TABLE
    if conn.engine == "postgresql" and "duplicate key" in str(exc) and action == "record":
        fix = ("the id sequence of %s is behind its rows (rows were inserted with explicit ids): run "
               "SELECT setval(pg_get_serial_sequence('%s', 'id'), MAX(id)) FROM %s" % (TABLE, TABLE, TABLE))
    return OAuthRepairError("cannot %s migration %s.%s in %s: %s" % (action, app, name, TABLE, str(exc).strip()),
                            obj="%s (%s.%s)" % (TABLE, app, name), fix=fix,
                            changed=bool(conn.executed_queries))


def record(conn, app, name, applied=None, check_mode=False):
    """Record ``app.name`` as applied unless a row for it exists. Returns True when a row was inserted
    (in check mode: would be)."""
    check_value(app, "app")
    check_value(name, "name")
    if is_recorded(conn, app, name):
        return False
    sql = insert_sql(conn)
    if check_mode:
        conn.executed_queries.append(sql)
        return True
    value = applied_value(conn, applied)
    try:
        conn.execute(sql, [app, name, value])
    except Exception as exc:  # pylint: disable=broad-except
        raise _wrap(conn, exc, "record", app, name)
    return True


def remove(conn, app, name, check_mode=False):
    """Remove every row of ``app.name``. Returns the number of rows removed (in check mode: that would be)."""
    check_value(app, "app")
    check_value(name, "name")
    matching = [r for r in rows(conn, app) if r["name"] == name]
    sql = delete_sql(conn)
    removed = 0
    for row in matching:
        if check_mode:
            conn.executed_queries.append(sql)
            removed += 1
            continue
        try:
            count = conn.execute(sql, [row["id"], app, name])
        except Exception as exc:  # pylint: disable=broad-except
            raise _wrap(conn, exc, "remove", app, name)
        removed += 1 if count is None or count < 0 else count
    return removed
