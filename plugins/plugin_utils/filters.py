# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's module_utils functions as Jinja filters.

module_utils stays free of Ansible (the metrics server imports it), so what only a play needs
happens here: a spec the function refuses fails the task with its message, and text quoted
from the spec, the API server or pod logs is marked unsafe, so that Ansible never templates it.
"""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.postgres.cluster.plugins.module_utils.spec import SpecError


def as_filter(function, unsafe=False):
    """``function`` as a filter; ``unsafe`` marks its whole result unsafe. The function itself
    stays reachable as ``__wrapped__``."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            result = function(*args, **kwargs)
        except SpecError as error:
            raise AnsibleFilterError(str(error)) from error
        return wrap_var(result) if unsafe else result
    return run
