# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors and small helpers shared by every part of the collection."""

from __future__ import annotations

import re

REDACTED = "********"

# Keys whose values are secrets wherever they appear (module params, rows, reports).
SECRET_KEYS = frozenset((
    "login_password", "password", "client_secret", "token", "secret",
    "access_token", "refresh_token", "passwd",
))


class OAuthRepairError(Exception):
    """An error that is reported to the user as it is: it names the object and the fix.

    ``obj`` names the database object (or option) concerned and ``fix`` says what to do.
    Nothing has been changed when a module fails with this error unless ``changed``.
    """

    def __init__(self, msg, obj=None, fix=None, changed=False):
        self.msg = msg
        self.obj = obj
        self.fix = fix
        self.changed = changed
        super().__init__(self.full_message())

    def full_message(self):
        text = self.msg
        if self.obj:
            text = "%s [object: %s]" % (text, self.obj)
        if self.fix:
            text = "%s. Fix: %s" % (text.rstrip("."), self.fix)
        return text


def redact(value, secrets=()):
    """Return ``value`` with every known secret string replaced by ``REDACTED``.

    Works on strings, lists and dicts (recursively); dict values whose key is a
    secret key are redacted whatever they contain.
    """
    secrets = [s for s in secrets if s]
    if isinstance(value, dict):
        return dict(
            (k, REDACTED if (k in SECRET_KEYS and v not in (None, "")) else redact(v, secrets))
            for k, v in value.items()
        )
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, secrets) for v in value)
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, REDACTED)
        return value
    return value


_MODEL_LABEL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")


def parse_model_label(label, option="application_model"):
    """Split ``app_label.ModelName`` and return (app_label, model_name)."""
    m = _MODEL_LABEL.match(label or "")
    if not m:
        raise OAuthRepairError(
            "%s must look like 'app_label.ModelName', got %r" % (option, label),
            obj=option, fix="give the model as Django's settings do, e.g. myapp.MyApplication")
    return m.group(1), m.group(2)


def default_table_name(label):
    """Django's default db_table for a model label: ``app_label_modelname``."""
    app, model = parse_model_label(label)
    return "%s_%s" % (app, model.lower())
