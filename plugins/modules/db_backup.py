#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_backup
short_description: Verified logical backup of the django-oauth-toolkit tables, and its restore
version_added: 0.1.0
description:
  - O(state=present) takes a consistent logical backup of the chosen tables (by default every
    C(oauth2_provider_*) table and C(django_migrations)) into a new file of O(backup_dir), mode 0600, with a
    C(.sha256) checksum file and a C(.json) manifest (tables, row counts and content fingerprints, checksum).
  - MariaDB/MySQL - C(mariadb-dump)/C(mysqldump --single-transaction). PostgreSQL - C(pg_dump -Fc) inside a
    snapshot the module exports, so that the fingerprint taken in the same snapshot is exactly the dump's
    content. SQLite - the online backup API, inside a read transaction in which the fingerprint is taken.
  - PostgreSQL - the dump also names every sequence that feeds a column of the tables (C(serial) sequences, and
    sequences only named by a column default, with no C(OWNED BY), as Django before 4.0 left them when a migration
    altered a column to an C(AutoField)/C(BigAutoField)); the manifest records their values, and the verification
    and O(state=restored) check that each sequence is back, not behind its value at the backup, and past the
    largest value of the columns it feeds.
  - With O(verify=true) the backup is restored into a scratch database with a unique name (C(oar_verify_<hex>);
    a copy of the file for SQLite, checked with C(PRAGMA integrity_check)), fingerprinted, compared with the
    source's fingerprint, and the scratch database is dropped. The module fails when they differ.
  - O(retention) keeps that many backups of the same O(prefix) in O(backup_dir) and deletes older ones.
  - O(state=restored) restores the backup O(path) into the database - its checksum is checked first - putting
    each of its tables back as it was, dropping the tables matching O(drop_new_tables) that the backup does
    not hold (created since, for example by a repair), and fingerprints the result against the manifest.
  - Passwords reach the client programs through a private option file (MariaDB/MySQL) or password file
    (PostgreSQL), mode 0600 in a 0700 temporary directory removed afterwards; never on a command line or in
    the environment.
author:
  - Django Ops maintainers (@django-ops)
extends_documentation_fragment:
  - django_ops.oauth_repair.connection
options:
  state:
    description:
      - V(present) takes a new backup; V(restored) restores O(path).
    type: str
    choices: [present, restored]
    default: present
  backup_dir:
    description:
      - Directory of the backups, on the host that runs the module; created with mode 0700 when missing.
      - Required with O(state=present).
    type: path
  prefix:
    description:
      - First part of the backup file names, C(<prefix>-<UTC timestamp>.<sql|dump|sqlite3>). Default - the
        database name (the file's name without extension for SQLite).
    type: str
  path:
    description: The backup to restore (the dump file; its manifest is C(<path>.json)). Required with O(state=restored).
    type: path
  tables:
    description:
      - Tables to back up. Default - every C(oauth2_provider_*) table and C(django_migrations).
    type: list
    elements: str
    default: []
  extra_tables:
    description: Tables backed up in addition, when they exist (for example every table a repair plan touches).
    type: list
    elements: str
    default: []
  verify:
    description: Restore the new backup into a scratch database and compare fingerprints before returning.
    type: bool
    default: true
  retention:
    description: Number of backups of O(prefix) kept in O(backup_dir) (older ones are deleted); C(0) keeps all.
    type: int
    default: 5
  drop_new_tables:
    description:
      - With O(state=restored), fnmatch patterns of tables to drop when the backup does not hold them
        (created after the backup was taken).
    type: list
    elements: str
    default: ['oauth2_provider_*']
  bin_dir:
    description: Directory of the client programs (C(mariadb-dump), C(mysqldump), C(mysql), C(pg_dump), C(pg_restore)). Default - the C(PATH).
    type: path
  timeout:
    description: Seconds each client program may run.
    type: int
    default: 3600
  consistency_retries:
    description:
      - MariaDB/MySQL - times the dump is taken again when the tables changed while it ran (the fingerprints
        taken before and after differ); then the module fails.
    type: int
    default: 3
attributes:
  check_mode:
    support: full
    description: Returns the file it would write (or the tables it would restore and drop) and changes nothing.
  diff_mode:
    support: none
    description: Nothing to show.
requirements:
  - The client programs of the engine (C(mariadb-client) or C(mysql-client); C(postgresql-client) of the server's
    major version or newer) on the host that runs the module.
notes:
  - Verification needs the right to create and drop a database (C(CREATE)/C(DROP) on MariaDB/MySQL, C(CREATEDB) on
    PostgreSQL). Without it, set O(verify=false) and verify by hand.
  - On PostgreSQL, foreign keys of other tables that reference the restored tables are dropped before the restore
    and created again after it, with their names and definitions.
'''

EXAMPLES = r'''
- name: Back up the DOT tables before a repair, verified, keeping the five newest
  django_ops.oauth_repair.db_backup:
    engine: postgresql
    login_host: db.example.com
    login_user: django
    login_password: "{{ vault_db_password }}"
    db: site
    backup_dir: /var/backups/oauth_repair
    extra_tables: [accounts_oauthclient]
  register: backup

- name: Put the tables back as they were
  django_ops.oauth_repair.db_backup:
    engine: postgresql
    login_host: db.example.com
    login_user: django
    login_password: "{{ vault_db_password }}"
    db: site
    state: restored
    path: "{{ backup.path }}"
'''

RETURN = r'''
changed:
  description: Whether a backup was written or a restore ran (in check mode, would be).
  returned: always
  type: bool
path:
  description: The backup file (written, would be written, or restored).
  returned: always
  type: str
  sample: /var/backups/oauth_repair/site-20260101T120000000000Z.dump
sha256:
  description: Checksum of the backup file.
  returned: with O(state=present), not in check mode
  type: str
manifest:
  description: Path of the JSON manifest.
  returned: with O(state=present), not in check mode
  type: str
size:
  description: Size of the backup file in bytes.
  returned: with O(state=present), not in check mode
  type: int
tables:
  description: The tables the backup holds.
  returned: always
  type: list
  elements: str
rows:
  description: Row count of each table, at the backup's moment or after the restore.
  returned: not in check mode
  type: dict
fingerprint:
  description: Row counts and column hashes of each table at the backup's moment (see M(django_ops.oauth_repair.db_fingerprint)).
  returned: with O(state=present), not in check mode
  type: dict
verified:
  description: Whether the backup was restored into a scratch database and found equal to the source.
  returned: with O(state=present)
  type: bool
verification:
  description:
    - How it was verified (C(method)), the C(differences) found, and the C(seconds) it took.
    - PostgreSQL - C(sequences), the values of the sequences in the scratch database (see RV(sequences)).
  returned: with O(state=present) and O(verify=true), not in check mode
  type: dict
removed:
  description: Older backups (and their checksum and manifest files) deleted by O(retention).
  returned: with O(state=present)
  type: list
  elements: str
command:
  description: The client program run, with its arguments (never a password).
  returned: always
  type: list
  elements: str
restored_tables:
  description: The tables put back by the restore.
  returned: with O(state=restored)
  type: list
  elements: str
dropped_tables:
  description: Tables created after the backup that the restore dropped.
  returned: with O(state=restored)
  type: list
  elements: str
sequences:
  description:
    - PostgreSQL - each sequence feeding a column of the restored tables (C(schema.name)) after the restore -
      C(last_value), C(is_called), C(increment) and C(next_value), the value C(nextval) hands out next.
    - The verification returns the same for its scratch database, in RV(verification).
  returned: with O(state=restored) on PostgreSQL, for backups made by this version or later, not in check mode
  type: dict
external_foreign_keys:
  description: PostgreSQL - foreign keys of other tables dropped and created again around the restore.
  returned: with O(state=restored)
  type: list
  elements: str
equal:
  description: Whether the restored tables' fingerprint equals the backup's.
  returned: with O(state=restored), not in check mode
  type: bool
differences:
  description: Differences between the restored tables and the backup's fingerprint.
  returned: with O(state=restored), not in check mode
  type: list
  elements: dict
executed_queries:
  description: The SQL this module ran on the database itself (the client programs run the dump's SQL).
  returned: always
  type: list
  elements: str
duration:
  description: Seconds the whole run took.
  returned: always
  type: float
'''

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import backup as bk
from ansible_collections.django_ops.oauth_repair.plugins.module_utils import fingerprint as fp
from ansible_collections.django_ops.oauth_repair.plugins.module_utils import sessions as sess
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import (
    Timer, connection_argument_spec)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import connect, fail


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        state=dict(type="str", choices=["present", "restored"], default="present"),
        backup_dir=dict(type="path"),
        prefix=dict(type="str"),
        path=dict(type="path"),
        tables=dict(type="list", elements="str", default=[]),
        extra_tables=dict(type="list", elements="str", default=[]),
        verify=dict(type="bool", default=True),
        retention=dict(type="int", default=5),
        drop_new_tables=dict(type="list", elements="str", default=["oauth2_provider_*"]),
        bin_dir=dict(type="path"),
        timeout=dict(type="int", default=3600),
        consistency_retries=dict(type="int", default=3),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("state", "present", ("backup_dir",)), ("state", "restored", ("path",))])
    p = module.params
    if p["prefix"] is not None and not re.match(r"^[A-Za-z0-9_.-]+$", p["prefix"]):
        module.fail_json(msg="prefix %r may hold only letters, digits, '.', '_' and '-'. Fix: choose another "
                         "prefix" % p["prefix"], changed=False, executed_queries=[])
    timer = Timer()
    conn = connect(module)
    started = False
    try:
        if p["state"] == "present":
            result = backup(module, conn)
        else:
            # privileges first: a missing one fails here with nothing run (in check mode: a warning)
            tables = bk.read_manifest(p["path"]).get("tables") or []
            for warning in sess.require(conn, {"restore": tables}, module.check_mode, "db_backup (state=restored)"):
                module.warn(warning)
            started = True
            result = restore(module, conn)
    except OAuthRepairError as exc:
        fail(module, exc, conn, changed=bool(conn.executed_queries) or started)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn, changed=started)
    finally:
        conn.close()
    result["duration"] = timer.elapsed()
    if p["state"] == "present" and p["verify"] and not module.check_mode and not result["verified"]:
        module.fail_json(msg="backup %s does not restore to the same data: %s. Fix: do not go on; check the "
                         "client programs' versions and take another backup" % (
                             result["path"], "; ".join(d["message"] for d in result["verification"]["differences"])
                             or "tables differ"), **result)
    if p["state"] == "restored" and not module.check_mode and not result["equal"]:
        module.fail_json(msg="restored %s but the tables differ from the backup: %s" % (
            result["path"], "; ".join(d["message"] for d in result["differences"])), **result)
    module.exit_json(**result)


def backup(module, conn):
    p = module.params
    tables = bk.backup_tables(conn, p["tables"], p["extra_tables"])
    prefix = p["prefix"] or bk.default_prefix(p)
    if module.check_mode:
        path = os.path.join(p["backup_dir"], "%s-%s.%s" % (prefix, bk.utc_stamp(), bk.EXTENSIONS[conn.engine]))
        return dict(changed=True, path=path, tables=tables, verified=False, removed=[], command=[],
                    executed_queries=[])
    manifest = bk.make_backup(conn, p, p["backup_dir"], tables, prefix, p["bin_dir"], p["timeout"],
                              p["consistency_retries"])
    result = dict(changed=True, path=manifest["path"], sha256=manifest["sha256"], manifest=manifest["path"] + ".json",
                  size=manifest["size"], tables=tables, rows=fp.summary(manifest["fingerprint"]),
                  fingerprint=manifest["fingerprint"], command=manifest["command"], verified=False, removed=[],
                  executed_queries=list(conn.executed_queries))
    if p["verify"]:
        result["verification"] = bk.verify_backup(conn, p, manifest, p["bin_dir"], p["timeout"])
        result["verified"] = result["verification"]["verified"]
        if not result["verified"]:
            return result
    result["removed"] = bk.apply_retention(p["backup_dir"], prefix, bk.EXTENSIONS[conn.engine], p["retention"])
    return result


def restore(module, conn):
    p = module.params
    out = bk.restore_backup(conn, p, p["path"], p["drop_new_tables"], p["bin_dir"], p["timeout"],
                            check_mode=module.check_mode)
    out.setdefault("command", [])
    out["tables"] = out["restored_tables"]
    out["changed"] = True
    out["executed_queries"] = out.pop("sql", [])
    return out


if __name__ == "__main__":
    main()
