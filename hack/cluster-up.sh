#!/usr/bin/env bash
# Starts the local Kubernetes control plane (kwokctl's binary runtime over the binaries that
# build-binaries.sh made), with fake nodes, the kwok stages that make pods Ready, complete Job
# pods and bind volumes, a default StorageClass, the project's CRD, and a metrics pipeline for the
# HorizontalPodAutoscaler (metrics-server over kwok's simulated pod usage). Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$HACK_DIR/build-binaries.sh"
NODES=${PGC_NODES:-3}
mkdir -p "$PGC_RUN"

# The cluster's configuration: kwokctl uses its default stages only when given none, so give all
# the ones needed (node lifecycle, pod ready/complete/delete, volume provisioning and binding), and
# the settings of the metrics pipeline that the HorizontalPodAutoscaler test reads.
kwok_dir=$(cd "$HACK_DIR/tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
metrics_server_dir=$(cd "$HACK_DIR/tools/metrics-server" && go list -m -f '{{.Dir}}' sigs.k8s.io/metrics-server)
config=$PGC_RUN/kwok-config.yaml
# The fake nodes' addresses, where metrics-server scrapes their kubelet metrics (kwok serves every
# node on one port of all local addresses): loopback ones, 127.0.0.1 up, not kwokctl's default
# 192.0.2.1 up (TEST-NET, whatever this machine's network makes of it).
node_params=(--param '.nodeIPs=["127.0.0.1"]')
{
  printf '# nodes: %s\n' "${node_params[*]}"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
    volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pvc-delete.yaml volume/fast/pv-delete.yaml; do
    printf -- '---\n'
    if [ "$f" = pod/fast/pod-complete.yaml ]; then
      # The pods of the operator's Jobs (backups, restores) run until a test finishes them with the
      # result a real container would write: kwok must not complete them first, with no result.
      sed 's|^    matchExpressions:$|&\n    - key: '"'"'.metadata.labels["postgres.example.com/job"]'"'"'\n      operator: '"'"'DoesNotExist'"'"'|' \
        "$kwok_dir/kustomize/stage/$f"
    else
      cat "$kwok_dir/kustomize/stage/$f"
    fi
  done
  # metrics-server scrapes kwok's simulated kubelet /metrics/resource (kwokctl adds kwok's
  # metrics-resource Metric with it) every 10 s, its shortest resolution; the HPA controller looks
  # every 5 s (default 15 s). Pods' CPU usage is set by ResourceUsage objects (CRDs, see below).
  # Its APIService and Service come from the module's own manifests (kwokctl points the Service at
  # the local process), not from a download.
  cat <<EOF2
---
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  metricsServerManifests: ["$metrics_server_dir/manifests/base"]
componentsPatches:
- name: metrics-server
  extraArgs:
  - {key: metric-resolution, value: 10s, override: true}
  - {key: kubelet-request-timeout, value: 5s}
- name: kube-controller-manager
  extraArgs:
  - {key: horizontal-pod-autoscaler-sync-period, value: 5s}
EOF2
} >"$config.new"
mv "$config.new" "$config"
# The configuration a running cluster was made with: one made otherwise (an older checkout's, say,
# without metrics-server) is made anew.
made_with=$KWOK_WORKDIR/clusters/$PGC_CLUSTER/pgc-config.yaml

if kwokctl get clusters 2>/dev/null | grep -qx "$PGC_CLUSTER" &&
  cmp -s "$config" "$made_with" &&
  kubectl --kubeconfig "$PGC_KUBECONFIG" get --raw /readyz >/dev/null 2>&1; then
  log "cluster $PGC_CLUSTER is already running"
else
  # A cluster left half-started (for example after a reboot) is removed and made anew.
  kwokctl delete cluster --name "$PGC_CLUSTER" >/dev/null 2>&1 || true

  log "starting the local control plane $PGC_CLUSTER"
  without_inherited_fds kwokctl create cluster --name "$PGC_CLUSTER" --runtime binary >"$PGC_RUN/kwokctl.log" 2>&1 \
    --config "$config" \
    --kubeconfig "$PGC_RUN/kwokctl-kubeconfig.yaml" \
    --etcd-binary "$PGC_BIN/etcd" \
    --kube-apiserver-binary "$PGC_BIN/kube-apiserver" \
    --kube-controller-manager-binary "$PGC_BIN/kube-controller-manager" \
    --kube-scheduler-binary "$PGC_BIN/kube-scheduler" \
    --kwok-controller-binary "$PGC_BIN/kwok" \
    --enable metrics-server \
    --metrics-server-binary "$PGC_BIN/metrics-server" \
    --enable-crds ResourceUsage,ClusterResourceUsage \
    --disable-qps-limits \
    --wait 2m || { cat "$PGC_RUN/kwokctl.log" >&2; die "the local control plane did not start"; }
  cp "$config" "$made_with"
fi

export KUBECONFIG=$PGC_KUBECONFIG
have=$(kubectl get nodes --no-headers 2>/dev/null | wc -l)
if [ "$have" -lt "$NODES" ]; then
  without_inherited_fds kwokctl scale node --name "$PGC_CLUSTER" --replicas "$NODES" "${node_params[@]}" \
    >>"$PGC_RUN/kwokctl.log" 2>&1
fi
kwok_volume_dir=$kwok_dir/kustomize/stage/volume/fast
kubectl apply --server-side --field-manager=pgc-hack -f "$kwok_volume_dir/storage-class.yaml" >/dev/null
kubectl apply --server-side --field-manager=pgc-hack -k "$REPO_ROOT/config/crd" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/postgresclusters.postgres.example.com \
  crd/postgresbackups.postgres.example.com >/dev/null
kubectl wait --for=condition=Ready --timeout=60s node --all >/dev/null
# The HorizontalPodAutoscaler reads pods' CPU through the metrics.k8s.io API that metrics-server serves.
kubectl wait --for=condition=Available --timeout=60s apiservice/v1beta1.metrics.k8s.io >/dev/null
log "cluster $PGC_CLUSTER ready: KUBECONFIG=$PGC_KUBECONFIG"
