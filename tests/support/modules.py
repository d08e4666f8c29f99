"""Run the collection's modules in-process, the way Ansible would, and return their result.

``run_module("oauth_info", params, check_mode=False, diff=False)`` returns the
result dict; ``failed`` is True when the module called ``fail_json``. Running
in-process keeps the tests fast; tests/test_ansible_fqcn.py proves the same
modules also run through ``ansible`` by their FQCN.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
from contextlib import redirect_stdout

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
PREFIX = "ansible_collections.django_ops.oauth_repair.plugins"


def ensure_collection_path():
    """Make ``ansible_collections.django_ops.oauth_repair`` importable (scripts/setup.sh links it)."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "django_ops", "oauth_repair")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


ensure_collection_path()


def module_utils(name):
    return importlib.import_module("%s.module_utils.%s" % (PREFIX, name))


def run_module(name, params, check_mode=False, diff=False):
    from ansible.module_utils import basic
    from ansible.module_utils.common import warnings as warnings_mod

    mod = importlib.import_module("%s.modules.%s" % (PREFIX, name))
    args = dict(params)
    args["_ansible_check_mode"] = check_mode
    args["_ansible_diff"] = diff
    args.setdefault("_ansible_remote_tmp", "/tmp")
    args.setdefault("_ansible_keep_remote_files", False)
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode("utf-8")
    basic._ANSIBLE_PROFILE = "legacy"
    warnings_mod._global_warnings.clear() if hasattr(warnings_mod, "_global_warnings") else None
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            mod.main()
    except SystemExit:
        pass
    finally:
        basic._ANSIBLE_ARGS = None
    text = out.getvalue()
    try:
        return json.loads(text)
    except ValueError:
        raise AssertionError("module %s printed no JSON result: %r" % (name, text[:2000]))
