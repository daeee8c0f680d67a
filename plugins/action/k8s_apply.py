# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Render objects from templates, compare each with the live one, and server-side apply only those
that differ; delete the objects named in ``absent``. Documented in plugins/modules/k8s_apply.py."""

from __future__ import annotations

import io
import os

import yaml
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.template import AnsibleEnvironment
from ansible_collections.postgres.cluster.plugins.module_utils import k8s_client, objects
from ansible_collections.postgres.cluster.plugins.plugin_utils.k8s_action import K8sAction

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
def _apply(api, obj, live, field_manager):
    """Server-side apply; when the result would be invalid because a hand edit re-keyed a list item
    that the collection sets (a Service port changed with kubectl patch, say: the old item is ours,
    the new one another manager's), a JSON merge patch puts the collection's lists back whole."""
    try:
        return api.apply(obj, field_manager, force=True)
    except k8s_client.ApiError as e:
        if e.code != 422 or live is None:
            raise
        refused = e
    meta = obj["metadata"]
    try:
        api.patch(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), obj, patch_type="merge",
                  field_manager=field_manager)
    except k8s_client.ApiError:
        raise refused  # the change itself is refused (an immutable field): say why the apply was
    return api.apply(obj, field_manager, force=True)


def _diff(desired, live):
    """Before and after of what the collection sets, with a Secret's values left out."""
    want = objects.redacted(objects.comparable(desired))
    have = objects.redacted(objects.pruned_like(objects.comparable(live), want)) if live else None
    return {"before_header": objects.identity(desired), "after_header": objects.identity(desired),
            "before": yaml.safe_dump(have) if have else "", "after": yaml.safe_dump(want)}


class ActionModule(K8sAction):
    ARGS = {
        "template": {"type": "list", "elements": "str", "default": []},
        "definition": {"type": "list", "elements": "dict", "default": []},
        "absent": {"type": "list", "elements": "dict", "default": []},
        "field_manager": {"type": "str", "required": True},
        "report_kinds": {"type": "list", "elements": "str", "default": []},
        # cached: the runtime's proxy, for owned objects (reading them there sets up its watch);
        # direct: the API server, for what the proxy must not cache or watch (Secrets).
        "api": {"type": "str", "choices": ["cached", "direct"], "default": "cached"},
        # Create what is missing, never change what exists (generated passwords, certificates).
        "create_only": {"type": "bool", "default": False},
        # A write refused because the object changed since it was read (its resourceVersion): not a
        # failure, reported as "conflict".
        "skip_conflicts": {"type": "bool", "default": False},
    }

    def _render(self, name, task_vars):
        try:
            path = self._find_needle("templates", name)
        except AnsibleError as e:
            raise AnsibleActionFail("template %s: %s" % (name, e))
        with open(path, "rb") as f:
            source = to_text(f.read(), errors="surrogate_or_strict")
        searchpath = []
        for p in list(task_vars.get("ansible_search_path", [])) + [os.path.dirname(path)]:
            searchpath.extend([os.path.join(p, "templates"), p])
        templar = self._templar.copy_with_new_env(environment_class=AnsibleEnvironment, searchpath=searchpath,
                                                  available_variables=task_vars)
        try:
            text = templar.do_template(source, preserve_trailing_newlines=True, escape_backslashes=False)
            # Through a stream: the C loader takes no str subclass, and a lookup makes the text unsafe.
            return [d for d in yaml.load_all(io.StringIO(text), Loader=_Loader) if d]
        except Exception as e:
            raise AnsibleActionFail("template %s: %s: %s" % (name, type(e).__name__, to_text(e)))

    def _api_for(self, args, kind):
        if args["api"] == "direct" or kind in k8s_client.UNCACHED_KINDS:
            return self.direct_api(args)
        return self.cached_api(args)

    def act(self, args, task_vars):
        desired = []
        for name in args["template"]:
            desired.extend(self._render(name, task_vars))
        desired.extend(args["definition"])
        check = bool(self._task.check_mode)
        report, diffs, reported = [], [], {}
        for obj in desired:
            if not args["create_only"]:
                obj = objects.with_applied_hash(obj)
            meta = obj["metadata"]
            api = self._api_for(args, obj["kind"])
            live = api.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
            reasons = ["missing"] if live is None else [] if args["create_only"] else objects.differences(obj, live)
            entry = {"object": objects.identity(obj),
                     "action": "unchanged" if not reasons else ("created" if live is None else "configured")}
            if reasons:
                entry["reasons"] = reasons[:10]
                if self._task.diff:
                    diffs.append(_diff(obj, live))
                if not check:
                    try:
                        live = api.create(obj, args["field_manager"]) if args["create_only"] else \
                            _apply(api, obj, live, args["field_manager"])
                    except k8s_client.ApiError as e:
                        if e.code != 409 or not args["skip_conflicts"]:
                            raise
                        entry["action"] = "conflict"
            report.append(entry)
            if obj["kind"] in args["report_kinds"] and live is not None:
                reported.setdefault(obj["kind"], objects.reported(live))
        for ref in args["absent"]:
            missing = [k for k in ("apiVersion", "kind", "name") if not ref.get(k)]
            if missing:
                raise AnsibleActionFail("absent: %s lacks %s" % (ref, ", ".join(missing)))
            identity = objects.identity({"kind": ref["kind"], "metadata": ref})
            api = self._api_for(args, ref["kind"])
            exists = api.get(ref["apiVersion"], ref["kind"], ref["name"], ref.get("namespace")) is not None
            if exists:
                if not check:
                    api.delete(ref["apiVersion"], ref["kind"], ref["name"], ref.get("namespace"))
                report.append({"object": identity, "action": "deleted"})
                if self._task.diff:
                    diffs.append({"before_header": identity, "after_header": identity, "before": "present\n",
                                  "after": "absent\n"})
        result = {"changed": any(e["action"] not in ("unchanged", "conflict") for e in report), "objects": report,
                  "resources": reported}
        if diffs:
            result["diff"] = diffs
        return result
