#!/usr/bin/env bash
# Builds the local control plane's binaries from upstream Go modules, once per version, into
# $PGC_BIN (outside the checkout). Each tools module under hack/tools pins one upstream version
# in its go.mod; a binary already built at that version is kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command -v go >/dev/null || die "Go is required to build the local control plane"
mkdir -p "$PGC_BIN/.versions"

# module_version DIR MODULE: the version of MODULE that tools module DIR pins.
module_version() { (cd "$HACK_DIR/tools/$1" && go list -m -f '{{.Version}}' "$2"); }

# build DIR NAME PACKAGE VERSION [LDFLAGS]: build PACKAGE of tools module DIR as $PGC_BIN/NAME.
build() {
  local dir=$1 name=$2 pkg=$3 version=$4 ldflags=${5:-}
  if [ -x "$PGC_BIN/$name" ] && [ "$(cat "$PGC_BIN/.versions/$name" 2>/dev/null)" = "$version" ]; then
    return
  fi
  log "building $name $version"
  (cd "$HACK_DIR/tools/$dir" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$PGC_BIN/$name.tmp" "$pkg")
  mv "$PGC_BIN/$name.tmp" "$PGC_BIN/$name"
  echo "$version" >"$PGC_BIN/.versions/$name"
}

etcd_version=$(module_version etcd go.etcd.io/etcd/server/v3)
build etcd etcd . "$etcd_version"

kwok_version=$(module_version kwok sigs.k8s.io/kwok)
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "$kwok_version"
build kwok kwokctl sigs.k8s.io/kwok/cmd/kwokctl "$kwok_version"

# metrics-server serves the metrics.k8s.io API from kwok's simulated kubelet metrics (for the
# HorizontalPodAutoscaler); kwokctl reads its version from --version, hence the ldflags.
metrics_server_version=$(module_version metrics-server sigs.k8s.io/metrics-server)
build metrics-server metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server "$metrics_server_version" \
  "-X k8s.io/client-go/pkg/version.gitVersion=$metrics_server_version"

operator_version=$(module_version ansible-operator github.com/operator-framework/ansible-operator-plugins)
build ansible-operator ansible-operator github.com/operator-framework/ansible-operator-plugins/cmd/ansible-operator \
  "$operator_version" "-X github.com/operator-framework/ansible-operator-plugins/internal/version.GitVersion=$operator_version"

# Kubernetes binaries must report their real version: kwokctl picks their flags from it.
k8s_version=$(module_version kubernetes k8s.io/kubernetes)
minor=${k8s_version#v1.}; minor=${minor%%.*}
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build kubernetes "$cmd" "k8s.io/kubernetes/cmd/$cmd" "$k8s_version" "$k8s_ldflags"
done
log "binaries ready in $PGC_BIN"
