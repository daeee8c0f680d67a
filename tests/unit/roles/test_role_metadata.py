"""Every role documents its inputs twice, in defaults/main.yml and meta/argument_specs.yml: they agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLES = sorted(p for p in (REPO / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_role_argument_specs_match_defaults(role):
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    with_default = {k for k, v in specs.items() if "default" in v}
    assert set(defaults) == with_default, "defaults/main.yml and argument_specs disagree on defaulted inputs"
    assert not any(v.get("required") and "default" in v for v in specs.values()), "a required input has a default"
    for key, value in defaults.items():
        assert specs[key].get("default") == value, f"{key}: default differs"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_role_public_variables_are_prefixed_with_the_role_name(role):
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    # What the operator runtime passes: the watched object, by its kind.
    shared = {"pgc", "_postgres_example_com_postgrescluster", "_postgres_example_com_postgresbackup"}
    for key in set(specs) - shared:
        assert key.startswith(role.name + "_"), key
