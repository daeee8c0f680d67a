#!/usr/bin/env bash
# Upgrades a stopped PostgreSQL data directory to a new major with pg_upgrade, in place: the way a
# major-upgrade Job runs it on the data claim of member 0 while every member is stopped. The
# building block of major upgrades; the replicas are cloned again from the upgraded primary.
#
#   pgc-upgrade.sh [--mode=link|copy] [--check-only] [--analyze]
#   pgc-upgrade.sh --rollback
#
#   --mode        link (hard links: fast, no second copy of the data; the old cluster is usable
#                 only until the new one is started) or copy (the old data stays intact, twice the
#                 space); overrides PGC_UPGRADE_MODE
#   --check-only  only the pre-flight (pg_upgrade --check against a scratch new cluster): changes
#                 nothing
#   --analyze     run `vacuumdb --all --analyze-in-stages` on the new cluster afterwards (it is
#                 started for that, without listening on the network, and stopped). Off by default:
#                 the operator runs ANALYZE once the new cluster runs under Patroni.
#   --rollback    put the old data directory back in place of the upgraded one; refused once a
#                 link-mode upgrade's new cluster was started (the old one is no longer whole)
#
# Settings, from the environment of the Job:
#   PGDATA                the data directory (default /var/lib/postgresql/data/pgdata)
#   PGC_UPGRADE_OLD_BIN   the old major's bin directory (default /usr/lib/postgresql/<PG_VERSION>/bin)
#   PGC_UPGRADE_NEW_BIN   the new major's bin directory (default: the newest /usr/lib/postgresql/*/bin)
#   PGC_UPGRADE_MODE      link (default) or copy
#   PGC_UPGRADE_USER      the cluster's superuser, the one initdb made (default postgres)
#   PGC_UPGRADE_JOBS      pg_upgrade --jobs (default 1)
#   PGC_UPGRADE_PORT      the port in the name of the private socket the servers use (default 50432)
#   PGC_RESULT_FILE       also write the JSON line there, on success and on failure
# No secret is needed: while pg_upgrade runs, both servers listen on a socket in a private
# directory only, with an hba_file of their own that trusts that socket.
#
# How: a new cluster is initdb'd beside the old one (<PGDATA>.upgrading) with the old one's
# encoding, locale, data checksums, WAL segment size and superuser (pg_control, and template0 read
# from the old server started briefly); `pg_upgrade --check` must pass
# (else the reason is reported and PGDATA is left untouched); pg_upgrade runs; then the directories
# are swapped: PGDATA holds the new major and the old one is kept as <PGDATA>.pre-upgrade for a
# rollback. The old cluster's postgresql.auto.conf, pg_hba.conf and pg_ident.conf are copied over
# (Patroni rewrites postgresql.conf and pg_hba.conf when it starts the member). The new cluster is
# never started here (except by --analyze): starting it ends a link-mode rollback. Tablespaces stay
# where they are: pg_upgrade adds the new major's directory in each, which a rollback removes.
# <PGDATA>'s parent must hold the old and the new cluster side by side (the member's claim).
# The progress is kept in <PGDATA>.pgc-upgrade (KEY=VALUE lines beside the data): a run stopped by a
# signal puts the data back as it was; a run killed outright is put back, or its swap finished, by
# the next run; a run after a finished upgrade reports it again and changes nothing.
#
# The JSON line: result (upgraded, checked, rolled-back or failed), from and to (the majors), mode,
# durations (seconds: check, upgrade, analyze, total), old_data (where the old cluster is kept),
# rollback_possible, and reason when it failed.
set -euo pipefail

say() { printf 'pgc-upgrade: %s\n' "$*" >&2; }
# shellcheck source-path=SCRIPTDIR source=pgc-result.sh
. "$(dirname "$0")/pgc-result.sh"

datadir=${PGDATA:-/var/lib/postgresql/data/pgdata}
datadir=${datadir%/}
mode=${PGC_UPGRADE_MODE:-link}
superuser=${PGC_UPGRADE_USER:-postgres}
action=upgrade
analyze=
for arg in "$@"; do
  case "$arg" in
    --mode=*) mode=${arg#--mode=} ;;
    --check-only) action=check ;;
    --analyze) analyze=1 ;;
    --rollback) action=rollback ;;
    *) printf 'pgc-upgrade: error: unexpected argument %s (--mode=link|copy, --check-only, --analyze, --rollback)\n' \
      "'$arg'" >&2; exit 2 ;;
  esac
done

new=$datadir.upgrading
aside=$datadir.pre-upgrade
state=$datadir.pgc-upgrade
started_at=$EPOCHREALTIME
from=
to=
old_bin=
new_bin=
check_s=
upgrade_s=
analyze_s=
rollback_possible=
result_old_data=
work=
child=
undo=

report() {
  # report RESULT [REASON]: the JSON line, on stdout and in PGC_RESULT_FILE.
  pgc_result "$(RESULT=$1 FROM=$from TO=$to MODE=$mode CHECK=$check_s UPGRADE=$upgrade_s ANALYZE=$analyze_s \
    STARTED=$started_at NOW=$EPOCHREALTIME OLD_DATA=$result_old_data ROLLBACK=$rollback_possible python3 -c '
import json, os
e = os.environ
def seconds(v):
    return round(float(v), 2) if v else None
print(json.dumps({
    "result": e["RESULT"], "from": e["FROM"] or None, "to": e["TO"] or None, "mode": e["MODE"],
    "durations": {"check": seconds(e["CHECK"]), "upgrade": seconds(e["UPGRADE"]), "analyze": seconds(e["ANALYZE"]),
                  "total": seconds(float(e["NOW"]) - float(e["STARTED"]))},
    "old_data": e["OLD_DATA"] or None, "rollback_possible": e["ROLLBACK"] == "1"}))')" "${2:-}" 600
}

fail() {
  say "error: $*"
  # Before the swap, a failure puts the data back as it was.
  [ -z "$undo" ] || put_back
  report failed "$*"
  exit 1
}

since() { python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$1" "$EPOCHREALTIME"; }
control() { "$2/pg_controldata" "$1" | sed -n "s/^$3: *//p"; }
major_of() { "$1/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*( .*)?$/\1/'; }

# The progress file: KEY=VALUE lines, read with state_get (never sourced).
state_get() { [ -f "$state" ] && sed -n "s/^$1=//p" "$state" | tail -n 1; }
state_write() {
  local tmp=$state.tmp
  printf 'stage=%s\nmode=%s\nfrom=%s\nto=%s\nold_bin=%s\nnew_bin=%s\ncheckpoint=%s\n' "$1" "$mode" "$from" "$to" \
    "$old_bin" "$new_bin" "${2:-}" >"$tmp"
  sync "$tmp" 2>/dev/null || true
  mv "$tmp" "$state"
}

stop_server() {
  # stop_server DATADIR BIN: whatever a killed pg_upgrade left running there.
  if [ -f "$1/postmaster.pid" ] && "$2/pg_ctl" -D "$1" status >/dev/null 2>&1; then
    "$2/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      "$2/pg_ctl" -D "$1" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
}

# Put back what an upgrade that did not swap (or a rollback that did not finish) left: the old
# cluster in place and enabled again (link mode renames its pg_control), the new directory removed.
put_back() {
  local ob=${old_bin:-$(state_get old_bin)} nb=${new_bin:-$(state_get new_bin)}
  if [ -n "$child" ]; then
    kill "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
    child=
  fi
  [ -z "$nb" ] || [ ! -d "$new" ] || stop_server "$new" "$nb"
  [ -z "$ob" ] || [ ! -d "$datadir" ] || stop_server "$datadir" "$ob"
  if [ ! -e "$datadir" ] && [ -d "$aside" ]; then
    mv -T "$aside" "$datadir"
  fi
  if [ -f "$datadir/global/pg_control.old" ] && [ ! -f "$datadir/global/pg_control" ]; then
    mv -T "$datadir/global/pg_control.old" "$datadir/global/pg_control"
  fi
  # pg_upgrade made a directory for the new major in each tablespace of the old cluster.
  local ts
  for ts in "$datadir"/pg_tblspc/*; do
    [ -z "$to" ] || [ ! -L "$ts" ] || rm -rf "$ts/PG_${to}_"*
  done
  rm -rf "$new"
  rm -f "$state" "$state.tmp"
}

cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT

# The new cluster was started after pg_upgrade (by Patroni, by hand) when its last checkpoint moved
# from the one pg_upgrade left, or when it did not shut down cleanly.
new_cluster_started() {
  local dir=$1 bin
  bin=$(state_get new_bin)
  [ "$(control "$dir" "$bin" 'Database cluster state')" != "shut down" ] ||
    [ "$(control "$dir" "$bin" 'Latest checkpoint location')" != "$(state_get checkpoint)" ]
}

# Where the upgrade is at: none, half (pg_upgrade did not finish), swap (pg_upgrade finished, the
# directories maybe not yet swapped) or done.
stage=$(state_get stage || true)
stage=${stage:-none}
if [ "$stage" = none ] && [ -e "$new" ]; then
  # initdb's directory of a run killed before it wrote its progress: nothing else was touched.
  stage=half
fi
if [ "$stage" != none ]; then
  mode=$(state_get mode)
  from=$(state_get from)
  to=$(state_get to)
  old_bin=$(state_get old_bin)
  new_bin=$(state_get new_bin)
fi
if [ "$stage" != none ] && [ -f "$datadir/postmaster.pid" ] && "$new_bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
  fail "PostgreSQL runs on $datadir: stop it first"
fi
if [ "$stage" = swap ]; then
  # pg_upgrade finished, the kill came during the swap: finish it.
  say "an earlier upgrade was killed while swapping the directories: finishing the swap"
  trap '' INT TERM HUP
  if [ -d "$new" ]; then
    [ ! -d "$datadir" ] || mv -T "$datadir" "$aside"
    mv -T "$new" "$datadir"
  fi
  state_write done "$(state_get checkpoint)"
  trap - INT TERM HUP
  stage=done
fi

if [ "$action" = rollback ]; then
  case "$stage" in
    none) fail "nothing to roll back: no upgrade of $datadir is on record ($state)" ;;
    half)
      put_back
      rollback_possible=1
      say "an upgrade that did not finish was put back: $datadir is the old cluster"
      report rolled-back
      exit 0 ;;
  esac
  [ -d "$aside" ] || fail "the old cluster ($aside) is gone: rollback is no longer possible"
  if [ "$mode" = link ] && new_cluster_started "$datadir"; then
    result_old_data=$aside
    fail "rollback is no longer possible: the new cluster was started after a link-mode upgrade," \
      "so the old cluster's files are no longer its own; restore from a backup instead"
  fi
  # The new cluster goes (it becomes <PGDATA>.upgrading, removed by put_back), the old one comes back.
  trap '' INT TERM HUP
  state_write half
  mv -T "$datadir" "$new"
  mv -T "$aside" "$datadir"
  put_back
  trap - INT TERM HUP
  rollback_possible=1
  say "rolled back: $datadir is the PostgreSQL $from cluster again"
  report rolled-back
  exit 0
fi

if [ "$stage" = half ]; then
  say "an earlier upgrade did not finish: putting the data as it was back first"
  put_back
  stage=none
fi
if [ "$stage" = done ]; then
  result_old_data=$aside
  [ -d "$aside" ] || result_old_data=
  if [ -n "$result_old_data" ] && { [ "$mode" = copy ] || ! new_cluster_started "$datadir"; }; then
    rollback_possible=1
  fi
  [ "$action" = upgrade ] || fail "$datadir was already upgraded from PostgreSQL $from to $to"
  say "$datadir was already upgraded from PostgreSQL $from to $to: nothing to do"
  report upgraded
  exit 0
fi

# --- pre-flight -----------------------------------------------------------------------------------
case "$mode" in link | copy) ;; *) fail "unknown mode '$mode' (link or copy)" ;; esac
[ -f "$datadir/PG_VERSION" ] || fail "$datadir is not a PostgreSQL data directory (no PG_VERSION)"
from=$(cat "$datadir/PG_VERSION")
old_bin=${PGC_UPGRADE_OLD_BIN:-/usr/lib/postgresql/$from/bin}
if [ -z "${PGC_UPGRADE_NEW_BIN:-}" ]; then
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
    new_bin=$candidate
  done
else
  new_bin=$PGC_UPGRADE_NEW_BIN
fi
for b in postgres pg_ctl pg_controldata psql; do
  [ -x "$old_bin/$b" ] || fail "$old_bin/$b is missing: PGC_UPGRADE_OLD_BIN must hold PostgreSQL $from's binaries"
done
for b in postgres pg_ctl initdb pg_upgrade pg_controldata vacuumdb; do
  [ -x "${new_bin:-/nonexistent}/$b" ] || fail "${new_bin:-the new major}/$b is missing: set PGC_UPGRADE_NEW_BIN"
done
[ "$(major_of "$old_bin")" = "$from" ] || fail "$old_bin is PostgreSQL $(major_of "$old_bin"), not $from as $datadir"
to=$(major_of "$new_bin")
[ "$to" -gt "$from" ] || fail "$new_bin is PostgreSQL $to: not a newer major than $datadir's $from"
if [ -f "$datadir/postmaster.pid" ] && "$old_bin/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
  fail "PostgreSQL runs on $datadir: stop every member first"
fi
[ ! -e "$aside" ] || fail "$aside exists (the old cluster of an earlier upgrade): move or remove it first"
cluster_state=$(control "$datadir" "$old_bin" 'Database cluster state')
case "$cluster_state" in
  "shut down") ;;
  "shut down in recovery") fail "$datadir was a replica when it stopped: upgrade the primary's data directory" ;;
  *) fail "$datadir was not shut down cleanly ($cluster_state): start it and stop it cleanly first" ;;
esac
[ ! -e "$datadir/standby.signal" ] || fail "$datadir is a standby's (standby.signal): upgrade the primary's data directory"
if [ "$mode" = copy ]; then
  # Copy mode writes a second copy of the data beside the first.
  need_kb=$(du -sk "$datadir" | cut -f1)
  free_kb=$(df -Pk "$(dirname "$datadir")" | awk 'NR == 2 { print $4 }')
  [ "$need_kb" -lt "${free_kb:-0}" ] ||
    fail "copy mode needs about $((need_kb / 1024)) MiB free beside $datadir, $((${free_kb:-0} / 1024)) MiB are:" \
      "use link mode or a larger volume"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pgc-upgrade.XXXXXX")
chmod 0700 "$work"
port=${PGC_UPGRADE_PORT:-50432}
# Both servers trust their private socket and nothing else, while this script runs them.
printf 'local all all trust\n' >"$work/pg_hba.conf"
server_opts="-c listen_addresses='' -c unix_socket_directories='$work' -c hba_file='$work/pg_hba.conf' -c archive_mode=off"

# From here a run killed outright is put back by the next one; a signal puts it back at once.
undo=1
trap 'fail "stopped by a signal: $datadir is as it was"' INT TERM HUP
[ "$action" = check ] || state_write half

# The old cluster's settings that the new one must share: read from pg_control, and from template0
# on the old server started briefly (only on its private socket).
checksums=$(control "$datadir" "$old_bin" 'Data page checksum version')
wal_bytes=$(control "$datadir" "$old_bin" 'Bytes per WAL segment')
"$old_bin/pg_ctl" -D "$datadir" -l "$work/old.log" -w -t 300 start -o "-p $port $server_opts" >/dev/null ||
  fail "the old cluster did not start to read its settings: $(tail -n 3 "$work/old.log" | tr '\n' ' ')"
if ! settings=$("$old_bin/psql" -X -A -t -F '|' -h "$work" -p "$port" -U "$superuser" -d template1 -c \
  "SELECT (SELECT rolname FROM pg_authid WHERE oid = 10), pg_encoding_to_char(encoding), datcollate, datctype,
          datlocprovider, coalesce(daticulocale, '') FROM pg_database WHERE datname = 'template0'" 2>"$work/psql.err"); then
  fail "cannot read the old cluster's settings as $superuser (PGC_UPGRADE_USER): $(cat "$work/psql.err")"
fi
"$old_bin/pg_ctl" -D "$datadir" -m fast -w -t 300 stop >/dev/null
IFS='|' read -r install_user encoding collate ctype provider icu_locale <<<"$settings"
[ "$install_user" = "$superuser" ] ||
  fail "$superuser is not the cluster's install user ($install_user): set PGC_UPGRADE_USER=$install_user"
initdb_args=(-D "$new" -U "$superuser" -E "$encoding" --lc-collate="$collate" --lc-ctype="$ctype"
  --wal-segsize=$((wal_bytes / 1048576)) --auth-local=peer --auth-host=scram-sha-256)
[ "$checksums" = 0 ] || initdb_args+=(--data-checksums)
if [ "$provider" = i ]; then
  initdb_args+=(--locale-provider=icu --icu-locale="$icu_locale")
fi
say "PostgreSQL $from -> $to ($mode): encoding $encoding, locale $collate/$ctype${icu_locale:+ (ICU $icu_locale)}, checksums $([ "$checksums" = 0 ] && echo off || echo on)"

if ! "$new_bin/initdb" "${initdb_args[@]}" >"$work/initdb.log" 2>&1; then
  fail "initdb of the new cluster failed: $(tail -n 3 "$work/initdb.log" | tr '\n' ' ')"
fi
if [ -f "$datadir/postgresql.auto.conf" ]; then
  # Settings the new major no longer knows fail here, before anything changed.
  cp -p "$datadir/postgresql.auto.conf" "$new/postgresql.auto.conf"
  if ! "$new_bin/postgres" -D "$new" -C server_version >/dev/null 2>"$work/auto.err"; then
    fail "the old cluster's postgresql.auto.conf does not load in PostgreSQL $to:" \
      "$(grep -v '^$' "$work/auto.err" | head -n 3 | tr '\n' ' ')"
  fi
  # pg_upgrade starts the new cluster bare (shared_preload_libraries and all come back after).
  rm -f "$new/postgresql.auto.conf"
fi

pg_upgrade() {
  # pg_upgrade LOG ARGS...: in the background (so that a signal is handled at once), from the work
  # directory (its log directory); its output in LOG, then on stderr.
  local log=$1 rc=0
  shift
  (cd "$work" && exec "$new_bin/pg_upgrade" -b "$old_bin" -B "$new_bin" -d "$datadir" -D "$new" -U "$superuser" \
    -p "$port" -P "$port" -s "$work" -j "${PGC_UPGRADE_JOBS:-1}" -o "$server_opts" -O "$server_opts" "$@") \
    >"$log" 2>&1 &
  child=$!
  wait "$child" || rc=$?
  child=
  cat "$log" >&2
  return $rc
}
link=()
[ "$mode" = copy ] || link=(--link)
# What pg_upgrade wrote about a failed check (the list of missing libraries and the like).
upgrade_reason() {
  local f out=""
  for f in $(find "$new/pg_upgrade_output.d" -name '*.txt' 2>/dev/null | sort); do
    out+="$(basename "$f"): $(grep -v '^[[:space:]]*$' "$f" | head -n 6 | tr '\n' ' ')"
  done
  [ -n "$out" ] || out=$(find "$new/pg_upgrade_output.d" -name 'pg_upgrade_server.log' -exec tail -n 3 {} \; 2>/dev/null | tr '\n' ' ')
  printf '%s' "$out"
}

t=$EPOCHREALTIME
pg_upgrade "$work/check.log" --check "${link[@]}" || true
check_s=$(since "$t")
if ! grep -q '^\*Clusters are compatible\*' "$work/check.log"; then
  # The check that failed and the first sentence pg_upgrade says about it; else the end of its output.
  reason=$(awk '/fatal[[:space:]]*$/ { sub(/[[:space:]]+fatal[[:space:]]*$/, ": "); printf "%s", $0; on = 1; next }
    on && NF { printf "%s ", $0; said = 1; next } on && said { exit }' "$work/check.log")
  reason=${reason%%. *}
  [ -n "$reason" ] || reason=$(grep -v '^[[:space:]]*$' "$work/check.log" | tail -n 3 | tr '\n' ' ')
  details=$(upgrade_reason)
  fail "pg_upgrade --check failed, $datadir is untouched: ${reason:-see the log above}${details:+ -- $details}"
fi
if [ "$action" = check ]; then
  put_back
  undo=
  say "PostgreSQL $from can be upgraded to $to in $mode mode"
  report checked
  exit 0
fi

say "upgrading $datadir to PostgreSQL $to ($mode mode)"
t=$EPOCHREALTIME
if ! pg_upgrade "$work/upgrade.log" "${link[@]}"; then
  details=$(upgrade_reason)
  fail "pg_upgrade failed, $datadir is as it was${details:+: $details}"
fi
upgrade_s=$(since "$t")
for f in postgresql.auto.conf pg_hba.conf pg_ident.conf; do
  [ ! -f "$datadir/$f" ] || cp -p "$datadir/$f" "$new/$f"
done
# pg_upgrade's own scripts: the operator deletes the old cluster and runs ANALYZE its own way.
rm -f "$work/delete_old_cluster.sh" "$work/update_extensions.sql"
state_write swap "$(control "$new" "$new_bin" 'Latest checkpoint location')"

# The swap: no signal stops it half-way (a kill outright is finished by the next run).
undo=
trap '' INT TERM HUP
mv -T "$datadir" "$aside"
mv -T "$new" "$datadir"
state_write done "$(state_get checkpoint)"
trap - INT TERM HUP
result_old_data=$aside
rollback_possible=1

if [ -n "$analyze" ]; then
  # Starting the new cluster ends a link-mode rollback: only when asked.
  [ "$mode" = copy ] || rollback_possible=
  t=$EPOCHREALTIME
  say "analyzing the new cluster (vacuumdb --all --analyze-in-stages)"
  "$new_bin/pg_ctl" -D "$datadir" -l "$work/new.log" -w -t 300 start -o "-p $port $server_opts" >/dev/null ||
    fail "the new cluster did not start for ANALYZE: $(tail -n 3 "$work/new.log" | tr '\n' ' ')"
  if ! "$new_bin/vacuumdb" -h "$work" -p "$port" -U "$superuser" --all --analyze-in-stages >&2; then
    stop_server "$datadir" "$new_bin"
    fail "vacuumdb --analyze-in-stages failed on the new cluster"
  fi
  "$new_bin/pg_ctl" -D "$datadir" -m fast -w -t 300 stop >/dev/null
  analyze_s=$(since "$t")
fi
say "upgraded $datadir from PostgreSQL $from to $to; the old cluster is kept in $aside"
report upgraded
