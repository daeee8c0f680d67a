# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ask the ansible-operator runtime to reconcile again after a delay, in-process: the runtime reads
``period`` from this task's result. Documented in plugins/modules/requeue_after.py."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.postgres.cluster.plugins.module_utils.requeue import GO_DURATION


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec={"period": {"type": "str", "required": True}})
        period = args["period"]
        if not GO_DURATION.match(period):
            raise AnsibleActionFail("period must be a Go duration such as 30s, 5m or 1m30s, got %r" % period)
        result.update(changed=False, period=period)
        return result
