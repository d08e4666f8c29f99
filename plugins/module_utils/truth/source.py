# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which truth to compare the live schema with, from the modules' options.

``expected_schema``: ``django_models`` (the probe), ``django_migrate`` (a scratch database migrated from zero),
``dot`` (no site code: only the collection's own knowledge of DOT's migrations), or ``auto`` (``django_models``
when the ``django`` option names the site, else ``dot``).
"""

from __future__ import annotations

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.truth.django_models import (
    DjangoSite, expected_schema)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.truth.scratch import (
    expected_schema_by_migrate)

KINDS = ("auto", "dot", "django_models", "django_migrate")


def truth_kind(options):
    kind = options.get("expected_schema") or "auto"
    if kind not in KINDS:
        raise OAuthRepairError("expected_schema must be one of %s, not %r" % (", ".join(KINDS), kind),
                               obj="expected_schema", fix="use one of %s" % ", ".join(KINDS))
    if kind == "auto":
        return "django_models" if options.get("django") else "dot"
    return kind


def expected_schema_for(conn, options):
    """The expected :class:`Schema` for ``conn``'s database, or None when the truth is ``dot``."""
    kind = truth_kind(options)
    if kind == "dot":
        return None
    site = DjangoSite.from_options(options)
    if site is None:
        raise OAuthRepairError("expected_schema=%s needs the site: set the django option (project_dir, python, "
                               "settings, environment)" % kind, obj="django",
                               fix="give django.project_dir and django.settings, or use expected_schema=dot")
    apps = options.get("drift_apps") or []
    if kind == "django_migrate":
        return expected_schema_by_migrate(site, conn, apps)
    return expected_schema(site, conn.dialect, apps)
