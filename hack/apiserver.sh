#!/usr/bin/env bash
# Stops or starts only the kube-apiserver of the local control plane, for the fault-injection tests
# of an API outage (tests/faults): apiserver.sh stop|start.
#
# stop: SIGKILL of the kube-apiserver process that kwokctl started (its pid file), as kwokctl
#   itself stops a component; etcd, the controllers and kwok keep running.
# start: `kwokctl start cluster`, which starts every component whose process is gone with the
#   binary, flags and log file of the cluster's kwok.yaml (exactly how it was first started), then
#   waits until the API is served. kube-controller-manager and kube-scheduler hold a leader Lease
#   and exit when they cannot renew it for 10 s: after a longer outage they are started again too.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cluster_dir=$KWOK_WORKDIR/clusters/$PGC_CLUSTER
pidfile=$cluster_dir/pids/kube-apiserver.pid
[ -d "$cluster_dir" ] || die "no local control plane $PGC_CLUSTER (hack/cluster-up.sh starts it)"

# gone PID: the process has ended (a zombie that nobody reaped yet counts as ended).
gone() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ "$state" = Z ]
}

stop() {
  [ -s "$pidfile" ] || die "$pidfile is missing: the kube-apiserver is not running"
  local pid
  pid=$(cat "$pidfile")
  gone "$pid" && die "the kube-apiserver (pid $pid) is not running"
  kill -KILL "$pid"
  for _ in $(seq 100); do gone "$pid" && break; sleep 0.1; done
  gone "$pid" || die "the kube-apiserver (pid $pid) did not end"
  # As kwokctl does: no pid file, no process; `start` starts it again.
  rm -f "$pidfile"
  log "kube-apiserver (pid $pid) stopped"
}

start() {
  without_inherited_fds kwokctl start cluster --name "$PGC_CLUSTER" >>"$PGC_RUN/kwokctl.log" 2>&1 ||
    die "kwokctl could not start the control plane again; see $PGC_RUN/kwokctl.log"
  for _ in $(seq 300); do
    kubectl --kubeconfig "$PGC_KUBECONFIG" get --raw /readyz >/dev/null 2>&1 &&
      { log "kube-apiserver (pid $(cat "$pidfile")) serving"; return 0; }
    sleep 0.2
  done
  die "the kube-apiserver did not become ready; see $cluster_dir/logs/kube-apiserver.log"
}

case "${1:-}" in
  stop) stop ;;
  start) start ;;
  *) die "usage: $0 stop|start" ;;
esac
