#!/usr/bin/env bash
# Patroni's custom bootstrap of a cluster created from another cluster's backup
# (spec.bootstrap.fromBackup): restores the source's backup into the empty data directory, with
# the recovery settings that take it to the target and promote it. Patroni then starts it, waits
# for the promotion and makes it the new cluster's primary; the replicas clone from it.
#
#   pgc-bootstrap-from-backup.sh --scope=CLUSTER --datadir=DIR      (as Patroni calls it)
#
# Settings, from the pod's environment:
#   PGC_SOURCE_STANZA, PGC_SOURCE_CONFIG     the source cluster's stanza and pgbackrest.conf
#   PGC_SOURCE_REPO1_S3_KEY, PGC_SOURCE_REPO1_S3_KEY_SECRET, PGC_SOURCE_REPO1_CIPHER_PASS
#   PGC_RESTORE_TARGET_TIME   recover up to this time (with its zone) and promote
#   PGC_RESTORE_SET           or restore this backup and promote as soon as it is consistent
#   (neither)                 the newest backup and all archived WAL
# pgc-restore.sh refuses a backup that does not exist or does not verify: the bootstrap then fails
# and leaves no data directory, and Patroni elects no primary.
#
# The restored data directory archives nothing into the source: the source's archive settings in
# postgresql.auto.conf are dropped, so that after the promotion the cluster's own archive_command
# (Patroni's configuration) pushes to its own stanza.
set -euo pipefail

die() { printf 'pgc-bootstrap-from-backup: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'pgc-bootstrap-from-backup: %s\n' "$*" >&2; }

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=pgc-source-env.sh
. "$here/pgc-source-env.sh"

datadir=
for arg in "$@"; do
  case "$arg" in
    --datadir=*) datadir=${arg#*=} ;;
    --scope=*) ;;
    *) die "unexpected argument '$arg'" ;;
  esac
done
[ -n "$datadir" ] || die "--datadir is required (Patroni passes it)"
[ -z "${PGC_RESTORE_TARGET_TIME:-}" ] || [ -z "${PGC_RESTORE_SET:-}" ] ||
  die "PGC_RESTORE_TARGET_TIME and PGC_RESTORE_SET are exclusive"
pgc_source_env || die "the source is not configured"

args=(--datadir="$datadir" --restore-command="$here/pgc-source-archive-get.sh %f \"%p\"")
if [ -n "${PGC_RESTORE_TARGET_TIME:-}" ]; then
  args+=(--target-time="$PGC_RESTORE_TARGET_TIME")
elif [ -n "${PGC_RESTORE_SET:-}" ]; then
  args+=(--set="$PGC_RESTORE_SET" --immediate)
fi
say "restoring from stanza $PGBACKREST_STANZA${PGC_RESTORE_TARGET_TIME:+ up to $PGC_RESTORE_TARGET_TIME}${PGC_RESTORE_SET:+ backup $PGC_RESTORE_SET}"
"$here/pgc-restore.sh" "${args[@]}" >&2 || die "the restore failed: no data directory was made"

auto=$datadir/postgresql.auto.conf
if [ -f "$auto" ]; then
  sed -i -E 's/^[[:space:]]*(archive_mode|archive_command|archive_library)[[:space:]]*=/# removed by pgc-bootstrap-from-backup: &/' "$auto"
fi
say "restored into $datadir; PostgreSQL recovers and promotes when Patroni starts it"
