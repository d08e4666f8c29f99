# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The expected schema, from the site's own Django.

``DjangoSite`` says how to run the site's Python (interpreter, project directory, settings module,
environment). ``run_probe`` runs :mod:`.probe_script` there and returns its JSON; ``schema_from_probe`` turns
that JSON into a :class:`~..schema.model.Schema`, every type normalised by the same dialect code that
normalises the live catalog, so the two can be compared. ``expected_schema`` does both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError, redact
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.schema.model import (
    Column, ForeignKey, Index, Schema, Table)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.truth.probe_script import SOURCE

PROBE_FORMAT = "django_ops.oauth_repair/django-models"
PROBE_FORMAT_VERSION = 1
#: Django's vendor name -> this collection's engine
VENDORS = {"mysql": "mysql", "postgresql": "postgresql", "sqlite": "sqlite", "microsoft": "mssql"}


class DjangoSite:
    """How to run code as the site: its interpreter, project directory, settings and environment."""

    def __init__(self, project_dir, python=None, settings=None, environment=None, secret_environment=None,
                 timeout=300):
        if not project_dir or not os.path.isdir(project_dir):
            raise OAuthRepairError("the Django project directory %r does not exist" % (project_dir,),
                                   obj="django.project_dir",
                                   fix="set django.project_dir to the directory that holds manage.py")
        self.project_dir = project_dir
        self.python = python or sys.executable
        self.settings = settings
        self.environment = dict((str(k), str(v)) for k, v in (environment or {}).items())
        self.secret_environment = dict((str(k), str(v)) for k, v in (secret_environment or {}).items())
        self.timeout = int(timeout)

    @classmethod
    def from_options(cls, options):
        """A site from the modules' ``django`` option (a dict), or None when it is not given."""
        opts = options.get("django") or None
        if not opts:
            return None
        return cls(opts.get("project_dir"), python=opts.get("python"), settings=opts.get("settings"),
                   environment=opts.get("environment"), secret_environment=opts.get("secret_environment"),
                   timeout=opts.get("timeout") or 300)

    def secrets(self):
        return [v for v in self.secret_environment.values() if v]

    def env(self):
        env = dict(os.environ)
        env.update(self.environment)
        env.update(self.secret_environment)
        if self.settings:
            env["DJANGO_SETTINGS_MODULE"] = self.settings
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def run_python(self, code, args, what):
        """Run ``python -c code json(args)`` in the project directory; return stdout (raises with the tail of
        stderr, secrets redacted, on failure)."""
        cmd = [self.python, "-c", code, json.dumps(args)]
        try:
            proc = subprocess.run(cmd, cwd=self.project_dir, env=self.env(), capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise OAuthRepairError("%s did not finish within %ss" % (what, self.timeout), obj="django",
                                   fix="raise django.timeout, or check that the site's database answers")
        except OSError as exc:
            raise OAuthRepairError("cannot run the site's python %r: %s" % (self.python, exc), obj="django.python",
                                   fix="set django.python to the interpreter of the site's virtualenv")
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
            raise OAuthRepairError("%s failed (exit %s): %s" % (what, proc.returncode, redact(tail, self.secrets())),
                                   obj="django",
                                   fix="check django.project_dir, django.settings and django.environment: the "
                                       "site's settings must import and reach the database")
        return proc.stdout


def run_probe(site, apps=(), alias="default", database=None, migrate=False, add_field=(), at_migration=(), tables=()):
    """The probe's JSON document (see :mod:`.probe_script`); ``tables`` adds the models of those tables."""
    args = dict(apps=list(apps or []), tables=list(tables or []), alias=alias, database=database, migrate=bool(migrate),
                add_field=[dict(model=m, field=f) for m, f in add_field],
                at_migration=[dict(app=a, name=n) for a, n in at_migration])
    out = site.run_python(SOURCE, args, "the schema probe (the site's Django)")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    try:
        doc = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise OAuthRepairError("the schema probe printed no JSON document", obj="django",
                               fix="run the site's manage.py check with the same settings to see why")
    check_probe_document(doc)
    return doc


def check_probe_document(doc):
    if doc.get("format") != PROBE_FORMAT or doc.get("format_version") != PROBE_FORMAT_VERSION:
        raise OAuthRepairError("unknown probe output format %r version %r" % (doc.get("format"),
                                                                              doc.get("format_version")),
                               obj="django", fix="use the probe shipped with this collection version")


def schema_from_probe(doc, dialect):
    """The expected :class:`Schema` from the probe's document, types normalised by ``dialect``."""
    check_probe_document(doc)
    engine = VENDORS.get(doc["vendor"], doc["vendor"])
    if engine != dialect.engine:
        raise OAuthRepairError(
            "the site's Django uses a %s database but the module connects to %s" % (doc["vendor"], dialect.engine),
            obj="django.settings", fix="point the module and the site's settings at the same database")
    tables = {}
    fields = {}
    for name, data in doc["tables"].items():
        table = Table(name=name)
        for c in data["columns"]:
            table.columns.append(Column(
                name=c["name"], type=dialect.normalize_declared_type(c["db_type"]), raw_type=c["db_type"],
                nullable=bool(c["null"]) and not c["primary_key"], default=c.get("default"),
                auto_increment=bool(c["auto"])))
            fields["%s.%s" % (name, c["name"])] = dict(
                model=c["model"], field=c["field"], has_db_default=bool(c.get("has_db_default")),
                has_scalar_default=bool(c.get("has_scalar_default")), scalar_default=c.get("scalar_default"),
                internal_type=c.get("internal_type"))
            if c["primary_key"]:
                table.primary_key = [c["name"]]
        for i in data["indexes"]:
            table.indexes.append(Index(name=i.get("name"), table=name, columns=list(i["columns"]),
                                       unique=bool(i["unique"]), primary=bool(i.get("primary")),
                                       partial=bool(i.get("partial")), constraint=bool(i.get("primary"))))
        for f in data["foreign_keys"]:
            table.foreign_keys.append(ForeignKey(name=f.get("name"), table=name, columns=list(f["columns"]),
                                                 ref_table=f["ref_table"], ref_columns=list(f["ref_columns"])))
        tables[name] = table
    details = dict(django=doc.get("django"), models=doc.get("models"), settings=doc.get("settings"),
                   native_uuid=bool(doc.get("native_uuid")), mariadb=bool(doc.get("mariadb")), fields=fields)
    return Schema(engine=engine, vendor=dialect.vendor, server_version=doc.get("server_version") or "",
                  tables=tables, source="django_models", details=details)


def expected_schema(site, dialect, apps=(), tables=()):
    """What the site's models expect on this database, by the probe (``tables``: models of those tables too)."""
    return schema_from_probe(run_probe(site, apps=apps, tables=tables), dialect)


def add_field_sql(site, model, field, apps=()):
    """The statements the site's Django schema editor writes to add ``model.field`` (collected, not run)."""
    doc = run_probe(site, apps=apps, add_field=[(model, field)])
    return doc["add_field"]["%s.%s" % (model, field)]


def tables_at_migration(site, app, name):
    """``(known, {table: [column names]})``: the tables of ``app`` once its migration ``name`` has run, by the
    site's own migration graph (``known`` is False when the site has no such migration)."""
    doc = run_probe(site, at_migration=[(app, name)])
    found = doc["at_migration"]["%s.%s" % (app, name)]
    return found["known"], dict((t, [c["name"] for c in data["columns"]]) for t, data in found["tables"].items())
