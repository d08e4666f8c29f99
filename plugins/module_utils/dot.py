# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What django-oauth-toolkit's migrations put in a database, as data.

This is our own description of DOT 3.4.x (migrations 0001-0022), written from
reading its migrations: for each migration, the schema objects it leaves behind
("effects"), so that the live catalog can tell which migrations really ran.
Effects name models (``application``, ``accesstoken``...) rather than tables:
a swapped model's table is resolved by :class:`Models`, and DOT skips schema
operations on swapped models, so their effects are not expected.
"""

from __future__ import annotations

from collections import namedtuple

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import (
    default_table_name, parse_model_label)

APP = "oauth2_provider"

#: model key -> (Django setting suffix, default model label)
MODELS = {
    "application": ("APPLICATION_MODEL", "oauth2_provider.Application"),
    "accesstoken": ("ACCESS_TOKEN_MODEL", "oauth2_provider.AccessToken"),
    "refreshtoken": ("REFRESH_TOKEN_MODEL", "oauth2_provider.RefreshToken"),
    "idtoken": ("ID_TOKEN_MODEL", "oauth2_provider.IDToken"),
    "grant": ("GRANT_MODEL", "oauth2_provider.Grant"),
    "devicegrant": ("DEVICE_GRANT_MODEL", "oauth2_provider.DeviceGrant"),
}

#: model key -> the module option that names a swapped model
OPTION_NAMES = {"application": "application_model", "accesstoken": "access_token_model",
                "refreshtoken": "refresh_token_model", "idtoken": "id_token_model", "grant": "grant_model",
                "devicegrant": "device_grant_model"}

#: model -> {column: target model ("user" is AUTH_USER_MODEL)}: DOT's ForeignKey/OneToOne columns.
RELATIONS = {
    "application": {"user_id": "user"},
    "accesstoken": {"user_id": "user", "application_id": "application",
                    "source_refresh_token_id": "refreshtoken", "id_token_id": "idtoken"},
    "refreshtoken": {"user_id": "user", "application_id": "application", "access_token_id": "accesstoken"},
    "idtoken": {"user_id": "user", "application_id": "application"},
    "grant": {"user_id": "user", "application_id": "application"},
    "devicegrant": {"user_id": "user"},
}

#: models with ``created``/``updated`` (DOT's abstract models define them with auto_now_add / auto_now).
TIMESTAMPED = ("application", "accesstoken", "refreshtoken", "idtoken", "grant")

#: nullable columns DOT declares unique (OneToOneField null=True): SQL Server treats their NULLs as equal.
NULLABLE_UNIQUE = {
    "accesstoken": ["source_refresh_token_id", "id_token_id"],
    "refreshtoken": ["access_token_id"],
}

#: migration names that DOT 1.3 squashed into 0001_initial, and names it renamed.
PRE_SQUASH = (
    "0002_08_updates", "0003_auto_20160316_1503", "0004_auto_20160525_1623",
    "0005_auto_20170514_1141", "0006_auto_20171214_2232",
)

# Effect kinds: ("table", model), ("column", model, column), ("type", model, column, base type),
# ("fk", model, column), ("unique", model, (columns...)), ("no_unique", model, (columns...)),
# ("index", model, (columns...)), ("no_column", model, column)
Effect = namedtuple("Effect", "kind model target")

MIGRATIONS = [
    ("0001_initial", [
        Effect("table", "application", None), Effect("table", "accesstoken", None),
        Effect("table", "grant", None), Effect("table", "refreshtoken", None),
        Effect("column", "accesstoken", "source_refresh_token_id"),
        Effect("column", "application", "skip_authorization"), Effect("column", "refreshtoken", "revoked"),
        Effect("fk", "application", "user_id"), Effect("fk", "accesstoken", "user_id"),
        Effect("fk", "grant", "user_id"), Effect("fk", "refreshtoken", "user_id"),
        Effect("fk", "accesstoken", "application_id"), Effect("fk", "grant", "application_id"),
        Effect("fk", "refreshtoken", "application_id"), Effect("fk", "refreshtoken", "access_token_id"),
        Effect("fk", "accesstoken", "source_refresh_token_id"),
    ]),
    ("0002_auto_20190406_1805", [
        Effect("column", "grant", "code_challenge"), Effect("column", "grant", "code_challenge_method"),
    ]),
    ("0003_auto_20201211_1314", [Effect("type", "grant", ("redirect_uri", "text"))]),
    ("0004_auto_20200902_2022", [
        Effect("column", "application", "algorithm"), Effect("table", "idtoken", None),
        Effect("column", "accesstoken", "id_token_id"), Effect("column", "grant", "nonce"),
        Effect("column", "grant", "claims"), Effect("fk", "idtoken", "application_id"),
        Effect("fk", "idtoken", "user_id"), Effect("fk", "accesstoken", "id_token_id"),
    ]),
    ("0005_auto_20211222_2352", []),
    ("0006_alter_application_client_secret", []),
    ("0007_application_post_logout_redirect_uris", [
        Effect("column", "application", "post_logout_redirect_uris")]),
    ("0008_alter_accesstoken_token", []),
    ("0009_add_hash_client_secret", [Effect("column", "application", "hash_client_secret")]),
    ("0010_application_allowed_origins", [Effect("column", "application", "allowed_origins")]),
    ("0011_refreshtoken_token_family", [Effect("column", "refreshtoken", "token_family")]),
    ("0012_add_token_checksum", [
        Effect("column", "accesstoken", "token_checksum"), Effect("type", "accesstoken", ("token", "text")),
        Effect("unique", "accesstoken", ("token_checksum",)),
    ]),
    ("0013_alter_application_authorization_grant_type_device", [
        Effect("type", "application", ("authorization_grant_type", "varchar(44)")),
        Effect("table", "devicegrant", None), Effect("unique", "devicegrant", ("device_code",)),
    ]),
    ("0014_alter_help_text", []),
    ("0015_refreshtoken_token_checksum", [
        Effect("column", "refreshtoken", "token_checksum"), Effect("type", "refreshtoken", ("token", "text")),
        Effect("no_unique", "refreshtoken", ("token", "revoked")),
        Effect("unique", "refreshtoken", ("token_checksum", "revoked")),
    ]),
    ("0016_alter_devicegrant_scope", [Effect("type", "devicegrant", ("scope", "text"))]),
    ("0017_application_dcr_created", [Effect("column", "application", "dcr_created")]),
    ("0018_resource_indicators", [
        Effect("column", "accesstoken", "resource"), Effect("column", "grant", "resource"),
        Effect("column", "refreshtoken", "resource"),
    ]),
    ("0019_application_registration_source", [
        Effect("column", "application", "registration_source"), Effect("no_column", "application", "dcr_created"),
    ]),
    ("0020_cimd_application_fields", [
        Effect("column", "application", "cimd_expires_at"),
        Effect("type", "application", ("client_id", "varchar(255)")),
    ]),
    ("0021_translatable_field_labels", []),
    ("0022_refreshtoken_token_family_index", [Effect("index", "refreshtoken", ("token_family",))]),
]

MIGRATION_NAMES = [migration[0] for migration in MIGRATIONS]

#: effects that a later migration undoes: (migration, effect kind, model, target) ->
#: (the undoing migration, an effect whose presence shows the undoing migration ran even if unrecorded)
SUPERSEDED = {
    ("0017_application_dcr_created", "column", "application", "dcr_created"): (
        "0019_application_registration_source", Effect("column", "application", "registration_source")),
}

#: the checksum columns and the migration that adds each, with the uniqueness DOT gives it
CHECKSUMS = (
    # model, migration, unique columns
    ("accesstoken", "0012_add_token_checksum", ("token_checksum",)),
    ("refreshtoken", "0015_refreshtoken_token_checksum", ("token_checksum", "revoked")),
)


class Models(object):
    """Resolve DOT model keys to live table names, honouring swapped models."""

    def __init__(self, swapped=None, user_table=None):
        # swapped: {model key: "app_label.ModelName" or {"label": ..., "table": ...}}
        self.labels = {}
        self.tables = {}
        for key, (_setting, default_label) in MODELS.items():
            self.labels[key] = default_label
            self.tables[key] = "%s_%s" % (APP, key)
        for key, spec in (swapped or {}).items():
            if not spec:
                continue
            if isinstance(spec, dict):
                label, table = spec.get("label"), spec.get("table")
            else:
                label, table = spec, None
            parse_model_label(label, option=OPTION_NAMES[key])
            self.labels[key] = label
            self.tables[key] = table or default_table_name(label)
        self.user_table = user_table

    def is_swapped(self, key):
        return self.labels[key].lower() != MODELS[key][1].lower()

    def swapped_keys(self):
        return [k for k in MODELS if self.is_swapped(k)]

    def app_label(self, key):
        return self.labels[key].split(".", 1)[0]

    def table(self, key):
        if key == "user":
            return self.user_table
        return self.tables[key]

    def default_table(self, key):
        return "%s_%s" % (APP, key)

    def all_tables(self):
        """Every table DOT may own here: DOT's own and the swapped models' tables."""
        names = set("%s_%s" % (APP, k) for k in MODELS)
        names.update(self.tables.values())
        return sorted(names)
