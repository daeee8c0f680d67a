# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's API client: label selectors, which configuration each way to the API server
picks, how failures come back, and how a kind becomes a resource."""

from __future__ import annotations

import json

import httpx2
import pytest
import yaml
from lightkube import ApiError as LightkubeApiError
from lightkube import Client, KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.core import resource_registry
from lightkube.core.resource import NamespacedResource
from lightkube.types import PatchType

from ansible_collections.postgres.cluster.plugins.module_utils import k8s_client
from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import KNOWN_RESOURCES, Api, ApiError, selector

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "main", "namespace": "databases"},
           "spec": {"ports": [{"port": 5432}]}}


def lightkube_error(code, message):
    request = httpx2.Request("GET", "https://k8s.example:6443/api/v1")
    return LightkubeApiError(request=request, response=httpx2.Response(
        code, request=request, json={"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                                     "message": message}))


class Discovery:
    """Stands in for the httpx client that discovery requests go through."""

    def __init__(self, responses=None, error=None):
        self.responses = responses or {}
        self.error = error
        self.paths = []

    def get(self, path):
        self.paths.append(path)
        if self.error is not None:
            raise self.error
        status, body = self.responses.get(path, (404, {}))
        return httpx2.Response(status, json=body, request=httpx2.Request("GET", "https://k8s.example:6443" + path))


class StubClient:
    """Stands in for lightkube's Client: records each call, answers from ``results`` or raises
    ``errors`` by method name."""

    def __init__(self, results=None, errors=None, discovery=None):
        self.results = results or {}
        self.errors = errors or {}
        self.calls = []
        self._client = type("GenericClient", (), {})()
        self._client._client = discovery or Discovery()

    def _answer(self, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        if method in self.errors:
            raise self.errors[method]
        return self.results.get(method, {})

    def get(self, res, name, *, namespace=None):
        return self._answer("get", res, name, namespace=namespace)

    def list(self, res, *, namespace=None, labels=None):
        return iter(self._answer("list", res, namespace=namespace, labels=labels) or [])

    def patch(self, res, name, obj, **kwargs):
        return self._answer("patch", res, name, obj, **kwargs)

    def create(self, obj, **kwargs):
        return self._answer("create", obj, **kwargs)

    def delete(self, res, name, **kwargs):
        return self._answer("delete", res, name, **kwargs)


@pytest.fixture(autouse=True)
def own_resource_registry(monkeypatch):
    """lightkube registers each resource class in one table per process: every test starts from
    the table as it was, so that what one test created cannot decide another's outcome."""
    monkeypatch.setattr(resource_registry.resource_registry, "_registry", dict(resource_registry.resource_registry._registry))


# --- label selectors -------------------------------------------------------------------------

def test_selector_equality_terms_become_values():
    assert selector("postgres.example.com/cluster=main, role==primary") == \
        {"postgres.example.com/cluster": "main", "role": "primary"}


def test_selector_existence_term_becomes_exists():
    labels = selector("postgres.example.com/cluster=main,postgres.example.com/job")
    assert labels["postgres.example.com/cluster"] == "main"
    assert labels["postgres.example.com/job"].op_name == "exists"


@pytest.mark.parametrize("text", ["", None, " , "])
def test_selector_empty_selects_everything(text):
    assert selector(text) == {}


@pytest.mark.parametrize("text", ["role!=replica", "!role", "a=b,role in (primary,replica)", "role notin (replica)"])
def test_selector_rejects_inequality_and_set_terms(text):
    with pytest.raises(ValueError, match="only key=value and key are supported"):
        selector(text)


# --- which configuration cached() and direct() use --------------------------------------------

def write_kubeconfig(path, server, contexts=("default",)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": contexts[0],
        "clusters": [{"name": c, "cluster": {"server": "%s/%s" % (server, c) if c != contexts[0] else server}}
                     for c in contexts],
        "users": [{"name": "user", "user": {"token": "t"}}],
        "contexts": [{"name": c, "context": {"cluster": c, "user": "user"}} for c in contexts],
    }))
    return str(path)


class RecordingClient:
    instances = []

    def __init__(self, config, timeout):
        self.config = config
        self.timeout = timeout
        RecordingClient.instances.append(self)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A process with none of the variables set, its own client table and ~, a service account
    whose API server is https://service-account:443, and a Client that only records its config."""
    for name in ("K8S_AUTH_KUBECONFIG", "PGC_API_KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT",
                 "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(k8s_client, "_APIS", {})
    monkeypatch.setattr(k8s_client, "_Client", RecordingClient)
    monkeypatch.setattr(RecordingClient, "instances", [])
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token")
    (account / "namespace").write_text("pgc-system")
    service_account = KubeConfig.from_service_account
    monkeypatch.setattr(k8s_client._KubeConfig, "from_service_account",
                        classmethod(lambda cls: service_account.__func__(cls, str(account))))

    class Env:
        path = tmp_path

        @staticmethod
        def kubeconfig(name, server, contexts=("default",)):
            return write_kubeconfig(tmp_path / name, server, contexts)

        @staticmethod
        def in_pod():
            monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "service-account")
            monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")

        @staticmethod
        def set(name, value):
            monkeypatch.setenv(name, value)

    return Env


def server(api):
    return api._client.config.cluster.server


def test_cached_and_direct_inside_the_operator_use_the_proxy_and_the_api_kubeconfig(env):
    env.in_pod()
    env.set("K8S_AUTH_KUBECONFIG", env.kubeconfig("proxy.yaml", "http://127.0.0.1:8888"))
    env.set("PGC_API_KUBECONFIG", env.kubeconfig("api.yaml", "https://api-server:6443"))
    assert server(k8s_client.cached()) == "http://127.0.0.1:8888"
    assert server(k8s_client.direct()) == "https://api-server:6443"


def test_direct_inside_a_pod_without_api_kubeconfig_uses_the_service_account(env):
    env.in_pod()
    env.set("K8S_AUTH_KUBECONFIG", env.kubeconfig("proxy.yaml", "http://127.0.0.1:8888"))
    assert server(k8s_client.cached()) == "http://127.0.0.1:8888"
    direct = k8s_client.direct()
    assert server(direct) == "https://service-account:443"
    assert direct._client.config.namespace == "pgc-system"


def test_cached_inside_a_pod_without_proxy_uses_the_service_account(env):
    env.in_pod()
    assert server(k8s_client.cached()) == "https://service-account:443"


def test_cached_and_direct_by_hand_share_the_users_kubeconfig(env):
    env.set("KUBECONFIG", env.kubeconfig("user.yaml", "https://kind:6443"))
    cached = k8s_client.cached()
    assert server(cached) == "https://kind:6443"
    assert k8s_client.direct() is cached
    assert len(RecordingClient.instances) == 1


def test_cached_and_direct_by_hand_follow_k8s_auth_kubeconfig(env):
    env.set("KUBECONFIG", env.kubeconfig("user.yaml", "https://kind:6443"))
    env.set("K8S_AUTH_KUBECONFIG", env.kubeconfig("auth.yaml", "https://auth:6443"))
    assert server(k8s_client.cached()) == "https://auth:6443"
    assert server(k8s_client.direct()) == "https://auth:6443"


def test_cached_by_hand_reads_the_first_file_of_kubeconfig(env):
    first = env.kubeconfig("first.yaml", "https://first:6443")
    second = env.kubeconfig("second.yaml", "https://second:6443")
    env.set("KUBECONFIG", first + ":" + second)
    assert server(k8s_client.cached()) == "https://first:6443"


def test_cached_without_any_variable_reads_the_home_kubeconfig(env):
    env.kubeconfig("home/.kube/config", "https://home:6443")
    assert server(k8s_client.cached()) == "https://home:6443"
    assert server(k8s_client.direct()) == "https://home:6443"


def test_kubeconfig_and_context_given_win_over_the_environment(env):
    env.in_pod()
    env.set("K8S_AUTH_KUBECONFIG", env.kubeconfig("proxy.yaml", "http://127.0.0.1:8888"))
    env.set("PGC_API_KUBECONFIG", env.kubeconfig("api.yaml", "https://api-server:6443"))
    given = env.kubeconfig("given.yaml", "https://given:6443", contexts=("one", "two"))
    assert server(k8s_client.cached(given)) == "https://given:6443"
    assert server(k8s_client.direct(given)) == "https://given:6443"
    assert server(k8s_client.direct(given, "two")) == "https://given:6443/two"


def test_context_given_picks_it_from_the_environments_kubeconfig(env):
    env.set("KUBECONFIG", env.kubeconfig("user.yaml", "https://kind:6443", contexts=("one", "two")))
    assert server(k8s_client.cached(context="two")) == "https://kind:6443/two"
    assert server(k8s_client.direct(context="two")) == "https://kind:6443/two"


def test_one_client_per_configuration_and_process(env):
    env.set("KUBECONFIG", env.kubeconfig("user.yaml", "https://kind:6443", contexts=("one", "two")))
    assert k8s_client.cached() is k8s_client.cached()
    assert k8s_client.cached(context="two") is k8s_client.direct(context="two")
    assert len(RecordingClient.instances) == 2
    assert RecordingClient.instances[0].timeout == k8s_client.TIMEOUT_SECONDS


def test_missing_kubeconfig_is_an_api_error_naming_it(env):
    missing = str(env.path / "absent.yaml")
    with pytest.raises(ApiError, match="no usable kubeconfig \\(%s\\)" % missing) as raised:
        k8s_client.cached(missing)
    assert raised.value.code == 0


def test_unknown_context_is_an_api_error(env):
    given = env.kubeconfig("given.yaml", "https://given:6443")
    with pytest.raises(ApiError, match="no usable kubeconfig"):
        k8s_client.direct(given, "nope")


def test_missing_lightkube_is_an_api_error_saying_what_to_install(env, monkeypatch):
    monkeypatch.setattr(k8s_client, "HAS_LIGHTKUBE", False)
    monkeypatch.setattr(k8s_client, "LIGHTKUBE_IMPORT_ERROR", ImportError("No module named 'lightkube'"))
    with pytest.raises(ApiError, match="pip install lightkube"):
        k8s_client.direct()


# --- failures --------------------------------------------------------------------------------

def test_get_not_found_returns_none():
    client = StubClient(errors={"get": lightkube_error(404, 'services "main" not found')})
    assert Api(client).get("v1", "Service", "main", "databases") is None
    assert client.calls[0][1][1] == "main" and client.calls[0][2] == {"namespace": "databases"}


def test_get_forbidden_is_an_api_error_with_the_servers_message():
    client = StubClient(errors={"get": lightkube_error(403, 'secrets "main" is forbidden')})
    with pytest.raises(ApiError) as raised:
        Api(client).get("v1", "Secret", "main", "databases")
    assert raised.value.code == 403
    assert str(raised.value) == 'get Secret databases/main: secrets "main" is forbidden'


def test_get_returns_the_object_as_a_dict():
    class Model:
        def to_dict(self):
            return dict(SERVICE)

    client = StubClient(results={"get": Model()})
    api = Api(client)
    assert api.get("v1", "Service", "main", "databases") == SERVICE
    client.results["get"] = dict(SERVICE)
    assert api.get("v1", "Service", "main", "databases") == SERVICE


def test_delete_not_found_returns_false():
    client = StubClient(errors={"delete": lightkube_error(404, 'cronjobs.batch "main-backup" not found')})
    assert Api(client).delete("batch/v1", "CronJob", "main-backup", "databases") is False


def test_delete_existing_returns_true():
    client = StubClient()
    assert Api(client).delete("batch/v1", "CronJob", "main-backup", "databases") is True
    assert [c[0] for c in client.calls] == ["delete"]


def test_delete_conflict_is_an_api_error():
    client = StubClient(errors={"delete": lightkube_error(409, "conflict")})
    with pytest.raises(ApiError) as raised:
        Api(client).delete("batch/v1", "CronJob", "main-backup", "databases")
    assert raised.value.code == 409


def test_unreachable_server_is_an_api_error_without_code():
    client = StubClient(errors={"list": httpx2.ConnectError("connection refused")})
    with pytest.raises(ApiError, match="list Pod in databases \\(a=b\\): the API server is unreachable") as raised:
        Api(client).list("v1", "Pod", "databases", "a=b")
    assert raised.value.code == 0


def test_apply_is_a_forced_server_side_apply_with_the_field_manager():
    client = StubClient(results={"patch": dict(SERVICE)})
    assert Api(client).apply(SERVICE, "pgc-operator") == SERVICE
    method, args, kwargs = client.calls[0]
    assert method == "patch"
    assert args[0]._api_info.plural == "services" and args[1:] == ("main", SERVICE)
    assert kwargs == {"namespace": "databases", "patch_type": PatchType.APPLY, "field_manager": "pgc-operator",
                      "force": True, "dry_run": False}


def test_patch_of_the_status_subresource_is_a_merge_patch():
    client = StubClient(results={"patch": {"status": {"phase": "Running"}}})
    Api(client).patch("postgres.example.com/v1", "PostgresCluster", "main", "databases", {"status": {"phase": "Running"}},
                      subresource="status")
    method, args, kwargs = client.calls[0]
    assert args[0]._api_info.action == "status" and args[0]._api_info.plural == "postgresclusters"
    assert kwargs["patch_type"] == PatchType.MERGE


def test_patch_refuses_an_unknown_patch_type():
    with pytest.raises(ValueError, match="patch_type must be one of"):
        Api(StubClient()).patch("v1", "Service", "main", "databases", {}, patch_type="replace")


def test_list_passes_the_parsed_selector_and_all_namespaces_without_one():
    client = StubClient(results={"list": [dict(SERVICE)]})
    api = Api(client)
    assert api.list("v1", "Service", labels="a=b") == [SERVICE]
    assert client.calls[0][2] == {"namespace": "*", "labels": {"a": "b"}}
    api.list("v1", "Service", "databases")
    assert client.calls[1][2] == {"namespace": "databases", "labels": None}


# --- kinds and resources ---------------------------------------------------------------------

@pytest.mark.parametrize("api_version, kind", [
    ("v1", "ConfigMap"), ("v1", "Namespace"), ("apps/v1", "StatefulSet"), ("batch/v1", "CronJob"),
    ("policy/v1", "PodDisruptionBudget"), ("postgres.example.com/v1", "PostgresCluster"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
])
def test_known_resources_need_no_discovery(api_version, kind):
    discovery = Discovery(error=AssertionError("no discovery expected"))
    resource = Api(StubClient(discovery=discovery))._resource(api_version, kind)
    plural, namespaced = KNOWN_RESOURCES[kind]
    assert resource._api_info.plural == plural
    assert resource._api_info.resource.version == api_version.rpartition("/")[2]
    assert resource._api_info.resource.group == api_version.rpartition("/")[0]
    assert hasattr(resource, "Status")
    assert issubclass(resource, NamespacedResource) is namespaced
    assert discovery.paths == []


@pytest.mark.parametrize("api_version, kind", [("apps/v1", "StatefulSet"), ("v1", "ConfigMap"), ("v1", "Secret")])
def test_two_apis_in_one_process_resolve_the_same_kind(api_version, kind):
    # Inside the operator cached() and direct() are two Api objects, and a task may reach the same
    # kind through both (ConfigMaps are applied through one and listed through the other).
    cached, direct = Api(StubClient()), Api(StubClient())
    assert cached._resource(api_version, kind)._api_info.plural == KNOWN_RESOURCES[kind][0]
    assert direct._resource(api_version, kind)._api_info.plural == KNOWN_RESOURCES[kind][0]
    assert direct.get(api_version, kind, "main", "databases") == {}


def test_unknown_kind_is_found_through_one_discovery_request():
    discovery = Discovery({"/apis/example.com/v1": (200, {"resources": [
        {"name": "widgets/status", "kind": "Widget", "namespaced": True},
        {"name": "widgets", "kind": "Widget", "namespaced": True},
        {"name": "gizmos", "kind": "Gizmo", "namespaced": False},
    ]})})
    api = Api(StubClient(discovery=discovery))
    widget = api._resource("example.com/v1", "Widget")
    assert widget._api_info.plural == "widgets"
    assert api._resource("example.com/v1", "Widget") is widget
    assert discovery.paths == ["/apis/example.com/v1"]
    gizmo = api._resource("example.com/v1", "Gizmo")
    assert gizmo._api_info.plural == "gizmos"
    assert issubclass(widget, NamespacedResource) and not issubclass(gizmo, NamespacedResource)


def test_discovery_of_the_core_group_asks_api_not_apis():
    discovery = Discovery({"/api/v1": (200, {"resources": [{"name": "endpoints", "kind": "Endpoints", "namespaced": True}]})})
    assert Api(StubClient(discovery=discovery))._resource("v1", "Endpoints")._api_info.plural == "endpoints"
    assert discovery.paths == ["/api/v1"]


def test_kind_not_served_is_a_404_so_get_returns_none_and_apply_fails():
    discovery = Discovery({"/apis/example.com/v1": (200, {"resources": []})})
    client = StubClient(discovery=discovery)
    api = Api(client)
    assert api.get("example.com/v1", "Sprocket", "main", "databases") is None
    with pytest.raises(ApiError, match="Sprocket is not served as example.com/v1") as raised:
        api.apply({"apiVersion": "example.com/v1", "kind": "Sprocket", "metadata": {"name": "main"}}, "pgc-operator")
    assert raised.value.code == 404
    assert client.calls == []


def test_resources_of_a_group_version_not_served_are_empty():
    assert Api(StubClient()).resources("monitoring.coreos.com/v1") == []


def test_resources_failing_discovery_is_an_api_error():
    discovery = Discovery({"/apis/monitoring.coreos.com/v1": (503, {})})
    with pytest.raises(ApiError, match="discovery of monitoring.coreos.com/v1: HTTP 503") as raised:
        Api(StubClient(discovery=discovery)).resources("monitoring.coreos.com/v1")
    assert raised.value.code == 503


def test_resources_unreachable_is_an_api_error():
    discovery = Discovery(error=httpx2.ConnectError("connection refused"))
    with pytest.raises(ApiError, match="the API server is unreachable"):
        Api(StubClient(discovery=discovery)).resources("monitoring.coreos.com/v1")


def test_serves_needs_every_kind():
    discovery = Discovery({"/apis/monitoring.coreos.com/v1": (200, {"resources": [
        {"name": "podmonitors", "kind": "PodMonitor", "namespaced": True},
        {"name": "prometheusrules", "kind": "PrometheusRule", "namespaced": True},
    ]})})
    api = Api(StubClient(discovery=discovery))
    assert api.serves("monitoring.coreos.com/v1", ["PodMonitor", "PrometheusRule"]) is True
    assert api.serves("monitoring.coreos.com/v1", ["PodMonitor", "ServiceMonitor"]) is False
    assert api.serves("example.com/v1", ["Widget"]) is False


# --- on the wire, through lightkube ----------------------------------------------------------

@pytest.fixture
def wire():
    """An Api over a real lightkube Client whose requests are answered in memory."""
    requests = []

    def answer(request):
        requests.append(request)
        if request.url.path.endswith("/missing"):
            return httpx2.Response(404, json={"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                              "message": "not found", "reason": "NotFound"})
        if request.method == "GET" and request.url.path.endswith("s"):
            return httpx2.Response(200, json={"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [SERVICE]})
        body = json.loads(request.content) if request.content else SERVICE
        return httpx2.Response(200, json=body)

    config = KubeConfig.from_one(cluster=Cluster(server="https://k8s.example:6443"), user=User(token="t"),
                                 namespace="default").get()
    api = Api(Client(config=config, transport=httpx2.MockTransport(answer)))
    api.requests = requests
    return api


def test_wire_apply_sends_an_apply_patch_with_force_and_field_manager(wire):
    wire.apply(SERVICE, "pgc-operator")
    request = wire.requests[-1]
    assert request.method == "PATCH"
    assert request.url.path == "/api/v1/namespaces/databases/services/main"
    assert dict(request.url.params) == {"force": "true", "fieldManager": "pgc-operator"}
    assert request.headers["content-type"] == "application/apply-patch+yaml"
    assert json.loads(request.content) == SERVICE


def test_wire_status_patch_goes_to_the_subresource_as_merge_patch(wire):
    wire.patch("postgres.example.com/v1", "PostgresCluster", "main", "databases", {"status": {"phase": "Running"}},
               subresource="status")
    request = wire.requests[-1]
    assert (request.method, request.url.path) == \
        ("PATCH", "/apis/postgres.example.com/v1/namespaces/databases/postgresclusters/main/status")
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert json.loads(request.content) == {"status": {"phase": "Running"}}


def test_wire_list_sends_the_label_selector(wire):
    assert wire.list("v1", "Pod", "databases", "postgres.example.com/cluster=main,postgres.example.com/job") == [SERVICE]
    request = wire.requests[-1]
    assert request.url.path == "/api/v1/namespaces/databases/pods"
    assert request.url.params["labelSelector"] == "postgres.example.com/cluster=main,postgres.example.com/job"


def test_wire_create_posts_an_event_with_a_generated_name(wire):
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "main.", "namespace": "databases"},
             "reason": "Created"}
    wire.create(event, "pgc-operator")
    request = wire.requests[-1]
    assert (request.method, request.url.path) == ("POST", "/api/v1/namespaces/databases/events")
    assert json.loads(request.content) == event


def test_wire_not_found_is_none_on_get_and_false_on_delete(wire):
    assert wire.get("v1", "Service", "missing", "databases") is None
    assert wire.delete("v1", "Service", "missing", "databases") is False
    assert [r.method for r in wire.requests] == ["GET", "DELETE"]
