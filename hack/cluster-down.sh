#!/usr/bin/env bash
# Stops the operator started by run-operator.sh and deletes the local control plane, leaving
# no process behind. The built binaries and the virtualenv stay cached.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$HACK_DIR/run-operator.sh" stop
if kwokctl get clusters 2>/dev/null | grep -qx "$PGC_CLUSTER"; then
  log "deleting the local control plane $PGC_CLUSTER"
  kwokctl delete cluster --name "$PGC_CLUSTER" >/dev/null
fi
