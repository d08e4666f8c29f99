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
    "write": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "migrations": ("SELECT", "INSERT", "DELETE"),
    "restore": ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX", "REFERENCES",
                "LOCK TABLES"),
    "backup": ("SELECT",),
    "scratch_database": ("CREATE", "DROP"),
}
#: ``alter`` - change the tables' schema; ``write`` - change their rows; ``migrations`` - record and remove rows
#: of django_migrations; ``restore`` - put a backup back (drop, create, fill, lock the tables)
CHECKS = ("alter", "write", "migrations", "restore", "backup", "scratch_database", "sessions", "terminate")
#: checks whose failure is a warning: the work still runs, with less insight
SOFT = ("sessions", "terminate")
#: the table of Django's migration history (the ``migrations`` check)
MIGRATIONS_TABLE = "django_migrations"


def check_privileges(conn, checks, tables):
    """``{check: {ok, detail}}`` for each of ``checks``; a failed check also has ``fix`` (the GRANT to run)."""
    if conn.engine == "postgresql":
        return _pg_privileges(conn, checks, tables)
    if conn.engine == "mysql":
        return _mysql_privileges(conn, checks, tables)
    return _sqlite_privileges(conn, checks)


def _pg_privileges(conn, checks, tables):
    superuser, createdb = conn.query_one(
        "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user")
    user = conn.scalar("SELECT current_user")
    out = {}
    for check in checks:
        if superuser:
            out[check] = dict(ok=True, detail="%s is a superuser" % user)
        elif check in ("alter", "restore"):
            out[check] = _pg_owner(conn, user, tables)
        elif check == "write":
            out[check] = _pg_rows(conn, user, tables, ("SELECT", "INSERT", "UPDATE", "DELETE"))
        elif check == "migrations":
            out[check] = _pg_rows(conn, user, [MIGRATIONS_TABLE], ("SELECT", "INSERT", "DELETE"), sequences=True)
        elif check == "backup":
            out[check] = _pg_rows(conn, user, tables, ("SELECT",))
        elif check == "scratch_database":
            out[check] = dict(ok=bool(createdb), detail="CREATEDB" if createdb else
                              "%s lacks CREATEDB, needed to verify backups in a scratch database" % user,
                              fix='ALTER ROLE "%s" CREATEDB' % user)
        elif check == "sessions":
            out[check] = dict(ok=True, detail="pg_stat_activity lists every session of the database")
        else:
            member = conn.scalar("SELECT pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')")
            out[check] = dict(ok=bool(member), detail="member of pg_signal_backend" if member else
                              "%s can only end its own sessions (needs pg_signal_backend)" % user,
                              fix='GRANT pg_signal_backend TO "%s"' % user)
    return out


def _pg_owner(conn, user, tables):
    """ALTER TABLE (and DROP, CREATE INDEX...) needs the owner of the table; a new table needs CREATE on the schema."""
    rows = conn.query(
        "SELECT c.relname, pg_get_userbyid(c.relowner), pg_has_role(current_user, c.relowner, 'USAGE') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) ORDER BY c.relname", [list(tables)])
    not_owned = [(name, owner) for name, owner, owns in rows if not owns]
    problems, fixes = [], []
    if not_owned:
        owners = sorted(set(o for _n, o in not_owned))
        problems.append("ALTER TABLE needs the owner: %s does not own %s (owned by %s)" % (
            user, ", ".join(n for n, _o in not_owned), ", ".join(owners)))
        fixes.append("run as the tables' owner, or make %s a member of it: %s" % (
            user, "; ".join('GRANT "%s" TO "%s"' % (o, user) for o in owners)))
    if len(rows) < len(set(tables)) and not conn.scalar("SELECT has_schema_privilege(current_schema(), 'CREATE')"):
        problems.append("%s may not create tables in schema %s" % (user, conn.scalar("SELECT current_schema()")))
        fixes.append('GRANT CREATE ON SCHEMA "%s" TO "%s"' % (conn.scalar("SELECT current_schema()"), user))
    if not problems:
        return dict(ok=True, detail="%s owns (or is a member of the owner of) every table" % user)
    return dict(ok=False, detail="; ".join(problems), fix="; ".join(fixes))


def _pg_rows(conn, user, tables, privileges, sequences=False):
    """Table privileges (each one: has_table_privilege with several is true when any one is held); with
    ``sequences``, USAGE on the sequence of a serial or identity ``id`` too (to insert rows that take an id)."""
    lacking = {}
    for name, oid in conn.query(
            "SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) ORDER BY c.relname", [list(tables)]):
        for privilege in privileges:
            if not conn.scalar("SELECT has_table_privilege(%s::oid, %s)", [oid, privilege]):
                lacking.setdefault(privilege, []).append(name)
    unusable = []
    if sequences:
        for name in tables:
            seq = conn.scalar("SELECT pg_get_serial_sequence(quote_ident(%s), 'id') "
                              "WHERE to_regclass(quote_ident(%s)) IS NOT NULL", [name, name])
            if seq and not conn.scalar("SELECT has_sequence_privilege(%s, 'USAGE')", [seq]):
                unusable.append(seq)
    if not lacking and not unusable:
        return dict(ok=True, detail="%s on %s" % (", ".join(privileges), ", ".join(tables) or "every table"))
    detail = ["%s lacks %s on %s" % (user, p, ", ".join(lacking[p])) for p in privileges if p in lacking]
    fixes = ['GRANT %s ON %s TO "%s"' % (p, ", ".join('"%s"' % t for t in lacking[p]), user)
             for p in privileges if p in lacking]
    if unusable:
        detail.append("%s lacks USAGE on sequence %s (to insert)" % (user, ", ".join(unusable)))
        fixes.append('GRANT USAGE ON SEQUENCE %s TO "%s"' % (", ".join(unusable), user))
    return dict(ok=False, detail="; ".join(detail), fix="; ".join(fixes))


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


def _mysql_privileges(conn, checks, tables=()):
    grants = _mysql_grants(conn)
    database = conn.database
    global_privs = set()
    for privs, db, table in grants:
        if db == "*":
            global_privs |= privs

    def held_on(dbname, table=None):
        held = set(global_privs)
        for privs, db, granted in grants:
            if db != "*" and _like(db, dbname) and (granted == "*" or granted == table):
                held |= privs
        return held

    out = {}
    current = conn.scalar("SELECT CURRENT_USER()") or ""
    name, _at, host = current.rpartition("@")
    grantee = "'%s'@'%s'" % (name, host)
    user = current
    for check in checks:
        if check in MYSQL_NEEDS:
            needs = MYSQL_NEEDS[check]
            if check == "scratch_database":
                lacking = [p for p in needs if p not in held_on("oar_verify_00000000")]
                where, target = "to create/drop a scratch database", "`oar\\_verify\\_%`.*, `oar\\_truth\\_%`.*"
            else:
                # database-level grants, or table-level ones on every table the work touches
                on = [MIGRATIONS_TABLE] if check == "migrations" else list(tables)
                missing = set()
                for table in on or [None]:
                    held = held_on(database, table)
                    missing |= set(p for p in needs if p not in held)
                lacking = [p for p in needs if p in missing]
                where = "on %s of database %s" % (MIGRATIONS_TABLE, database) if check == "migrations" else \
                    "on database %s" % database
                target = "`%s`.%s" % (database, "`%s`" % MIGRATIONS_TABLE if check == "migrations" else "*")
            out[check] = dict(ok=not lacking, detail="%s has %s %s" % (user, ", ".join(needs), where)
                              if not lacking else "%s lacks %s %s" % (user, ", ".join(lacking), where))
            if lacking:
                out[check]["fix"] = " and ".join("GRANT %s ON %s TO %s" % (", ".join(lacking), t, grantee)
                                                 for t in target.split(", "))
        elif check == "sessions":
            ok = "PROCESS" in global_privs or "SUPER" in global_privs
            out[check] = dict(ok=ok, detail="PROCESS: every session is visible" if ok else
                              "%s lacks PROCESS: only its own user's sessions are visible" % user,
                              fix="GRANT PROCESS ON *.* TO %s" % grantee)
        else:
            ok = bool(global_privs & set(["SUPER", "CONNECTION ADMIN"]))
            out[check] = dict(ok=ok, detail="may end any session" if ok else
                              "%s may only end its own user's sessions (needs CONNECTION ADMIN or SUPER)" % user,
                              fix="GRANT CONNECTION ADMIN ON *.* TO %s" % grantee)
        if out[check]["ok"]:
            out[check].pop("fix", None)
    return out


def _sqlite_privileges(conn, checks):
    path = conn.database
    folder = os.path.dirname(os.path.abspath(path))
    writable = os.access(path, os.W_OK) and os.access(folder, os.W_OK)
    out = {}
    for check in checks:
        if check in ("alter", "write", "migrations", "restore"):
            out[check] = dict(ok=writable, detail="the file and its directory are writable" if writable else
                              "%s or its directory %s is not writable (journal)" % (path, folder))
            if not writable:
                out[check]["fix"] = "run as the owner of the file, or make it and its directory writable"
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


# --------------------------------------------------------------------------
# Checking a run's privileges before its first statement
# --------------------------------------------------------------------------

#: statements that change rows, not the schema
_ROW_STATEMENT = re.compile(r"^\s*(UPDATE|INSERT|DELETE|SELECT|WITH)\b", re.I)


def plan_needs(steps, live):
    """``{check: [tables]}``: what the steps of a plan that are not done yet need - ``alter`` for a step that
    changes a table's schema, ``write`` for one that only changes rows, ``migrations`` for django_migrations,
    ``scratch_database`` to drop a leftover scratch database."""
    needs = {}
    for step in steps:
        if step.done(live):
            continue
        if step.finding == "leftover_scratch_database":
            check = "scratch_database"
        elif step.table == MIGRATIONS_TABLE:
            check = "migrations"
        elif step.sql and all(_ROW_STATEMENT.match(q) for q in step.sql):
            check = "write"
        else:
            check = "alter"
        tables = needs.setdefault(check, [])
        if step.table and check != "scratch_database" and step.table not in tables:
            tables.append(step.table)
    return needs


def require(conn, needs, check_mode, what):
    """Check the privileges ``needs`` (``{check: [tables]}``) before the first statement that changes anything.

    Outside check mode a missing privilege raises OAuthRepairError (``changed`` false: nothing ran) naming it
    and the GRANT that gives it; in check mode the same sentences are returned as warnings (the plan is shown).
    """
    problems = []
    for check in CHECKS:
        if check in needs:
            result = check_privileges(conn, [check], list(needs[check]))[check]
            if not result["ok"]:
                problems.append(result)
    if not problems:
        return []
    detail = "; ".join(p["detail"] for p in problems)
    fix = "; ".join(p["fix"] for p in problems if p.get("fix"))
    fix = "%s, or run as a user who has them (django_ops.oauth_repair.db_privileges checks before a run)" % (
        fix or "grant the privileges")
    if check_mode:
        return ["%s would fail before its first statement for lack of privileges: %s. Fix: %s" % (what, detail, fix)]
    tables = sorted(set(t for ts in needs.values() for t in ts))
    raise OAuthRepairError("%s needs privileges the database user lacks: %s; nothing was run" % (what, detail),
                           obj=", ".join(tables) or conn.database, fix=fix, changed=False)
