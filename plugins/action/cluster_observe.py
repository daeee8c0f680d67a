# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read what Patroni, the Secrets and the Jobs say about a cluster, in-process. Documented in
plugins/modules/cluster_observe.py."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils.failovers import history_pending
from ansible_collections.postgres.cluster.plugins.module_utils.jobs import summarize_jobs
from ansible_collections.postgres.cluster.plugins.module_utils.names import COMPONENT_LABEL, JOB_LABEL
from ansible_collections.postgres.cluster.plugins.module_utils.objects import comparable, reported
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import observe
from ansible_collections.postgres.cluster.plugins.module_utils.pgbackrest import pgc_backup_leaves
from ansible_collections.postgres.cluster.plugins.module_utils.tls import pgc_certificate_secrets, pgc_certificates_due
from ansible_collections.postgres.cluster.plugins.module_utils.tls import CERTIFICATE_API_VERSION, CERTIFICATE_KIND
from ansible_collections.postgres.cluster.plugins.plugin_utils.k8s_action import K8sAction

MONITORING_API = "monitoring.coreos.com/v1"
MONITORING_KINDS = ("PodMonitor", "PrometheusRule")


class ActionModule(K8sAction):
    ARGS = {
        "scope": {"type": "str", "required": True},
        "namespace": {"type": "str", "required": True},
        "label_selector": {"type": "str", "required": True},
        "backup_jobs": {"type": "bool", "default": False},
        "secrets": {"type": "list", "elements": "str", "default": []},
        "data_claim": {"type": "str", "default": ""},
        "monitoring_api": {"type": "bool", "default": True},
        "statefulset": {"type": "str", "default": ""},
        # The normalized cluster: whether its certificates must be issued or renewed.
        "cluster": {"type": "dict"},
        "certificate": {"type": "str", "default": ""},
    }

    def act(self, args, task_vars):
        # Listed straight from the API server: through the runtime's proxy every Pod, ConfigMap and
        # Job of the whole Kubernetes cluster would be cached in the operator.
        api = self.direct_api(args)
        namespace, selector, scope = args["namespace"], args["label_selector"], args["scope"]
        result = observe(scope, api.list("v1", "Pod", namespace, selector),
                         api.list("v1", "ConfigMap", namespace, selector))
        result["failover_pending"] = history_pending(result, (args["cluster"] or {}).get("callback_stamps"))
        result["backup_jobs"] = []
        if args["backup_jobs"]:
            jobs = api.list("batch/v1", "Job", namespace, "%s,%s" % (selector, JOB_LABEL))
            pods = api.list("v1", "Pod", namespace, "%s=%s" % (COMPONENT_LABEL, scope)) if jobs else []
            result["backup_jobs"] = summarize_jobs(jobs, pods)
        # The key names of each Secret, never their values: enough to tell missing from incomplete.
        certificates = {}
        if args["cluster"]:
            leaves = pgc_backup_leaves(args["cluster"])
            certificates = dict.fromkeys([args["cluster"]["names"]["ca"]]
                                         + list(pgc_certificate_secrets(args["cluster"], leaves)))
        secrets = {name: api.get("v1", "Secret", name, namespace) for name in dict.fromkeys(args["secrets"] + list(certificates))}
        result["secrets"] = {name: sorted((secrets[name].get("data") or {})) if secrets[name] is not None else None
                             for name in args["secrets"]}
        # From the Secrets' annotations: no certificate is read.
        result["certificates_due"] = bool(certificates) and pgc_certificates_due(
            args["cluster"], {name: secrets[name] for name in certificates}, leaves)
        # Whether the first member's data exists: asked only when a Secret is missing.
        result["data_exists"] = None
        if args["data_claim"] and None in result["secrets"].values():
            result["data_exists"] = api.get("v1", "PersistentVolumeClaim", args["data_claim"], namespace) is not None
        result["statefulset"] = None
        if args["statefulset"]:
            sts = self.cached_api(args).get("apps/v1", "StatefulSet", args["statefulset"], namespace)
            result["statefulset"] = reported(sts) if sts else None
        result["monitoring_api"] = api.serves(MONITORING_API, MONITORING_KINDS) if args["monitoring_api"] else False
        result.update(self._certificate(args, api))
        return result

    def _certificate(self, args, api):
        """Whether cert-manager's Certificates are served and, when they are, the one named: asked
        only for a cluster whose certificate cert-manager issues. Through the proxy, an owned object."""
        if not args["certificate"]:
            return {"cert_manager_api": False, "certificate": None}
        if not api.serves(CERTIFICATE_API_VERSION, [CERTIFICATE_KIND]):
            return {"cert_manager_api": False, "certificate": None}
        live = self.cached_api(args).get(CERTIFICATE_API_VERSION, CERTIFICATE_KIND, args["certificate"], args["namespace"])
        return {"cert_manager_api": True,
                "certificate": dict(comparable(live), status=live.get("status") or {}) if live else None}
