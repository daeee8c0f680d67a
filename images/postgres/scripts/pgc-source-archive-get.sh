#!/usr/bin/env bash
# PostgreSQL's restore_command while a new cluster recovers from another cluster's backup
# (spec.bootstrap.fromBackup): fetches a WAL segment from the source's repository.
#
#   pgc-source-archive-get.sh %f "%p"
#
# Settings: PGC_SOURCE_STANZA, PGC_SOURCE_CONFIG and the source's secrets (PGC_SOURCE_REPO1_*).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=pgc-source-env.sh
. "$here/pgc-source-env.sh"
[ $# -eq 2 ] || { printf 'usage: pgc-source-archive-get.sh WALFILE PATH\n' >&2; exit 2; }
pgc_source_env
exec pgbackrest archive-get "$1" "$2"
