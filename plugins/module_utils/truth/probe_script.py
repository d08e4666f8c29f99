# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe: a script run with the site's own Python and settings (never imported by the modules).

It prints one JSON document: for every model in scope (DOT's models with swapped ones resolved through the
settings, ``AUTH_USER_MODEL``, the apps named in ``apps``, and the auto-created M2M tables of all of them) the
table Django would create on the site's database vendor and server version: each column with the field's
``db_type`` for that connection, null, primary key, unique, the FK target; the indexes (``db_index``,
foreign keys, ``unique_together``, ``Meta.indexes``, ``Meta.constraints``) and foreign keys with the names the
site's own schema editor gives them. With ``add_field`` it also prints the SQL Django's schema editor writes to
add the named fields (``schema_editor(collect_sql=True)``), for the repairs. With ``database`` it points the
connection at another database (a scratch one) and, with ``migrate``, runs the site's own ``migrate`` there first.

The probe connects to the database only to learn the server version (and, with ``add_field``, what Django's
schema editor reads from the catalog); it never writes to it. Its output is versioned (``format``,
``format_version``).
"""

SOURCE = r'''
import json
import os
import sys

ARGS = json.loads(sys.argv[1])
FORMAT = "django_ops.oauth_repair/django-models"


def main():
    from django.conf import settings
    alias = ARGS.get("alias") or "default"
    if ARGS.get("database"):
        # before django.setup(): connections are built lazily from this dict
        settings.DATABASES[alias]["NAME"] = ARGS["database"]
        settings.DATABASES[alias].setdefault("TEST", {})
    import django
    django.setup()
    from django.apps import apps
    from django.db import connections
    connection = connections[alias]
    if ARGS.get("migrate"):
        from django.core.management import call_command
        call_command("migrate", database=alias, interactive=False, verbosity=0)
    connection.ensure_connection()
    models = scope(apps, settings)
    out = dict(format=FORMAT, format_version=1, django=django.get_version(), vendor=connection.vendor,
               server_version=server_version(connection), alias=alias,
               mariadb=bool(getattr(connection, "mysql_is_mariadb", False)),
               native_uuid=bool(getattr(connection.features, "has_native_uuid_field", False)),
               settings=dict(user_model=settings.AUTH_USER_MODEL,
                             default_auto_field=getattr(settings, "DEFAULT_AUTO_FIELD", None)),
               models={}, tables={}, add_field={}, at_migration={})
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        for model in models:
            out["models"][model._meta.label] = model._meta.db_table
            out["tables"][model._meta.db_table] = describe(model, connection, editor)
    for request in ARGS.get("at_migration") or []:
        # the tables of one app as they are once this migration has run (the migration graph's own state)
        from django.db.migrations.loader import MigrationLoader
        loader = MigrationLoader(connection, ignore_no_migrations=True)
        key = (request["app"], request["name"])
        tables = {}
        if key in loader.graph.nodes:
            state = loader.project_state(key, at_end=True)
            with connection.schema_editor(collect_sql=True, atomic=False) as editor:
                for model in state.apps.get_models():
                    meta = model._meta
                    if meta.app_label == request["app"] and meta.managed and not meta.proxy:
                        tables[meta.db_table] = describe(model, connection, editor)
        out["at_migration"]["%s.%s" % key] = dict(known=key in loader.graph.nodes, tables=tables)
    for request in ARGS.get("add_field") or []:
        model = apps.get_model(request["model"])
        field = model._meta.get_field(request["field"])
        with connection.schema_editor(collect_sql=True, atomic=False) as editor:
            editor.add_field(model, field)
        out["add_field"]["%s.%s" % (request["model"], request["field"])] = list(editor.collected_sql)
    sys.stdout.write("\n" + json.dumps(out) + "\n")


def server_version(connection):
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            return cursor.fetchone()[0]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return cursor.fetchone()[0]
    if connection.vendor == "sqlite":
        import sqlite3
        return sqlite3.sqlite_version
    return ""


def scope(apps, settings):
    """DOT's models (swapped resolved), the user model, the named apps, and their auto-created M2M tables."""
    chosen = []

    def add(model):
        if model is None or model in chosen:
            return
        meta = model._meta
        if meta.swapped or meta.proxy or not meta.managed or meta.abstract:
            return
        chosen.append(model)

    labels = ["oauth2_provider"] + list(ARGS.get("apps") or [])
    for label in labels:
        try:
            config = apps.get_app_config(label)
        except LookupError:
            raise SystemExit("probe: no installed app %r (apps option)" % label)
        for model in config.get_models(include_auto_created=True):
            add(model)
    import oauth2_provider.models as dot
    for getter in ("get_application_model", "get_access_token_model", "get_refresh_token_model",
                   "get_id_token_model", "get_grant_model", "get_device_grant_model"):
        if hasattr(dot, getter):
            add(getattr(dot, getter)())
    add(apps.get_model(settings.AUTH_USER_MODEL))
    wanted = set(ARGS.get("tables") or [])
    for model in apps.get_models(include_auto_created=True):
        if model._meta.db_table in wanted:
            add(model)
    for model in list(chosen):
        for field in model._meta.local_many_to_many:
            through = field.remote_field.through
            if through._meta.auto_created:
                add(through)
    return chosen


def name_of(reference):
    """A name from Django's schema editor, without the quotes its references render with."""
    return str(reference).strip('"`[]')


def migration_auto_field():
    from django.conf import settings
    from django.utils.module_loading import import_string
    return import_string(settings.DEFAULT_AUTO_FIELD)()


def describe(model, connection, editor):
    meta = model._meta
    table = meta.db_table
    features = connection.features
    columns, indexes, fks = [], [], []
    pk = None
    vendor = connection.vendor
    for field in meta.local_concrete_fields:
        params = field.db_parameters(connection=connection)
        db_type = params["type"]
        if db_type is None:
            continue
        if field.primary_key and meta.auto_created and field.get_internal_type().endswith("AutoField"):
            # migrations build auto-created M2M tables in a registry whose apps have no default_auto_field,
            # so their id follows DEFAULT_AUTO_FIELD, whatever the app's own AppConfig says
            db_type = migration_auto_field().db_type(connection=connection)
        target = None
        if field.is_relation and getattr(field, "db_constraint", False):
            target = dict(table=field.target_field.model._meta.db_table, column=field.target_field.column)
        default = None
        db_default = getattr(field, "db_default", None)
        has_db_default = db_default is not None and type(db_default).__name__ != "NOT_PROVIDED"
        if has_db_default:
            default = str(db_default)
        # the value existing rows get when the column is added (Django's effective default), when it is a scalar
        try:
            effective = editor.effective_default(field)
        except Exception:  # pylint: disable=broad-except
            effective = None
        scalar = effective is None or isinstance(effective, (bool, int, float, str))
        columns.append(dict(name=field.column, db_type=db_type, null=bool(field.null), primary_key=field.primary_key,
                            scalar_default=effective if scalar else None,
                            has_scalar_default=effective is not None and scalar,
                            unique=bool(field.unique), auto=field.get_internal_type() in (
                                "AutoField", "BigAutoField", "SmallAutoField"),
                            field=field.name, model=meta.label, default=default, has_db_default=has_db_default,
                            internal_type=field.get_internal_type()))
        if vendor == "postgresql" and (field.db_index or field.unique) and "[" not in db_type \
                and db_type.startswith(("varchar", "text")):
            # PostgreSQL's schema editor adds a pattern-ops index for LIKE on every indexed text column
            indexes.append(dict(name=name_of(editor._create_index_name(table, [field.column], suffix="_like")),
                                columns=[field.column], unique=False))
        if field.primary_key:
            pk = field.column
            continue
        if field.unique:
            indexes.append(dict(name=None, columns=[field.column], unique=True))
        elif field.db_index:
            name = name_of(editor._create_index_name(table, [field.column], suffix=""))
            if target is not None and vendor == "mysql":
                name = None  # InnoDB's index is named after the foreign key
            indexes.append(dict(name=name, columns=[field.column], unique=False))
        if target is not None:
            name = None
            if vendor != "sqlite":
                name = name_of(editor._fk_constraint_name(model, field, "_fk_%(to_table)s_%(to_column)s"))
            fks.append(dict(name=name, columns=[field.column], ref_table=target["table"],
                            ref_columns=[target["column"]]))
    if pk is not None:
        indexes.append(dict(name=None, columns=[pk], unique=True, primary=True))
    for fields in meta.unique_together:
        cols = [meta.get_field(f).column for f in fields]
        indexes.append(dict(name=name_of(editor._create_index_name(table, cols, suffix="_uniq")), columns=cols,
                            unique=True))
    for index in meta.indexes:
        if not index.fields:
            continue  # expression indexes: not compared
        if index.condition is not None and not features.supports_partial_indexes:
            continue
        cols = [meta.get_field(f.lstrip("-")).column for f in index.fields]
        indexes.append(dict(name=index.name, columns=cols, unique=False, partial=index.condition is not None))
    for constraint in meta.constraints:
        if type(constraint).__name__ != "UniqueConstraint" or not constraint.fields:
            continue
        if constraint.condition is not None and not features.supports_partial_indexes:
            continue
        cols = [meta.get_field(f).column for f in constraint.fields]
        partial = constraint.condition is not None
        # SQLite keeps no name for a UNIQUE written inside CREATE TABLE
        indexes.append(dict(name=constraint.name if partial or vendor != "sqlite" else None, columns=cols,
                            unique=True, partial=partial))
    return dict(name=table, model=meta.label, columns=columns, indexes=indexes, foreign_keys=fks)


if __name__ == "__main__":
    main()
'''
