#!/usr/bin/env bash
# Runs the real ansible-operator with the repository's watches.yaml against the local control
# plane, in the background: run-operator.sh start|stop|restart. Log: $PGC_RUN/operator.log.
# Beside it, the per-cluster metrics server (metrics/cluster_metrics.py) on
# ${PGC_CLUSTER_METRICS_ADDRESS:-127.0.0.1:8686}, with the same kubeconfig; log:
# $PGC_RUN/cluster-metrics.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pidfile=$PGC_RUN/operator.pid
logfile=$PGC_RUN/operator.log
metrics_pidfile=$PGC_RUN/cluster-metrics.pid
metrics_logfile=$PGC_RUN/cluster-metrics.log
metrics_address=${PGC_CLUSTER_METRICS_ADDRESS:-127.0.0.1:8686}

# stop_process PIDFILE WHAT: SIGTERM to the process group, SIGKILL after 10 s.
stop_process() {
  local pidfile=$1 what=$2 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping the $what (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# As in the operator's pod: same credentials as the operator, same namespaces. Not fatal: the
# operator runs without it. It imports the collection's module_utils from the collections path.
start_metrics() {
  local kubeconfig=$1 collections=$2
  log "starting the cluster metrics server on $metrics_address (log: $metrics_logfile)"
  ANSIBLE_COLLECTIONS_PATH=$collections KUBECONFIG=$kubeconfig \
    setsid python3 "$REPO_ROOT/metrics/cluster_metrics.py" --listen "$metrics_address" \
    >"$metrics_logfile" 2>&1 &
  echo $! >"$metrics_pidfile"
  for _ in $(seq 50); do
    curl -fsS "http://$metrics_address/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$metrics_pidfile")" 2>/dev/null || break
    sleep 0.2
  done
  tail -20 "$metrics_logfile" >&2
  log "warning: the cluster metrics server is not answering on $metrics_address; see $metrics_logfile"
}

stop() {
  stop_process "$metrics_pidfile" "cluster metrics server"
  stop_process "$pidfile" operator
}

start() {
  stop
  collections=$("$HACK_DIR/collection-link.sh")
  operator_kubeconfig=$("$HACK_DIR/operator-kubeconfig.sh")
  mkdir -p "$PGC_RUN"
  log "starting ansible-operator (log: $logfile)"
  (
    cd "$REPO_ROOT"
    # The operator's own ServiceAccount and ClusterRole, not cluster-admin.
    export KUBECONFIG=$operator_kubeconfig
    # Secrets bypass the runtime's caching proxy (the credentials role); in a pod this is the
    # in-cluster ServiceAccount instead.
    export PGC_API_KUBECONFIG=$operator_kubeconfig
    export ANSIBLE_COLLECTIONS_PATH=$collections
    export ANSIBLE_GATHERING=explicit
    export ANSIBLE_NOCOLOR=1
    exec setsid ansible-operator run \
      --watches-file "$REPO_ROOT/watches.yaml" \
      --health-probe-bind-address 127.0.0.1:6789 \
      --metrics-bind-address "${PGC_METRICS_ADDRESS:-127.0.0.1:8443}" \
      --max-concurrent-reconciles "${PGC_MAX_CONCURRENT_RECONCILES:-2}" \
      --leader-elect=false \
      >"$logfile" 2>&1
  ) &
  echo $! >"$pidfile"
  for _ in $(seq 100); do
    curl -fsS http://127.0.0.1:6789/readyz >/dev/null 2>&1 && { start_metrics "$operator_kubeconfig" "$collections"; return 0; }
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 "$logfile" >&2; die "the operator exited"; }
    sleep 0.2
  done
  die "the operator did not become ready; see $logfile"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) die "usage: $0 start|stop|restart" ;;
esac
