#!/usr/bin/env bash
# Restores a physical backup of the cluster with pgBackRest into an empty data directory, after
# checking that the backup exists and passes `pgbackrest verify`; when it does not, it changes
# nothing and fails with the reason.
#
#   pgc-restore.sh [--datadir=DIR] [--set=LABEL [--immediate] | --target-time=TIME] [--archive-mode=off]
#                  [--restore-command=COMMAND]
#
#   --datadir       the data directory to create (default $PGDATA, else the pod's
#                   /var/lib/postgresql/data/pgdata); it must be absent or empty
#   --set           a backup label (`pgbackrest info`); replays all archived WAL after it
#   --target-time   a point in time with its time zone ('2026-01-31 12:00:00+00'): the newest
#                   backup finished before it is restored and recovery stops there and promotes
#   --immediate     with --set: recovery stops as soon as the backup is consistent, and promotes
#   (neither)       the newest backup, then all archived WAL
#   --archive-mode  off: the restored server archives nothing (a copy started beside the
#                   original must not push WAL into the original's stanza)
#   --scope         the stanza, when PGBACKREST_STANZA is not set (Patroni passes it to a custom
#                   bootstrap method, with --datadir)
#   --restore-command  PostgreSQL's restore_command during the recovery (default: pgBackRest's
#                   archive-get of this stanza)
#
# A repository behind a repository host (repo1-host) is not verified from here: pgBackRest 2.45's
# verify fails through a TLS repository host. pgbackrest restore still checks every file against the
# backup's manifest, and a failed restore leaves the directory as it was.
#
# Settings: PGBACKREST_STANZA, PGBACKREST_CONFIG and the secrets, as for pgc-backup.sh;
# PGC_RESTORE_CHECK_ONLY=1 stops after the checks, changing nothing.
# Prints one JSON line (label, type, target, data directory) on stdout; pgBackRest logs to stderr.
set -euo pipefail

die() { printf 'pgc-restore: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'pgc-restore: %s\n' "$*" >&2; }

datadir=${PGDATA:-/var/lib/postgresql/data/pgdata}
set_label=
target_time=
archive_mode=
immediate=
restore_command=
while [ $# -gt 0 ]; do
  arg=$1
  shift
  case "$arg" in
    --*=*) name=${arg%%=*} value=${arg#*=} ;;
    --immediate) name=$arg value= ;;
    --*)
      name=$arg
      [ $# -gt 0 ] || die "$arg needs a value"
      value=$1
      shift
      ;;
    *) die "unexpected argument '$arg'" ;;
  esac
  case "$name" in
    --datadir | --target-dir) datadir=$value ;;
    --set) set_label=$value ;;
    --target-time) target_time=$value ;;
    --archive-mode) archive_mode=$value ;;
    --immediate) immediate=1 ;;
    --restore-command) restore_command=$value ;;
    --scope) export PGBACKREST_STANZA=${PGBACKREST_STANZA:-$value} ;;
    *) die "unknown option $name" ;;
  esac
done
[ -z "$set_label" ] || [ -z "$target_time" ] || die "give --set or --target-time, not both"
[ -z "$immediate" ] || [ -n "$set_label" ] || die "--immediate needs --set"
case "$archive_mode" in '' | off | preserve) ;; *) die "--archive-mode is off or preserve" ;; esac
[ -n "${PGBACKREST_STANZA:-}" ] || die "PGBACKREST_STANZA is not set (the cluster's name)"
export PGBACKREST_CONFIG=${PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
[ -r "$PGBACKREST_CONFIG" ] || die "cannot read the pgBackRest configuration $PGBACKREST_CONFIG"
command -v pgbackrest >/dev/null || die "pgbackrest is not installed"
case "$datadir" in /*) ;; *) die "--datadir must be an absolute path, not '$datadir'" ;; esac

# The data directory: absent (created here) or empty; anything else is refused untouched.
created=
if [ -e "$datadir" ]; then
  [ -d "$datadir" ] || die "$datadir exists and is not a directory"
  [ -z "$(ls -A "$datadir")" ] || die "$datadir is not empty: refusing to restore over it"
fi

# 1. Which backup: it must exist.
info=$(pgbackrest info --output=json) || die "pgbackrest info failed (see the messages above)"
chain=$(INFO=$info SET=$set_label TARGET_TIME=$target_time python3 - <<'PY'
import datetime
import json
import os
import re
import sys

stanza = json.loads(os.environ["INFO"])[0]
backups = [b for b in stanza["backup"] if not b.get("error")]
want, target = os.environ["SET"], os.environ["TARGET_TIME"]
if not backups:
    sys.exit("pgc-restore: error: no backup of stanza %s in the repository (%s)" % (stanza["name"], stanza["status"]["message"]))
labels = [b["label"] for b in backups]
if want:
    if want not in labels:
        sys.exit("pgc-restore: error: backup set %s does not exist in the repository of stanza %s (available: %s)"
                 % (want, stanza["name"], ", ".join(labels)))
    chosen = backups[labels.index(want)]
elif target:
    text = re.sub(r"\s*(UTC|Z)$", "+00:00", target.strip())
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        sys.exit("pgc-restore: error: --target-time %r is not a timestamp such as '2026-01-31 12:00:00+00'" % target)
    if when.tzinfo is None:
        sys.exit("pgc-restore: error: --target-time %r has no time zone: add one, such as +00" % target)
    # Backup stop times are whole seconds, rounded down: only a backup that surely ended before
    # the target can be recovered to it.
    before = [b for b in backups if b["timestamp"]["stop"] + 1 <= when.timestamp()]
    if not before:
        sys.exit("pgc-restore: error: no backup of stanza %s finished before %s (the oldest finished at %s)"
                 % (stanza["name"], target,
                    datetime.datetime.fromtimestamp(backups[0]["timestamp"]["stop"], datetime.timezone.utc)))
    chosen = before[-1]
else:
    chosen = backups[-1]
# The backup and the backups it depends on (an incremental needs its full and the ones between).
print(" ".join([chosen["label"]] + list(chosen.get("reference") or [])))
PY
) || exit 1
label=${chain%% *}
say "backup $label selected (it needs: $chain)"

# 2. The repository must verify: the chosen backups and the archived WAL.
here=$(cd "$(dirname "$0")" && pwd)
repo_host=$(python3 "${PGC_REPO_TOOL:-$here/pgc-repo.py}" option repo1-host) || die "cannot read $PGBACKREST_CONFIG"
if [ -n "$repo_host" ]; then
  say "the repository is behind $repo_host: not verified from here, restore checks each file"
  report=
else
  say "verifying the repository"
  report=$(pgbackrest verify --output=text --verbose --log-level-console=warn 2>&1) || die "pgbackrest verify failed: $report"
fi
problems=$(REPORT=$report CHAIN=$chain python3 - <<'PY'
import os
import re

chain = os.environ["CHAIN"].split()
status = {}
problems = []
section = None
for line in os.environ["REPORT"].splitlines():
    m = re.match(r"\s*backup: ([^,\s]+), status: ([a-z]+)", line)
    if m:
        section = "backup " + m.group(1)
        status[m.group(1)] = m.group(2)
        continue
    m = re.match(r"\s*archiveId: (\S+),", line)
    if m:
        section = "archive " + m.group(1)
        continue
    m = re.match(r"\s*missing: (\d+), checksum invalid: (\d+), size invalid: (\d+), other: (\d+)", line)
    if m and section and section.startswith("archive") and any(int(x) for x in m.groups()):
        problems.append("%s: %s" % (section, line.strip()))
for label in chain if os.environ["REPORT"] else []:
    if status.get(label) != "valid":
        problems.append("backup %s: %s" % (label, status.get(label, "not verified")))
print("; ".join(problems))
PY
)
if [ -n "$problems" ]; then
  printf '%s\n' "$report" >&2
  die "backup $label does not verify, nothing was restored: $problems"
fi

# Only the checks were asked for (the restore playbook's first Job): the backup exists and verifies.
if [ -n "${PGC_RESTORE_CHECK_ONLY:-}" ]; then
  say "backup $label exists and verifies; nothing was restored (PGC_RESTORE_CHECK_ONLY)"
  LABEL=$label CHAIN=$chain python3 -c '
import json, os
print(json.dumps({"label": os.environ["LABEL"], "needs": os.environ["CHAIN"].split(), "checked": True}, sort_keys=True))'
  exit 0
fi

# 3. Restore. On failure the directory is emptied again (it was absent or empty).
if [ ! -e "$datadir" ]; then
  mkdir -p "$(dirname "$datadir")"
  mkdir -m 0700 "$datadir"
  created=1
fi
undo() {
  if [ -n "$created" ]; then
    rm -rf "$datadir"
  else
    find "$datadir" -mindepth 1 -delete
  fi
}
args=(--set="$label" --pg1-path="$datadir")
if [ -n "$target_time" ]; then
  args+=(--type=time --target="$target_time" --target-action=promote)
elif [ -n "$immediate" ]; then
  args+=(--type=immediate --target-action=promote)
fi
[ -z "$restore_command" ] || args+=(--recovery-option="restore_command=$restore_command")
[ -z "$archive_mode" ] || args+=(--archive-mode="$archive_mode")
say "restoring $label into $datadir${target_time:+ up to $target_time}"
if ! pgbackrest restore "${args[@]}" 1>&2; then
  undo
  die "pgbackrest restore failed: $datadir is left as it was"
fi
LABEL=$label DATADIR=$datadir TARGET_TIME=$target_time python3 -c '
import json, os
print(json.dumps({"label": os.environ["LABEL"], "datadir": os.environ["DATADIR"],
                  "type": "time" if os.environ["TARGET_TIME"] else "latest",
                  "target": os.environ["TARGET_TIME"] or None}, sort_keys=True))'
