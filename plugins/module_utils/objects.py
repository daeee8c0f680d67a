# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whether a live Kubernetes object already is what the collection would apply. Nothing here does I/O.

An object is applied (server-side) only when it differs, so that a reconcile of an unchanged
cluster writes nothing. Two checks, both needed:

- drift: every field the collection sets has the same value live (a Service port or an image
  changed by hand is put back). The API server adds defaults and other managers add fields, so
  the live object may hold more; quantities and ports may come back in another spelling.
- removal: a field the collection set before and no longer sets is still live, and only an apply
  removes it. The hash of the whole applied object, kept in an annotation, changes then.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal, InvalidOperation

APPLIED_HASH_ANNOTATION = "postgres.example.com/applied-hash"
# Metadata the collection sets; the rest (uid, resourceVersion, managedFields...) is the server's.
COMPARED_METADATA = ("labels", "annotations", "ownerReferences")
# Keys that identify an element of a list of objects, as the API's merge keys do.
MERGE_KEYS = ("name", "containerPort", "port", "mountPath", "devicePath", "type", "key")

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i?|[mun]|k)?$")
_SUFFIXES = {"": 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
             "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
             "m": Decimal("1e-3"), "u": Decimal("1e-6"), "n": Decimal("1e-9")}


def applied_hash(obj):
    """A short, stable digest of an object as rendered (without its own hash annotation)."""
    body = json.loads(json.dumps(obj, sort_keys=True, default=str))
    meta = body.get("metadata") or {}
    (meta.get("annotations") or {}).pop(APPLIED_HASH_ANNOTATION, None)
    if "annotations" in meta and not meta["annotations"]:
        del meta["annotations"]
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def with_applied_hash(obj):
    """A copy of ``obj`` whose annotations record its hash."""
    digest = applied_hash(obj)
    obj = json.loads(json.dumps(obj, default=str))
    meta = obj.setdefault("metadata", {})
    meta["annotations"] = dict(meta.get("annotations") or {})
    meta["annotations"][APPLIED_HASH_ANNOTATION] = digest
    return obj


def _quantity(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    number, suffix = match.groups()
    try:
        if suffix and suffix[0] in "eE":
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIXES[suffix or ""]
    except (InvalidOperation, KeyError):
        return None


def _same_scalar(want, have):
    if want == have and type(want) is type(have):
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        return False
    if want is None or have is None:
        return False
    if str(want) == str(have):
        return True  # 5432 and "5432": the API server keeps an int-or-string as given, YAML may not
    a, b = _quantity(want), _quantity(have)
    return a is not None and a == b


def _empty(value):
    # The API server leaves out empty strings, maps and lists (omitempty).
    return value is None or value == {} or value == [] or value == ""


def _element_key(item):
    if isinstance(item, dict):
        for key in MERGE_KEYS:
            if key in item and not isinstance(item[key], (dict, list)):
                return key, item[key]
    return None


def _list_drift(want, have, path):
    if len(want) == len(have):
        found = []
        for i, (w, h) in enumerate(zip(want, have)):
            found.extend(drift(w, h, "%s[%d]" % (path, i)))
        return found
    # Another manager added elements (SSA keeps them): match ours by their merge key.
    keys = [_element_key(w) for w in want]
    if not all(keys) or len(want) > len(have):
        return [path]
    live = {_element_key(h): h for h in have if _element_key(h)}
    found = []
    for key, w in zip(keys, want):
        if key not in live:
            return [path]
        found.extend(drift(w, live[key], "%s[%s=%s]" % (path, key[0], key[1])))
    return found


def drift(want, have, path=""):
    """The paths where ``have`` (live) lacks or contradicts a value of ``want`` (rendered)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [] if _empty(want) and _empty(have) else [path or "."]
        found = []
        for key, value in want.items():
            sub = "%s.%s" % (path, key) if path else key
            if key not in have or have[key] is None:
                if not _empty(value):
                    found.append(sub)
                continue
            found.extend(drift(value, have[key], sub))
        return found
    if isinstance(want, list):
        if not isinstance(have, list):
            return [] if _empty(want) and _empty(have) else [path]
        return _list_drift(want, have, path)
    return [] if _same_scalar(want, have) else [path]


def comparable(obj):
    """What of an object the collection owns: its body and the metadata it sets, never status."""
    meta = obj.get("metadata") or {}
    out = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    out["metadata"] = {k: meta[k] for k in COMPARED_METADATA if k in meta}
    return out


def differences(desired, live):
    """Why ``live`` must be applied again to become ``desired`` (which carries its hash): a list of
    reasons, empty when nothing differs. A missing object is one reason."""
    if live is None:
        return ["missing"]
    reasons = []
    want_hash = ((desired.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    have_hash = ((live.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    if want_hash != have_hash:
        reasons.append("rendered object changed")
    reasons.extend("%s differs" % p for p in drift(comparable(desired), comparable(live)))
    return reasons


def identity(obj):
    """``Kind namespace/name``: how an object is named in messages and diffs."""
    meta = obj.get("metadata") or {}
    where = "%s/%s" % (meta["namespace"], meta.get("name")) if meta.get("namespace") else meta.get("name")
    return "%s %s" % (obj.get("kind"), where)


def pruned_like(live, desired):
    """The part of ``live`` that ``desired`` speaks of, for a readable diff."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {k: pruned_like(live[k], v) for k, v in desired.items() if k in live}
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        return [pruned_like(h, w) for w, h in zip(desired, live)]
    return live


def redacted(obj):
    """``obj`` with the values of a Secret's data replaced, for diffs and messages."""
    if not isinstance(obj, dict) or obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = {k: "<redacted>" for k in out[key]}
    return out


def reported(obj):
    """What a step reports of a live object: its identity, replica count and status, not its body;
    for a StatefulSet also the size its data claims are made with (``spec.storage``) and its update
    strategy's type (``spec.updateStrategy``)."""
    meta = obj.get("metadata") or {}
    out = {k: obj[k] for k in ("apiVersion", "kind", "status") if k in obj}
    out["metadata"] = {k: meta[k] for k in ("name", "namespace", "generation", "uid") if k in meta}
    out["spec"] = {"replicas": (obj.get("spec") or {}).get("replicas")}
    size = claim_template_size(obj) if obj.get("kind") == "StatefulSet" else None
    if size:
        out["spec"]["storage"] = size
    strategy = ((obj.get("spec") or {}).get("updateStrategy") or {}).get("type")
    if strategy and obj.get("kind") == "StatefulSet":
        # Whether the operator replaces its pods (OnDelete), or the StatefulSet controller would.
        out["spec"]["updateStrategy"] = strategy
    return out


def claim_template_size(statefulset, claim="data"):
    """The storage request of a StatefulSet's claim template ``claim``, or None."""
    for template in ((statefulset or {}).get("spec") or {}).get("volumeClaimTemplates") or []:
        if (template.get("metadata") or {}).get("name") == claim:
            return ((template.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
    return None


def larger(a, b):
    """Whether the quantity ``a`` is larger than ``b`` (False when either is not a quantity)."""
    qa, qb = _quantity(a), _quantity(b)
    return qa is not None and qb is not None and qa > qb
