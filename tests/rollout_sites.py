"""Broken Django + DOT sites for the rollout tests (tests/test_playbook.py) and the molecule scenarios
(molecule/*/prepare.yml runs ``python -m tests.rollout_sites``), and the inventory that points
playbooks/repair_oauth.yml at them.

States, each built by the real Django 5.2 + DOT 3.4.1 test project (tests/django_project):

``seed004``
    DOT migrated to the end, tokens issued by DOT's models, migrated back to 0011, then DOT 3.0.0's 0012
    half-applied the way the field report describes it (``token_checksum`` added, ``''`` in every row, no
    unique index, 0012 unrecorded), plus rows of migration names from before DOT 1.3's squash.
``seed004_0011``
    DOT at 0011 with tokens issued by DOT and ``bulk`` more inserted in bulk (12,000 by default: enough for the
    ``token_checksum_preupgrade`` advice), the upgrade not run yet.
``seed001``
    DOT migrated with its own Application model, tokens issued; the inventory swaps the model to
    ``swapapp.MyApplication`` (the Django environment names it, as the code being deployed does).
``seed000``
    Field report 000 re-enacted (tests/seed000_legacy.py): a pre-1.3 install with int ids, then the real
    ``manage.py migrate`` dying where it dies on that engine.

Command line (molecule): ``python -m tests.rollout_sites create|drop --state-file F --site NAME:ENGINE:STATE ...``
creates databases named ``oar_m_<hex>`` (a prefix of their own: the test suite's orphan sweeper never drops
them) or SQLite files next to the state file, builds each state, and writes the inventory variables of each
site into the JSON state file; ``drop`` drops what the state file lists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import sys
from pathlib import Path

from tests.support import data, servers
from tests.support.django import PROJECT_DIR, issue_tokens, migrate

DOT = "oauth2_provider"
AT = "oauth2_provider_accesstoken"
M0011 = "0011_refreshtoken_token_family"
PRE_SQUASH = ["0002_08_updates", "0003_auto_20160316_1503", "0004_auto_20160525_1623"]
MOLECULE_DB_RE = re.compile(r"^oar_m_[0-9a-f]{8}$")
STATES = ("seed004", "seed004_0011", "seed000", "seed001")


def qi(target, name):
    return "`%s`" % name if target.engine == "mysql" else '"%s"' % name


def break_like_seed004(target, tokens=3):
    """Returns make_tokens' JSON (the tokens issued before the breakage)."""
    migrate(target)
    issued = issue_tokens(target, tokens)
    migrate(target, DOT, M0011)
    t, c = qi(target, AT), qi(target, "token_checksum")
    if target.engine == "sqlite":
        target.execute("ALTER TABLE %s ADD COLUMN %s varchar(64) NOT NULL DEFAULT ''" % (t, c))
    else:
        target.execute("ALTER TABLE %s ADD COLUMN %s varchar(64) NOT NULL DEFAULT ''" % (t, c))
        target.execute("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT" % (t, c))
    ph = target.placeholder
    for name in PRE_SQUASH:
        target.execute("INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)" % (ph, ph, ph),
                       (DOT, name, "2017-01-01 00:00:00"))
    return issued


def seed004_at_0011(target, tokens=3, bulk=12000):
    migrate(target)
    issued = issue_tokens(target, tokens)
    migrate(target, DOT, M0011)
    if bulk:
        data.bulk_insert_access_tokens(target, bulk, issued["application_id"], issued["user_id"],
                                       with_checksum=False, batch_size=20000)
    return issued


def seed000(target, tokens=10):
    from tests.seed000_legacy import build_legacy, migrate_dies  # the seed 000 re-enactment of its own tests
    legacy = build_legacy(target, tokens=tokens)
    migrate_dies(target)
    some = sorted(legacy.tokens.items())[:3]
    return {"access_tokens": [token for _id, token in some]}


def seed001(target, tokens=3):
    """DOT migrated with its own Application model and tokens issued: the site is about to swap
    OAUTH2_PROVIDER_APPLICATION_MODEL to swapapp.MyApplication (field report 001). The Django environment of the
    inventory (host_vars) already names the new model, as the code being deployed does."""
    migrate(target)
    return issue_tokens(target, tokens)


BUILDERS = {"seed004": break_like_seed004, "seed004_0011": seed004_at_0011, "seed000": seed000, "seed001": seed001}
SWAPPED = {"seed001": {"oauth_repair_application_model": "swapapp.MyApplication",
                       "repair_swap_extra_columns": [{"name": "logo_url", "type": "varchar(200)", "default": ""}]}}


def build(target, state):
    if state not in BUILDERS:
        raise ValueError("unknown state %r (one of %s)" % (state, ", ".join(STATES)))
    return BUILDERS[state](target)


def host_vars(target, issued=None, django=True, state=None):
    """The inventory contract of one host (oauth_repair_db, oauth_repair_django) for ``target``."""
    db = {"engine": target.engine, "name": str(target.name)}
    if target.engine != "sqlite":
        db.update(host=target.host, port=int(target.port), user=target.user, password=target.password or "")
    out = {"oauth_repair_db": db, "ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    if django:
        env = dict(target.django_env(), PYTHONDONTWRITEBYTECODE="1")
        if state in SWAPPED:
            env["OAR_APPLICATION_MODEL"] = SWAPPED[state]["oauth_repair_application_model"]
        out["oauth_repair_django"] = {"project_dir": str(PROJECT_DIR), "python": sys.executable,
                                      "settings": "testproject.settings", "environment": env}
    if issued:
        out["oar_test_tokens"] = list(issued.get("access_tokens", []))[:3]
    out.update(SWAPPED.get(state, {}))
    return out


def inventory(groups, common=None):
    """``{group: {host: vars}}`` -> an inventory dict (YAML/JSON) with ``common`` as vars of all."""
    inv = {"all": {"vars": dict(common or {}), "children": {}}}
    for group, hosts in groups.items():
        inv["all"]["children"][group] = {"hosts": dict(hosts)}
    return inv


# --------------------------------------------------------------------------
# Command line, for molecule
# --------------------------------------------------------------------------


def _server(engine):
    found = servers.running_mariadb() if engine == "mysql" else servers.running_postgres()
    if found is None:
        raise SystemExit("no %s server answers on 127.0.0.1 (see tests/support/servers.py for the variables)" % engine)
    return found


def _create_database(server):
    name = "oar_m_" + secrets.token_hex(4)
    with contextlib.closing(server.connect()) as conn:
        cur = conn.cursor()
        if server.engine == "mysql":
            cur.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % name)
        else:
            cur.execute('CREATE DATABASE "%s" TEMPLATE template0 ENCODING \'UTF8\'' % name)
    return servers.DBTarget(server.engine, name, server.host, server.port, server.user, server.password,
                            server=server)


def _drop_database(engine, name):
    if not MOLECULE_DB_RE.match(name):
        raise SystemExit("refusing to drop %r: not a molecule database name" % name)
    server = _server(engine)
    with contextlib.closing(server.connect()) as conn:
        cur = conn.cursor()
        if engine == "mysql":
            cur.execute("DROP DATABASE IF EXISTS `%s`" % name)
        else:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def create(state_file, sites):
    """Create and break one database per ``name:engine:state``; write their inventory vars to ``state_file``."""
    folder = Path(state_file).resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    out = {"sites": {}}
    if os.path.exists(state_file):
        out = json.loads(Path(state_file).read_text())
    built = {}  # SQLite: (state) -> (file, issued) of the first site built, copied for the next ones
    try:
        for spec in sites:
            name, engine, state = spec.split(":")
            if name in out["sites"]:
                continue
            if engine == "sqlite":
                target = servers.DBTarget("sqlite", str(folder / ("%s.sqlite3" % name)))
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target.name)
            else:
                target = _create_database(_server(engine))
            out["sites"][name] = {"engine": engine, "state": state, "database": target.name}
            Path(state_file).write_text(json.dumps(out, indent=1))
            if engine == "sqlite" and state in built:
                shutil.copyfile(built[state][0], target.name)
                issued = built[state][1]
            else:
                issued = build(target, state)
                if engine == "sqlite":
                    built[state] = (target.name, issued)
            out["sites"][name]["vars"] = host_vars(target, issued, state=state)
            Path(state_file).write_text(json.dumps(out, indent=1))
    finally:
        if os.path.exists(state_file):
            os.chmod(state_file, 0o600)


def drop(state_file):
    if not os.path.exists(state_file):
        return
    out = json.loads(Path(state_file).read_text())
    for site in out.get("sites", {}).values():
        if site["engine"] == "sqlite":
            for suffix in ("", "-journal", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(site["database"] + suffix)
        else:
            _drop_database(site["engine"], site["database"])
    os.unlink(state_file)


def check_tokens(state_file, only=()):
    """Every site's (or only those named) tokens issued before the repair authenticate (exit status 1 otherwise)."""
    from tests.support.django import token_authenticates
    out = json.loads(Path(state_file).read_text())
    bad = []
    for name, site in out["sites"].items():
        if only and name not in only:
            continue
        v = site["vars"]
        db = v["oauth_repair_db"]
        target = servers.DBTarget(db["engine"], db["name"], db.get("host"), db.get("port"), db.get("user"),
                                  db.get("password", ""))
        env = v.get("oauth_repair_django", {}).get("environment", {})
        extra = {k: env[k] for k in ("OAR_APPLICATION_MODEL",) if k in env}
        for token in v.get("oar_test_tokens", []):
            if not token_authenticates(target, token, extra_env=extra):
                bad.append("%s: %s..." % (name, token[:6]))
    if bad:
        raise SystemExit("tokens issued before the repair no longer authenticate: %s" % ", ".join(bad))
    print("tokens authenticate on %d site(s)" % len(only or out["sites"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("action", choices=["create", "drop", "check-tokens"])
    parser.add_argument("--state-file", required=True)
    parser.add_argument("--site", action="append", default=[], help="create: name:engine:state; check-tokens: name")
    args = parser.parse_args(argv)
    if args.action == "create":
        create(args.state_file, args.site)
    elif args.action == "drop":
        drop(args.state_file)
    else:
        check_tokens(args.state_file, args.site)


if __name__ == "__main__":
    main()
