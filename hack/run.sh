#!/usr/bin/env bash
# `make run`: from nothing to a Running sample cluster. Builds (once) the tools and the local
# control plane, starts the operator, applies config/samples and waits for phase Running.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
started=$(date +%s)

"$HACK_DIR/venv.sh"
"$HACK_DIR/cluster-up.sh"
"$HACK_DIR/run-operator.sh" start

export KUBECONFIG=$PGC_KUBECONFIG
kubectl apply --server-side --field-manager=pgc-samples -k "$REPO_ROOT/config/samples" >/dev/null
log "waiting for the sample PostgresCluster to be Running"
deadline=$((SECONDS + ${PGC_RUN_TIMEOUT:-180}))
while :; do
  # Running, with every desired member ready.
  state=$(kubectl get pgc -o jsonpath='{range .items[*]}{.status.phase}/{.status.readyReplicas}/{.spec.replicas}{"\n"}{end}')
  if [ -n "$state" ] && ! grep -qvE '^Running/([0-9]+)/\1$' <<<"$state"; then
    break
  fi
  [ $SECONDS -lt $deadline ] || { kubectl get pgc -o yaml >&2; tail -50 "$PGC_RUN/operator.log" >&2; die "timed out"; }
  sleep 1
done
kubectl get pgc -o wide
cat <<TXT

Running in $(($(date +%s) - started)) s.
  export KUBECONFIG=$PGC_KUBECONFIG PATH=$PGC_BIN:\$PATH
  kubectl get pgc,statefulsets,services,pods      # look around
  tail -f $PGC_RUN/operator.log                   # the operator's log
  make down                                       # stop the operator and the control plane
TXT
