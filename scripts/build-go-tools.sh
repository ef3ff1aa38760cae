#!/usr/bin/env bash
# Builds the Go programs of the test bed from the Go module proxy into $TARN_CACHE_DIR/bin
# (default ~/.cache/tarn-ts/bin), outside the clone, once per version: a rerun, or CI's fresh clone
# on the same machine, finds them there; a fresh machine builds them (about half an hour on 2 cores,
# mostly Kubernetes). Usage: build-go-tools.sh [name ...] (default: all).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${TARN_CACHE_DIR:-$HOME/.cache/tarn-ts}"
BIN="$CACHE/bin"
LOGS="$CACHE/logs"
mkdir -p "$BIN" "$LOGS"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c # the newest MinIO on the proxy (MinIO tags are not semver)
HELM_VERSION=v3.22.0
ETCD_MODULE="$ROOT/test/bed/go/etcd"      # go.etcd.io/etcd/server/v3 v3.6.16
KUBE_MODULE="$ROOT/test/bed/go/kube"      # k8s.io/kubernetes v1.37.2
KUBE_VERSION=v1.37.2
# A binary built from the module reports v0.0.0-master+$Format:%H$, which kubectl and helm cannot
# parse: stamp the version the module is.
KUBE_LDFLAGS="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"

log() { printf 'build-go-tools: %s\n' "$*" >&2; }

# build NAME STAMP COMMAND...: runs COMMAND unless $BIN/NAME exists and was built for STAMP.
build() {
  local name="$1" stamp="$2"
  shift 2
  if [ -x "$BIN/$name" ] && [ "$(cat "$BIN/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "building $name ($stamp); log: $LOGS/$name.log"
  local start=$SECONDS
  if ! "$@" >"$LOGS/$name.log" 2>&1; then
    log "building $name failed; the end of its log:"
    tail -n 30 "$LOGS/$name.log" >&2
    return 1
  fi
  echo "$stamp" >"$BIN/.$name.stamp"
  log "built $name in $((SECONDS - start)) s"
}

sum() { sha256sum "$1/go.mod" "$1/go.sum" | sha256sum | cut -c1-16; }

want() { [ $# -eq 0 ] || [[ " $* " == *" $NAME "* ]]; }

NAME=etcd; if want "$@"; then
  build etcd "$(sum "$ETCD_MODULE")" \
    sh -c "cd '$ETCD_MODULE' && go build -mod=readonly -trimpath -o '$BIN/etcd' go.etcd.io/etcd/server/v3"
fi
NAME=helm; if want "$@"; then
  build helm "$HELM_VERSION" env GOBIN="$BIN" go install -trimpath "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
NAME=minio; if want "$@"; then
  build minio "$MINIO_VERSION" env GOBIN="$BIN" go install -trimpath "github.com/minio/minio@$MINIO_VERSION"
fi
# The control plane (kube-apiserver, kube-controller-manager) and the node (kubelet,
# kube-scheduler) and kubectl, from the one consumer module: each built once per go.sum and version.
for NAME in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  if want "$@"; then
    build "$NAME" "$(sum "$KUBE_MODULE")-$KUBE_VERSION" \
      sh -c "cd '$KUBE_MODULE' && go build -mod=readonly -trimpath -ldflags '$KUBE_LDFLAGS' -o '$BIN/$NAME' k8s.io/kubernetes/cmd/$NAME"
  fi
done
