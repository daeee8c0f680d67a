# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run the collection's action plugins as ansible-playbook's task executor does, against an
in-memory API server.

An action is built from a real Task (its args, check mode and diff), PlayContext, DataLoader,
Templar and the shared plugin loaders, and run with the task's variables; a failure it raises
becomes the failed result the executor would record. ``K8sAction.cached_api`` and ``direct_api``
return two views of one ``FakeCluster``, each recording its own calls, so that a test can say
which way to the API server a request took.
"""

from __future__ import annotations

import copy
import importlib
import os

import pytest
from ansible.errors import AnsibleActionFail, AnsibleActionSkip
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.block import Block
from ansible.playbook.play import Play
from ansible.playbook.play_context import PlayContext
from ansible.playbook.role import Role
from ansible.playbook.role.include import RoleInclude
from ansible.playbook.task import Task
from ansible.plugins import loader as plugin_loader
from ansible.template import Templar
from ansible.vars.manager import VariableManager

from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import ApiError, selector
from ansible_collections.postgres.cluster.plugins.plugin_utils.k8s_action import K8sAction

COLLECTION = "postgres.cluster"
WRITES = ("apply", "create", "patch", "delete")


def apply_merge_patch(target, patch):
    """RFC 7386, written independently of the plugins so that their patches are checked, not echoed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _key(api_version, kind, name, namespace):
    return (api_version, kind, namespace or None, name)


def _matches(obj, labels):
    have = (obj.get("metadata") or {}).get("labels") or {}
    for key, value in selector(labels).items():
        if key not in have or (isinstance(value, str) and have[key] != value):
            return False
    return True


class FakeCluster:
    """The objects of an API server, by (apiVersion, kind, namespace, name). What is applied is
    stored as the server would return it: with a uid, a resourceVersion that moves on each write,
    and the status it already had."""

    def __init__(self):
        self.objects = {}
        self.served = {}
        self.version = 100
        self.generated = 0

    def add(self, *objs):
        for obj in objs:
            meta = obj["metadata"]
            self.objects[_key(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))] = copy.deepcopy(obj)

    def find(self, api_version, kind, name, namespace=None):
        obj = self.objects.get(_key(api_version, kind, name, namespace))
        return copy.deepcopy(obj) if obj is not None else None

    def of_kind(self, kind):
        return [copy.deepcopy(o) for k, o in self.objects.items() if k[1] == kind]

    def store(self, obj):
        self.version += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.version)
        meta.setdefault("uid", "uid-%s-%s" % (obj["kind"].lower(), meta["name"]))
        self.add(obj)
        return copy.deepcopy(obj)


class FakeApi:
    """What the plugins use of module_utils.k8s_client.Api, over a FakeCluster. ``errors`` maps a
    method name to the ApiError it raises."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.calls = []
        self.errors = {}

    def _record(self, method, **details):
        self.calls.append((method, details))
        if method in self.errors:
            raise self.errors[method]

    @property
    def methods(self):
        return [method for method, _ in self.calls]

    def writes(self, method=None):
        return [d for m, d in self.calls if (m == method if method else m in WRITES)]

    def get(self, api_version, kind, name, namespace=None):
        self._record("get", api_version=api_version, kind=kind, name=name, namespace=namespace)
        return self.cluster.find(api_version, kind, name, namespace)

    def list(self, api_version, kind, namespace=None, labels=""):
        self._record("list", api_version=api_version, kind=kind, namespace=namespace, labels=labels)
        return [o for k, o in sorted(self.cluster.objects.items(), key=lambda i: str(i[0]))
                if k[:2] == (api_version, kind) and (not namespace or k[2] == namespace) and _matches(o, labels)]

    def apply(self, obj, field_manager, force=True, dry_run=False):
        self._record("apply", obj=copy.deepcopy(obj), field_manager=field_manager, force=force, dry_run=dry_run)
        meta = obj["metadata"]
        live = self.cluster.find(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")) or {}
        stored = copy.deepcopy(obj)
        stored["metadata"]["uid"] = (live.get("metadata") or {}).get("uid") or "uid-%s" % meta["name"]
        if "status" in live:
            stored["status"] = live["status"]
        return self.cluster.store(stored)

    def create(self, obj, field_manager=None, dry_run=False):
        self._record("create", obj=copy.deepcopy(obj), field_manager=field_manager, dry_run=dry_run)
        stored = copy.deepcopy(obj)
        meta = stored["metadata"]
        if not meta.get("name"):
            self.cluster.generated += 1
            meta["name"] = "%s%05d" % (meta["generateName"], self.cluster.generated)
        if self.cluster.find(stored["apiVersion"], stored["kind"], meta["name"], meta.get("namespace")) is not None:
            raise ApiError("create %s: already exists" % meta["name"], 409)
        return self.cluster.store(stored)

    def patch(self, api_version, kind, name, namespace, body, patch_type="merge", subresource=None,
              field_manager=None, dry_run=False):
        self._record("patch", api_version=api_version, kind=kind, name=name, namespace=namespace,
                     body=copy.deepcopy(body), patch_type=patch_type, subresource=subresource)
        live = self.cluster.find(api_version, kind, name, namespace)
        if live is None:
            raise ApiError("patch %s %s/%s: not found" % (kind, namespace, name), 404)
        if subresource == "status":
            body = {"status": body.get("status")}
        return self.cluster.store(apply_merge_patch(live, body))

    def delete(self, api_version, kind, name, namespace=None, dry_run=False, orphan=False):
        self._record("delete", api_version=api_version, kind=kind, name=name, namespace=namespace, orphan=orphan)
        return self.cluster.objects.pop(_key(api_version, kind, name, namespace), None) is not None

    def resources(self, api_version):
        self._record("resources", api_version=api_version)
        return [{"kind": k, "name": k.lower() + "s", "namespaced": True} for k in self.cluster.served.get(api_version, ())]

    def serves(self, api_version, kinds):
        self._record("serves", api_version=api_version, kinds=list(kinds))
        return set(kinds) <= set(self.cluster.served.get(api_version, ()))


@pytest.fixture
def cluster():
    return FakeCluster()


@pytest.fixture
def fake_api(cluster):
    """Return a function that makes a FakeApi over ``cluster``."""
    return lambda name: FakeApi(cluster, name)


@pytest.fixture
def apis(monkeypatch, cluster):
    """The two ways to the API server the plugins take, as FakeApis over ``cluster``; each call
    to cached_api/direct_api records the task arguments it was given."""

    class Apis:
        def __init__(self):
            self.cached = FakeApi(cluster, "cached")
            self.direct = FakeApi(cluster, "direct")
            self.asked = []

        @property
        def writes(self):
            return self.cached.writes() + self.direct.writes()

    views = Apis()

    def cached_api(self, args):
        views.asked.append(("cached", {k: args.get(k) for k in ("kubeconfig", "context")}))
        return views.cached

    def direct_api(self, args):
        views.asked.append(("direct", {k: args.get(k) for k in ("kubeconfig", "context")}))
        return views.direct

    monkeypatch.setattr(K8sAction, "cached_api", cached_api)
    monkeypatch.setattr(K8sAction, "direct_api", direct_api)
    return views


@pytest.fixture
def make_role(tmp_path):
    """Return a function that writes a role ``demo`` under ``tmp_path/roles`` holding ``templates``
    (file name -> text) and loads it as a play loads a role."""
    return lambda templates: _role(tmp_path, templates)


def _role(tmp_path, templates):
    root = tmp_path / "roles" / "demo"
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "main.yml").write_text("[]\n")
    (root / "templates").mkdir()
    for name, text in templates.items():
        (root / "templates" / name).write_text(text)
    loader = DataLoader()
    loader.set_basedir(str(tmp_path))
    variable_manager = VariableManager(loader=loader)
    play = Play.load({"hosts": "localhost", "gather_facts": False}, loader=loader, variable_manager=variable_manager)
    include = RoleInclude.load("demo", play=play, current_role_path=str(tmp_path / "roles"),
                               variable_manager=variable_manager, loader=loader)
    return Role.load(include, play=play)


@pytest.fixture
def run_action():
    """Return a function that runs the action plugin ``name`` with ``args``, as a task (of
    ``role`` when given) with ``task_vars``; it returns the task's result."""

    def run(name, args, task_vars=None, check_mode=False, diff=False, role=None):
        module = importlib.import_module("ansible_collections.postgres.cluster.plugins.action." + name)
        task_vars = dict(task_vars or {})
        if role is not None:
            loader, play = role._loader, role._play
            block = Block(play=play, role=role)
            block._dep_chain = [role]  # as Role.compile() gives a role's blocks
            task = Task(block=block, role=role)
        else:
            loader, play, task = DataLoader(), None, Task()
        task.action = "%s.%s" % (COLLECTION, name)
        task.args = copy.deepcopy(args)
        task.check_mode = check_mode
        task.diff = diff
        play_context = PlayContext(play=play)
        connection = plugin_loader.connection_loader.get("local", play_context, os.devnull)
        templar = Templar(loader=loader, variables=task_vars)
        action = module.ActionModule(task, connection, play_context, loader, templar, plugin_loader)
        action._load_name = task.action  # what action_loader.get() sets on the plugins it loads
        try:
            return action.run(task_vars=task_vars)
        except (AnsibleActionFail, AnsibleActionSkip) as e:
            return e.result  # what ansible-playbook's task executor records
        finally:
            action.cleanup()

    return run
