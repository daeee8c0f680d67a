# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Issue and renew a cluster's certificates, in-process: keys never pass through a task's
variables. Documented in plugins/modules/certificates.py."""

from __future__ import annotations

import base64

from ansible_collections.postgres.cluster.plugins.module_utils.pgbackrest import pgc_backup_leaves
from ansible_collections.postgres.cluster.plugins.module_utils.tls import pgc_certificate_secrets, pgc_certificates
from ansible_collections.postgres.cluster.plugins.plugin_utils.k8s_action import CLUSTER_ARGS, K8sAction

# The Secrets a pod mounts as a TLS pair have the type that says so.
TLS_TYPE = "kubernetes.io/tls"


class ActionModule(K8sAction):
    ARGS = CLUSTER_ARGS

    def act(self, args, task_vars):
        pgc = args["cluster"]
        api = self.direct_api(args)
        namespace = pgc["namespace"]
        leaves = pgc_backup_leaves(pgc)
        names = [pgc["names"]["ca"]] + list(pgc_certificate_secrets(pgc, leaves))
        current = {name: api.get("v1", "Secret", name, namespace) for name in names}
        written = pgc_certificates(pgc, current, leaves)
        if self._task.check_mode:
            return {"changed": bool(written), "secrets": sorted(written)}
        for name, update in written.items():
            data = {k: base64.b64encode(v.encode()).decode() for k, v in update["data"].items()}
            if current[name] is None:
                api.create({
                    "apiVersion": "v1", "kind": "Secret",
                    "type": TLS_TYPE if "tls.crt" in data and name != pgc["names"]["backup_tls"]
                    and name != pgc["names"]["ca"] else "Opaque",
                    "metadata": {"name": name, "namespace": namespace, "labels": dict(pgc["labels"]),
                                 "annotations": update["annotations"],
                                 "ownerReferences": [pgc["owner_reference"]]},
                    "data": data,
                }, field_manager=args["field_manager"])
            else:
                # Guarded by the version read: a Secret changed since is not overwritten.
                api.patch("v1", "Secret", name, namespace, {
                    "metadata": {"annotations": update["annotations"],
                                 "resourceVersion": current[name]["metadata"]["resourceVersion"]},
                    "data": data,
                }, field_manager=args["field_manager"])
        return {"changed": bool(written), "secrets": sorted(written)}
