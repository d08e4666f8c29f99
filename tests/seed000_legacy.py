"""Field report 000 re-enacted on a real server, for tests/test_repair_seed000.py and bench/bench_widen.py.

:func:`build_legacy` makes a database look like the report's site just before ``manage.py migrate`` ran
DOT's 0004: Django's own apps migrated by the real ``manage.py migrate`` (auth_user has an int id), DOT's
tables from tests/data/seed000_legacy_<engine>.sql (int ids for application and grant, old index names,
bigint foreign key columns to the application whose foreign keys InnoDB refused, no created/updated on
application and grant, the pre-squash migration names recorded), and rows inserted by plain SQL since
DOT's current models cannot be used on that schema: users, two applications, access tokens (valid for
years: they must still authenticate after the repair), refresh tokens, grants, and rows of a site table
(``shop_order``) that references the application.

:func:`migrate_dies` then runs the real ``manage.py migrate`` and returns its failure: on MariaDB it dies
half-way through 0004 (InnoDB refuses the bigint foreign key to the int ``application.id``), on PostgreSQL
0004 passes and 0006 dies on the missing ``created`` column.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from pathlib import Path

from tests.support.django import run_manage

DATA_DIR = Path(__file__).resolve().parent / "data"

APP = "oauth2_provider_application"
AT = "oauth2_provider_accesstoken"
RT = "oauth2_provider_refreshtoken"
GRANT = "oauth2_provider_grant"
IDT = "oauth2_provider_idtoken"
SHOP = "shop_order"
M0004 = "0004_auto_20200902_2022"
PRE_SQUASH = ["0002_08_updates", "0003_auto_20160316_1503", "0004_auto_20160525_1623",
              "0005_auto_20170514_1141", "0006_auto_20171214_2232"]

#: the columns of each table before the repair: their content must survive it
LEGACY_TABLES = (APP, AT, RT, GRANT, SHOP)


def qi(target, name):
    return "`%s`" % name if target.engine == "mysql" else '"%s"' % name


def _insert(target, table, columns, rows):
    if not rows:
        return
    ph = target.placeholder
    sql = "INSERT INTO %s (%s) VALUES %s" % (
        qi(target, table), ", ".join(qi(target, c) for c in columns),
        ", ".join("(%s)" % ", ".join([ph] * len(columns)) for _row in rows))
    target.execute(sql, [v for row in rows for v in row])


def _ts(target, value):
    if target.engine == "postgresql":
        return value
    return value.astimezone(datetime.timezone.utc).replace(tzinfo=None)


class Legacy(object):
    """What :func:`build_legacy` put in the database."""

    def __init__(self, tokens, refresh_tokens, user_ids, app_ids):
        self.tokens = tokens                  # {access token id: token}
        self.refresh_tokens = refresh_tokens  # {refresh token id: token}
        self.user_ids = user_ids
        self.app_ids = app_ids


def build_legacy(target, tokens=30):
    """Make ``target`` (an empty database) the report's site before 0004. Returns a :class:`Legacy`."""
    run_manage(target, "migrate", "--noinput", "auth")
    run_manage(target, "migrate", "--noinput", "sessions")
    target.execute_script((DATA_DIR / ("seed000_legacy_%s.sql" % target.engine)).read_text())
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    joined = _ts(target, datetime.datetime(2016, 2, 1, tzinfo=datetime.timezone.utc))
    true = True if target.engine == "postgresql" else 1
    false = False if target.engine == "postgresql" else 0
    _insert(target, "auth_user", ["id", "password", "is_superuser", "username", "first_name", "last_name", "email",
                                  "is_staff", "is_active", "date_joined"],
            [(1, "!", false, "alice", "", "", "", false, true, joined),
             (2, "!", false, "bob", "", "", "", false, true, joined)])
    _insert(target, APP, ["id", "client_id", "redirect_uris", "client_type", "authorization_grant_type",
                          "client_secret", "name", "user_id", "skip_authorization"],
            [(1, "client-one", "https://one.example/cb", "confidential", "authorization-code", "secret-one", "One", 1,
              false),
             (4, "client-four", "https://four.example/cb", "public", "client-credentials", "secret-four", "Four", 2,
              true)])
    expires = _ts(target, now + datetime.timedelta(days=3650))
    created = _ts(target, datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
    salt = secrets.token_hex(4)
    values = ["legacy-%s" % hashlib.sha256(("%s:%d" % (salt, i)).encode()).hexdigest()[:30] for i in range(tokens)]
    values[-1] = "legacy-tøkén-%s" % salt  # not ASCII: DOT's 0012 hashes its UTF-8 bytes
    _insert(target, AT, ["id", "token", "expires", "scope", "application_id", "user_id", "created", "updated"],
            [(i + 1, tok, expires, "read write", 1 if i % 3 else 4, 1 + i % 2, created, created)
             for i, tok in enumerate(values)])
    refresh = dict((i + 1, "refresh-%s-%d" % (salt, i)) for i in range(tokens // 3))
    _insert(target, RT, ["id", "token", "access_token_id", "application_id", "user_id", "created", "updated"],
            [(rid, tok, rid, 1 if (rid - 1) % 3 else 4, 1 + (rid - 1) % 2, created, created)
             for rid, tok in refresh.items()])
    _insert(target, GRANT, ["id", "code", "expires", "redirect_uri", "scope", "application_id", "user_id",
                            "code_challenge", "code_challenge_method"],
            [(g, "code-%d" % g, expires, "https://one.example/cb", "read", 1 if g % 2 else 4, 1, "", "")
             for g in (1, 2, 3)])
    _insert(target, SHOP, ["application_id", "total"], [(1 if i % 2 else 4, 100 + i) for i in range(6)])
    if target.engine == "postgresql":
        for table in ("auth_user", APP, AT, RT, GRANT):
            target.execute("SELECT setval(pg_get_serial_sequence(%%s, 'id'), (SELECT MAX(id) FROM %s))"
                           % qi(target, table), ('"%s"' % table,))
    return Legacy(dict((i + 1, tok) for i, tok in enumerate(values)), refresh, [1, 2], [1, 4])


def migrate_dies(target):
    """The real ``manage.py migrate`` on the legacy site: returns the CompletedProcess (it must fail)."""
    return run_manage(target, "migrate", "--noinput", check=False)
