#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: django_migration
short_description: Record or remove rows of Django's migration history (django_migrations)
version_added: 0.1.0
description:
  - Adds (O(state=present)) or removes (O(state=absent)) the rows of C(django_migrations) that tell Django
    which migrations of an app have run, without running any migration. It is the C(--fake) of
    C(manage.py migrate) for the cases C(migrate) cannot handle, above all C(InconsistentMigrationHistory) -
    Django refuses to run C(migrate), even with C(--fake), while a recorded migration has an unrecorded
    dependency, for example C(oauth2_provider.0001_initial) recorded before the C(0001_initial) of the app
    of a swapped C(OAUTH2_PROVIDER_APPLICATION_MODEL).
  - Rows are written as Django's C(MigrationRecorder) writes them with C(USE_TZ=True) (C(applied) is the
    current time in UTC). App labels and migration names are only ever bound as values.
  - For app C(oauth2_provider) (django-oauth-toolkit, DOT), the module refuses to record a migration whose
    schema objects (tables, columns, constraints, types) are missing from the live database, and refuses
    names that are not migrations of DOT 3.4, unless O(force=true). Swapped DOT models (O(application_model)
    and the other diagnosis options) are taken into account, as by P(django_ops.oauth_repair.oauth_info#module).
  - Removing a migration that other recorded migrations depend on is allowed (this is how stale rows, such as
    the names DOT squashed away in 1.3, are removed) but gives a warning naming those migrations.
  - Only the history changes. Recording a migration does not create its tables, removing one does not drop
    anything.
author:
  - Django Ops maintainers (@django-ops)
extends_documentation_fragment:
  - django_ops.oauth_repair.connection
  - django_ops.oauth_repair.connection.diagnosis
  - django_ops.oauth_repair.connection.django
options:
  app:
    description:
      - The Django app label, as in C(manage.py showmigrations), for example C(oauth2_provider) or the app of a
        swapped model.
    type: str
    required: true
  name:
    description:
      - The migration name or names of O(app), for example C(0001_initial). A string is taken as one name
        (or a comma-separated list of names).
    type: list
    elements: str
    required: true
    aliases: [names]
  state:
    description:
      - V(present) records the migrations as applied (rows that exist are left alone).
      - V(absent) removes every row of the migrations.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - For O(app=oauth2_provider), record migrations whose schema objects are missing, and record or remove
        names that are not migrations of DOT 3.4. The module warns about what it forced.
      - For any app, record rows whose app label or migration name Django could not have written (anything but
        letters, digits and underscores); without O(force) such names are refused and nothing is written.
      - With O(django), for an app other than C(oauth2_provider), record a migration whose tables or columns (by the
        site's own migration graph, as they are once it has run) are missing, or that the site does not have;
        without O(force) the module refuses and writes nothing.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Changes nothing and returns the statements it would run in RV(executed_queries).
  diff_mode:
    support: full
    description: Shows the migrations recorded for O(app) before and after, one per line.
notes:
  - Django ignores rows of migrations that no longer exist on disk, so stale rows are harmless for C(migrate)
    but make the history misleading; P(django_ops.oauth_repair.oauth_info#module) reports them.
  - Rows are compared exactly (case-sensitive), as Django compares them, also on MySQL and MariaDB whose
    usual collations are case-insensitive.
  - On a site with C(USE_TZ=False) Django stores local time in C(applied); this module stores UTC. Django
    only uses C(applied) for display.
seealso:
  - module: django_ops.oauth_repair.oauth_info
  - name: MigrationRecorder and django_migrations
    description: How Django records applied migrations.
    link: https://docs.djangoproject.com/en/5.2/topics/migrations/
'''

EXAMPLES = r'''
- name: Repair InconsistentMigrationHistory after swapping DOT's Application model on a live site
  django_ops.oauth_repair.django_migration:
    engine: postgresql
    login_host: db.example.com
    login_user: django
    login_password: "{{ vault_db_password }}"
    db: site
    app: accounts
    name: 0001_initial
    application_model: accounts.OAuthClient

- name: Remove the stale rows of DOT migrations that were squashed away in DOT 1.3
  django_ops.oauth_repair.django_migration:
    engine: mysql
    db: site
    app: oauth2_provider
    names:
      - 0002_08_updates
      - 0003_auto_20160316_1503
      - 0004_auto_20160525_1623
    state: absent

- name: Record DOT 0012 after its schema was created by hand (refused while objects are missing)
  django_ops.oauth_repair.django_migration:
    engine: sqlite
    db: /srv/site/db.sqlite3
    app: oauth2_provider
    name: 0012_add_token_checksum

- name: Preview what would be recorded, with the diff of the history
  django_ops.oauth_repair.django_migration:
    engine: sqlite
    db: /srv/site/db.sqlite3
    app: oauth2_provider
    name: [0013_alter_application_authorization_grant_type_device, 0014_alter_help_text]
  check_mode: true
  diff: true
  register: preview
'''

RETURN = r'''
changed:
  description: Whether rows were added or removed (in check mode, would be).
  returned: always
  type: bool
executed_queries:
  description:
    - The statements that changed the history, with C(%s) where a value was bound; in check mode the
      statements that would run. Empty when nothing had to change.
  returned: always
  type: list
  elements: str
  sample: ['INSERT INTO "django_migrations" ("app", "name", "applied") VALUES (%s, %s, %s)']
recorded:
  description: The migrations recorded for O(app) afterwards (in check mode, as they would be), each once, in
    the order they were recorded.
  returned: success
  type: list
  elements: str
  sample: [0001_initial, 0002_auto_20190406_1805]
added:
  description: The migrations that were (in check mode, would be) recorded.
  returned: success
  type: list
  elements: str
  sample: [0001_initial]
removed:
  description: The migrations whose rows were (in check mode, would be) removed.
  returned: success
  type: list
  elements: str
  sample: []
missing_objects:
  description:
    - For O(app=oauth2_provider) and O(state=present), per migration to record, the schema objects it creates
      that are missing from the database (what made the module refuse, or what O(force) overrode).
  returned: when objects are missing
  type: dict
  sample: {0012_add_token_checksum: [oauth2_provider_accesstoken.token_checksum]}
warnings:
  description:
    - Removed migrations that recorded migrations depend on, recorded migrations whose dependencies are not
      recorded, what O(force) overrode, and app labels or names Django could not have written.
  returned: when there are any
  type: list
  elements: str
diff:
  description: With C(--diff), the migrations recorded for O(app) before and after, one per line.
  returned: in diff mode
  type: dict
  sample: {before: "0001_initial\n", after: "0001_initial\n0002_auto_20190406_1805\n"}
'''

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import dot, history, sessions
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.common import OAuthRepairError
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.connection import connection_argument_spec
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.diagnosis import Snapshot
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.truth.django_models import (
    DjangoSite, tables_at_migration)
from ansible_collections.django_ops.oauth_repair.plugins.module_utils.module_support import (
    DIAGNOSIS_REQUIRED_BY, connect, diagnosis_argument_spec, diagnosis_options, fail, take_run_lock)

# What Django can have written: app labels are identifiers, migration names module names.
_APP_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MIGRATION_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_NUMBER = re.compile(r"^(\d+)_")


def argument_spec():
    spec = connection_argument_spec()
    spec.update(diagnosis_argument_spec())
    spec.update(
        app=dict(type="str", required=True),
        name=dict(type="list", elements="str", required=True, aliases=["names"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        force=dict(type="bool", default=False),
    )
    return spec


def _unique(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _number(name):
    m = _NUMBER.match(name)
    return int(m.group(1)) if m else None


class MigrationHistory(object):
    """What the module does, independent of AnsibleModule."""

    def __init__(self, conn, params, check_mode):
        self.conn = conn
        self.params = params
        self.check_mode = check_mode
        self.app = params["app"]
        self.names = _unique(params["name"])
        self.force = params["force"]
        self.options = diagnosis_options(params)
        self.models = dot.Models(swapped={
            "application": self.options.get("application_model"),
            "accesstoken": self.options.get("access_token_model"),
            "refreshtoken": self.options.get("refresh_token_model"),
            "idtoken": self.options.get("id_token_model"),
            "grant": self.options.get("grant_model"),
        })
        self.swapped_initial = params.get("swapped_initial_migration") or "0001_initial"
        self.warnings = []
        self.missing_objects = {}

    # -- checks ------------------------------------------------------------
    def validate(self):
        history.check_value(self.app, "app")
        if not self.names:
            raise OAuthRepairError("no migration name given", obj="name",
                                   fix="give the migration name(s) of app %s" % self.app)
        for name in self.names:
            history.check_value(name, "name")
        odd = []
        if not _APP_LABEL.match(self.app):
            odd.append("app %r is not a Django app label (letters, digits and _, not starting with a digit)" % self.app)
        # oauth2_provider's names are checked against DOT's own migrations later (check_record/check_remove)
        names = [n for n in self.names if not _MIGRATION_NAME.match(n)] if self.app != dot.APP else []
        if names:
            odd.append("%s: not %s (letters, digits and _)" % (
                ", ".join(repr(n) for n in names), "a Django migration name" if len(names) == 1 else "Django migration names"))
        if not odd:
            return
        if self.params["state"] == "present" and not self.force:
            # a row Django can never match with a migration is garbage in django_migrations: refuse to write it
            raise OAuthRepairError(
                "%s; Django never reads such rows, so nothing was recorded" % "; ".join(odd),
                obj="app" if not _APP_LABEL.match(self.app) else "name",
                fix="give the app label and migration names as manage.py showmigrations prints them, "
                    "or set force: true to record them anyway")
        self.warnings.extend("%s; %s" % (text, "forced" if self.params["state"] == "present" else
                                         "rows are removed as plain values") for text in odd)

    def _swapped_apps(self):
        """{app label: [model keys]} of the swapped DOT models."""
        apps = {}
        for key in self.models.swapped_keys():
            apps.setdefault(self.models.app_label(key), []).append(key)
        return apps

    def check_record(self, to_add, recorded_after):
        if self.app == dot.APP:
            unknown = [n for n in to_add if n not in dot.MIGRATION_NAMES]
            if unknown:
                msg = ("%s: not %s of django-oauth-toolkit 3.4 (known: %s ... %s)" % (
                    ", ".join(repr(n) for n in unknown), "a migration" if len(unknown) == 1 else "migrations",
                    dot.MIGRATION_NAMES[0], dot.MIGRATION_NAMES[-1]))
                if not self.force:
                    raise OAuthRepairError(
                        "refusing to record oauth2_provider migration %s" % msg, obj="%s.%s" % (self.app, unknown[0]),
                        fix="check the name against manage.py showmigrations oauth2_provider, or set force: true "
                            "to record it anyway")
                self.warnings.append("force: recording oauth2_provider migration %s" % msg)
            known = [n for n in to_add if n in dot.MIGRATION_NAMES]
            if known:
                snap = Snapshot(self.conn, self.options)
                states = dict((s["name"], s) for s in snap.migration_state["state"])
                for name in known:
                    missing = [m for m in states[name]["missing"]
                               if m not in self._superseded_labels(name, to_add)]
                    if missing:
                        self.missing_objects[name] = missing
                if self.missing_objects:
                    text = "; ".join("%s needs %s" % (n, ", ".join(m)) for n, m in self.missing_objects.items())
                    if not self.force:
                        first = list(self.missing_objects)[0]
                        raise OAuthRepairError(
                            "refusing to record oauth2_provider migration(s) whose schema objects are missing "
                            "from database %r: %s" % (self.conn.database, text),
                            obj=", ".join(self.missing_objects[first]),
                            fix="create the objects first (django_ops.oauth_repair.oauth_repair, or manage.py "
                                "migrate oauth2_provider), or set force: true to record them anyway")
                    self.warnings.append(
                        "force: recorded oauth2_provider migration(s) whose schema objects are missing: %s; "
                        "Django will not create them" % text)
            # the chain of DOT migrations is linear: each depends on the one before it
            for name in known:
                i = dot.MIGRATION_NAMES.index(name)
                if i and dot.MIGRATION_NAMES[i - 1] not in recorded_after:
                    self.warnings.append(
                        "oauth2_provider.%s is recorded while its dependency oauth2_provider.%s is not: Django "
                        "will raise InconsistentMigrationHistory until it is recorded too" % (
                            name, dot.MIGRATION_NAMES[i - 1]))
            if "0001_initial" in to_add:
                for app in sorted(self._swapped_apps()):
                    if self.swapped_initial not in history.names(self.conn, app):
                        self.warnings.append(
                            "oauth2_provider.0001_initial is recorded while %s.%s, which must run before it "
                            "(swapped model), is not: record it too" % (app, self.swapped_initial))
        swapped = self._swapped_apps().get(self.app)
        if swapped and self.swapped_initial in to_add:
            tables = set(self.conn.dialect.list_tables(self.conn))
            absent = [self.models.table(k) for k in swapped if self.models.table(k) not in tables]
            if absent:
                self.warnings.append(
                    "%s.%s is recorded but the table of the swapped model (%s) does not exist: Django will "
                    "believe it does; create it before the site uses the model" % (
                        self.app, self.swapped_initial, ", ".join(absent)))

    def check_against_site(self, to_add):
        """With option ``django``: refuse to record a migration of another app than DOT while the tables it leaves
        (by the site's own migration graph) are missing or lack a column; unknown names are refused too."""
        site = DjangoSite.from_options(self.options)
        if site is None or self.app == dot.APP:
            return
        live_tables = set(self.conn.dialect.list_tables(self.conn))
        problems = []
        for name in to_add:
            known, tables = tables_at_migration(site, self.app, name)
            if not known:
                problems.append(("%s.%s" % (self.app, name), "%s.%s is not a migration of the site" % (self.app, name)))
                continue
            present = self.conn.dialect.load_tables(self.conn, sorted(t for t in tables if t in live_tables))
            for table, columns in sorted(tables.items()):
                if table not in present:
                    problems.append((table, "%s.%s needs table %s" % (self.app, name, table)))
                    continue
                missing = [c for c in columns if not present[table].has_column(c)]
                if missing:
                    problems.append(("%s.%s" % (table, missing[0]), "%s.%s needs column(s) %s of %s" % (
                        self.app, name, ", ".join(missing), table)))
        if not problems:
            return
        text = "; ".join(p[1] for p in problems)
        if not self.force:
            raise OAuthRepairError(
                "refusing to record what the database does not hold (by the site's own migrations): %s" % text,
                obj=problems[0][0], fix="create the objects first (manage.py migrate, or the collection's repair), "
                                        "or set force: true to record anyway")
        self.warnings.append("force: recorded although %s" % text)
        self.missing_objects.update((p[0], [p[1]]) for p in problems)

    def _superseded_labels(self, name, to_add):
        """Labels of ``name``'s effects that a migration recorded in the same run undoes (e.g. 0019 drops
        the column 0017 adds): their absence is expected."""
        labels = []
        for (mig, kind, model, target), undo in dot.SUPERSEDED.items():
            if mig == name and undo in to_add and kind == "column" and not self.models.is_swapped(model):
                labels.append("%s.%s" % (self.models.table(model), target))
        return labels

    def check_remove(self, requested, to_remove, recorded_after):
        if self.app == dot.APP:
            known = set(dot.MIGRATION_NAMES) | set(dot.PRE_SQUASH)
            unknown = [n for n in requested if n not in known and n not in to_remove]
            if unknown:
                msg = "%s: not %s of django-oauth-toolkit and not recorded" % (
                    ", ".join(repr(n) for n in unknown), "a migration" if len(unknown) == 1 else "migrations")
                if not self.force:
                    raise OAuthRepairError(
                        "refusing to remove oauth2_provider migration %s" % msg, obj="%s.%s" % (self.app, unknown[0]),
                        fix="check the name against the rows of django_migrations (oauth_info returns them), "
                            "or set force: true")
                self.warnings.append("force: oauth2_provider migration %s; nothing to remove" % msg)
            odd = [n for n in to_remove if n not in known]
            if odd:
                self.warnings.append(
                    "removing %s, recorded for oauth2_provider but not migrations of django-oauth-toolkit 3.4"
                    % ", ".join(repr(n) for n in odd))
        for name in to_remove:
            dependents = self._dependents(name, recorded_after)
            if dependents:
                self.warnings.append(
                    "removed %s.%s although recorded migrations depend on it: %s; Django raises "
                    "InconsistentMigrationHistory until they are removed too or it is recorded again" % (
                        self.app, name, ", ".join(dependents)))

    def _dependents(self, name, recorded_after):
        """Recorded migrations (``app.name``) that depend on ``self.app``.``name`` once it is removed."""
        out = []
        if self.app == dot.APP and name in dot.MIGRATION_NAMES:
            i = dot.MIGRATION_NAMES.index(name)
            out = [n for n in recorded_after if n in dot.MIGRATION_NAMES[i + 1:]]
        elif self.app == dot.APP and name in dot.PRE_SQUASH:
            # the chain DOT had before squashing: later pre-squash rows depended on earlier ones
            num = _number(name)
            out = [n for n in recorded_after if n in dot.PRE_SQUASH and (_number(n) or 0) > (num or 0)]
        else:
            num = _number(name)
            if num is not None:
                out = [n for n in recorded_after if n != name and (_number(n) or 0) > num]
        out = ["%s.%s" % (self.app, n) for n in out]
        if self.app in self._swapped_apps() and name == self.swapped_initial:
            out += ["%s.%s" % (dot.APP, n) for n in history.names(self.conn, dot.APP)]
        return out

    def require_privileges(self, names):
        """INSERT/DELETE on django_migrations before the first row is written (check mode: a warning)."""
        if names:
            self.warnings.extend(sessions.require(self.conn, {"migrations": [history.TABLE]}, self.check_mode,
                                                  "django_migration"))

    # -- run ---------------------------------------------------------------
    def run(self):
        self.validate()
        history.require_table(self.conn)
        before = history.names(self.conn, self.app)
        added, removed = [], []
        if self.params["state"] == "present":
            to_add = [n for n in self.names if n not in before]
            after = before + to_add
            if to_add:
                self.check_record(to_add, after)
                self.check_against_site(to_add)
            self.require_privileges(to_add)
            for name in to_add:
                if history.record(self.conn, self.app, name, check_mode=self.check_mode):
                    added.append(name)
        else:
            to_remove = [n for n in self.names if n in before]
            after = [n for n in before if n not in to_remove]
            self.check_remove(self.names, to_remove, after)
            self.require_privileges(to_remove)
            for name in to_remove:
                if history.remove(self.conn, self.app, name, check_mode=self.check_mode):
                    removed.append(name)
        if not self.check_mode:
            after = history.names(self.conn, self.app)
        return dict(
            changed=bool(added or removed),
            recorded=after,
            added=added,
            removed=removed,
            before=before,
        )


def _lines(names):
    return "".join("%s\n" % n for n in names)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_by=DIAGNOSIS_REQUIRED_BY)
    conn = connect(module)
    job = MigrationHistory(conn, module.params, module.check_mode)
    try:
        take_run_lock(module, conn)
        outcome = job.run()
    except OAuthRepairError as exc:
        extra = {"missing_objects": job.missing_objects} if job.missing_objects else {}
        if conn.executed_queries and not module.check_mode:
            exc.changed = True
        for warning in job.warnings:
            module.warn(warning)
        fail(module, exc, conn, **extra)
    except Exception as exc:  # pylint: disable=broad-except
        fail(module, exc, conn, changed=bool(conn.executed_queries) and not module.check_mode)
    finally:
        conn.close()
    for warning in job.warnings:
        module.warn(warning)
    result = dict(
        changed=outcome["changed"],
        executed_queries=list(conn.executed_queries),
        recorded=outcome["recorded"],
        added=outcome["added"],
        removed=outcome["removed"],
    )
    if job.missing_objects:
        result["missing_objects"] = job.missing_objects
    if module._diff:
        header = "django_migrations (app=%s)" % module.params["app"]
        result["diff"] = dict(before=_lines(outcome["before"]), after=_lines(outcome["recorded"]),
                              before_header=header, after_header=header)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
