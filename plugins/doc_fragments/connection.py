# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Connection options shared by every module of the collection.
    DOCUMENTATION = r'''
options:
  engine:
    description:
      - The database engine of the Django site.
      - C(mysql) covers MariaDB 10.5 or later (tested on MariaDB 10.11) and is expected to work with MySQL 8.0 or
        later, which is not tested here; the two are told apart by the server version.
      - C(mssql) (SQL Server 2016 or later, Azure SQL) is supported as plans only, by
        M(django_ops.oauth_repair.oauth_info) and M(django_ops.oauth_repair.oauth_repair) - the catalog is read
        from O(catalog_snapshot) (or, when the C(pymssql) library is importable and O(catalog_snapshot) is not
        set, by running the same read-only query over a connection), and nothing is ever executed on the server.
        This support has not been run against a live SQL Server; see the collection's C(docs/sqlserver.md).
    type: str
    required: true
    choices: [mysql, postgresql, sqlite, mssql]
  login_host:
    description:
      - Host of the database server. Ignored for C(sqlite) and when O(login_unix_socket) is set.
    type: str
    default: 127.0.0.1
  login_port:
    description:
      - Port of the database server. Defaults to the engine's port (3306, 5432, 1433).
    type: int
  login_user:
    description:
      - User to connect as. Defaults to C(root) for C(mysql) and to the driver's default for C(postgresql).
    type: str
  login_password:
    description:
      - Password of O(login_user). Never logged nor returned.
    type: str
  login_unix_socket:
    description:
      - Path of the server's Unix socket (C(mysql)) or of the socket directory (C(postgresql)).
    type: str
  db:
    description:
      - The Django site's database name, or for C(sqlite) the path of the existing database file (never created).
    type: str
    required: true
    aliases: [database]
  connect_timeout:
    description:
      - Seconds to wait for the connection (and, for C(sqlite), for a lock on the file).
    type: int
    default: 10
  ssl_mode:
    description:
      - TLS mode, with libpq's names. For C(mysql), C(require) and stronger turn TLS on, C(verify-ca) checks the
        certificate and C(verify-full) also the host name.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate file used to verify the server's certificate.
    type: path
    aliases: [ssl_rootcert]
  client_cert:
    description:
      - Client certificate file.
    type: path
    aliases: [ssl_cert]
  client_key:
    description:
      - Client private key file.
    type: path
    aliases: [ssl_key]
  lock_timeout:
    description:
      - Milliseconds any statement of the module may wait for a lock - reads included, from the first statement on -
        before it fails with a message naming the table and the session holding the lock. From 1 to 86400000.
      - MariaDB/MySQL round it up to whole seconds (C(lock_wait_timeout), C(innodb_lock_wait_timeout)); SQLite uses
        it as its busy timeout.
    type: int
    default: 5000
  statement_timeout:
    description:
      - Milliseconds one statement may run; C(0) means no limit. From 0 to 86400000.
      - MariaDB and PostgreSQL bound every statement; MySQL 8 bounds only reads, so its DDL relies on O(lock_timeout).
    type: int
    default: 0
  catalog_snapshot:
    description:
      - For O(engine=mssql) only - the JSON catalog snapshot of the SQL Server database, printed by the
        collection's C(files/mssql_catalog_snapshot.sql) run with C(sqlcmd) (the exact command is in
        C(docs/sqlserver.md)). O(db) must name the database the snapshot was taken in.
      - The file is read on the host that runs the module. Every name in it is validated before it is written
        into T-SQL; a malformed, cut or edited file is refused with an error naming the problem.
    type: path
requirements:
  - PyMySQL for O(engine=mysql).
  - psycopg 3 for O(engine=postgresql).
  - Nothing for O(engine=mssql) with O(catalog_snapshot); pymssql to read the catalog over a connection instead.
notes:
  - Values are always sent as bound parameters; table, column and model names are validated against
    C([A-Za-z_][A-Za-z0-9_$]*) and quoted.
'''

    # Options shared by the modules that diagnose a database.
    DIAGNOSIS = r'''
options:
  application_model:
    description:
      - The Django model label of a swapped application model (C(OAUTH2_PROVIDER_APPLICATION_MODEL)),
        for example C(myapp.MyApplication). Its table is C(myapp_myapplication) unless O(application_table) is set.
    type: str
  application_table:
    description:
      - Table of O(application_model) when it sets its own C(db_table).
    type: str
  access_token_model:
    description: Label of a swapped access token model (C(OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL)).
    type: str
  refresh_token_model:
    description: Label of a swapped refresh token model (C(OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL)).
    type: str
  id_token_model:
    description: Label of a swapped ID token model (C(OAUTH2_PROVIDER_ID_TOKEN_MODEL)).
    type: str
  grant_model:
    description: Label of a swapped grant model (C(OAUTH2_PROVIDER_GRANT_MODEL)).
    type: str
  swapped_initial_migration:
    description:
      - Name of the migration of the swapped model's app that creates the model (and runs before
        C(oauth2_provider.0001_initial)).
    type: str
    default: 0001_initial
  user_table:
    description:
      - Table of C(AUTH_USER_MODEL). Found from DOT's foreign keys when omitted, else C(auth_user).
    type: str
  natural_pk_tables:
    description:
      - Tables of the user's own schema to check for a natural (non-integer) primary key referenced by other
        tables, such as an M2M pivot table (finding C(natural_pk_referenced)).
    type: list
    elements: str
    default: []
  target_engines:
    description:
      - Engines the database must also be portable to. With C(mssql), nullable UNIQUE columns are reported
        (finding C(nullable_unique_mssql)).
    type: list
    elements: str
    choices: [mssql]
    default: []
  exact_count_limit:
    description:
      - Tables whose estimated row count is above this are reported with the estimate (C(rows_exact=false))
        instead of an exact C(COUNT(*)).
    type: int
    default: 2000000
  checksum_full_check_limit:
    description:
      - Up to this many rows, every token's checksum is compared with sha256 of the token in SQL; above it, a
        sample of O(checksum_sample_size) rows is checked and the result says C(method=sample).
    type: int
    default: 250000
  checksum_sample_size:
    description: Rows checked when the checksum check samples.
    type: int
    default: 20000
  preupgrade_min_rows:
    description:
      - Access token tables at migration 0011 with at least this many rows get the C(token_checksum_preupgrade)
        advice.
    type: int
    default: 10000
  expected_schema:
    description:
      - What the live schema is compared with (the schema truth). Each difference is a C(schema_drift_*) finding
        (the collection's C(docs/drift.md)).
      - C(django_models) runs a read-only probe with the site's own Python and settings (O(django)), giving the tables
        Django would create for DOT's models (swapped ones resolved), C(AUTH_USER_MODEL), the apps in
        O(drift_apps) and their M2M tables, on this engine and server version.
      - C(django_migrate) migrates a scratch database from zero with the site's own migrations and reads it back
        with the same introspection as the live database; exact, but the user must be allowed to create
        databases. The scratch database is always dropped.
      - C(dot) compares with nothing; only the collection's knowledge of DOT's migrations is used.
      - C(auto) is C(django_models) when O(django) is given, else C(dot).
    type: str
    choices: [auto, dot, django_models, django_migrate]
    default: auto
  drift_apps:
    description:
      - Installed apps (labels) whose models are compared too, beside DOT's and the user model.
    type: list
    elements: str
    default: []
  drift_allow:
    description:
      - Allowlisted drift, reported as C(info) and never failing a verification. Each entry is a finding code
        (C(schema_drift_missing_index)), an object (C(oauth2_provider_grant.code)) or both
        (C(schema_drift_missing_index:oauth2_provider_grant.code)).
    type: list
    elements: str
    default: []
'''

    # The site's own Django, for the modules that read the truth from its models.
    DJANGO = r'''
options:
  django:
    description:
      - The Django site whose models are the truth (the rollout's C(oauth_repair_django)). It must point at the
        same database as the connection options.
    type: dict
    suboptions:
      project_dir:
        description: Directory that holds the site's C(manage.py); the probe runs there.
        type: path
        required: true
      python:
        description: The site's interpreter (of its virtualenv). Defaults to the one running the module.
        type: path
      settings:
        description: C(DJANGO_SETTINGS_MODULE) of the site.
        type: str
      environment:
        description: Extra environment variables for the site's settings.
        type: dict
        default: {}
      secret_environment:
        description: Environment variables that hold secrets (database password); never shown.
        type: dict
        default: {}
      timeout:
        description: Seconds the probe (or the scratch migration) may take.
        type: int
        default: 300
'''
