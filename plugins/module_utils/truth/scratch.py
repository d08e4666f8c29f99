# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exact expected schema: migrate a scratch database from zero with the site's own ``manage.py migrate``
code and read it back with the same introspection as the live database (the "dev database" approach).

Needs a database user that may create databases (MariaDB/PostgreSQL); on SQLite the scratch database is a
temporary file. The scratch database is always dropped, also when the migration fails. Its tables are those
the probe names for the models in scope, so both truths cover the same tables.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import connection as connection_mod
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.base import scratch_name
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.truth.django_models import (
    VENDORS, run_probe)

SCRATCH_PREFIX = "oar_truth_"


@contextlib.contextmanager
def scratch_database(conn):
    """Yield the name (for SQLite: the path) of a new empty database next to ``conn``'s; drop it after."""
    name = scratch_name(SCRATCH_PREFIX, conn.database)
    if conn.engine == "sqlite":
        directory = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
        path = os.path.join(directory, "%s.sqlite3" % name)
        try:
            yield path
        finally:
            for suffix in ("", "-journal", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(path + suffix)
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        return
    try:
        conn.dialect.create_scratch_database(conn, name)
    except Exception as exc:  # pylint: disable=broad-except
        raise OAuthRepairError(
            "cannot create a scratch database to migrate from zero: %s" % exc, obj=name,
            fix="grant the user CREATE (MariaDB) / CREATEDB (PostgreSQL), or use expected_schema=django_models")
    try:
        yield name
    finally:
        conn.dialect.drop_scratch_database(conn, name)


def expected_schema_by_migrate(site, conn, apps=()):
    """The schema the site's own migrations create from zero on this server, read by our introspection."""
    with scratch_database(conn) as name:
        doc = run_probe(site, apps=apps, database=name, migrate=True)
        if VENDORS.get(doc["vendor"]) != conn.engine:
            raise OAuthRepairError("the site's Django uses a %s database but the module connects to %s" % (
                doc["vendor"], conn.engine), obj="django.settings",
                fix="point the module and the site's settings at the same database")
        other = connection_mod.connect(dict(conn.params, db=name))
        try:
            schema = other.dialect.load_schema(other, sorted(doc["tables"]), source="django_migrate")
        finally:
            other.close()
    schema.details = dict(django=doc.get("django"), models=doc.get("models"), settings=doc.get("settings"),
                          native_uuid=bool(doc.get("native_uuid")), mariadb=bool(doc.get("mariadb")))
    return schema
