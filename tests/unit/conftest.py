# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Make ``ansible_collections.postgres.cluster`` importable from this checkout.

The plugins import each other by their collection path, as Ansible does. A
checkout is not laid out as ``ansible_collections/postgres/cluster``, so at
import time a temporary directory holding that path as a symlink to the
repository root goes to the front of ``sys.path``. ``ansible_collections`` stays
a namespace package (neither root has an ``__init__.py``), so the collections
bundled in site-packages, kubernetes.core among them, remain importable.
Under ansible-test, which already provides the collection, nothing is done.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTION_PACKAGE = "ansible_collections.postgres.cluster"


def _collection_location():
    try:
        spec = importlib.util.find_spec(COLLECTION_PACKAGE)
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.realpath(list(spec.submodule_search_locations)[0])


def _forget_collection_modules():
    for module_name in list(sys.modules):
        if module_name == "ansible_collections.postgres" or module_name.startswith("ansible_collections.postgres."):
            del sys.modules[module_name]


def _remove_tree(root, link):
    if os.path.islink(link):
        os.unlink(link)
    shutil.rmtree(root, ignore_errors=True)


def _install_collection_root():
    for root in sys.path:
        if os.path.isfile(os.path.join(root or ".", "ansible_collections", "__init__.py")):
            raise RuntimeError("{0} makes ansible_collections a regular package; the collection cannot be added beside it".format(root))
    root = tempfile.mkdtemp(prefix="pgc-unit-")
    namespace_dir = os.path.join(root, "ansible_collections", "postgres")
    os.makedirs(namespace_dir)
    link = os.path.join(namespace_dir, "cluster")
    os.symlink(REPO_ROOT, link)
    atexit.register(_remove_tree, root, link)
    sys.path.insert(0, root)
    _forget_collection_modules()
    importlib.invalidate_caches()


if _collection_location() != os.path.realpath(REPO_ROOT):
    _install_collection_root()
