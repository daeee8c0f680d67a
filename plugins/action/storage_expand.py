# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Grow the members' data claims to spec.storageSize, in-process. Documented in
plugins/modules/storage_expand.py."""

from __future__ import annotations

import time

from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import ApiError
from ansible_collections.postgres.cluster.plugins.module_utils.names import data_claim
from ansible_collections.postgres.cluster.plugins.module_utils.objects import claim_template_size, larger
from ansible_collections.postgres.cluster.plugins.plugin_utils.k8s_action import CLUSTER_ARGS, K8sAction

# How long the StatefulSet may take to go once deleted (the garbage collector orphans its pods).
GONE_TIMEOUT = 60


class ActionModule(K8sAction):
    ARGS = CLUSTER_ARGS

    def act(self, args, task_vars):
        pgc = args["cluster"]
        namespace, name = pgc["namespace"], pgc["names"]["statefulset"]
        desired = pgc["spec"]["storageSize"]
        sts = self.cached_api(args).get("apps/v1", "StatefulSet", name, namespace)
        current = claim_template_size(sts)
        result = {"changed": False, "from": current, "to": desired, "claims": [], "refused": ""}
        if not sts or not larger(desired, current):
            return result
        api = self.direct_api(args)
        # Every claim the StatefulSet made, scaled-down members' included: they come back with it.
        count = max(int((sts.get("spec") or {}).get("replicas") or 0), int(pgc["spec"]["replicas"]),
                    int(((sts.get("status") or {}).get("replicas")) or 0))
        claims = [data_claim(name, ordinal) for ordinal in range(count)]
        if self._task.check_mode:
            return dict(result, changed=True, claims=claims)
        for claim in claims:
            live = api.get("v1", "PersistentVolumeClaim", claim, namespace)
            size = (((live or {}).get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
            if live is None or not larger(desired, size):
                continue
            try:
                api.patch("v1", "PersistentVolumeClaim", claim, namespace,
                          {"spec": {"resources": {"requests": {"storage": desired}}}},
                          field_manager=args["field_manager"])
            except ApiError as e:
                if result["claims"]:
                    raise
                # The StorageClass does not allow expansion (or the claim is not bound): nothing changed.
                return dict(result, refused="PersistentVolumeClaim %s cannot grow from %s to %s: %s"
                            % (claim, size, desired, e))
            result["claims"].append(claim)
        # A claim template cannot change in place: the StatefulSet is made again, its pods kept.
        api.delete("apps/v1", "StatefulSet", name, namespace, orphan=True)
        deadline = time.monotonic() + GONE_TIMEOUT
        while api.get("apps/v1", "StatefulSet", name, namespace) is not None:
            if time.monotonic() > deadline:
                raise ApiError("StatefulSet %s/%s was not gone %d s after its deletion" % (namespace, name, GONE_TIMEOUT))
            time.sleep(0.5)
        return dict(result, changed=True)
