#!/usr/bin/env bash
# Takes a physical backup of the cluster with pgBackRest and prints ONE JSON line that describes it
# on stdout (pgBackRest's own log goes to stderr).
#
#   pgc-backup.sh [full|diff|incr]          (default: $PGC_BACKUP_TYPE, else full)
#
# Settings, from the environment of the pod or Job:
#   PGBACKREST_STANZA   the stanza: the cluster's name (required)
#   PGBACKREST_CONFIG   pgbackrest.conf (default /etc/pgbackrest/pgbackrest.conf)
#   PGBACKREST_REPO1_S3_KEY, PGBACKREST_REPO1_S3_KEY_SECRET, PGBACKREST_REPO1_CIPHER_PASS
#                       the secrets, which pgBackRest reads itself; nothing here prints them.
#   PGC_RESULT_FILE     also write the JSON line there, on success only (a Job's
#                       /dev/termination-log: on failure Kubernetes takes the log's tail instead)
#   PGC_BACKUP_FAILOVER_WAIT  how long a backup that failed after its check passed (its primary lost
#                       mid-copy) checks again, every 5 s, before it gives up (default 300 s)
# The stanza is created on the first backup. `pgbackrest check` runs first, so that a backup is only
# taken when WAL archiving works (a backup without its WAL cannot be restored). Expiry by
# repo1-retention-full runs at the end of each backup.
set -euo pipefail

die() { printf 'pgc-backup: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'pgc-backup: %s\n' "$*" >&2; }

type=${1:-${PGC_BACKUP_TYPE:-full}}
case "$type" in
  full | diff | incr) ;;
  *) die "unknown backup type '$type' (full, diff or incr)" ;;
esac
[ -n "${PGBACKREST_STANZA:-}" ] || die "PGBACKREST_STANZA is not set (the cluster's name)"
export PGBACKREST_CONFIG=${PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
[ -r "$PGBACKREST_CONFIG" ] || die "cannot read the pgBackRest configuration $PGBACKREST_CONFIG"
command -v pgbackrest >/dev/null || die "pgbackrest is not installed"
command -v python3 >/dev/null || die "python3 is not installed"

info_json() {
  pgbackrest info --output=json || die "pgbackrest info failed (see the messages above)"
}

# Status codes of `pgbackrest info`: 1 missing stanza path, 3 missing stanza data: create it.
code=$(info_json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["status"]["code"])')
if [ "$code" = 1 ] || [ "$code" = 3 ]; then
  say "creating the stanza $PGBACKREST_STANZA"
  pgbackrest stanza-create 1>&2 || die "pgbackrest stanza-create failed"
fi
before=$(info_json)

say "checking the configuration and WAL archiving"
pgbackrest check 1>&2 || die "pgbackrest check failed: WAL archiving or the repository does not work"

say "taking a $type backup"
if ! pgbackrest backup --type="$type" 1>&2; then
  # The check passed a moment ago: the primary may have been lost while the backup was copied from it.
  # Once the read-write Service names a primary whose WAL archiving works again, the backup is taken
  # there (pgBackRest resumes what it had copied); anything else fails the same way twice.
  wait=${PGC_BACKUP_FAILOVER_WAIT:-300}
  deadline=$((SECONDS + wait))
  say "the backup failed after the check passed: checking again for up to ${wait}s, in case the primary changed"
  until pgbackrest check 1>&2; do
    [ "$SECONDS" -lt "$deadline" ] || die "pgbackrest backup --type=$type failed, and the check has failed since"
    sleep 5
  done
  say "the check passes again: taking the $type backup once more"
  pgbackrest backup --type="$type" 1>&2 || die "pgbackrest backup --type=$type failed"
fi

after=$(info_json)
# Where the backup's files are: repo1-path, then pgBackRest's layout.
repo_path=$(python3 "${PGC_REPO_TOOL:-$(dirname "$0")/pgc-repo.py}" option repo1-path) ||
  die "cannot read repo1-path from $PGBACKREST_CONFIG"
result=$(BEFORE=$before AFTER=$after REPO_PATH=${repo_path:-/var/lib/pgbackrest} python3 - <<'PY'
import datetime
import json
import os
import sys


def utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


before = {b["label"] for b in json.loads(os.environ["BEFORE"])[0]["backup"]}
stanza = json.loads(os.environ["AFTER"])[0]
new = [b for b in stanza["backup"] if b["label"] not in before]
if not new:
    sys.exit("pgc-backup: error: pgbackrest reported success but no new backup is in the repository")
b = new[-1]
print(json.dumps({
    "stanza": stanza["name"],
    "label": b["label"],
    "type": b["type"],
    "start": utc(b["timestamp"]["start"]),
    "stop": utc(b["timestamp"]["stop"]),
    "size": b["info"]["size"],
    "delta": b["info"]["delta"],
    "repository_size": b["info"]["repository"]["size"],
    "repository_delta": b["info"]["repository"]["delta"],
    "repository_backups_size": sum(x["info"]["repository"]["delta"] for x in stanza["backup"]),
    "wal_start": (b.get("archive") or {}).get("start"),
    "wal_stop": (b.get("archive") or {}).get("stop"),
    "backups": len(stanza["backup"]),
    "full_backups": sum(1 for x in stanza["backup"] if x["type"] == "full"),
    "repository_path": "%s/backup/%s/%s" % (os.environ["REPO_PATH"].rstrip("/"), stanza["name"], b["label"]),
}, sort_keys=True))
PY
) || exit 1
printf '%s\n' "$result"
if [ -n "${PGC_RESULT_FILE:-}" ]; then
  printf '%s\n' "$result" >"$PGC_RESULT_FILE" || die "cannot write the result to $PGC_RESULT_FILE"
fi
