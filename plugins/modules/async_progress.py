#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: async_progress
short_description: Wait for an asynchronous task and show the progress it writes to a file
version_added: 0.1.0
description:
  - Waits for an asynchronous job started with C(async) and C(poll 0) (for example
    M(django_ops.oauth_repair.oauth_repair) on a big table), and while it runs shows, every O(poll) seconds, the
    progress its module writes to O(progress_file) - step, rows done of the total, rate and estimated time left -
    on the controller's output as it happens.
  - Returns the job's result as if the task had run synchronously (C(failed) when it failed), and cleans the job's
    status file up.
  - When the job's process died without a result (killed with C(kill -9), out of memory, a reboot, or the job's
    C(async) time limit), the task fails with a message naming the module, its process and the step it was in
    (from O(progress_file)) instead of C(async_wrapper)'s traceback, and returns RV(died), RV(plan) (the steps
    as far as the progress file knows them) and RV(progress).
  - This is an action plugin; it runs C(async_status) and reads the progress file on the target host.
author:
  - Django Ops maintainers (@django-ops)
options:
  jid:
    description: The job id (C(ansible_job_id) of the registered async task).
    type: str
    required: true
  progress_file:
    description: The JSON progress file the job's module writes (C(progress_file) of M(django_ops.oauth_repair.oauth_repair)).
    type: str
  poll:
    description: Longest pause between two looks (the first looks come after half a second, then twice as long each time).
    type: float
    default: 5
  timeout:
    description: Seconds to wait in all; then the task fails (the job may still be running).
    type: int
    default: 7200
attributes:
  action:
    support: full
    description: Runs on the controller, looking at the target host.
  check_mode:
    support: none
    description: Asynchronous tasks do not run in check mode.
  diff_mode:
    support: none
    description: Nothing to show.
'''

EXAMPLES = r'''
- name: Repair in the background
  django_ops.oauth_repair.oauth_repair:
    engine: postgresql
    db: site
    progress_file: /var/tmp/oauth_repair-progress.json
  async: 7200
  poll: 0
  register: job

- name: Wait, showing progress
  django_ops.oauth_repair.async_progress:
    jid: "{{ job.ansible_job_id }}"
    progress_file: /var/tmp/oauth_repair-progress.json
  register: repair
'''

RETURN = r'''
progress_lines:
  description: The progress lines shown while waiting.
  returned: always
  type: list
  elements: str
died:
  description: The job's process ended without a result (killed, or the C(async) time limit).
  returned: when the job's process died
  type: bool
plan:
  description:
    - When the job's process died, the steps of its plan as its progress file had them (written by
      M(django_ops.oauth_repair.oauth_repair)) - C(ran), C(done_already), C(interrupted) (the step under way),
      C(not_run) (those after it). Otherwise the job's own C(plan), if it returns one.
  returned: when the job's process died, or the job returns one
  type: list
  elements: dict
progress:
  description: When the job's process died, the last progress entry of each batched step from the progress file.
  returned: when the job's process died
  type: dict
'''
