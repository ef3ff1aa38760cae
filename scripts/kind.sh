#!/usr/bin/env bash
# For users with Docker: a kind cluster as the test bed's Kubernetes (TARN_BED=docker).
#   kind.sh up    creates the cluster `tarn-bed` (once) and prints the path of its kubeconfig
#   kind.sh down  deletes it
# Needs `kind` (go install sigs.k8s.io/kind@latest) and a Docker engine. Not used on machines
# without Docker, where the suite runs etcd and kube-apiserver directly.
set -euo pipefail
CACHE="${TARN_CACHE_DIR:-$HOME/.cache/tarn-ts}"
KUBECONFIG_PATH="$CACHE/kind-tarn-bed.kubeconfig"
case "${1:-}" in
  up)
    mkdir -p "$CACHE"
    if ! kind get clusters 2>/dev/null | grep -qx tarn-bed; then
      kind create cluster --name tarn-bed --wait 120s >&2
    fi
    kind get kubeconfig --name tarn-bed >"$KUBECONFIG_PATH"
    echo "$KUBECONFIG_PATH"
    ;;
  down) kind delete cluster --name tarn-bed >&2 ;;
  *) echo "usage: kind.sh up|down" >&2; exit 2 ;;
esac
