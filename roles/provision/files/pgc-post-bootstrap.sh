#!/bin/sh
# Patroni runs this once, on the new primary, right after it initialised the cluster:
#   pgc-post-bootstrap.sh SCOPE CONNINFO
# It creates the application role and database named in the credentials Secret (the
# StatefulSet passes them as PGC_APP_*) and the monitoring role of the exporter sidecar
# (PGC_MONITOR_USERNAME: pg_monitor only, no password, reachable on the pod's socket alone),
# then tells the operator the cluster exists.
# The password reaches psql from its environment (\getenv), never on a command line, and the
# session logs no statement, so that CREATE ROLE ... PASSWORD is in no log either.
set -eu
scope=$1
conninfo=$2

psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
    -v app_user="$PGC_APP_USERNAME" -v app_db="$PGC_APP_DATABASE" \
    -v monitor_user="$PGC_MONITOR_USERNAME" \
    "$conninfo" <<'SQL'
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET pgaudit.log = 'none';
\getenv app_password PGC_APP_PASSWORD
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app_user', :'app_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'app_db') \gexec
SELECT format('CREATE ROLE %I LOGIN IN ROLE pg_monitor', :'monitor_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'monitor_user') \gexec
SQL

# With a backup repository, its stanza now, so that WAL is archived before the first backup (the
# script of the database image never fails the bootstrap).
if [ -n "${PGBACKREST_STANZA:-}" ] && command -v pgc-stanza-create.sh >/dev/null; then
  pgc-stanza-create.sh || true
fi

python3 "$(dirname "$0")/pgc-callback.py" on_bootstrap primary "$scope" || true
