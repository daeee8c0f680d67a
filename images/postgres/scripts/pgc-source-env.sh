# Sourced by the scripts that read the source of spec.bootstrap.fromBackup: pgBackRest's settings
# become the source's (stanza, configuration, secrets from PGC_SOURCE_*) in place of the cluster's
# own PGBACKREST_* (its own repository). PGBACKREST_PG1_* stay: where PostgreSQL is.
# shellcheck shell=bash
pgc_source_env() {
  [ -n "${PGC_SOURCE_STANZA:-}" ] || { printf 'PGC_SOURCE_STANZA is not set (the source cluster)\n' >&2; return 1; }
  local var
  for var in $(compgen -e); do
    case "$var" in
      PGBACKREST_PG1_*) ;;
      PGBACKREST_*) unset "$var" ;;
    esac
  done
  export PGBACKREST_STANZA=$PGC_SOURCE_STANZA
  export PGBACKREST_CONFIG=${PGC_SOURCE_CONFIG:-/etc/pgbackrest/source.conf}
  [ -z "${PGC_SOURCE_REPO1_S3_KEY:-}" ] || export PGBACKREST_REPO1_S3_KEY=$PGC_SOURCE_REPO1_S3_KEY
  [ -z "${PGC_SOURCE_REPO1_S3_KEY_SECRET:-}" ] || export PGBACKREST_REPO1_S3_KEY_SECRET=$PGC_SOURCE_REPO1_S3_KEY_SECRET
  [ -z "${PGC_SOURCE_REPO1_AZURE_KEY:-}" ] || export PGBACKREST_REPO1_AZURE_KEY=$PGC_SOURCE_REPO1_AZURE_KEY
  [ -z "${PGC_SOURCE_REPO1_GCS_KEY:-}" ] || export PGBACKREST_REPO1_GCS_KEY=$PGC_SOURCE_REPO1_GCS_KEY
  [ -z "${PGC_SOURCE_REPO1_CIPHER_PASS:-}" ] || export PGBACKREST_REPO1_CIPHER_PASS=$PGC_SOURCE_REPO1_CIPHER_PASS
}
