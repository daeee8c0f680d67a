#!/usr/bin/env bash
# Restores a backup over a member's data directory, for the restore playbook's Job, which mounts the
# data claim of the member that becomes the primary while every member is stopped.
#
#   pgc-restore-in-place.sh [--set=LABEL | --target-time=TIME] [--check-only]
#   pgc-restore-in-place.sh --put-back
#
#   --check-only  only check that the backup exists and verifies (pgc-restore.sh's checks) and
#                 change nothing
#   --put-back    restore nothing: put the data as it was back when a restore that did not finish
#                 left it aside (the restore playbook's abort), and print {"put_back": true|false}
#
# The current data directory is moved aside first and put back if anything fails, or when the
# script is told to stop (INT, TERM, HUP). A run killed outright (SIGKILL, a node lost) leaves it
# aside: the next run puts it back before it restores. After the restore, PostgreSQL runs here,
# without listening on the network, until it has replayed the WAL to the target and promoted; then
# it stops cleanly. So Patroni starts a primary that is already at the target, on a new timeline,
# and the replicas clone from it. The old data is removed once the restore succeeded
# (PGC_KEEP_OLD_DATA=1 keeps it as <data directory>.before-restore, marked as a finished restore's).
# Settings: PGDATA, and those of pgc-restore.sh. Prints pgc-restore.sh's JSON line, with the
# timeline and the time of the end of recovery added.
set -euo pipefail

die() { printf 'pgc-restore-in-place: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'pgc-restore-in-place: %s\n' "$*" >&2; }

here=$(cd "$(dirname "$0")" && pwd)
datadir=${PGDATA:-/var/lib/postgresql/data/pgdata}
check_only=
put_back_only=
args=()
for arg in "$@"; do
  case "$arg" in
    --check-only) check_only=1 ;;
    --put-back) put_back_only=1 ;;
    --set=* | --target-time=*) args+=("$arg") ;;
    *) die "unexpected argument '$arg' (--set=LABEL, --target-time=TIME, --check-only, --put-back)" ;;
  esac
done

if [ -n "$check_only" ]; then
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/pgc-restore-check.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
  PGC_RESTORE_CHECK_ONLY=1 "$here/pgc-restore.sh" --datadir="$scratch/pgdata" "${args[@]}"
  exit 0
fi

aside=$datadir.before-restore
# Written into the aside copy once the restore over it is whole: without it, the copy is the data
# as it was before a restore that did not finish.
finished=$aside/.pgc-restore-finished
if [ -n "$put_back_only" ]; then
  put=false
  if [ -e "$aside" ] && [ ! -e "$finished" ]; then
    say "putting the data as it was ($aside) back"
    rm -rf "$datadir"
    mv "$aside" "$datadir"
    put=true
  fi
  printf '{"put_back": %s}\n' "$put" | tee "${PGC_RESULT_FILE:-/dev/null}"
  exit 0
fi
if [ -e "$aside" ]; then
  [ ! -e "$finished" ] || die "$aside exists (kept by an earlier restore, PGC_KEEP_OLD_DATA): move or remove it, then run the restore again"
  say "an earlier restore did not finish: putting the data as it was ($aside) back first"
  rm -rf "$datadir"
  mv "$aside" "$datadir"
fi
# The image's PostgreSQL is on PATH; Debian's packages keep it under /usr/lib/postgresql/<major>.
pg_ctl=$(command -v pg_ctl || true)
for candidate in /usr/lib/postgresql/*/bin/pg_ctl; do
  [ -n "$pg_ctl" ] || [ ! -x "$candidate" ] || pg_ctl=$candidate
done
pg_bin=$(dirname "${pg_ctl:-/nonexistent/pg_ctl}")
[ -x "$pg_bin/pg_ctl" ] || die "pg_ctl is not installed"
if [ -e "$datadir" ]; then
  if [ -f "$datadir/postmaster.pid" ] && "$pg_bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
    die "PostgreSQL runs on $datadir: stop every member first"
  fi
  mv "$datadir" "$aside"
fi
put_back() {
  # The PostgreSQL started below runs in a session of its own (pg_ctl's): a signal to this script
  # does not reach it, and a pg_ctl start that timed out leaves it running. Stop it before its data
  # directory goes, so that it neither fails on a directory removed under it nor goes on to promote
  # and archive a timeline of data that is no more.
  [ ! -f "$datadir/postmaster.pid" ] || "$pg_bin/pg_ctl" -D "$datadir" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
  rm -rf "$datadir"
  [ ! -e "$aside" ] || mv "$aside" "$datadir"
}
trap 'put_back; die "stopped by a signal: the data directory is as it was"' INT TERM HUP

if ! result=$("$here/pgc-restore.sh" --datadir="$datadir" "${args[@]}"); then
  put_back
  die "the restore failed: the data directory is as it was"
fi

# Replay the WAL to the target and promote, with no client able to connect meanwhile.
sockets=$(mktemp -d "${TMPDIR:-/tmp}/pgc-restore-socket.XXXXXX")
say "recovering to the target"
if ! "$pg_bin/pg_ctl" -D "$datadir" -l "$sockets/postgresql.log" -w -t 60 start \
  -o "-c listen_addresses='' -c unix_socket_directories='$sockets'" >&2; then
  cat "$sockets/postgresql.log" >&2 || true
  put_back
  die "PostgreSQL did not start on the restored data: the data directory is as it was"
fi
deadline=$((SECONDS + ${PGC_RECOVERY_TIMEOUT:-86400}))
until "$pg_bin/pg_controldata" "$datadir" | grep -q '^Database cluster state: *in production'; do
  if ! "$pg_bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1 || [ $SECONDS -ge $deadline ]; then
    tail -n 20 "$sockets/postgresql.log" >&2 || true
    put_back
    die "recovery did not reach the target and promote: the data directory is as it was"
  fi
  sleep 2
done
"$pg_bin/pg_ctl" -D "$datadir" -w -t 600 -m fast stop >&2
timeline=$("$pg_bin/pg_controldata" "$datadir" | sed -n 's/^Latest checkpoint.s TimeLineID: *//p')
rm -rf "$sockets"
# The restore is whole: from here the old data is no longer the one to put back.
trap - INT TERM HUP
if [ -e "$aside" ]; then
  touch "$finished"
  if [ "${PGC_KEEP_OLD_DATA:-}" != 1 ]; then
    rm -rf "$aside"
  fi
fi
RESULT=$result TIMELINE=$timeline python3 -c '
import datetime, json, os
result = json.loads(os.environ["RESULT"].strip().splitlines()[-1])
result["timeline"] = int(os.environ["TIMELINE"] or 0)
result["promoted"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps(result, sort_keys=True))' | tee "${PGC_RESULT_FILE:-/dev/null}"
