#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: django_manage
short_description: Run a Django project's manage.py command, with secrets kept out of every log
version_added: 0.1.0
description:
  - Runs C(<python> manage.py <command...>) in O(project_dir) with O(settings) and the extra O(environment) (for
    example the database password the settings read) and O(secret_environment). Both travel inside the module's
    arguments, never on a command line; the values of O(secret_environment) are never logged nor returned, and are
    redacted from the output.
  - Read-only commands (C(check), C(showmigrations), C(sqlmigrate), and any command given C(--check), C(--plan) or
    C(--dry-run)) also run in check mode; the others are skipped there.
  - C(changed) is true for C(migrate) when it applied or faked a migration, and false for read-only commands;
    O(changes) overrides it.
author:
  - Django Ops maintainers (@django-ops)
options:
  project_dir:
    description: Directory holding C(manage.py).
    type: path
    required: true
  python:
    description: Python interpreter of the project's environment. Default - the interpreter running this module.
    type: path
  settings:
    description: C(DJANGO_SETTINGS_MODULE). Default - what C(manage.py) sets.
    type: str
  environment:
    description: Extra environment variables of the command, not secret (shown with C(-vvv)).
    type: dict
    default: {}
  secret_environment:
    description:
      - Extra environment variables whose values are secrets (passwords, keys) - never logged nor returned, redacted
        from the output. They override O(environment).
    type: dict
    default: {}
  command:
    description: The command and its arguments, for example C([migrate, --noinput]).
    type: list
    elements: str
    required: true
  changes:
    description: V(auto) decides C(changed) as described above; V(always) and V(never) force it.
    type: str
    choices: [auto, always, never]
    default: auto
  fail_on_error:
    description:
      - Fail when the command exits non-zero. With V(false), RV(rc) tells (C(migrate --check) exits 1 when a migration
        is unapplied).
      - The failure's message is the error the command ended with - the exception of Django's traceback (for example
        C(InconsistentMigrationHistory), a migration applied before its dependency) with its text, not the traceback
        - then the command line and a fix; RV(stderr) has the whole output.
    type: bool
    default: true
  timeout:
    description: Seconds the command may run.
    type: int
    default: 3600
attributes:
  check_mode:
    support: partial
    description: Read-only commands run; others are skipped and reported as C(changed).
    details: Whether a command is read-only is decided from its name and flags (see the description).
  diff_mode:
    support: none
    description: Nothing to show.
'''

EXAMPLES = r'''
- name: Migrate the site
  django_ops.oauth_repair.django_manage:
    project_dir: /srv/app
    python: /srv/app/.venv/bin/python
    settings: app.settings
    secret_environment:
      DATABASE_PASSWORD: "{{ vault_db_password }}"
    command: [migrate, --noinput]

- name: Is every migration applied?
  django_ops.oauth_repair.django_manage:
    project_dir: /srv/app
    command: [migrate, --check]
    fail_on_error: false
  register: pending
'''

RETURN = r'''
rc:
  description: Exit status (C(null) when skipped in check mode).
  returned: always
  type: int
stdout:
  description: Standard output, secrets redacted.
  returned: always
  type: str
stderr:
  description: Standard error, secrets redacted.
  returned: always
  type: str
cmd:
  description: The command line (interpreter, manage.py, arguments).
  returned: always
  type: list
  elements: str
skipped_in_check_mode:
  description: Whether the command was not run because it may change something.
  returned: always
  type: bool
applied:
  description: For C(migrate), the migrations it applied (C(app.name)).
  returned: always
  type: list
  elements: str
'''

import os
import re
import subprocess
import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import redact

READ_ONLY_COMMANDS = ("check", "showmigrations", "sqlmigrate", "diffsettings", "help", "version")
READ_ONLY_FLAGS = ("--check", "--plan", "--dry-run", "--list")
_APPLYING = re.compile(r"^\s*Applying (\S+)\.\.\.", re.M)
# the last line of a Python traceback: "package.module.SomeError: message" (or just "SomeError")
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*\.)*([A-Za-z_][A-Za-z0-9_]*)(?::\s*(.*))?$")
#: fixes of the errors manage.py commonly dies with, by exception name
FIXES = {
    "InconsistentMigrationHistory": (
        "a migration is recorded in django_migrations before one it depends on: record the missing dependency "
        "first (django_ops.oauth_repair.django_migration; in the rollout, fake_migration_method: module or auto), "
        "or remove the rows recorded out of order"),
    "NodeNotFoundError": "a recorded migration depends on one the installed code does not have: install the release "
                         "that has it, or fix the dependency",
    "CommandError": "check the command's arguments (app label, migration name) against the installed code",
    "ImproperlyConfigured": "check settings (DJANGO_SETTINGS_MODULE) and the environment the settings read",
    "ModuleNotFoundError": "set python to the project's interpreter, and settings to its settings module",
    "OperationalError": "check the database settings the project reads (host, port, user, password, name) and that "
                        "the database answers",
}
MAX_SAID = 1000  # characters of the error kept in the message
DEFAULT_FIX = "read stderr (returned in full), then run the command by hand in project_dir with the same environment"


def error_summary(text):
    """The error a failed ``manage.py`` ended with: ``(name, message)`` - the exception of the last traceback
    (``InconsistentMigrationHistory``, ``Migration ... is applied before its dependency ...``), Django's
    ``CommandError: ...``, or the last non-empty line with name None. ``("", "")`` when there is no output."""
    lines = [line.rstrip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return "", ""
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        # the exception's lines follow the last indented (frame or source) line of the last traceback
        start = max(i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)"))
        tail = lines[start + 1:]
        indented = [i for i, line in enumerate(tail) if line[:1].isspace()]
        exc = tail[max(indented) + 1:] if indented else tail
        if exc:
            match = _EXCEPTION_LINE.match(exc[0].strip())
            if match:
                return match.group(1), " ".join([match.group(2) or ""] + [line.strip() for line in exc[1:]]).strip()
            return None, " ".join(line.strip() for line in exc)
    last = lines[-1].strip()
    match = _EXCEPTION_LINE.match(last)
    if match and match.group(2) is not None and match.group(1)[:1].isupper():
        return match.group(1), match.group(2).strip()
    return None, last


def failure_message(args, cmd, rc, stdout, stderr, project_dir):
    """A readable failure of ``manage.py ARGS``: what Django said (not its traceback), the command and a fix."""
    name, message = error_summary(stderr)
    if not name and not message:
        name, message = error_summary(stdout)
    said = ("%s: %s" % (name, message) if name and message else name or message) or "no output"
    if len(said) > MAX_SAID:
        said = said[:MAX_SAID] + "... (see stderr)"
    return "manage.py %s exited with %s: %s%s Command: %s (in %s). Fix: %s" % (
        " ".join(args), rc, said, "" if said.endswith(".") else ".", " ".join(cmd), project_dir,
        FIXES.get(name, DEFAULT_FIX))


def main():
    module = AnsibleModule(argument_spec=dict(
        project_dir=dict(type="path", required=True),
        python=dict(type="path"),
        settings=dict(type="str"),
        environment=dict(type="dict", default={}),
        secret_environment=dict(type="dict", default={}, no_log=True),
        command=dict(type="list", elements="str", required=True),
        changes=dict(type="str", choices=["auto", "always", "never"], default="auto"),
        fail_on_error=dict(type="bool", default=True),
        timeout=dict(type="int", default=3600),
    ), supports_check_mode=True)
    p = module.params
    manage = os.path.join(p["project_dir"], "manage.py")
    if not os.path.isfile(manage):
        module.fail_json(msg="no manage.py in %s. Fix: set project_dir to the directory holding manage.py"
                         % p["project_dir"], changed=False)
    args = list(p["command"])
    cmd = [p["python"] or sys.executable, "manage.py"] + args
    secrets = [str(v) for v in p["secret_environment"].values() if v not in (None, "")]
    read_only = (args and args[0] in READ_ONLY_COMMANDS) or any(a in READ_ONLY_FLAGS for a in args)
    result = dict(cmd=cmd, rc=None, stdout="", stderr="", skipped_in_check_mode=False, applied=[])
    if module.check_mode and not read_only:
        # failed is explicit: a null (or non-zero) rc would otherwise read as a failure
        result.update(changed=p["changes"] != "never", skipped_in_check_mode=True, failed=False)
        module.exit_json(**result)
    env = dict(os.environ)
    env.update(dict((str(k), str(v)) for k, v in p["environment"].items()))
    env.update(dict((str(k), str(v)) for k, v in p["secret_environment"].items()))
    if p["settings"]:
        env["DJANGO_SETTINGS_MODULE"] = p["settings"]
    env["PYTHONUNBUFFERED"] = "1"
    try:
        proc = subprocess.run(cmd, cwd=p["project_dir"], env=env, capture_output=True, text=True,
                              timeout=p["timeout"], check=False)
    except subprocess.TimeoutExpired:
        module.fail_json(msg="manage.py %s did not finish within %ss. Fix: raise timeout" % (
            " ".join(args), p["timeout"]), **result)
    except OSError as exc:
        module.fail_json(msg="cannot run %s: %s. Fix: set python to the project's interpreter" % (cmd[0], exc),
                         **result)
    result.update(rc=proc.returncode, stdout=redact(proc.stdout, secrets), stderr=redact(proc.stderr, secrets))
    if args and args[0] == "migrate":
        result["applied"] = _APPLYING.findall(proc.stdout)
    if p["changes"] == "auto":
        changed = bool(result["applied"]) and not read_only
    else:
        changed = p["changes"] == "always"
    result["changed"] = changed
    result["failed"] = False  # with fail_on_error false, a non-zero rc is an answer, not a failure
    if proc.returncode != 0 and p["fail_on_error"]:
        result.pop("failed")
        module.fail_json(msg=redact(failure_message(args, cmd, proc.returncode, result["stdout"], result["stderr"],
                                                    p["project_dir"]), secrets), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
