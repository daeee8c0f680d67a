#!/usr/bin/env bash
# Expires one backup set from the repository, never one that other backups depend on, and prints
# ONE JSON line on stdout: {"expired": SET}.
#
#   pgc-expire.sh SET
#
# `pgbackrest expire --set` of a full backup also removes the differential and incremental backups
# built on it, which other PostgresBackups may still report as Succeeded. A set that others depend
# on is therefore kept: the script says which on stderr and exits 3, and retention removes the whole
# chain in time. pgBackRest itself refuses to expire the newest backup.
# Settings, from the Job's environment: PGBACKREST_STANZA, PGBACKREST_CONFIG and the repository's
# secrets, which pgBackRest reads itself.
set -euo pipefail

die() { printf 'pgc-expire: error: %s\n' "$*" >&2; exit 1; }

set_label=${1:-}
[ -n "$set_label" ] || die "usage: pgc-expire.sh SET"
[ -n "${PGBACKREST_STANZA:-}" ] || die "PGBACKREST_STANZA is not set (the cluster's name)"

info=$(pgbackrest info --output=json) || die "pgbackrest info failed"
# The backups whose chain of prior backups reaches SET, and whether SET exists at all.
verdict=$(printf '%s' "$info" | python3 -c '
import json, sys
label = sys.argv[1]
backups = {b["label"]: b for stanza in json.load(sys.stdin) for b in stanza.get("backup") or []}
if label not in backups:
    print("missing")
    sys.exit()
def reaches(b):
    seen = set()
    while b.get("prior") and b["label"] not in seen:
        seen.add(b["label"])
        if b["prior"] == label:
            return True
        b = backups.get(b["prior"]) or {}
    return False
print(" ".join(sorted(name for name, b in backups.items() if name != label and reaches(b))))
' "$set_label")

case "$verdict" in
  missing) die "backup set $set_label is not in the repository of stanza $PGBACKREST_STANZA" ;;
  "") ;;
  *)
    printf 'pgc-expire: backup set %s is kept: %s depend(s) on it\n' "$set_label" "$verdict" >&2
    exit 3 ;;
esac

pgbackrest expire --set="$set_label" 1>&2
out=$(printf '{"expired": "%s"}' "$set_label")
printf '%s\n' "$out"
if [ -n "${PGC_RESULT_FILE:-}" ]; then
  printf '%s\n' "$out" >"$PGC_RESULT_FILE"
fi
