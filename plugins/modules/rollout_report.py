#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: rollout_report
short_description: Write the per-host and fleet reports of a repair rollout
version_added: 0.1.0
description:
  - O(state=host) writes C(<report_dir>/<host>.json) and a readable C(<host>.md) summary of one host's run - findings,
    the plan with its lock profile and each step's SQL labelled with what became of it (ran, would run in a dry run,
    already done and not run, failed), stage durations, maintenance window length, backup, migrations
    recorded, verification and rollback - both mode 0600. Stage durations, the run's duration and the window's
    length are computed from the timestamps in O(report). The same files are kept in C(<report_dir>/runs/<run_id>/),
    the top-level ones being the latest run's; the O(keep_runs) newest runs are kept.
  - O(state=fleet) reads the reports of every host of O(groups) written for run O(run_id) and writes C(fleet.json)
    and C(fleet.md) - outcome per host, and whether every staging host finished before any production host started.
    A host without a report of this run is C(not run); when its top-level C(<host>.json) and C(<host>.md) are an
    earlier run's, they are replaced by a report saying that it did not run in run O(run_id) (not run yet, while
    O(complete=false)), when that was noted, and which earlier report (kept in C(runs/)) is its last one.
  - The report directory, C(runs/) and each run's directory are created mode 0700, and tightened to 0700 when they
    exist with another mode; the reports (C(*.json), C(*.md)) and every file of a run are tightened to 0600.
  - Every value of O(secrets) and every value under a secret key (C(password), C(token), C(client_secret)...) is
    replaced by C(********) before anything is written. Meant to run on the controller (delegated to localhost).
author:
  - Django Ops maintainers (@django-ops)
options:
  state:
    description: Which report to write.
    type: str
    choices: [host, fleet]
    default: host
  report_dir:
    description: Directory of the reports, created mode 0700 when missing, tightened to 0700 when it exists.
    type: path
    required: true
  report:
    description: O(state=host) - the host's report; C(host) is required, C(started)/C(finished) and C(stages.<stage>.started/finished) are ISO 8601 timestamps.
    type: dict
  secrets:
    description: Strings that must never appear in a report (passwords, tokens).
    type: list
    elements: str
    default: []
  run_id:
    description: O(state=fleet) - the run whose reports are summarised.
    type: str
  groups:
    description:
      - O(state=fleet) - group name to the hosts of that group, in order.
      - O(state=host) - when set, the fleet summary of the report's run is brought up to date too (C(complete=false)),
        so it exists even when the rollout stops; run the task with C(throttle 1).
    type: dict
  complete:
    description: O(state=fleet) - whether the rollout has ended (false while it runs, or when it stopped).
    type: bool
    default: false
  keep_runs:
    description: O(state=host) - how many runs' report directories to keep in C(<report_dir>/runs) (0 keeps all).
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description: Returns the report without writing it.
  diff_mode:
    support: none
    description: Nothing to show.
'''

EXAMPLES = r'''
- name: Write the host's report on the controller
  django_ops.oauth_repair.rollout_report:
    report_dir: "{{ playbook_dir }}/../reports"
    report: "{{ oauth_repair_host_report }}"
    secrets: ["{{ oauth_repair_db.password | default('') }}"]
  delegate_to: localhost

- name: Fleet summary
  django_ops.oauth_repair.rollout_report:
    state: fleet
    report_dir: "{{ playbook_dir }}/../reports"
    run_id: "{{ oauth_repair_run_id }}"
    groups: {staging: "{{ groups.staging }}", production: "{{ groups.production }}"}
    complete: true
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
paths:
  description: The files written (JSON then Markdown).
  returned: always
  type: list
  elements: str
report:
  description: The host report as written (O(state=host)).
  returned: when O(state=host)
  type: dict
summary:
  description: The fleet summary as written (O(state=fleet)).
  returned: when O(state=fleet)
  type: dict
markdown:
  description: The Markdown text written.
  returned: always
  type: str
changed:
  description: Whether a file's content changed.
  returned: always
  type: bool
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.django_ops.oauth_repair.plugins.module_utils import reports


def main():
    module = AnsibleModule(argument_spec=dict(
        state=dict(type="str", choices=["host", "fleet"], default="host"),
        report_dir=dict(type="path", required=True),
        report=dict(type="dict"),
        secrets=dict(type="list", elements="str", default=[], no_log=True),
        run_id=dict(type="str"),
        groups=dict(type="dict"),
        complete=dict(type="bool", default=False),
        keep_runs=dict(type="int", default=30),
    ), required_if=[("state", "host", ("report",)), ("state", "fleet", ("run_id", "groups"))],
        supports_check_mode=True)
    p = module.params
    secrets = [s for s in p["secrets"] if s]
    if p["state"] == "host":
        if not p["report"].get("host"):
            module.fail_json(msg="report.host is required. Fix: set report.host to the inventory hostname")
        report = reports.redact(reports.complete_host_report(p["report"]), secrets)
        markdown = reports.host_markdown(report)
        base = os.path.join(p["report_dir"], str(report["host"]))
        if module.check_mode:
            module.exit_json(changed=False, paths=[base + ".json", base + ".md"], report=report, markdown=markdown)
        report, (paths, changed) = reports.write_host_report(p["report_dir"], p["report"], secrets, p["keep_runs"])
        if p["groups"] and report.get("run_id"):
            groups = dict((k, list(v or [])) for k, v in p["groups"].items())
            _summary, more, fleet_changed = reports.write_fleet_summary(p["report_dir"], report["run_id"], groups)
            paths += more
            changed = changed or fleet_changed
        module.exit_json(changed=changed, paths=paths, report=report, markdown=markdown)
    groups = dict((k, list(v or [])) for k, v in p["groups"].items())
    if module.check_mode:
        summary = reports.fleet_summary(p["report_dir"], p["run_id"], groups, p["complete"])
        module.exit_json(changed=False, paths=[], summary=summary, markdown=reports.fleet_markdown(summary))
    summary, paths, changed = reports.write_fleet_summary(p["report_dir"], p["run_id"], groups, p["complete"])
    module.exit_json(changed=changed, paths=paths, summary=summary, markdown=reports.fleet_markdown(summary))


if __name__ == "__main__":
    main()
