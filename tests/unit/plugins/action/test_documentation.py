# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every action plugin is documented by the module stub of its name, and the documentation says
what the plugin accepts: the same options, types, defaults and choices, no more and no fewer."""

from __future__ import annotations

import ast
import importlib
import os

import pytest
import yaml
from ansible.utils.plugin_docs import merge_fragment

from ansible_collections.postgres.cluster.plugins.plugin_utils.k8s_action import CONNECTION_ARGS, K8sAction

COLLECTION = "postgres.cluster"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ACTION_DIR = os.path.join(REPO_ROOT, "plugins", "action")
MODULE_DIR = os.path.join(REPO_ROOT, "plugins", "modules")
ACTIONS = sorted(f[:-3] for f in os.listdir(ACTION_DIR) if f.endswith(".py") and not f.startswith("_"))
API_FRAGMENT = COLLECTION + ".api"
COMPARED = ("type", "required", "default", "choices", "elements")


def constants(path):
    """The string constants of a Python file, read without running it."""
    with open(path) as f:
        tree = ast.parse(f.read())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def stub(name):
    return constants(os.path.join(MODULE_DIR, name + ".py"))


def merged_documentation(name):
    """The stub's DOCUMENTATION with the collection's fragments merged the way ansible-doc merges them
    (the installed collection's ansible-doc is checked in tests/collection)."""
    doc = yaml.safe_load(stub(name)["DOCUMENTATION"])
    fragments = constants(os.path.join(REPO_ROOT, "plugins", "doc_fragments", "api.py"))
    for ref in doc.get("extends_documentation_fragment", []):
        if ref == API_FRAGMENT or ref.startswith(API_FRAGMENT + "."):
            fragment = yaml.safe_load(fragments[ref[len(API_FRAGMENT) + 1:].upper() or "DOCUMENTATION"])
            for key in ("options", "attributes"):
                merge_fragment(doc.setdefault(key, {}), fragment.get(key, {}))
    return doc


def action_class(name):
    return importlib.import_module("ansible_collections.%s.plugins.action.%s" % (COLLECTION, name)).ActionModule


def api_fragment_options():
    return yaml.safe_load(constants(os.path.join(REPO_ROOT, "plugins", "doc_fragments", "api.py"))["DOCUMENTATION"])["options"]


def spec_of(option):
    """An option's documentation as an argument spec: the keys an argument spec would have."""
    spec = {k: option[k] for k in COMPARED if k in option}
    if not spec.get("required"):
        spec.pop("required", None)
    if "suboptions" in option:
        spec["options"] = {k: spec_of(v) for k, v in option["suboptions"].items()}
    return spec


def normalized(argument_spec):
    out = {}
    for name, spec in argument_spec.items():
        spec = dict(spec)
        if not spec.get("required"):
            spec.pop("required", None)
        if "options" in spec:
            spec["options"] = normalized(spec["options"])
        out[name] = spec
    return out


def test_every_action_plugin_is_listed():
    assert ACTIONS == ["certificates", "cluster_observe", "k8s_apply", "k8s_event", "k8s_read", "k8s_status", "requeue_after", "storage_expand"]


@pytest.mark.parametrize("name", ACTIONS)
def test_action_plugin_has_a_documentation_stub_of_its_name(name):
    documentation = yaml.safe_load(stub(name)["DOCUMENTATION"])
    assert documentation["module"] == name
    assert documentation["short_description"] and documentation["description"]


@pytest.mark.parametrize("name", [n for n in ACTIONS if issubclass(action_class(n), K8sAction)])
def test_action_plugin_options_equal_its_args_and_the_api_fragment(name):
    documentation = yaml.safe_load(stub(name)["DOCUMENTATION"])
    fragment = api_fragment_options()
    assert API_FRAGMENT in documentation["extends_documentation_fragment"]
    assert {k: spec_of(v) for k, v in fragment.items()} == normalized(CONNECTION_ARGS)
    options = {k: v for k, v in merged_documentation(name)["options"].items() if k not in fragment}
    assert {k: spec_of(v) for k, v in options.items()} == normalized(action_class(name).ARGS)


def test_requeue_after_documents_its_one_option_without_the_api_fragment():
    documentation = yaml.safe_load(stub("requeue_after")["DOCUMENTATION"])
    assert {k: spec_of(v) for k, v in documentation["options"].items()} == {"period": {"type": "str", "required": True}}
    assert API_FRAGMENT not in documentation.get("extends_documentation_fragment", [])
    assert not issubclass(action_class("requeue_after"), K8sAction)


@pytest.mark.parametrize("name", ACTIONS)
def test_action_plugin_examples_use_documented_options(name):
    options = set(merged_documentation(name)["options"])
    examples = yaml.safe_load(stub(name)["EXAMPLES"])
    assert examples
    for task in examples:
        # requeue_after is called by its short name: the runtime matches the action as written.
        action = name if name == "requeue_after" else "%s.%s" % (COLLECTION, name)
        assert action in task, task["name"]
        assert set(task[action]) <= options, task["name"]


@pytest.mark.parametrize("name", ACTIONS)
def test_action_plugin_return_is_documented(name):
    returned = yaml.safe_load(stub(name)["RETURN"])
    assert returned and all("description" in v and "returned" in v for v in returned.values())


def test_k8s_status_return_names_what_the_plugin_returns():
    assert {"changed", "patch", "status", "events"} <= set(yaml.safe_load(stub("k8s_status")["RETURN"]))


def test_k8s_apply_return_names_what_the_plugin_returns():
    assert {"objects", "resources"} <= set(yaml.safe_load(stub("k8s_apply")["RETURN"]))


@pytest.mark.parametrize("name", ["k8s_apply", "k8s_status"])
def test_plugins_with_diff_document_it(name):
    attributes = merged_documentation(name)["attributes"]
    assert attributes["check_mode"]["support"] == "full"
    assert attributes["diff_mode"]["support"] == "full"
