#!/usr/bin/env bash
# A restore drill: restores the newest backup of the cluster's repository into a scratch directory,
# starts a throw-away PostgreSQL on it that nothing can reach and that archives nothing, checks it
# with pg_amcheck and the user's SQL, stops it and removes it. Prints ONE JSON line that says how it
# went, success or failure, and exits non-zero when the drill failed.
#
#   pgc-drill.sh
#
# Settings, from the environment of the Job:
#   PGBACKREST_STANZA, PGBACKREST_CONFIG and the secrets, as for pgc-backup.sh
#   PGC_DRILL_DIR       where the scratch directory is made (the Job's emptyDir; default $TMPDIR)
#   PGC_DRILL_CHECK     SQL that must return one true value (optional). It is run as a role that may
#                       read every table and nothing more (pg_read_all_data), never as the superuser,
#                       and it reaches the server as one query: no psql command, no shell.
#   PGC_DRILL_DATABASE  the database the SQL check runs in (default postgres)
#   PGC_DRILL_USER      the cluster's superuser, which pg_amcheck runs as (default postgres)
#   PGC_DRILL_TIMEOUT   seconds the recovery may take (default 3600)
#   PGC_RESULT_FILE     also write the JSON line there, on success and on failure (the Job's
#                       /dev/termination-log: the operator reads why a drill failed from it)
# The JSON line: result (succeeded or failed), backup (its label), backup_type, restored_to (the end
# of the backup, where recovery stopped), started, finished, duration_seconds, checks, and reason
# when it failed.
set -euo pipefail

say() { printf 'pgc-drill: %s\n' "$*" >&2; }
# shellcheck source-path=SCRIPTDIR source=pgc-result.sh
. "$(dirname "$0")/pgc-result.sh"

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
SECONDS=0
label=
backup_type=
restored_to=
checks=
work=
pg_bin=
datadir=

report() {
  # report RESULT [REASON]: the JSON line, on stdout and in PGC_RESULT_FILE.
  pgc_result "$(RESULT=$1 LABEL=$label TYPE=$backup_type RESTORED_TO=$restored_to STARTED=$started \
    DURATION=$SECONDS CHECKS=$checks python3 -c '
import datetime, json, os
e = os.environ
print(json.dumps({
    "result": e["RESULT"], "stanza": e.get("PGBACKREST_STANZA", ""), "backup": e["LABEL"] or None,
    "backup_type": e["TYPE"] or None, "restored_to": e["RESTORED_TO"] or None, "started": e["STARTED"],
    "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "duration_seconds": int(e["DURATION"]), "checks": e["CHECKS"].split()}))')" "${2:-}"
}

fail() {
  say "error: $*"
  report failed "$*"
  exit 1
}

# The first lines of a file that say something, on one line.
first_lines() { grep -v '^[[:space:]]*$' "$1" | head -n "${2:-3}" | tr '\n' ' ' || true; }
last_error() { grep -i 'error' "$1" | tail -n 1 || tail -n 1 "$1"; }

stop_server() {
  if [ -n "$datadir" ] && [ -f "$datadir/postmaster.pid" ]; then
    "$pg_bin/pg_ctl" -D "$datadir" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      "$pg_bin/pg_ctl" -D "$datadir" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
}
cleanup() {
  stop_server
  [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'fail "stopped by a signal"' INT TERM HUP

[ -n "${PGBACKREST_STANZA:-}" ] || fail "PGBACKREST_STANZA is not set (the cluster's name)"
export PGBACKREST_CONFIG=${PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
[ -r "$PGBACKREST_CONFIG" ] || fail "cannot read the pgBackRest configuration $PGBACKREST_CONFIG"
command -v pgbackrest >/dev/null || fail "pgbackrest is not installed"
here=$(cd "$(dirname "$0")" && pwd)
# The image's PostgreSQL is on PATH, or where Debian's packages keep it.
pg_ctl=$(command -v pg_ctl || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | tail -n 1 || true)
[ -n "$pg_ctl" ] || fail "pg_ctl is not installed"
pg_bin=$(dirname "$pg_ctl")
for tool in pg_controldata pg_amcheck psql; do
  [ -x "$pg_bin/$tool" ] || fail "$tool is not installed beside $pg_ctl"
done

scratch=${PGC_DRILL_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$scratch"
work=$(mktemp -d "$scratch/pgc-drill.XXXXXX")
chmod 0700 "$work"
datadir=$work/pgdata
sockets=$work/run
mkdir -m 0700 "$sockets"

# 1. The newest backup: its label, and the time a recovery to its consistency point reaches.
info=$(pgbackrest info --output=json 2>"$work/info.log") || fail "pgbackrest info failed: $(last_error "$work/info.log")"
newest=$(INFO=$info python3 -c '
import datetime, json, os, sys
stanza = json.loads(os.environ["INFO"])[0]
backups = [b for b in stanza.get("backup") or [] if not b.get("error")]
if not backups:
    sys.exit("no backup of stanza %s in the repository (%s)" % (stanza["name"], stanza["status"]["message"]))
b = backups[-1]
stop = datetime.datetime.fromtimestamp(b["timestamp"]["stop"], datetime.timezone.utc)
print(b["label"], b["type"], stop.strftime("%Y-%m-%dT%H:%M:%SZ"))' 2>"$work/newest.log") ||
  fail "$(cat "$work/newest.log")"
read -r label backup_type restored_to <<<"$newest"

# 2. Restore it (pgc-restore.sh: verified first where the repository is local; nothing archived),
# recovering just to consistency, then promoting.
say "restoring backup $label into $datadir"
if ! "$here/pgc-restore.sh" --datadir="$datadir" --set="$label" --immediate --archive-mode=off \
  >"$work/restore.json" 2>"$work/restore.log"; then
  cat "$work/restore.log" >&2
  fail "restore of backup $label failed: $(last_error "$work/restore.log" | sed 's/^pgc-restore: error: //')"
fi
checks=restore

# 3. A server nobody can reach: no TCP, a socket in a private directory, trust there only; nothing
# archived; no synchronous standby to wait for; no TLS files of the pods needed.
printf 'local all all trust\n' >"$work/pg_hba.conf"
: >"$work/pg_ident.conf"
export PGHOST=$sockets PGPORT=5432 PGDATABASE=postgres PGUSER=${PGC_DRILL_USER:-postgres} PGCONNECT_TIMEOUT=10
unset PGHOSTADDR PGSERVICE PGSERVICEFILE PGPASSWORD PGPASSFILE PGSSLMODE PGSSLCERT PGSSLKEY PGSSLROOTCERT PGOPTIONS
say "starting the restored copy (socket only, in $sockets)"
options="-c listen_addresses='' -c unix_socket_directories='$sockets' -c port=5432"
options+=" -c archive_mode=off -c archive_command=/bin/true -c ssl=off -c synchronous_standby_names=''"
options+=" -c hba_file='$work/pg_hba.conf' -c ident_file='$work/pg_ident.conf' -c cluster_name=pgc-drill"
options+=" -c logging_collector=off -c hot_standby=on"
# pg_ctl waits until the copy is consistent (it then takes read-only connections), or gives up
# when the server stops.
timeout=${PGC_DRILL_TIMEOUT:-3600}
if ! "$pg_bin/pg_ctl" -D "$datadir" -l "$work/postgresql.log" -w -t "$timeout" -o "$options" start >&2; then
  tail -n 20 "$work/postgresql.log" >&2 || true
  fail "PostgreSQL did not recover backup $label: $(last_error "$work/postgresql.log")"
fi
deadline=$((SECONDS + timeout))
until "$pg_bin/pg_controldata" "$datadir" 2>/dev/null | grep -q '^Database cluster state: *in production' &&
  [ "$("$pg_bin/psql" -X -Atc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
  if ! "$pg_bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
    tail -n 20 "$work/postgresql.log" >&2 || true
    fail "PostgreSQL stopped while recovering backup $label: $(last_error "$work/postgresql.log")"
  fi
  [ $SECONDS -lt $deadline ] || fail "recovery of backup $label did not finish within ${timeout}s"
  sleep 1
done
checks+=" recovery"
say "backup $label recovered to its end ($restored_to) and promoted"

# 4. Every table and index of every database, heap against index.
say "running pg_amcheck over every database"
if ! "$pg_bin/pg_amcheck" --all --heapallindexed --install-missing >"$work/amcheck.log" 2>&1; then
  cat "$work/amcheck.log" >&2
  fail "pg_amcheck found problems in backup $label: $(first_lines "$work/amcheck.log")"
fi
checks+=" amcheck"

if [ -n "${PGC_DRILL_CHECK:-}" ]; then
  database=${PGC_DRILL_DATABASE:-postgres}
  say "running the SQL check in database $database"
  # A role that reads everything and may do nothing else: the check is the user's text.
  "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -c "
    DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgc_drill_check') THEN CREATE ROLE pgc_drill_check LOGIN; END IF;
    END \$\$;
    GRANT pg_read_all_data, pg_read_all_settings, pg_read_all_stats TO pgc_drill_check" >&2 ||
    fail "cannot create the role the SQL check runs as"
  # One query string for the server: psql treats a -c text that starts with a backslash as its own
  # command, so the text never starts with one.
  if ! answer=$(PGUSER=pgc_drill_check PGDATABASE=$database "$pg_bin/psql" -X -A -t -q -v ON_ERROR_STOP=1 \
    -c "/* pgc-drill check */ $PGC_DRILL_CHECK" 2>"$work/check.log"); then
    cat "$work/check.log" >&2
    fail "the SQL check failed on backup $label: $(first_lines "$work/check.log" 2)"
  fi
  case "$(printf '%s' "$answer" | tr '[:upper:]' '[:lower:]')" in
    t | true | 1 | yes | on) ;;
    *) fail "the SQL check returned $(printf '%s' "$answer" | head -c 100 | tr '\n' ' '), not one true value, on backup $label" ;;
  esac
  checks+=" sql"
fi

# 5. Stop it; the EXIT trap removes every file.
stop_server
say "backup $label passed: ${checks}"
report succeeded
