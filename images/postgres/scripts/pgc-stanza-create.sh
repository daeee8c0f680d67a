#!/usr/bin/env bash
# Creates the cluster's stanza in its repository, once, on the new primary (Patroni's post_bootstrap),
# so that WAL archiving works before the first backup. Never fails the bootstrap: when the
# repository cannot be reached it logs why and succeeds (the first backup creates the stanza).
#
#   pgc-stanza-create.sh [ANY ...]      (arguments are ignored: Patroni appends a connection string)
#
# Settings: PGBACKREST_STANZA, PGBACKREST_CONFIG and the secrets, as for pgc-backup.sh;
# PGC_STANZA_CREATE_TIMEOUT, seconds (default 60). Does nothing when PGBACKREST_STANZA is not set
# (the cluster has no repository).
set -uo pipefail

say() { printf 'pgc-stanza-create: %s\n' "$*" >&2; }

if [ -z "${PGBACKREST_STANZA:-}" ]; then
  say "PGBACKREST_STANZA is not set: no backup repository, nothing to do"
  exit 0
fi
export PGBACKREST_CONFIG=${PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
if ! command -v pgbackrest >/dev/null || [ ! -r "$PGBACKREST_CONFIG" ]; then
  say "pgbackrest or $PGBACKREST_CONFIG is missing: the stanza is left to the first backup"
  exit 0
fi
if timeout "${PGC_STANZA_CREATE_TIMEOUT:-60}" pgbackrest stanza-create 1>&2; then
  say "stanza $PGBACKREST_STANZA is ready"
else
  say "stanza-create of $PGBACKREST_STANZA failed (see above): WAL archiving waits until the first backup creates it"
fi
exit 0
