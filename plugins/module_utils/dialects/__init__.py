# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One dialect per engine, chosen by engine name and server version."""

from __future__ import annotations

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError


def get_dialect(engine, server_version):
    if engine == "mysql":
        from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.mysql import (
            MariaDBDialect, MySQLDialect)
        if "mariadb" in (server_version or "").lower():
            return MariaDBDialect(server_version)
        return MySQLDialect(server_version)
    if engine == "postgresql":
        from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.postgresql import (
            PostgreSQLDialect)
        return PostgreSQLDialect(server_version)
    if engine == "sqlite":
        from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.sqlite import SQLiteDialect
        return SQLiteDialect(server_version)
    raise OAuthRepairError("unknown engine %r" % engine, obj="engine", fix="use mysql, postgresql or sqlite")
