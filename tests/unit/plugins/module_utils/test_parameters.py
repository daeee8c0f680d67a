"""postgresql.conf parameters: the catalogue of PostgreSQL 15 and values read as the server reads them."""

from __future__ import annotations

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils import pg_parameters
from ansible_collections.postgres.cluster.plugins.module_utils.parameters import (
    ParameterError,
    majors,
    needs_restart,
    parameter,
    parameter_errors,
    parse_bool,
    parse_integer,
    parse_real,
)


def test_the_catalogue_of_15_knows_the_parameters_and_their_units():
    assert 15 in majors()
    assert parameter("shared_buffers", 15) == {"type": "integer", "context": "postmaster", "unit": "8kB",
                                               "min": 16, "max": 1073741823, "values": ()}
    assert parameter("wal_level", 15)["values"] == ("minimal", "replica", "logical")
    assert parameter("random_page_cost", 15)["type"] == "real"
    # Names are case-insensitive, as in PostgreSQL.
    assert parameter("DateStyle", 15) == parameter("datestyle", 15)
    assert parameter("pg_stat_statements.max", 15)["context"] == "postmaster"
    assert parameter("shared_bufers", 15) is None
    assert parameter("shared_buffers", 99) is None


def test_every_catalogue_entry_is_well_formed():
    for major, catalogue in pg_parameters.PARAMETERS.items():
        for name, (kind, context, unit, low, high, values) in catalogue.items():
            assert name == name.lower(), name
            assert kind in ("bool", "integer", "real", "string", "enum"), name
            assert context in ("postmaster", "sighup", "superuser", "superuser-backend", "user", "backend"), name
            assert (low is not None) == (kind in ("integer", "real")), name
            assert bool(values) == (kind == "enum"), name
            assert "." not in name or name.split(".")[0] in pg_parameters.EXTENSIONS[major], name


def test_needs_restart_is_the_postmaster_context():
    assert needs_restart("shared_buffers", 15) is True
    assert needs_restart("max_connections", 15) is True
    assert needs_restart("work_mem", 15) is False
    assert needs_restart("pg_stat_statements.max", 15) is True
    assert needs_restart("no_such_parameter", 15) is None
    assert needs_restart("work_mem", 99) is None


@pytest.mark.parametrize("text, value", [
    ("on", True), ("off", False), ("ON", True), ("Off", False), ("of", False), ("true", True), ("t", True),
    ("TRU", True), ("false", False), ("f", False), ("yes", True), ("y", True), ("no", False), ("n", False),
    ("1", True), ("0", False),
    ("o", None), ("", None), ("2", None), ("truex", None), ("onn", None), (" on", None), ("enable", None),
])
def test_parse_bool_takes_what_postgresql_takes(text, value):
    assert parse_bool(text) is value


@pytest.mark.parametrize("text, unit, value", [
    ("128MB", "8kB", 16384),
    ("1GB", "8kB", 131072),
    ("1.5GB", "8kB", 196608),
    ("12 MB", "8kB", 1536),
    ("100kB", "8kB", 12),           # 12.5 blocks, rounded half to even as rint() does
    ("0x100", "8kB", 256),
    ("010", "8kB", 8),              # octal, as strtol reads it
    ("16384", "8kB", 16384),
    ("4MB", "kB", 4096),
    ("1TB", "MB", 1048576),
    ("1024B", "kB", 1),
    ("1.5s", "ms", 1500),
    ("5 min", "ms", 300000),
    ("1h", "s", 3600),
    ("1d", "min", 1440),
    ("500ms", "s", 0),              # 0.5 s, rounded half to even
    ("1500ms", "s", 2),
    ("30s", "min", 0),
    ("90s", "min", 2),
    ("2.5", "", 2),
    ("-1", "kB", -1),
])
def test_parse_integer_converts_units_as_postgresql_does(text, unit, value):
    assert parse_integer(text, unit) == value


@pytest.mark.parametrize("text, unit, problem", [
    ("12MBx", "8kB", "invalid unit"),
    ("5m", "ms", "invalid unit"),       # minutes are min
    ("4mb", "kB", "invalid unit"),      # units are case-sensitive
    ("4MB", "", "takes no unit"),
    ("30d", "ms", "integer range"),
    ("abc", "", "not a number"),
    ("", "", "not a number"),
    ("nan", "", "not a number"),
])
def test_parse_integer_refuses_what_postgresql_refuses(text, unit, problem):
    with pytest.raises(ParameterError, match=problem):
        parse_integer(text, unit)


def test_parse_real_keeps_fractions_and_converts_units():
    assert parse_real("1.1") == 1.1
    assert parse_real("2ms", "ms") == 2.0
    assert parse_real("1s", "ms") == 1000.0
    assert parse_real("1e3") == 1000.0
    with pytest.raises(ParameterError):
        parse_real("1.1.1")


@pytest.mark.parametrize("name, value", [
    ("shared_buffers", "128MB"), ("shared_buffers", 16384), ("max_connections", "200"), ("max_connections", 200),
    ("random_page_cost", "1.1"), ("random_page_cost", 1.1), ("ssl", "on"), ("ssl", True), ("ssl", "TRUE"),
    ("wal_level", "LOGICAL"), ("log_min_messages", "Warning"), ("synchronous_commit", "remote_apply"),
    ("synchronous_commit", "true"),  # the boolean spellings of an on/off enum
    ("statement_timeout", "1.5s"), ("search_path", '"$user", public'), ("pg_stat_statements.max", 10000),
    ("Work_Mem", "4MB"),
])
def test_parameter_errors_accepts_valid_settings(name, value):
    assert parameter_errors(name, value, 15) == []


@pytest.mark.parametrize("name, value, problem", [
    ("shared_bufers", "1GB", "unknown parameter (did you mean shared_buffers?)"),
    ("pg_stat_statements.maxx", 1, "unknown parameter (did you mean pg_stat_statements.max?)"),
    ("foo.bar", "1", "unknown parameter: foo is not an extension of the image"),
    ("a.b.c", "1", "is not a parameter name"),
    ("x = 1\narchive_command", "1", "is not a parameter name"),
    ("max connections", "1", "is not a parameter name"),
    ("work_mem", "4MB\n", "line break"),
    ("log_line_prefix", "a\rb", "line break"),
    ("log_line_prefix", "a\x00b", "control character"),
    ("work_mem", ["4MB"], "not a list"),
    ("work_mem", {"a": 1}, "not a mapping"),
    ("work_mem", None, "not null"),
    ("work_mem", float("inf"), "finite"),
    ("shared_buffers", "100kB", "100kB (12 8kB) is outside the valid range 16 .. 1073741823"),
    ("max_connections", 5000000, "5000000 is outside the valid range 1 .. 262143"),
    ("max_connections", "many", "many is not a number"),
    ("max_connections", True, "true is not a number"),
    ("random_page_cost", "-1", "outside the valid range 0 .. 1.79769e+308"),
    ("autovacuum_vacuum_cost_delay", "1s", "1s (1000 ms) is outside the valid range -1 .. 100"),
    ("ssl", "o", "must be a boolean"),
    ("ssl", "2", "must be a boolean"),
    ("wal_level", "hot_standby", "must be one of minimal, replica, logical"),
    ("log_min_messages", "loud", "must be one of debug5"),
    ("statement_timeout", "5m", "invalid unit 'm'"),
])
def test_parameter_errors_says_what_postgresql_would_refuse(name, value, problem):
    (error,) = parameter_errors(name, value, 15)
    assert problem in error


def test_a_major_without_catalogue_gets_the_syntax_checks_only():
    assert parameter_errors("io_combine_limit", "128kB", 17) == []
    assert parameter_errors("shared_bufers", "1", 17) == []
    assert parameter_errors("a b", "1", 17)
    # A trailing line break is not the end of a name.
    assert parameter_errors("work_mem\n", "1", 17)
    assert parameter_errors("work_mem", "4MB\n", 17)


def test_developer_options_are_not_in_the_catalogue():
    # What --describe-config leaves out: developer options, and what a postgresql.conf cannot set.
    for name in ("zero_damaged_pages", "ignore_system_indexes", "allow_system_table_mods", "transaction_read_only"):
        (error,) = parameter_errors(name, "on", 15)
        assert error.startswith("unknown parameter")
