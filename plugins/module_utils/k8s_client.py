# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one Kubernetes API client of the collection's action plugins, over lightkube.

Objects travel as plain dicts. Two ways to reach the API server:

- ``cached()``: the operator runtime's proxy when a reconcile runs inside ansible-operator (it
  names its kubeconfig in K8S_AUTH_KUBECONFIG). Reading an owned object through it is what sets up
  the runtime's watch of that object; it answers reads from an informer cache.
- ``direct()``: the API server itself (PGC_API_KUBECONFIG, else the pod's ServiceAccount, else
  the same as cached()). Secrets, Events, and what the collection lists by label (pods, Jobs,
  Patroni's ConfigMaps) go this way: through the proxy every object of such a kind in the whole
  cluster would be cached in the operator's memory, and Events would start an informer the
  operator may not list.

Run by hand, both are the user's kubeconfig (K8S_AUTH_KUBECONFIG, KUBECONFIG or ~/.kube/config,
or the ``kubeconfig``/``context`` given to the action). One client per configuration and process:
the import and the connection are paid once.
"""

from __future__ import annotations

import json
import os

try:
    import httpx2 as _httpx
    from lightkube import ApiError as _LightkubeApiError
    from lightkube import Client as _Client
    from lightkube import KubeConfig as _KubeConfig
    from lightkube import operators as _operators
    from lightkube.core.exceptions import ConfigError as _ConfigError
    from lightkube.generic_resource import create_global_resource as _global_resource
    from lightkube.generic_resource import create_namespaced_resource as _namespaced_resource
    from lightkube.types import CascadeType as _CascadeType
    from lightkube.types import PatchType as _PatchType
    HAS_LIGHTKUBE = True
    LIGHTKUBE_IMPORT_ERROR = None
except ImportError as e:  # reported when a client is asked for
    HAS_LIGHTKUBE = False
    LIGHTKUBE_IMPORT_ERROR = e

# The resources the collection reads and writes: kind -> (plural, namespaced). Other kinds are
# found through one discovery request of their group version.
KNOWN_RESOURCES = {
    "Certificate": ("certificates", True),
    "ConfigMap": ("configmaps", True),
    "Deployment": ("deployments", True),
    "CronJob": ("cronjobs", True),
    "Event": ("events", True),
    "Job": ("jobs", True),
    "Namespace": ("namespaces", False),
    "NetworkPolicy": ("networkpolicies", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "Pod": ("pods", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "PodMonitor": ("podmonitors", True),
    "PostgresBackup": ("postgresbackups", True),
    "PostgresCluster": ("postgresclusters", True),
    "PrometheusRule": ("prometheusrules", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "ServiceAccount": ("serviceaccounts", True),
    "StatefulSet": ("statefulsets", True),
}

# Kinds never read through the runtime's proxy, even when owned: the first read of a kind there
# starts an informer that caches every object of that kind in the whole Kubernetes cluster (and
# Events would start one the operator may not list). Owned objects of these kinds are not watched:
# a hand edit of one is put back by the next reconcile, not at once.
UNCACHED_KINDS = frozenset(("ConfigMap", "Secret", "Event", "Pod", "Job"))

PATCH_TYPES = ("merge", "json", "strategic", "apply")
TIMEOUT_SECONDS = 30


class ApiError(Exception):
    """A failed API request, with the HTTP status code (0 when the server was not reached)."""

    def __init__(self, message, code=0):
        super().__init__(message)
        self.code = code


def plain(value):
    """``value`` as plain JSON types: Ansible hands over str and dict subclasses (unsafe text) that
    the client's encoder refuses."""
    return json.loads(json.dumps(value))


def _split(api_version):
    group, _, version = api_version.rpartition("/")
    return group, version


def selector(text):
    """A label selector string (``a=b,c``: equality and existence) as lightkube's labels argument."""
    labels = {}
    for term in (text or "").split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term or term.startswith("!") or " in " in term or " notin " in term:
            raise ValueError("label selector term %r: only key=value and key are supported" % term)
        key, sep, value = term.partition("=")
        key, value = key.strip(), value.lstrip("=").strip()
        labels[key] = value if sep else _operators.exists()
    return labels


class Api:
    """Reads and writes Kubernetes objects as dicts. Not found is None (get) or False (delete)."""

    def __init__(self, client):
        self._client = client

    def _resource(self, api_version, kind):
        # One class per kind and process: lightkube keeps a registry that refuses a second one.
        key = (api_version, kind)
        if key not in _RESOURCES:
            group, version = _split(api_version)
            known = KNOWN_RESOURCES.get(kind)
            plural, namespaced = known if known else self._discover(api_version, kind)
            make = _namespaced_resource if namespaced else _global_resource
            _RESOURCES[key] = make(group, version, kind, plural)
        return _RESOURCES[key]

    def _discover(self, api_version, kind):
        for res in self.resources(api_version):
            if res.get("kind") == kind and "/" not in res.get("name", ""):
                return res["name"], bool(res.get("namespaced"))
        raise ApiError("%s is not served as %s" % (kind, api_version), 404)

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _LightkubeApiError as e:
            code = getattr(e.status, "code", 0) or 0
            raise ApiError("%s: %s" % (what, getattr(e.status, "message", None) or e), code)
        except _httpx.HTTPError as e:
            raise ApiError("%s: the API server is unreachable (%s)" % (what, e))

    @staticmethod
    def _dict(obj):
        return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)

    def resources(self, api_version):
        """The resources of one group version (a discovery request), or [] when it is not served."""
        path = ("/api/" if "/" not in api_version else "/apis/") + api_version
        try:
            resp = self._client._client._client.get(path)
        except _httpx.HTTPError as e:
            raise ApiError("discovery of %s: the API server is unreachable (%s)" % (api_version, e))
        if resp.status_code == 404:
            return []
        if resp.status_code >= 400:
            raise ApiError("discovery of %s: HTTP %d" % (api_version, resp.status_code), resp.status_code)
        return resp.json().get("resources") or []

    def serves(self, api_version, kinds):
        """Whether the API server serves every one of ``kinds`` in ``api_version``."""
        served = {r.get("kind") for r in self.resources(api_version)}
        return set(kinds) <= served

    def get(self, api_version, kind, name, namespace=None):
        what = "get %s %s/%s" % (kind, namespace or "", name)
        try:
            return self._dict(self._call(what, self._client.get, self._resource(api_version, kind), name,
                                         namespace=namespace))
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def list(self, api_version, kind, namespace=None, labels=""):
        what = "list %s in %s (%s)" % (kind, namespace or "all namespaces", labels)
        res = self._resource(api_version, kind)
        items = self._call(what, lambda: list(self._client.list(res, namespace=namespace or "*",
                                                                labels=selector(labels) or None)))
        return [self._dict(i) for i in items]

    def apply(self, obj, field_manager, force=True, dry_run=False):
        """Server-side apply of ``obj`` (created when missing)."""
        obj = plain(obj)
        meta = obj.get("metadata") or {}
        res = self._resource(obj["apiVersion"], obj["kind"])
        what = "apply %s %s/%s" % (obj["kind"], meta.get("namespace", ""), meta.get("name"))
        return self._dict(self._call(what, self._client.patch, res, meta["name"], obj, namespace=meta.get("namespace"),
                                     patch_type=_PatchType.APPLY, field_manager=field_manager, force=force,
                                     dry_run=dry_run))

    def create(self, obj, field_manager=None, dry_run=False):
        obj = plain(obj)
        meta = obj.get("metadata") or {}
        res = self._resource(obj["apiVersion"], obj["kind"])
        what = "create %s %s/%s" % (obj["kind"], meta.get("namespace", ""), meta.get("name") or meta.get("generateName"))
        return self._dict(self._call(what, self._client.create, res(obj), namespace=meta.get("namespace"),
                                     field_manager=field_manager, dry_run=dry_run))

    def patch(self, api_version, kind, name, namespace, body, patch_type="merge", subresource=None,
              field_manager=None, dry_run=False):
        if patch_type not in PATCH_TYPES:
            raise ValueError("patch_type must be one of %s" % ", ".join(PATCH_TYPES))
        body = plain(body)
        res = self._resource(api_version, kind)
        if subresource:
            res = getattr(res, subresource.capitalize())
        what = "patch %s %s/%s%s" % (kind, namespace or "", name, "/" + subresource if subresource else "")
        return self._dict(self._call(what, self._client.patch, res, name, body, namespace=namespace,
                                     patch_type=getattr(_PatchType, patch_type.upper()),
                                     field_manager=field_manager, dry_run=dry_run))

    def delete(self, api_version, kind, name, namespace=None, dry_run=False, orphan=False):
        """Delete an object; ``orphan`` leaves its dependents (a StatefulSet's pods) in place."""
        what = "delete %s %s/%s" % (kind, namespace or "", name)
        try:
            self._call(what, self._client.delete, self._resource(api_version, kind), name, namespace=namespace,
                       dry_run=dry_run, cascade=_CascadeType.ORPHAN if orphan else None)
        except ApiError as e:
            if e.code == 404:
                return False
            raise
        return True


_APIS = {}
_RESOURCES = {}


def _config(kubeconfig, context):
    if not kubeconfig and not context and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return _KubeConfig.from_service_account().get()
    # KUBECONFIG may list several files, as for kubectl: the first one is read.
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
    return _KubeConfig.from_file(os.path.expanduser(path)).get(context_name=context or None)


def _api(kubeconfig=None, context=None):
    if not HAS_LIGHTKUBE:
        raise ApiError("the Python package lightkube is required on the controller (pip install lightkube): %s"
                       % LIGHTKUBE_IMPORT_ERROR)
    key = (kubeconfig or "", context or "")
    if key not in _APIS:
        try:
            config = _config(kubeconfig, context)
        except (_ConfigError, OSError, KeyError) as e:
            raise ApiError("no usable kubeconfig (%s): %s" % (kubeconfig or "the environment's", e))
        _APIS[key] = Api(_Client(config=config, timeout=TIMEOUT_SECONDS))
    return _APIS[key]


def cached(kubeconfig=None, context=None):
    """The runtime's caching proxy inside the operator; the user's kubeconfig otherwise."""
    return _api(kubeconfig or os.environ.get("K8S_AUTH_KUBECONFIG"), context)


def direct(kubeconfig=None, context=None):
    """The API server itself, never the runtime's proxy."""
    if kubeconfig or context:
        return _api(kubeconfig, context)
    if os.environ.get("PGC_API_KUBECONFIG"):
        return _api(os.environ["PGC_API_KUBECONFIG"])
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        # In a pod: its ServiceAccount, not the proxy that K8S_AUTH_KUBECONFIG names there.
        return _api()
    return cached()
