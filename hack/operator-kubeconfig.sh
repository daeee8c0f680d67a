#!/usr/bin/env bash
# Writes a kubeconfig that acts as the operator's ServiceAccount (config/rbac), so that local runs
# and tests exercise the ClusterRole users deploy rather than cluster-admin, and installs the
# admission policy of config/admission. Prints its path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export KUBECONFIG=$PGC_KUBECONFIG
out=$PGC_RUN/operator-kubeconfig.yaml
mkdir -p "$PGC_RUN"
kubectl apply --server-side --field-manager=pgc-hack -f "$REPO_ROOT/config/manager/namespace.yaml" >/dev/null
kubectl apply --server-side --field-manager=pgc-hack -k "$REPO_ROOT/config/rbac" >/dev/null
# What the clusters' own accounts may change (a cluster-wide policy, as config/default installs it).
kubectl apply --server-side --field-manager=pgc-hack -k "$REPO_ROOT/config/admission" >/dev/null
token=$(kubectl create token pgc-operator -n pgc-system --duration=24h)
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
ca_file=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
[ -n "$ca" ] || ca=$(base64 -w0 <"$ca_file")
umask 077
cat >"$out" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: $server
      certificate-authority-data: $ca
users:
  - name: pgc-operator
    user:
      token: $token
contexts:
  - name: pgc-operator
    context: {cluster: local, user: pgc-operator}
current-context: pgc-operator
YAML
echo "$out"
