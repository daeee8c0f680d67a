"""The Galaxy tarball builds, installs, and its roles, playbooks and plugins resolve by FQCN."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())


def run(*args, env=None, cwd=None):
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd)
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run("ansible-galaxy", "collection", "build", str(REPO), "--output-path", str(out))
    (path,) = out.glob("postgres-cluster-*.tar.gz")
    assert path.name == f"postgres-cluster-{GALAXY['version']}.tar.gz"
    return path


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """A collections path holding only the installed tarball (dependencies come from the venv)."""
    root = tmp_path_factory.mktemp("collections")
    # Only this path is searched: a copy installed elsewhere on the machine must not stand in for it.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(root), ANSIBLE_NOCOLOR="1")
    run("ansible-galaxy", "collection", "install", str(tarball), "-p", str(root), "--no-deps", "--force", env=env)
    assert (root / "ansible_collections/postgres/cluster/MANIFEST.json").is_file()
    return root, env


def test_tarball_ships_the_collection_and_leaves_development_files_out(tarball):
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    for needed in ("galaxy.yml", "MANIFEST.json", "meta/runtime.yml", "README.md", "roles/reconcile/tasks/main.yml",
                   "playbooks/reconcile.yml", "plugins/modules/k8s_status.py", "plugins/filter/pgc.py",
                   "plugins/action/k8s_apply.py", "plugins/module_utils/k8s_client.py", "requirements.txt",
                   "meta/execution-environment.yml"):
        assert needed in names or needed == "galaxy.yml", needed
    for left_out in ("tests", "hack", "bench", "molecule", "config", "Makefile", ".ci", "pytest.ini", "Dockerfile"):
        assert not any(n == left_out or n.startswith(left_out + "/") for n in names), left_out


def test_installed_collection_is_listed_at_its_version(installed):
    root, env = installed
    listing = json.loads(run("ansible-galaxy", "collection", "list", "postgres.cluster", "--format", "json", env=env))
    versions = [v["version"] for path in listing.values() for v in path.values()]
    assert versions == [GALAXY["version"]]


@pytest.mark.parametrize("playbook", sorted(p.stem for p in (REPO / "playbooks").glob("*.yml")))
def test_installed_playbook_resolves_by_fqcn(installed, playbook, tmp_path):
    root, env = installed
    out = run("ansible-playbook", f"postgres.cluster.{playbook}", "--syntax-check", "-e", "cluster=x",
              env=env, cwd=tmp_path)
    assert f"postgres.cluster.{playbook}" in out or "playbook:" in out


@pytest.mark.parametrize("role", sorted(p.name for p in (REPO / "roles").iterdir()))
def test_installed_role_resolves_by_fqcn_with_its_argument_spec(installed, role, tmp_path):
    root, env = installed
    doc = json.loads(run("ansible-doc", "-t", "role", "--json", f"postgres.cluster.{role}", env=env, cwd=tmp_path))
    assert doc[f"postgres.cluster.{role}"]["entry_points"]["main"]["short_description"]


@pytest.mark.parametrize("plugin, kind", [("k8s_status", "module"), ("requeue_after", "module"),
                                          ("k8s_apply", "module"), ("cluster_observe", "module"),
                                          ("k8s_event", "module"), ("pgc_normalize", "filter")])
def test_installed_plugin_has_documentation(installed, plugin, kind, tmp_path):
    root, env = installed
    doc = json.loads(run("ansible-doc", "-t", kind, "--json", f"postgres.cluster.{plugin}", env=env, cwd=tmp_path))
    assert doc[f"postgres.cluster.{plugin}"]["doc"]["short_description"]
