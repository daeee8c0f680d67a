"""module_utils functions as filters: refusals fail the task, and unsafe results are never templated."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.utils.unsafe_proxy import AnsibleUnsafe

from ansible_collections.postgres.cluster.plugins.module_utils.spec import SpecError
from ansible_collections.postgres.cluster.plugins.plugin_utils.filters import as_filter


def refuse(value):
    raise SpecError("spec.thing %r is wrong" % value)


def quote(value):
    """Quotes its value."""
    return {"message": "got %s" % value, "count": 1}


def test_as_filter_turns_a_refused_spec_into_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="spec.thing 'x' is wrong"):
        as_filter(refuse)("x")


def test_as_filter_leaves_other_failures_alone():
    with pytest.raises(ZeroDivisionError):
        as_filter(lambda value: value / 0)(1)


def test_as_filter_marks_the_whole_result_unsafe_only_when_asked():
    assert isinstance(as_filter(quote, unsafe=True)("{{ x }}")["message"], AnsibleUnsafe)
    assert not isinstance(as_filter(quote)("{{ x }}")["message"], AnsibleUnsafe)


def test_as_filter_keeps_the_functions_name_and_documentation():
    wrapped = as_filter(quote)
    assert (wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__) == ("quote", "Quotes its value.", quote)
