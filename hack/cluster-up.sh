#!/usr/bin/env bash
# Starts the local Kubernetes control plane (kwokctl's binary runtime over the binaries that
# build-binaries.sh made), with fake nodes, the kwok stages that make pods Ready, complete Job
# pods and bind volumes, a default StorageClass, and the project's CRD. Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$HACK_DIR/build-binaries.sh"
NODES=${PGC_NODES:-3}
mkdir -p "$PGC_RUN"

if kwokctl get clusters 2>/dev/null | grep -qx "$PGC_CLUSTER" &&
  kubectl --kubeconfig "$PGC_KUBECONFIG" get --raw /readyz >/dev/null 2>&1; then
  log "cluster $PGC_CLUSTER is already running"
else
  # A cluster left half-started (for example after a reboot) is removed and made anew.
  kwokctl delete cluster --name "$PGC_CLUSTER" >/dev/null 2>&1 || true

  # kwokctl uses its default stages only when given none, so give all the ones needed:
  # node lifecycle, pod ready/complete/delete, and volume provisioning and binding.
  kwok_dir=$(cd "$HACK_DIR/tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  stages=$PGC_RUN/kwok-stages.yaml
  : >"$stages"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
    volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pvc-delete.yaml volume/fast/pv-delete.yaml; do
    printf -- '---\n' >>"$stages"
    if [ "$f" = pod/fast/pod-complete.yaml ]; then
      # The pods of the operator's Jobs (backups, restores) run until a test finishes them with the
      # result a real container would write: kwok must not complete them first, with no result.
      sed 's|^    matchExpressions:$|&\n    - key: '"'"'.metadata.labels["postgres.example.com/job"]'"'"'\n      operator: '"'"'DoesNotExist'"'"'|' \
        "$kwok_dir/kustomize/stage/$f" >>"$stages"
    else
      cat "$kwok_dir/kustomize/stage/$f" >>"$stages"
    fi
  done

  log "starting the local control plane $PGC_CLUSTER"
  without_inherited_fds kwokctl create cluster --name "$PGC_CLUSTER" --runtime binary >"$PGC_RUN/kwokctl.log" 2>&1 \
    --config "$stages" \
    --kubeconfig "$PGC_RUN/kwokctl-kubeconfig.yaml" \
    --etcd-binary "$PGC_BIN/etcd" \
    --kube-apiserver-binary "$PGC_BIN/kube-apiserver" \
    --kube-controller-manager-binary "$PGC_BIN/kube-controller-manager" \
    --kube-scheduler-binary "$PGC_BIN/kube-scheduler" \
    --kwok-controller-binary "$PGC_BIN/kwok" \
    --disable-qps-limits \
    --wait 2m || { cat "$PGC_RUN/kwokctl.log" >&2; die "the local control plane did not start"; }
fi

export KUBECONFIG=$PGC_KUBECONFIG
have=$(kubectl get nodes --no-headers 2>/dev/null | wc -l)
if [ "$have" -lt "$NODES" ]; then
  without_inherited_fds kwokctl scale node --name "$PGC_CLUSTER" --replicas "$NODES" >>"$PGC_RUN/kwokctl.log" 2>&1
fi
kwok_volume_dir=$(cd "$HACK_DIR/tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage/volume/fast
kubectl apply --server-side --field-manager=pgc-hack -f "$kwok_volume_dir/storage-class.yaml" >/dev/null
kubectl apply --server-side --field-manager=pgc-hack -k "$REPO_ROOT/config/crd" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/postgresclusters.postgres.example.com \
  crd/postgresbackups.postgres.example.com >/dev/null
kubectl wait --for=condition=Ready --timeout=60s node --all >/dev/null
log "cluster $PGC_CLUSTER ready: KUBECONFIG=$PGC_KUBECONFIG"
