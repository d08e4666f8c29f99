# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One repair run per database at a time.

Two runs of the modules that change a database (two operators, or a retry while the first still runs) would
both backfill and trip over each other. :func:`held` takes a lock on the database itself for the life of the
module's connection - MariaDB/MySQL ``GET_LOCK``, a PostgreSQL session advisory lock, an ``flock`` on a file
beside an SQLite database (the dialects' ``take_run_lock``) - and refuses a second run with a message naming the
first: its host, process id and start time where the engine can tell them. The lock ends with the connection,
so a killed run never leaves it behind. Check mode takes no lock: it changes nothing.
"""

from __future__ import annotations

import datetime
import os
import socket

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError


def owner():
    """Who this run is: host, process id and start time (UTC, ISO 8601)."""
    return dict(host=socket.gethostname(), pid=os.getpid(),
                started=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat())


def describe(holder):
    parts = []
    if holder.get("host"):
        parts.append("host %s" % holder["host"])
    if holder.get("pid"):
        parts.append("pid %s" % holder["pid"])
    if holder.get("started"):
        parts.append("started %s" % holder["started"])
    if holder.get("session"):
        parts.append("database session %s" % holder["session"])
    if holder.get("client"):
        parts.append("from %s" % holder["client"])
    return ", ".join(parts) or "unknown"


def take(conn, module_name):
    """Take the run lock of ``conn``'s database, or raise OAuthRepairError naming the run that holds it."""
    me = owner()
    holder = conn.dialect.take_run_lock(conn, me)
    if holder is None:
        return me
    raise OAuthRepairError(
        "another run of the collection is changing database %s (%s); %s did nothing" % (
            conn.database, describe(holder), module_name),
        obj=conn.database,
        fix="wait for that run to finish (or end it) and run again; a killed run releases the lock with its "
            "connection", changed=False)
