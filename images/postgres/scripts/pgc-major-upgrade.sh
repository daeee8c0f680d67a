#!/usr/bin/env bash
# The major-upgrade Job: upgrades the stopped primary's data directory to a new PostgreSQL major
# (pgc-upgrade.sh) and moves the cluster's pgBackRest stanza along; or rolls both back; or tells
# whether the upgraded cluster was written to since (after which a rollback would lose writes).
#
#   pgc-major-upgrade.sh [--mode=link|copy] [--check-only]
#   pgc-major-upgrade.sh --rollback
#   pgc-major-upgrade.sh --written
#
#   --mode        link (default) or copy, as pgc-upgrade.sh
#   --check-only  the pre-flight only (pg_upgrade --check, and whether pgBackRest can back up the
#                 new major): changes nothing
#   --rollback    the old data directory back in place (pgc-upgrade.sh --rollback: refused in link
#                 mode once the new cluster was started), and the stanza back on the old cluster
#   --written     whether the upgraded cluster was written to since it first started:
#                 {"written": true|false, "changes": N, "databases": N[, "started": BOOL]}. Counts
#                 rows inserted, updated or deleted in any table of any database, the catalogs too
#                 (DDL, roles), except the planner statistics that ANALYZE (vacuumdb
#                 --analyze-in-stages) writes. With PGHOST set, asks the running server (PGPORT,
#                 PGUSER; a password only through PGPASSFILE): a session still connected may not
#                 have flushed its counters yet (PostgreSQL does when it goes idle, within about
#                 10 s, and when it ends). Without PGHOST, reads the stopped PGDATA, exact once
#                 every session ended: a new cluster never started is not written (nothing is
#                 started: a link-mode rollback stays possible); one that stopped cleanly is started
#                 on a private socket for the query and stopped; one that crashed lost its
#                 counters and counts as written (with a reason).
#
# Settings, from the environment of the Job:
#   PGDATA, PGC_UPGRADE_OLD_BIN, PGC_UPGRADE_NEW_BIN, PGC_UPGRADE_USER and the other PGC_UPGRADE_*
#                        settings of pgc-upgrade.sh
#   PGC_UPGRADE_STANZA   the pgBackRest stanza of the cluster; empty: no backups, pgBackRest is left
#                        alone
#   PGBACKREST_CONFIG    the pgBackRest configuration the backup Jobs use (with the repository's
#                        credentials in PGBACKREST_* variables, as there); pg1 is this data directory
#   PGC_RESULT_FILE      also write the JSON line there, on success and on failure
#
# With a stanza, the pre-flight checks that this pgBackRest can read the new major's control file
# (pgBackRest 2.45, Debian bookworm's, cannot read PostgreSQL 16's: the upgrade is refused before
# anything changes). After the upgrade, `pgbackrest stanza-upgrade --no-online` records the new
# cluster (new major, new system identifier) as the stanza's current database: WAL of the new
# cluster is archived apart from the old one's, and the next backup must be a full one. On rollback
# the same command records the old cluster as current again (pgBackRest keeps the history: the old
# backups stay restorable, the new major's backups stay listed); without it archive-push of the
# old cluster fails, its system identifier no longer being the stanza's.
#
# The statistics files pg_upgrade's own runs of the new cluster left are removed after the
# upgrade, so that --written counts only what happened once the cluster runs under Patroni.
#
# The JSON line: pgc-upgrade.sh's fields (result, from, to, mode, durations, old_data,
# rollback_possible, reason) plus system_identifier (of the cluster now in PGDATA: the one the
# DCS must be told, Patroni's `initialize` key), and stanza: skipped (no stanza), checked (the
# pre-flight passed), upgraded, unchanged (the run failed before the stanza step; or a rollback
# found the stanza still on the old cluster), reverted (rollback: the old cluster is current again)
# or failed (stanza-upgrade failed); recovered (true when the data directory had to be recovered
# from a crash first, see recover_if_crashed); durations.stanza and durations.recovery in seconds. On failure the data is as
# pgc-upgrade.sh leaves it (untouched when the pre-flight fails); exit status non-zero.
set -euo pipefail

say() { printf 'pgc-major-upgrade: %s\n' "$*" >&2; }
# shellcheck source-path=SCRIPTDIR source=pgc-result.sh
. "$(dirname "$0")/pgc-result.sh"

here=$(cd "$(dirname "$0")" && pwd)
datadir=${PGDATA:-/var/lib/postgresql/data/pgdata}
datadir=${datadir%/}
stanza=${PGC_UPGRADE_STANZA:-}
action=upgrade
upgrade_args=()
for arg in "$@"; do
  case "$arg" in
    --mode=*) upgrade_args+=("$arg") ;;
    --check-only) action=check ;;
    --rollback) action=rollback ;;
    --written) action=written ;;
    *) printf 'pgc-major-upgrade: error: unexpected argument %s (--mode=link|copy, --check-only, --rollback, --written)\n' \
      "'$arg'" >&2; exit 2 ;;
  esac
done

# --- --written ------------------------------------------------------------------------------------
if [ "$action" = written ]; then
  psql_bin=psql
  [ -z "${PGC_UPGRADE_NEW_BIN:-}" ] || psql_bin=$PGC_UPGRADE_NEW_BIN/psql
  offline=
  if [ -z "${PGHOST:-}" ]; then
    # The stopped data directory: its statistics, which a clean shutdown kept, read by starting it
    # on a private socket (no network, no archiving) and stopping it again.
    offline=1
    state=$datadir.pgc-upgrade
    state_get() { [ -f "$state" ] && sed -n "s/^$1=//p" "$state" | tail -n 1; }
    if [ "$(state_get stage || true)" != "done" ]; then
      pgc_result '{"written": null}' "no finished upgrade of $datadir is on record ($state)"
      exit 1
    fi
    new_bin=$(state_get new_bin)
    psql_bin=$new_bin/psql
    control() { "$new_bin/pg_controldata" "$datadir" | sed -n "s/^$1: *//p"; }
    if [ -f "$datadir/postmaster.pid" ] && "$new_bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
      pgc_result '{"written": null}' "PostgreSQL runs on $datadir: ask it over the network (PGHOST), or stop it first"
      exit 1
    fi
    cluster_state=$(control 'Database cluster state')
    if [ "$cluster_state" = "shut down" ] && [ "$(control 'Latest checkpoint location')" = "$(state_get checkpoint)" ]; then
      pgc_result '{"written": false, "changes": 0, "databases": 0, "started": false}'
      exit 0
    fi
    if [ "$cluster_state" != "shut down" ]; then
      pgc_result '{"written": true, "changes": null, "databases": 0, "started": true}' \
        "$datadir was not shut down cleanly ($cluster_state): PostgreSQL discarded its statistics, so writes cannot be ruled out"
      exit 0
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/pgc-major-upgrade.XXXXXX")
    chmod 0700 "$work"
    printf 'local all all trust\n' >"$work/pg_hba.conf"
    port=${PGC_UPGRADE_PORT:-50432}
    # shellcheck disable=SC2329  # run by the EXIT trap
    stop_private() {
      "$new_bin/pg_ctl" -D "$datadir" -m fast -w -t 300 stop >/dev/null 2>&1 || true
      rm -rf "$work"
    }
    if ! "$new_bin/pg_ctl" -D "$datadir" -l "$work/server.log" -w -t 300 start -o "-p $port -c listen_addresses='' \
      -c unix_socket_directories='$work' -c hba_file='$work/pg_hba.conf' -c archive_mode=off" >/dev/null; then
      reason="$datadir did not start to read its statistics: $(tail -n 3 "$work/server.log" | tr '\n' ' ')"
      rm -rf "$work"
      pgc_result '{"written": null}' "$reason"
      exit 1
    fi
    trap stop_private EXIT
    export PGHOST=$work PGPORT=$port PGUSER=${PGC_UPGRADE_USER:-postgres}
  fi
  psql_q() { "$psql_bin" -X -A -t -v ON_ERROR_STOP=1 "$@"; }
  if ! dbs=$(PGDATABASE=postgres psql_q -c "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1" 2>&1); then
    pgc_result '{"written": null}' "cannot connect to read the statistics: $dbs"
    exit 1
  fi
  changes=0
  n=0
  while IFS= read -r db; do
    [ -n "$db" ] || continue
    # PGDATABASE is taken as a name, never as a connection string.
    if ! c=$(PGDATABASE=$db psql_q -c \
      "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_all_tables WHERE relid NOT IN
         (SELECT oid FROM pg_class WHERE oid IN ('pg_statistic'::regclass, 'pg_statistic_ext_data'::regclass)
          UNION SELECT reltoastrelid FROM pg_class WHERE oid IN ('pg_statistic'::regclass, 'pg_statistic_ext_data'::regclass))" 2>&1); then
      pgc_result '{"written": null}' "cannot read the statistics of a database: $c"
      exit 1
    fi
    changes=$((changes + c))
    n=$((n + 1))
  done <<<"$dbs"
  written=false
  [ "$changes" -eq 0 ] || written=true
  pgc_result "{\"written\": $written, \"changes\": $changes, \"databases\": $n${offline:+, \"started\": true}}"
  exit 0
fi

# --- upgrade, check, rollback ---------------------------------------------------------------------
started_at=$EPOCHREALTIME
work=$(mktemp -d "${TMPDIR:-/tmp}/pgc-major-upgrade.XXXXXX")
trap 'rm -rf "$work"' EXIT
base='{}'
stanza_result=skipped
[ -z "$stanza" ] || stanza_result=unchanged
stanza_s=
recovered=
recover_s=

since() { python3 -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))' "$1" "$EPOCHREALTIME"; }

report() {
  # report [REASON]: pgc-upgrade.sh's JSON with this script's fields, total duration from here.
  local sysid=
  if [ -f "$datadir/PG_VERSION" ]; then
    sysid=$(pg_controldata_any "$datadir" | sed -n 's/^Database system identifier: *//p' || true)
  fi
  pgc_result "$(BASE=$base STANZA=$stanza_result STANZA_S=$stanza_s SYSID=$sysid STARTED=$started_at \
    RECOVERED=$recovered RECOVER_S=$recover_s NOW=$EPOCHREALTIME python3 -c '
import json, os
e = os.environ
r = json.loads(e["BASE"]) or {"result": "failed"}
r.pop("reason", None)
r.setdefault("durations", {})
r["durations"]["stanza"] = float(e["STANZA_S"]) if e["STANZA_S"] else None
r["durations"]["total"] = round(float(e["NOW"]) - float(e["STARTED"]), 2)
r["durations"]["recovery"] = float(e["RECOVER_S"]) if e["RECOVER_S"] else None
r["recovered"] = e["RECOVERED"] == "1"
r["stanza"] = e["STANZA"]
r["system_identifier"] = e["SYSID"] or None
print(json.dumps(r))')" "${1:-}" 600
}

# pg_controldata of whichever major the data directory is (both bin directories can read their own).
pg_controldata_any() {
  local b
  for b in "${PGC_UPGRADE_NEW_BIN:-}" "${PGC_UPGRADE_OLD_BIN:-}" "/usr/lib/postgresql/$(cat "$1/PG_VERSION")/bin"; do
    [ -n "$b" ] && [ -x "$b/pg_controldata" ] || continue
    if "$b/pg_controldata" "$1" 2>/dev/null; then
      return 0
    fi
  done
  return 1
}

fail() {
  say "error: $*"
  base=$(printf '%s' "$base" | python3 -c 'import json, sys; r = json.load(sys.stdin); r["result"] = "failed"; print(json.dumps(r))')
  report "$*"
  exit 1
}

# pgc-upgrade.sh with the given arguments: its JSON line into $base, its status returned.
run_upgrade() {
  local out rc=0
  out=$(PGC_RESULT_FILE='' "$here/pgc-upgrade.sh" "$@") || rc=$?
  base=$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n 1)
  [ -n "$base" ] || base='{}'
  upgrade_reason=$(printf '%s' "$base" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("reason", ""))' 2>/dev/null || true)
  return $rc
}

# pgBackRest with the Job's configuration, pg1 being this data directory (the backup Jobs' may
# name a member's TLS server instead).
backrest() { pgbackrest --stanza="$stanza" --pg1-path="$datadir" --reset-pg1-host "$@"; }

# Whether this pgBackRest reads the new major's control file: a scratch cluster of the new major and
# a stanza of it in a scratch repository, with no configuration and no PGBACKREST_* setting of the
# Job (nothing reaches the real repository).
probe_pgbackrest() {
  local new_bin=$1 out
  "$new_bin/initdb" -D "$work/probe" -U pgc_probe --no-sync >"$work/probe-initdb.log" 2>&1 ||
    fail "initdb of a scratch PostgreSQL cluster failed: $(tail -n 3 "$work/probe-initdb.log" | tr '\n' ' ')"
  if ! out=$(
    for v in $(compgen -e); do case "$v" in PGBACKREST_*) unset "$v" ;; esac; done
    pgbackrest --no-config --stanza=pgc-probe --pg1-path="$work/probe" --repo1-path="$work/probe-repo" \
      --lock-path="$work" --log-path="$work" --log-level-console=error --log-level-stderr=off --log-level-file=off \
      stanza-create --no-online 2>&1
  ); then
    local error
    error=$(printf '%s' "$out" | grep -o -m 1 'ERROR: .*' | sed 's/^ERROR: //' || printf '%s' "$out" | tail -n 1)
    case "$error" in
      *"unexpected control version"* | *"[046]"*)
        fail "pgBackRest $(pgbackrest version | sed 's/^pgBackRest //') cannot back up PostgreSQL" \
          "$("$new_bin/postgres" --version | sed -E 's/.* ([0-9]+)\..*/\1/') ($error):" \
          "install a pgBackRest that supports it in the image first; nothing was changed" ;;
      *) fail "the pgBackRest pre-flight (a stanza of a scratch cluster of the new major) failed: $error;" \
        "nothing was changed" ;;
    esac
  fi
  rm -rf "$work/probe" "$work/probe-repo"
}

# The ids of the stanza's database history, from `pgbackrest info --output=json`.
dbs_of() { printf '%s' "$1" | python3 -c 'import json, sys; print(" ".join(str(d["id"]) for d in json.load(sys.stdin)[0]["db"]))'; }

if [ "$action" = rollback ]; then
  if ! run_upgrade --rollback; then
    fail "${upgrade_reason:-pgc-upgrade.sh --rollback failed}"
  fi
  if [ -n "$stanza" ]; then
    t=$EPOCHREALTIME
    before=$(pgbackrest --stanza="$stanza" --output=json info 2>"$work/info.err") || fail "pgbackrest info failed: $(tr '\n' ' ' <"$work/info.err")"
    if ! backrest --log-level-console=info stanza-upgrade --no-online >"$work/stanza.log" 2>&1; then
      cat "$work/stanza.log" >&2
      fail "the data is the old cluster again, but pgbackrest stanza-upgrade failed, so its WAL cannot be" \
        "archived: $(grep -o -m 1 'ERROR: .*' "$work/stanza.log" || tail -n 1 "$work/stanza.log")"
    fi
    cat "$work/stanza.log" >&2
    after=$(pgbackrest --stanza="$stanza" --output=json info)
    stanza_result=unchanged
    [ "$(dbs_of "$before")" = "$(dbs_of "$after")" ] || stanza_result=reverted
    stanza_s=$(since "$t")
  fi
  report
  exit 0
fi

if [ -n "$stanza" ]; then
  new_bin=${PGC_UPGRADE_NEW_BIN:-}
  if [ -z "$new_bin" ]; then
    new_bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  [ -x "${new_bin:-/nonexistent}/initdb" ] || fail "${new_bin:-the new major}/initdb is missing: set PGC_UPGRADE_NEW_BIN"
  command -v pgbackrest >/dev/null || fail "pgbackrest is missing, and stanza $stanza is configured"
  probe_pgbackrest "$new_bin"
fi

# A primary that did not shut down cleanly: what a pod's end leaves while Patroni is paused (Patroni,
# the container's first process, stops without stopping PostgreSQL, and the rest of the container
# is killed). pg_upgrade refuses such a data directory: PostgreSQL recovers it first, on a private
# socket without archiving (WAL not yet archived stays marked for the archiver: a rollback brings
# it back), and stops cleanly. Never for a standby's data, nor once an upgrade is on record.
recover_if_crashed() {
  local bin
  [ -f "$datadir/PG_VERSION" ] && [ ! -e "$datadir.pgc-upgrade" ] && [ ! -e "$datadir/standby.signal" ] || return 0
  bin=${PGC_UPGRADE_OLD_BIN:-/usr/lib/postgresql/$(cat "$datadir/PG_VERSION")/bin}
  [ -x "$bin/pg_ctl" ] || return 0
  [ "$("$bin/pg_controldata" "$datadir" | sed -n 's/^Database cluster state: *//p')" = "in production" ] || return 0
  if [ -f "$datadir/postmaster.pid" ] && "$bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
    return 0
  fi
  say "$datadir was not shut down cleanly: recovering it (no network, no archiving) and stopping it cleanly first"
  printf 'local all all trust\n' >"$work/pg_hba.conf"
  local t=$EPOCHREALTIME
  if ! "$bin/pg_ctl" -D "$datadir" -l "$work/recover.log" -w -t 3600 start -o "-p ${PGC_UPGRADE_PORT:-50432} \
    -c listen_addresses='' -c unix_socket_directories='$work' -c hba_file='$work/pg_hba.conf' -c archive_mode=off" >/dev/null; then
    fail "$datadir was not shut down cleanly and did not recover: $(tail -n 3 "$work/recover.log" | tr '\n' ' ')"
  fi
  "$bin/pg_ctl" -D "$datadir" -m fast -w -t 3600 stop >/dev/null ||
    fail "$datadir recovered but did not stop cleanly: $(tail -n 3 "$work/recover.log" | tr '\n' ' ')"
  recovered=1
  recover_s=$(since "$t")
}
recover_if_crashed

if [ "$action" = check ]; then
  run_upgrade --check-only "${upgrade_args[@]}" || fail "${upgrade_reason:-pgc-upgrade.sh --check-only failed}"
  [ -z "$stanza" ] || stanza_result=checked
  report
  exit 0
fi

run_upgrade "${upgrade_args[@]}" || fail "${upgrade_reason:-pgc-upgrade.sh failed}"
fresh=$(printf '%s' "$base" | python3 -c 'import json, sys; print(1 if json.load(sys.stdin)["durations"].get("upgrade") else "")')
if [ -n "$fresh" ]; then
  # What pg_upgrade's own runs of the new cluster counted: --written counts from zero.
  rm -f "$datadir"/pg_stat/*.stat
fi
if [ -n "$stanza" ]; then
  t=$EPOCHREALTIME
  if ! backrest --log-level-console=info stanza-upgrade --no-online >"$work/stanza.log" 2>&1; then
    cat "$work/stanza.log" >&2
    stanza_result=failed
    fail "the data was upgraded but pgbackrest stanza-upgrade failed (roll back, or fix and run again):" \
      "$(grep -o -m 1 'ERROR: .*' "$work/stanza.log" || tail -n 1 "$work/stanza.log")"
  fi
  cat "$work/stanza.log" >&2
  stanza_result=upgraded
  stanza_s=$(since "$t")
fi
report
