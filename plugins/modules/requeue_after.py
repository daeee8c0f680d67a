#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: requeue_after
short_description: Ask the ansible-operator runtime to reconcile the custom resource again after a delay
description:
  - Validates O(period) and returns it. The module itself changes nothing; the effect comes from the
    ansible-operator runtime that runs this collection's reconcile role.
  - The runtime reads the events of the run. When a task whose action is C(requeue_after) finishes
    successfully with a C(period) in its result, the runtime schedules the next reconcile of the custom
    resource after that duration, instead of the C(reconcilePeriod) of C(watches.yaml), and stops reading the
    rest of the run.
  - Because the runtime stops there, this must be the last task of the reconcile. Failures of later tasks
    would go unnoticed, and the runtime's own end-of-run handling (the status it manages when
    C(manageStatus) is enabled, removing the finalizer after a deletion run) would be skipped.
  - The runtime matches the action name literally, as it is written in the task, and recognizes only
    C(requeue_after) and C(operator_sdk.util.requeue_after). Inside this collection's roles call this
    module by its short name C(requeue_after), which resolves to C(postgres.cluster.requeue_after) because
    a role looks up modules in its own collection first. Written as C(postgres.cluster.requeue_after) the
    task runs but the runtime ignores it. Linters that require fully qualified names need an inline
    exception for that task (a C(noqa) comment naming C(fqcn[action]) for ansible-lint).
  - Run by hand, outside the operator (for example from a day-2 playbook), it does nothing but return
    O(period).
author:
  - pgc contributors
options:
  period:
    description:
      - How long to wait before the next reconcile, as a Go duration accepted by C(time.ParseDuration)
        such as V(30s), V(5m), V(1m30s), V(1h) or V(1.5h).
      - One or more positive numbers, each followed by a unit among C(ns), C(us), C(ms), C(s), C(m), C(h).
        A sign, a bare number or a missing unit is refused.
      - V(0s) means no timed reconcile at all for this run, not even the C(reconcilePeriod); the next one
        comes from a watched event.
    type: str
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
notes:
  - Do not use it with C(loop) or C(until). The runtime acts on the result of the first loop item, and it
    expects a C(period) in every result it sees from this action, which a skipped loop item does not have.
    A task skipped as a whole by C(when) is fine.
  - Modelled on C(operator_sdk.util.requeue_after), which this collection does not depend on.
"""

EXAMPLES = r"""
# The last task of a role inside this collection. The short name is what the runtime looks for.
- name: Reconcile again in 30 seconds
  requeue_after:  # noqa: fqcn[action] the runtime matches the short name only
    period: 30s

- name: Reconcile again in a minute and a half while a backup is running
  requeue_after:  # noqa: fqcn[action] the runtime matches the short name only
    period: 1m30s
  when: backup_in_progress | bool
"""

RETURN = r"""
period:
  description: The duration after which the runtime reconciles the custom resource again.
  returned: success
  type: str
  sample: 1m30s
changed:
  description: Always false; the module changes nothing by itself.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.postgres.cluster.plugins.module_utils.requeue import GO_DURATION


def main():
    module = AnsibleModule(
        argument_spec={"period": {"type": "str", "required": True}},
        supports_check_mode=True,
    )
    period = module.params["period"]
    if not GO_DURATION.match(period):
        module.fail_json(msg="period must be a Go duration such as 30s, 5m or 1m30s, got {0!r}".format(period))
    module.exit_json(changed=False, period=period)


if __name__ == "__main__":
    main()
