# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sessions of the application on the database, to wait until they drain; the privileges a plan needs."""

from __future__ import annotations

import datetime
import fnmatch
import os
import re
import time

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError

#: application_name of this collection's own PostgreSQL sessions (modules and client programs)
OWN_APPLICATION = "django_ops.oauth_repair"


def _iso(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def list_sessions(conn, users=(), ignore_users=(), include_idle=True):
    """The other sessions connected to this database, as dicts (``id``, ``user``, ``client``, ``state``...)."""
    if conn.engine == "postgresql":
        rows = conn.query(
            "SELECT pid, usename, application_name, COALESCE(host(client_addr), 'local'), state, "
            "backend_start, xact_start FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
            "AND COALESCE(application_name, '') NOT LIKE %s ORDER BY pid", [OWN_APPLICATION + "%"])
        out = [dict(id=pid, user=user, application=app, client=client, state=state or "unknown",
                    idle=(state == "idle"), since=_iso(start), transaction_since=_iso(xact))
               for pid, user, app, client, state, start, xact in rows]
    elif conn.engine == "mysql":
        rows = conn.query(
            "SELECT ID, USER, HOST, COMMAND, TIME, STATE FROM information_schema.PROCESSLIST "
            "WHERE DB = DATABASE() AND ID <> CONNECTION_ID() "
            "AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Killed') AND USER NOT IN ('system user', 'event_scheduler') "
            "ORDER BY ID")
        out = [dict(id=int(i), user=user, application=None, client=host, state=command if not state
                    else "%s: %s" % (command, state), idle=(command == "Sleep"), seconds=int(t or 0))
               for i, user, host, command, t, state in rows]
    else:
        out = _sqlite_writer(conn)
    if users:
        out = [s for s in out if s["user"] in users]
    if ignore_users:
        out = [s for s in out if not any(fnmatch.fnmatchcase(s["user"] or "", p) for p in ignore_users)]
    if not include_idle:
        out = [s for s in out if not s["idle"]]
    return out


def _sqlite_writer(conn):
    """SQLite shows no sessions; a writer holding the database is what matters. Try to take the write lock."""
    raw = conn.raw
    timeout = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")
        return []
    except Exception as exc:  # pylint: disable=broad-except
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        return [dict(id="writer", user=None, application=None, client="local", state="holds the write lock",
                     idle=False)]
    finally:
        raw.execute("PRAGMA busy_timeout = %d" % int(timeout))


def terminate(conn, sessions):
    """End the given sessions; returns the ids ended."""
    done = []
    for s in sessions:
        if conn.engine == "postgresql":
            if conn.scalar("SELECT pg_terminate_backend(%s)", [s["id"]]):
                conn.executed_queries.append("SELECT pg_terminate_backend(%s)")
                done.append(s["id"])
        elif conn.engine == "mysql":
            try:
                conn.execute("KILL CONNECTION %d" % int(s["id"]))
                done.append(s["id"])
            except Exception as exc:  # pylint: disable=broad-except
                if "Unknown thread id" not in str(exc):
                    raise
    return done


def wait_drained(conn, timeout, interval=0.5, **filters):
    """Poll until no session matches; returns (remaining sessions, first seen sessions, seconds waited)."""
    started = time.monotonic()
    first = sessions = list_sessions(conn, **filters)
    while sessions and time.monotonic() - started < timeout:
        time.sleep(min(interval, max(0.0, timeout - (time.monotonic() - started))))
        sessions = list_sessions(conn, **filters)
    return sessions, first, round(time.monotonic() - started, 3)


def describe(sessions, limit=10):
    parts = ["%s (id %s, %s)" % ("%s@%s" % (s["user"], s["client"]) if s["user"] else s["client"], s["id"],
                                 s["state"]) for s in sessions[:limit]]
    if len(sessions) > limit:
        parts.append("and %d more" % (len(sessions) - limit))
    return ", ".join(parts)


# --------------------------------------------------------------------------
# Privileges
# --------------------------------------------------------------------------

#: what each check needs on MariaDB/MySQL
MYSQL_NEEDS = {
    "alter": ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX", "REFERENCES"),
    "backup": ("SELECT",),
    "scratch_database": ("CREATE", "DROP"),
}
CHECKS = ("alter", "backup", "scratch_database", "sessions", "terminate")
#: checks whose failure is a warning: the work still runs, with less insight
SOFT = ("sessions", "terminate")


def check_privileges(conn, checks, tables):
    """``{check: {ok, detail}}`` for each of ``checks``."""
    if conn.engine == "postgresql":
        return _pg_privileges(conn, checks, tables)
    if conn.engine == "mysql":
        return _mysql_privileges(conn, checks)
    return _sqlite_privileges(conn, checks)


def _pg_privileges(conn, checks, tables):
    superuser, createdb = conn.query_one(
        "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user")
    user = conn.scalar("SELECT current_user")
    out = {}
    for check in checks:
        if superuser:
            out[check] = dict(ok=True, detail="%s is a superuser" % user)
        elif check in ("alter", "backup"):
            if check == "alter":
                not_owned = [r[0] for r in conn.query(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) "
                    "AND NOT pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY c.relname", [list(tables)])]
                out[check] = dict(ok=not not_owned, detail=(
                    "%s owns (or is a member of the owner of) every table" % user if not not_owned else
                    "ALTER TABLE needs the owner: %s does not own %s" % (user, ", ".join(not_owned))))
            else:
                unreadable = [r[0] for r in conn.query(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) "
                    "AND NOT has_table_privilege(c.oid, 'SELECT') ORDER BY c.relname", [list(tables)])]
                out[check] = dict(ok=not unreadable, detail="SELECT on every table" if not unreadable else
                                  "%s cannot read %s" % (user, ", ".join(unreadable)))
        elif check == "scratch_database":
            out[check] = dict(ok=bool(createdb), detail="CREATEDB" if createdb else
                              "%s lacks CREATEDB, needed to verify backups in a scratch database" % user)
        elif check == "sessions":
            out[check] = dict(ok=True, detail="pg_stat_activity lists every session of the database")
        else:
            member = conn.scalar("SELECT pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')")
            out[check] = dict(ok=bool(member), detail="member of pg_signal_backend" if member else
                              "%s can only end its own sessions (needs pg_signal_backend)" % user)
    return out


_GRANT = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<target>\S+) TO ", re.S)


def _mysql_grants(conn):
    """[(privileges set, database pattern or '*', table or '*')] from SHOW GRANTS."""
    grants = []
    for (line,) in conn.query("SHOW GRANTS"):
        m = _GRANT.match(line)
        if not m:
            continue
        privs = set(p.strip().upper() for p in re.sub(r"\([^)]*\)", "", m.group("privs")).split(","))
        if "ALL PRIVILEGES" in privs or "ALL" in privs:
            privs |= set(["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX", "REFERENCES",
                          "LOCK TABLES", "TRIGGER", "CREATE VIEW", "SHOW VIEW"])
        db, _dot, table = m.group("target").partition(".")
        grants.append((privs, db.strip("`"), table.strip("`")))
    return grants


def _like(pattern, name):
    """MySQL's database-name pattern of GRANT (``_`` and ``%`` wildcards, ``\\_`` literal)."""
    regex = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if c == "%" else "." if c == "_" else re.escape(c)
        i += 1
    return re.match("^%s$" % regex, name) is not None


def _mysql_privileges(conn, checks):
    grants = _mysql_grants(conn)
    database = conn.database
    global_privs = set()
    for privs, db, table in grants:
        if db == "*":
            global_privs |= privs

    def held_on(dbname):
        held = set(global_privs)
        for privs, db, table in grants:
            if db != "*" and table == "*" and _like(db, dbname):
                held |= privs
        return held

    out = {}
    user = conn.scalar("SELECT CURRENT_USER()")
    for check in checks:
        if check in MYSQL_NEEDS:
            held = held_on(database if check != "scratch_database" else "oar_verify_00000000")
            lacking = [p for p in MYSQL_NEEDS[check] if p not in held]
            where = "on database %s" % database if check != "scratch_database" else "to create/drop a scratch database"
            out[check] = dict(ok=not lacking, detail="%s has %s %s" % (user, ", ".join(MYSQL_NEEDS[check]), where)
                              if not lacking else "%s lacks %s %s" % (user, ", ".join(lacking), where))
        elif check == "sessions":
            ok = "PROCESS" in global_privs or "SUPER" in global_privs
            out[check] = dict(ok=ok, detail="PROCESS: every session is visible" if ok else
                              "%s lacks PROCESS: only its own user's sessions are visible" % user)
        else:
            ok = bool(global_privs & set(["SUPER", "CONNECTION ADMIN"]))
            out[check] = dict(ok=ok, detail="may end any session" if ok else
                              "%s may only end its own user's sessions (needs CONNECTION ADMIN or SUPER)" % user)
    return out


def _sqlite_privileges(conn, checks):
    path = conn.database
    folder = os.path.dirname(os.path.abspath(path))
    writable = os.access(path, os.W_OK) and os.access(folder, os.W_OK)
    out = {}
    for check in checks:
        if check == "alter":
            out[check] = dict(ok=writable, detail="the file and its directory are writable" if writable else
                              "%s or its directory %s is not writable (journal)" % (path, folder))
        elif check == "backup":
            ok = os.access(path, os.R_OK)
            out[check] = dict(ok=ok, detail="the file is readable" if ok else "%s is not readable" % path)
        elif check == "scratch_database":
            out[check] = dict(ok=True, detail="SQLite verifies a copy of the backup file")
        elif check == "sessions":
            out[check] = dict(ok=True, detail="SQLite: the write lock is checked instead of sessions")
        else:
            out[check] = dict(ok=False, detail="SQLite has no sessions to end")
    return out


def missing_privileges(result):
    """(hard failures, warnings) as messages."""
    hard, soft = [], []
    for check in CHECKS:
        if check in result and not result[check]["ok"]:
            (soft if check in SOFT else hard).append("%s: %s" % (check, result[check]["detail"]))
    return hard, soft


def validate_checks(checks):
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise OAuthRepairError("unknown privilege check(s) %s" % ", ".join(unknown), obj="checks",
                               fix="use %s" % ", ".join(CHECKS))
