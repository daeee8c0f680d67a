#!/usr/bin/env python3
"""Write plugins/module_utils/pg_parameters.py, the catalogue of postgresql.conf parameters that
spec.configuration is checked against, from the PostgreSQL servers installed here.

    python hack/gen-pg-parameters.py                  # every /usr/lib/postgresql/*/bin/postgres
    python hack/gen-pg-parameters.py PATH/TO/postgres ...
    python hack/gen-pg-parameters.py --check [...]    # exit 1, changing nothing, when the module differs

For each server, `postgres --describe-config` lists the parameters a postgresql.conf may set: name,
context, group, type, reset value, min, max and descriptions, tab-separated. It says neither units
nor enum values, so a stand-alone backend (`postgres --single` on a throw-away initdb: no socket, no
port) reads them from pg_settings, with the image's extensions preloaded so that their own
parameters (pg_stat_statements.max, ...) are there too. As root, initdb and the backend run as the
postgres user.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "plugins/module_utils/pg_parameters.py"
RUN_AS = "postgres"
# Extensions of the database image with parameters of their own; those installed beside the server
# are preloaded and catalogued.
EXTENSIONS = ("auth_delay", "auto_explain", "pg_prewarm", "pg_stat_statements", "pg_trgm", "pgaudit", "plpgsql")
TYPES = {"BOOLEAN": "bool", "INTEGER": "integer", "REAL": "real", "STRING": "string", "ENUM": "enum"}


def _run(cmd, **kwargs):
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def major_of(postgres):
    """The major version of a postgres binary (15 of "postgres (PostgreSQL) 15.18 (Debian ...)")."""
    out = subprocess.run([postgres, "--version"], check=True, capture_output=True, text=True).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    if not match:
        raise SystemExit("cannot read the version of %s: %r" % (postgres, out))
    return int(match.group(1))


def describe_config(postgres):
    """{lower-case name: (type, context, min, max)} of `postgres --describe-config`."""
    out = subprocess.run([postgres, "--describe-config"], check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        name, context, _group, vartype, _reset, low, high = line.split("\t")[:7]
        kind = TYPES[vartype]
        rows[name.lower()] = (kind, context, _number(kind, low), _number(kind, high))
    return rows


def _number(kind, text):
    if kind == "integer":
        return int(text)
    if kind == "real":
        return float(text)
    return None


def installed_extensions(postgres):
    libdir = Path(postgres).resolve().parents[1] / "lib"
    return [e for e in EXTENSIONS if (libdir / (e + ".so")).is_file()]


def settings(postgres, extensions):
    """{lower-case name: (type, context, unit, min, max, enum values)} of pg_settings, read by a
    stand-alone backend with ``extensions`` preloaded."""
    bindir = Path(postgres).resolve().parent
    work = Path(tempfile.mkdtemp(prefix="pgc-parameters-"))
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS)
            os.chown(work, user.pw_uid, user.pw_gid)
        data, out = work / "data", work / "settings.tsv"
        _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync",
              "--no-instructions"])
        query = ("COPY (SELECT lower(name), vartype, context, coalesce(unit, ''), coalesce(min_val, ''), "
                 "coalesce(max_val, ''), coalesce(array_to_string(enumvals, ','), '') FROM pg_settings) "
                 "TO '%s'\n" % out)
        _run([str(bindir / "postgres"), "--single", "-D", str(data),
              "-c", "shared_preload_libraries=" + ",".join(extensions), "postgres"], input=query)
        rows = {}
        for line in out.read_text().splitlines():
            name, kind, context, unit, low, high, values = line.split("\t")
            rows[name] = (kind, context, unit, _number(kind, low), _number(kind, high),
                          tuple(values.split(",")) if kind == "enum" else ())
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def catalogue(postgres):
    """(major, extensions, {name: (type, context, unit, min, max, enum values)}) of one server: the
    parameters --describe-config lists, and those of the extensions."""
    major = major_of(postgres)
    described = describe_config(postgres)
    extensions = installed_extensions(postgres)
    read = settings(postgres, extensions)
    parameters = {}
    for name, (kind, context, low, high) in described.items():
        entry = read[name]
        if entry[:2] != (kind, context) or entry[3:5] != (low, high):
            raise SystemExit("%s: --describe-config says %r, pg_settings %r" % (name, (kind, context, low, high), entry))
        parameters[name] = entry
    for name, entry in read.items():
        if name.split(".", 1)[0] in extensions and "." in name:
            parameters[name] = entry
    return major, extensions, parameters


def render(catalogues):
    lines = [
        "# -*- coding: utf-8 -*-",
        "# GENERATED by hack/gen-pg-parameters.py from `postgres --describe-config` and pg_settings of",
        "# PostgreSQL %s: do not edit. Regenerate after installing another major:" % ", ".join(
            str(m) for m in sorted(catalogues)),
        "#   python hack/gen-pg-parameters.py",
        "# SPDX-License-Identifier: GPL-3.0-or-later",
        "",
        '"""The postgresql.conf parameters of each PostgreSQL major, as its server describes them.',
        "",
        "PARAMETERS[major][name] is (type, context, unit, min, max, enum values): type is bool, integer,",
        "real, string or enum; context is PostgreSQL's (postmaster: a change needs a restart); unit is",
        "pg_settings' (kB, 8kB, MB, B, ms, s, min, or empty), in which min and max are. Names are lower",
        "case. EXTENSIONS[major] are the extensions whose own parameters are listed.",
        '"""',
        "",
        "EXTENSIONS = {",
    ]
    for major in sorted(catalogues):
        lines.append("    %d: %r," % (major, tuple(catalogues[major][0])))
    lines += ["}", "", "PARAMETERS = {"]
    for major in sorted(catalogues):
        lines.append("    %d: {" % major)
        for name, entry in sorted(catalogues[major][1].items()):
            lines.append("        %r: %r," % (name, entry))
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("postgres", nargs="*", help="postgres binaries (default: /usr/lib/postgresql/*/bin/postgres)")
    parser.add_argument("--check", action="store_true", help="compare with the module instead of writing it")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    binaries = args.postgres or sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not binaries:
        raise SystemExit("no PostgreSQL server found: install one or name its postgres binary")
    catalogues = {}
    for postgres in binaries:
        major, extensions, parameters = catalogue(postgres)
        catalogues[major] = (extensions, parameters)
    text = render(catalogues)
    current = args.output.read_text() if args.output.exists() else ""
    if args.check:
        if text != current:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       str(args.output), "generated"))
            return 1
        return 0
    args.output.write_text(text)
    print("wrote %s: PostgreSQL %s" % (args.output, ", ".join(str(m) for m in sorted(catalogues))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
