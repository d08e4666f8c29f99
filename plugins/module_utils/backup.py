# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consistent logical backups of chosen tables, verified by a restore, and their restore.

* MariaDB/MySQL: ``mariadb-dump``/``mysqldump --single-transaction`` of the tables; restored with the
  ``mariadb``/``mysql`` client.
* PostgreSQL: ``pg_dump -Fc`` of the tables, inside a snapshot exported by this module's own
  REPEATABLE READ transaction (``--snapshot``), so the fingerprint taken in that transaction is
  exactly the dump's content; restored with ``pg_restore``. The sequences feeding the tables' columns
  are dumped by name (``--table`` alone leaves out those no column owns, as Django < 4.0 made them),
  their values recorded in the manifest and checked after every restore.
* SQLite: the online backup API (``sqlite3.Connection.backup``) inside a read transaction in which the
  fingerprint is also taken; restored table by table from the copy.

Every backup file is written mode 0600, with a ``.sha256`` file and a ``.json`` manifest (tables,
fingerprint, checksum). Verification restores the backup into a scratch database with a unique name
(a copy of the file for SQLite), fingerprints it, compares with the fingerprint of the source taken
at the dump's moment, and drops the scratch database. Passwords reach the client programs through a
private option/password file (mode 0600, in a 0700 temporary directory, removed after), never
through the command line or the environment.
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import fingerprint as fp
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError, redact
from ansible_collections.django_ops.oauth_repair.plugins.module_utils import connection as connection_mod
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.dialects.base import scratch_name

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2
    from urllib import quote

MANIFEST_FORMAT = 1
EXTENSIONS = {"mysql": "sql", "postgresql": "dump", "sqlite": "sqlite3"}
SCRATCH_PREFIX = "oar_verify_"
NAME_RE = re.compile(r"^(?P<prefix>.+)-(?P<stamp>\d{8}T\d{6}\d{6}Z)\.(?P<ext>sql|dump|sqlite3)$")
DEFAULT_TABLES_EXTRA = ("django_migrations",)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def utc_stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_private(path, text):
    """Write ``text`` to ``path`` created with mode 0600 (replacing an older file)."""
    tmp = "%s.tmp-%s" % (path, secrets.token_hex(4))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def create_private(path):
    """Create an empty file with mode 0600; fail if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return fd


def default_prefix(params):
    db = params["db"]
    if params["engine"] == "sqlite":
        db = os.path.splitext(os.path.basename(db))[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", db)


def backup_tables(conn, tables=None, extra_tables=()):
    """The tables a backup holds: ``tables`` or DOT's tables + django_migrations, plus ``extra_tables``."""
    existing = set(conn.dialect.list_tables(conn))
    wanted = list(tables) if tables else fp.dot_tables(conn) + [t for t in DEFAULT_TABLES_EXTRA if t in existing]
    for name in extra_tables or ():
        if name not in wanted and name in existing:
            wanted.append(name)
    missing = [t for t in wanted if t not in existing]
    if missing:
        raise OAuthRepairError("table(s) %s do not exist in database %r" % (", ".join(missing), conn.database),
                               obj=", ".join(missing), fix="name existing tables in tables")
    for name in wanted:
        conn.dialect.validate_identifier(name, "table name")
    if not wanted:
        raise OAuthRepairError("nothing to back up: database %r has no oauth2_provider_* table" % conn.database,
                               obj=conn.database, fix="point db at the Django site's database, or name tables")
    return sorted(set(wanted))


def read_manifest(path):
    manifest_path = path + ".json"
    if not os.path.isfile(path):
        raise OAuthRepairError("backup file %s does not exist" % path, obj=path,
                               fix="give the path of a backup made by db_backup")
    if not os.path.isfile(manifest_path):
        raise OAuthRepairError("backup %s has no manifest %s" % (path, manifest_path), obj=manifest_path,
                               fix="restore it by hand, or give a backup made by db_backup")
    with open(manifest_path) as f:
        manifest = json.load(f)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise OAuthRepairError("unknown manifest format %r in %s" % (manifest.get("format"), manifest_path),
                               obj=manifest_path, fix="use the collection version that made the backup")
    return manifest


def check_checksum(path, manifest):
    actual = sha256_file(path)
    if actual != manifest["sha256"]:
        raise OAuthRepairError(
            "backup %s is corrupt: its sha256 is %s, the manifest says %s" % (path, actual, manifest["sha256"]),
            obj=path, fix="use another backup; this one must not be restored")
    return actual


def apply_retention(backup_dir, prefix, ext, keep):
    """Delete the oldest backups of ``prefix`` beyond the ``keep`` newest; returns the paths removed."""
    if not keep or keep < 1:
        return []
    mine = []
    for name in os.listdir(backup_dir):
        m = NAME_RE.match(name)
        if m and m.group("prefix") == prefix and m.group("ext") == ext:
            mine.append(name)
    mine.sort(reverse=True)
    removed = []
    for name in mine[keep:]:
        for suffix in ("", ".sha256", ".json"):
            path = os.path.join(backup_dir, name + suffix)
            if os.path.exists(path):
                os.unlink(path)
                removed.append(path)
    return removed


# --------------------------------------------------------------------------
# Client programs
# --------------------------------------------------------------------------


def find_binary(names, bin_dir=None):
    for name in names:
        if bin_dir:
            cand = os.path.join(bin_dir, name)
            if os.access(cand, os.X_OK):
                return cand
            continue
        found = shutil.which(name)
        if found:
            return found
    raise OAuthRepairError("none of %s found%s" % (", ".join(names), " in %s" % bin_dir if bin_dir else " on PATH"),
                           obj=names[0], fix="install the database client programs (bindep.txt) or set bin_dir")


class Client(object):
    """How to run the engine's client programs for ``params``, with the password in a private file."""

    def __init__(self, params, vendor, bin_dir=None, timeout=3600):
        self.params = params
        self.engine = params["engine"]
        self.vendor = vendor
        self.bin_dir = bin_dir
        self.timeout = timeout
        self.tmpdir = None
        self.secrets = [params.get("login_password")]

    def __enter__(self):
        self.tmpdir = tempfile.mkdtemp(prefix="oauth_repair-client-")
        os.chmod(self.tmpdir, 0o700)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    # -- MariaDB / MySQL ---------------------------------------------------
    def _mysql_defaults(self):
        path = os.path.join(self.tmpdir, "client.cnf")
        if not os.path.exists(path):
            password = self.params.get("login_password") or ""
            escaped = password.replace("\\", "\\\\").replace('"', '\\"')
            write_private(path, '[client]\npassword="%s"\n' % escaped)
        return path

    def _mysql_common(self, database):
        p = self.params
        args = ["--defaults-extra-file=%s" % self._mysql_defaults()]
        args.append("--user=%s" % (p.get("login_user") or "root"))
        if p.get("login_unix_socket"):
            args.append("--socket=%s" % p["login_unix_socket"])
        else:
            args += ["--host=%s" % (p.get("login_host") or "127.0.0.1"),
                     "--port=%s" % (p.get("login_port") or 3306), "--protocol=TCP"]
        if p.get("ca_cert"):
            args.append("--ssl-ca=%s" % p["ca_cert"])
        if p.get("client_cert"):
            args.append("--ssl-cert=%s" % p["client_cert"])
        if p.get("client_key"):
            args.append("--ssl-key=%s" % p["client_key"])
        if p.get("ssl_mode") in ("verify-ca", "verify-full"):
            args.append("--ssl-verify-server-cert")
        return args

    def mysqldump(self, tables):
        names = ["mariadb-dump", "mysqldump"] if self.vendor == "mariadb" else ["mysqldump", "mariadb-dump"]
        binary = find_binary(names, self.bin_dir)
        return [binary] + self._mysql_common(self.params["db"]) + [
            "--single-transaction", "--quick", "--hex-blob", "--default-character-set=utf8mb4",
            "--no-tablespaces", "--skip-dump-date", "--triggers", self.params["db"]] + list(tables)

    def mysql(self, database):
        names = ["mariadb", "mysql"] if self.vendor == "mariadb" else ["mysql", "mariadb"]
        binary = find_binary(names, self.bin_dir)
        return [binary] + self._mysql_common(database) + [
            "--connect-timeout=%s" % (self.params.get("connect_timeout") or 10),
            "--default-character-set=utf8mb4", "--batch", database]

    # -- PostgreSQL ----------------------------------------------------------
    def pg_env(self):
        p = self.params
        env = {}
        password = p.get("login_password")
        if password:
            path = os.path.join(self.tmpdir, "pgpass")
            if not os.path.exists(path):
                escaped = password.replace("\\", "\\\\").replace(":", "\\:")
                write_private(path, "*:*:*:*:%s\n" % escaped)
            env["PGPASSFILE"] = path
        env["PGSSLMODE"] = p.get("ssl_mode") or "prefer"
        for opt, var in (("ca_cert", "PGSSLROOTCERT"), ("client_cert", "PGSSLCERT"), ("client_key", "PGSSLKEY")):
            if p.get(opt):
                env[var] = p[opt]
        env["PGCONNECT_TIMEOUT"] = str(p.get("connect_timeout") or 10)
        env["PGAPPNAME"] = "django_ops.oauth_repair"
        return env

    def _pg_common(self, database):
        p = self.params
        args = ["--host=%s" % (p.get("login_unix_socket") or p.get("login_host") or "127.0.0.1"), "--no-password"]
        if p.get("login_port"):
            args.append("--port=%s" % p["login_port"])
        if p.get("login_user"):
            args.append("--username=%s" % p["login_user"])
        args.append("--dbname=%s" % database)
        return args

    def pg_dump(self, tables, snapshot=None, sequences=()):
        """``sequences``: ``schema.name`` of sequences dumped too (definition and value)."""
        args = [find_binary(["pg_dump"], self.bin_dir)] + self._pg_common(self.params["db"]) + ["--format=custom"]
        if self.params.get("lock_timeout"):
            # the dump's ACCESS SHARE locks wait no longer than any other statement of the collection
            args.append("--lock-wait-timeout=%d" % int(self.params["lock_timeout"]))
        if snapshot:
            args.append("--snapshot=%s" % snapshot)
        for t in tables:
            args.append('--table="%s"' % t)
        for s in sequences:
            args.append('--table="%s"."%s"' % tuple(s.split(".", 1)))
        return args

    def pg_restore(self, database, *extra):
        return [find_binary(["pg_restore"], self.bin_dir)] + self._pg_common(database) + list(extra)

    # -- running -------------------------------------------------------------
    def run(self, argv, stdin=None, stdout=None, extra_env=None):
        """Run a client program; raise OAuthRepairError (password redacted) when it fails."""
        env = dict(os.environ)
        for name in list(env):
            if name.startswith("PG") or name.startswith("MYSQL"):
                env.pop(name)
        env["LC_ALL"] = "C"
        if self.engine == "postgresql":
            env.update(self.pg_env())
        env.update(extra_env or {})
        try:
            proc = subprocess.run(argv, stdin=stdin, stdout=stdout if stdout is not None else subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise OAuthRepairError("%s did not finish within %s seconds" % (os.path.basename(argv[0]), self.timeout),
                                   obj=os.path.basename(argv[0]), fix="raise timeout")
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            program = os.path.basename(argv[0])
            raise OAuthRepairError(
                "%s exited with %s: %s" % (program, proc.returncode, redact(err[-2000:], self.secrets)),
                obj=program, fix="see the error; check the client version and the user's privileges")
        return proc

    @staticmethod
    def shown(argv):
        """The command as reported: no secret is ever on it; the option file's temporary path is elided."""
        return [re.sub(r"^--defaults-extra-file=.*$", "--defaults-extra-file=<private option file>", a)
                for a in argv]


# --------------------------------------------------------------------------
# Fingerprints at the dump's moment
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _snapshot_txn(conn):
    """A read transaction in which a fingerprint is consistent (MySQL, PostgreSQL)."""
    if conn.engine == "mysql":
        conn.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", record=False)
    elif conn.engine == "postgresql":
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", record=False)
    else:
        conn.execute("BEGIN", record=False)
    try:
        yield
    finally:
        conn.execute("COMMIT", record=False)


def _consistent_fingerprint(conn, tables):
    with _snapshot_txn(conn):
        return fp.fingerprint(conn, tables)


# --------------------------------------------------------------------------
# Backup
# --------------------------------------------------------------------------


def make_backup(conn, params, backup_dir, tables, prefix=None, bin_dir=None, timeout=3600, retries=3):
    """Dump ``tables`` into a new file of ``backup_dir``; returns the manifest (with ``path``)."""
    if not os.path.isdir(backup_dir):
        os.makedirs(backup_dir, 0o700)
    prefix = prefix or default_prefix(params)
    ext = EXTENSIONS[conn.engine]
    path = os.path.join(backup_dir, "%s-%s.%s" % (prefix, utc_stamp(), ext))
    started = time.monotonic()
    command = []
    attempts = 0
    sequences = None
    with Client(params, conn.dialect.vendor, bin_dir, timeout) as client:
        if conn.engine == "sqlite":
            prints = _sqlite_backup(conn, path, tables)
            command = ["sqlite3 online backup API", params["db"], path]
        elif conn.engine == "postgresql":
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", record=False)
            try:
                snapshot = conn.scalar("SELECT pg_export_snapshot()")
                sequences = _pg_sequences(conn, tables)
                # identity sequences are part of their table's dump; serial ones and, above all, the sequences
                # only named by a default (no OWNED BY, from Django < 4.0) are dumped by name
                argv = client.pg_dump(tables, snapshot, sorted(q for q, s in sequences.items() if not s["identity"]))
                command = client.shown(argv)
                _dump_to(client, argv, path)
                prints = fp.fingerprint(conn, tables)
            finally:
                conn.execute("COMMIT", record=False)
        else:
            argv = client.mysqldump(tables)
            command = client.shown(argv)
            while True:
                attempts += 1
                before = _consistent_fingerprint(conn, tables)
                _dump_to(client, argv, path)
                prints = _consistent_fingerprint(conn, tables)
                if prints == before:
                    break
                os.unlink(path)
                if attempts > retries:
                    changed = sorted(t for t in tables if before.get(t) != prints.get(t))
                    raise OAuthRepairError(
                        "the tables %s changed while they were dumped (%d attempts): live writes, so the dump "
                        "cannot be verified against the database" % (", ".join(changed), attempts),
                        obj=", ".join(changed),
                        fix="take the backup when writes pause, e.g. inside the maintenance window, or raise "
                            "consistency_retries")
    checksum = sha256_file(path)
    write_private(path + ".sha256", "%s  %s\n" % (checksum, os.path.basename(path)))
    manifest = dict(
        format=MANIFEST_FORMAT, engine=conn.engine, vendor=conn.dialect.vendor,
        server_version=conn.server_version, database=params["db"], prefix=prefix, tables=list(tables),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(), sha256=checksum,
        size=os.path.getsize(path), fingerprint=prints, command=command, attempts=max(attempts, 1),
        seconds=round(time.monotonic() - started, 3),
    )
    if sequences is not None:
        manifest["sequences"] = sequences
    write_private(path + ".json", json.dumps(manifest, indent=1, sort_keys=True, default=str))
    manifest["path"] = path
    return manifest


def _dump_to(client, argv, path):
    fd = create_private(path)
    try:
        with os.fdopen(fd, "wb") as out:
            client.run(argv, stdout=out)
    except Exception:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def _sqlite_backup(conn, path, tables):
    """Copy the whole file with the online backup API and fingerprint it, in one read transaction."""
    os.close(create_private(path))
    raw = conn.raw
    dest = sqlite3.connect(path)
    try:
        raw.execute("BEGIN")
        try:
            raw.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            raw.backup(dest)
            prints = fp.fingerprint(conn, tables)
        finally:
            raw.execute("COMMIT")
    except Exception:
        dest.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    dest.close()
    return prints


# --------------------------------------------------------------------------
# Verification: restore into a scratch database
# --------------------------------------------------------------------------


def verify_backup(conn, params, manifest, bin_dir=None, timeout=3600):
    """Restore the backup into a scratch database, fingerprint it, compare, drop the scratch database."""
    path = manifest["path"]
    check_checksum(path, manifest)
    started = time.monotonic()
    tables = manifest["tables"]
    scratch = scratch_name(SCRATCH_PREFIX, conn.database)  # tagged with the site: a clean-up finds its own
    sequences, seq_differences = None, []
    with Client(params, conn.dialect.vendor, bin_dir, timeout) as client:
        if conn.engine == "sqlite":
            scratch = os.path.join(os.path.dirname(path), ".%s.sqlite3" % scratch)
            shutil.copyfile(path, scratch)
            os.chmod(scratch, 0o600)
            try:
                sconn = connection_mod.connect(dict(params, db=scratch))
                try:
                    check = sconn.scalar("PRAGMA integrity_check")
                    if check != "ok":
                        raise OAuthRepairError("backup %s fails SQLite's integrity check: %s" % (path, check),
                                               obj=path, fix="take another backup")
                    restored = fp.fingerprint(sconn, tables)
                finally:
                    sconn.close()
            finally:
                for suffix in ("", "-journal", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        os.unlink(scratch + suffix)
            method = "copy of the backup file, PRAGMA integrity_check, fingerprint"
        elif conn.engine == "mysql":
            conn.dialect.create_scratch_database(conn, scratch)
            try:
                with open(path, "rb") as dump:
                    client.run(client.mysql(scratch), stdin=dump)
                restored = _fingerprint_other(params, scratch, tables)
            finally:
                conn.dialect.drop_scratch_database(conn, scratch)
            method = "restored into scratch database %s with the mysql client, fingerprint, dropped" % scratch
        else:
            conn.dialect.create_scratch_database(conn, scratch)
            try:
                toc = client.run(client.pg_restore(scratch, "--list", path)).stdout.decode("utf-8", "replace")
                # Foreign keys to tables outside the backup (the user table) cannot be made in the scratch
                # database; the rows are what is verified.
                kept = [line for line in toc.splitlines() if " FK CONSTRAINT " not in line]
                list_file = os.path.join(client.tmpdir, "toc.list")
                write_private(list_file, "\n".join(kept) + "\n")
                client.run(client.pg_restore(scratch, "--no-owner", "--no-privileges", "--exit-on-error",
                                             "--use-list=%s" % list_file, path))
                restored = _fingerprint_other(params, scratch, tables)
                sequences, seq_differences = _check_sequences_other(params, scratch, manifest)
            finally:
                conn.dialect.drop_scratch_database(conn, scratch)
            method = "pg_restore into scratch database %s, fingerprint, sequences, dropped" % scratch
    result = fp.compare(manifest["fingerprint"], restored)
    extra = sorted(set(restored) - set(manifest["fingerprint"]))
    verified = result["equal"] and not extra and sorted(restored) == sorted(tables) and not seq_differences
    out = dict(verified=verified, method=method, differences=result["differences"] + seq_differences,
               rows=fp.summary(restored), seconds=round(time.monotonic() - started, 3))
    if sequences is not None:
        out["sequences"] = sequences
    return out


def _fingerprint_other(params, database, tables):
    other = connection_mod.connect(dict(params, db=database))
    try:
        return fp.fingerprint(other, [t for t in tables if t in set(other.dialect.list_tables(other))])
    finally:
        other.close()


# --------------------------------------------------------------------------
# PostgreSQL sequences
# --------------------------------------------------------------------------


def _pg_sequences(conn, tables):
    """{``schema.name``: the columns it feeds, whether it is owned/an identity, its value now} of the
    sequences of ``tables``' columns: what the manifest records and a restore must bring back."""
    found = conn.dialect.feeding_sequences(conn, tables)
    values = conn.dialect.sequence_values(conn, [s["qualified"] for s in found])
    out = {}
    for s in found:
        entry = out.setdefault(s["qualified"], dict(values[s["qualified"]] or {}, columns=[], owned=False, identity=False))
        entry["columns"].append([s["table"], s["column"]])
        entry["owned"] = entry["owned"] or s["owned"]
        entry["identity"] = entry["identity"] or s["identity"]
    return out


def _check_sequences(conn, manifest):
    """The sequences of ``manifest`` as ``conn``'s database has them, and what is wrong with them: a sequence
    missing, behind the value it had when the backup was taken (it would hand out ids again), or not past the
    largest value of a column it feeds (the next insert would collide). None, [] for a manifest without
    sequences (another engine, or a backup made before they were recorded)."""
    expected = manifest.get("sequences")
    if expected is None:
        return None, []
    values = conn.dialect.sequence_values(conn, sorted(expected))
    q = conn.dialect.quote
    differences = []
    existing = set(conn.dialect.list_tables(conn))
    for name, want in sorted(expected.items()):
        have = values.get(name)
        if have is None:
            differences.append(dict(table=name, kind="sequence_missing", message="sequence %s is missing" % name))
            continue
        if want.get("next_value") is not None and have["next_value"] < want["next_value"]:
            differences.append(dict(table=name, kind="sequence", before=want["next_value"], after=have["next_value"],
                                    message="sequence %s would hand out %s next, %s when the backup was taken" % (
                                        name, have["next_value"], want["next_value"])))
        for table, column in want.get("columns", []):
            if table not in existing or have["increment"] <= 0:
                continue
            top = conn.scalar("SELECT MAX(%s) FROM %s" % (q(column), q(table)))
            if top is not None and have["next_value"] <= top:
                differences.append(dict(table=table, column=column, kind="sequence", after=have["next_value"],
                                        message="sequence %s would hand out %s next, %s.%s already holds %s" % (
                                            name, have["next_value"], table, column, top)))
    return values, differences


def _check_sequences_other(params, database, manifest):
    other = connection_mod.connect(dict(params, db=database))
    try:
        return _check_sequences(other, manifest)
    finally:
        other.close()


# --------------------------------------------------------------------------
# Restore into the live database
# --------------------------------------------------------------------------


def restore_plan(conn, manifest, drop_new_tables=()):
    """What a restore does: tables restored, tables created since the backup that it drops."""
    live = conn.dialect.list_tables(conn)
    in_backup = set(manifest["tables"])
    new = sorted(t for t in live if t not in in_backup and any(fnmatch.fnmatchcase(t, p) for p in drop_new_tables))
    return dict(restore=list(manifest["tables"]), drop=new)


def restore_backup(conn, params, path, drop_new_tables=(), bin_dir=None, timeout=3600, check_mode=False):
    """Put the tables of a backup back as they were; drop the tables matching ``drop_new_tables`` created since."""
    manifest = read_manifest(path)
    manifest["path"] = path
    if manifest["engine"] != conn.engine:
        raise OAuthRepairError("backup %s is of a %s database, not %s" % (path, manifest["engine"], conn.engine),
                               obj=path, fix="restore it into the database it was taken from")
    check_checksum(path, manifest)
    plan = restore_plan(conn, manifest, drop_new_tables)
    result = dict(path=path, restored_tables=plan["restore"], dropped_tables=plan["drop"], sql=[],
                  external_foreign_keys=[])
    if check_mode:
        return result
    started = time.monotonic()
    q = conn.dialect.quote
    sequences, seq_differences = None, []
    with Client(params, conn.dialect.vendor, bin_dir, timeout) as client:
        if conn.engine == "mysql":
            conn.execute("SET SESSION foreign_key_checks = 0", record=False)
            try:
                for t in plan["drop"]:
                    conn.execute("DROP TABLE IF EXISTS %s" % q(t))
            finally:
                conn.execute("SET SESSION foreign_key_checks = 1", record=False)
            with open(path, "rb") as dump:
                client.run(client.mysql(params["db"]), stdin=dump)
            result["command"] = client.shown(client.mysql(params["db"]))
        elif conn.engine == "postgresql":
            external = _pg_external_fks(conn, manifest["tables"])
            for t in plan["drop"]:
                conn.execute("DROP TABLE IF EXISTS %s CASCADE" % q(t))
            external = [fk for fk in external if fk["table"] not in plan["drop"]]
            for fk in external:
                conn.execute("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s" % (q(fk["table"]), q(fk["name"])))
            superuser = conn.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            argv = client.pg_restore(params["db"], "--clean", "--if-exists", "--single-transaction",
                                     "--exit-on-error", *([] if superuser else ["--no-owner"]))
            result["command"] = client.shown(argv) + [path]
            try:
                client.run(argv + [path])
            finally:
                for fk in external:
                    conn.execute("ALTER TABLE %s ADD CONSTRAINT %s %s" % (q(fk["table"]), q(fk["name"]), fk["definition"]))
            result["external_foreign_keys"] = ["%s.%s" % (fk["table"], fk["name"]) for fk in external]
            sequences, seq_differences = _check_sequences(conn, manifest)
        else:
            _sqlite_restore(conn, path, manifest["tables"], plan["drop"])
            result["command"] = ["sqlite3: table by table from", path]
    result["sql"] = list(conn.executed_queries)
    after = fp.fingerprint(conn, manifest["tables"])
    cmp = fp.compare(manifest["fingerprint"], after)
    if sequences is not None:
        result["sequences"] = sequences
    result.update(equal=cmp["equal"] and not seq_differences, differences=cmp["differences"] + seq_differences, rows=fp.summary(after),
                  seconds=round(time.monotonic() - started, 3), manifest=dict(
                      (k, manifest[k]) for k in ("created", "database", "tables", "sha256", "engine")))
    return result


def _pg_external_fks(conn, tables):
    rows = conn.query(
        "SELECT t.relname, con.conname, pg_get_constraintdef(con.oid) FROM pg_constraint con "
        "JOIN pg_class t ON t.oid = con.conrelid JOIN pg_class r ON r.oid = con.confrelid "
        "JOIN pg_namespace n ON n.oid = r.relnamespace "
        "WHERE con.contype = 'f' AND n.nspname = current_schema() AND r.relname = ANY(%s) "
        "AND NOT (t.relname = ANY(%s)) ORDER BY t.relname, con.conname", [list(tables), list(tables)])
    return [dict(table=t, name=n, definition=d) for t, n, d in rows]


def _sqlite_restore(conn, path, tables, drop):
    """Replace ``tables`` (and their indexes, triggers, sequences) by those of the backup file, in one
    transaction; drop ``drop``."""
    raw = conn.raw
    q = conn.dialect.quote
    fk_state = raw.execute("PRAGMA foreign_keys").fetchone()[0]
    raw.execute("PRAGMA foreign_keys = OFF")
    # read-only, and every statement below names its schema: an unqualified name missing from main would
    # otherwise resolve to the backup's table
    raw.execute("ATTACH DATABASE ? AS oar_backup", ("file:%s?mode=ro" % quote(os.path.abspath(path)),))
    try:
        raw.execute("BEGIN IMMEDIATE")
        try:
            has_seq_bk = raw.execute(
                "SELECT 1 FROM oar_backup.sqlite_master WHERE name = 'sqlite_sequence'").fetchone() is not None
            has_seq = raw.execute("SELECT 1 FROM main.sqlite_master WHERE name = 'sqlite_sequence'").fetchone()
            for t in drop:
                conn.execute("DROP TABLE IF EXISTS main.%s" % q(t))
            for t in tables:
                create = raw.execute("SELECT sql FROM oar_backup.sqlite_master WHERE type = 'table' AND name = ?",
                                     (t,)).fetchone()
                if create is None:
                    raise OAuthRepairError("table %s is not in backup %s" % (t, path), obj=t,
                                           fix="the manifest and the file disagree: use another backup")
                conn.execute("DROP TABLE IF EXISTS main.%s" % q(t))
                _raw_ddl(conn, create[0])
                conn.execute("INSERT INTO main.%s SELECT * FROM oar_backup.%s" % (q(t), q(t)))
                for (sql,) in raw.execute(
                        "SELECT sql FROM oar_backup.sqlite_master WHERE type IN ('index', 'trigger') "
                        "AND tbl_name = ? AND sql IS NOT NULL ORDER BY type, name", (t,)).fetchall():
                    _raw_ddl(conn, sql)
                if has_seq:
                    conn.execute("DELETE FROM main.sqlite_sequence WHERE name = %s", (t,))
                    if has_seq_bk:
                        conn.execute("INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq "
                                     "FROM oar_backup.sqlite_sequence WHERE name = %s", (t,))
            raw.execute("COMMIT")
        except Exception:
            raw.execute("ROLLBACK")
            raise
    finally:
        raw.execute("DETACH DATABASE oar_backup")
        raw.execute("PRAGMA foreign_keys = %s" % ("ON" if fk_state else "OFF"))


def _raw_ddl(conn, sql):
    """Run DDL read from sqlite_master as it is (no placeholder translation) and record it."""
    conn.raw.execute(sql)
    conn.executed_queries.append(sql)
