#!/usr/bin/env bash
# Installs what the test suite needs, idempotently. Everything built or downloaded lives in
# $TARN_CACHE_DIR (default ~/.cache/tarn-ts), outside the clone, so reruns and fresh clones on
# the same machine reuse it; a fresh machine builds it from the package registries.
set -euo pipefail
CACHE="${TARN_CACHE_DIR:-$HOME/.cache/tarn-ts}"
mkdir -p "$CACHE"
log() { printf 'provision: %s\n' "$*" >&2; }

# Python tarn, the original implementation, for the lake-compatibility tests.
PY_TARN_VERSION=0.14.2
PY="$CACHE/py"
if [ "$(cat "$PY/.tarn-version" 2>/dev/null)" != "$PY_TARN_VERSION" ]; then
  log "installing Python tarn $PY_TARN_VERSION into $PY"
  rm -rf "$PY"
  python3 -m venv "$PY"
  "$PY/bin/pip" install --quiet --disable-pip-version-check "tarn==$PY_TARN_VERSION"
  echo "$PY_TARN_VERSION" > "$PY/.tarn-version"
fi

# The real servers of the test bed, from Debian's packages: program -> package.
declare -A DEBIAN=(
  [redis-server]=redis-server [redis-cli]=redis-tools
  [sshd]=openssh-server [ssh]=openssh-client [scp]=openssh-client [sftp]=openssh-client [ssh-keygen]=openssh-client
  [nginx]=nginx-light [curl]=curl [openssl]=openssl [pgrep]=procps
  # The sidecar image (scripts/image.sh): built by buildah, unpacked by umoci, run by runc.
  [buildah]=buildah [runc]=runc [umoci]=umoci
  # The real node (test/bed/node.ts): containerd and its CNI plugins, the pause image's compiler,
  # a static busybox for test images, and the namespace tools.
  [containerd]=containerd [ctr]=containerd [/usr/lib/cni/bridge]=containernetworking-plugins
  [/usr/lib/cni/host-local]=containernetworking-plugins [gcc]=gcc [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
  [busybox]=busybox-static [ip]=iproute2 [iptables]=iptables [nsenter]=util-linux
  # A filesystem with reflinks for the disk lake's clone path (test/helpers/xfs.ts).
  [mkfs.xfs]=xfsprogs
)
missing=()
for program in "${!DEBIAN[@]}"; do
  if ! command -v "$program" >/dev/null && [ ! -x "/usr/sbin/$program" ] && [ ! -e "$program" ]; then
    missing+=("${DEBIAN[$program]}")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  log "installing Debian packages: $packages"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi

# As root, the bed's sshd logs in as this user (login shell /bin/sh, so no ~/.bashrc runs remotely).
if [ "$(id -u)" = 0 ] && ! getent passwd tarnbed >/dev/null; then
  # '*': no password, but not locked (sshd refuses locked accounts, even with keys).
  useradd --system --shell /bin/sh --home-dir /nonexistent --no-create-home --password '*' tarnbed
fi

# The Go programs of the test bed (etcd, kube-apiserver, kube-controller-manager, helm, MinIO),
# built from the Go module proxy into $CACHE/bin once per version.
if ! command -v go >/dev/null; then
  log "error: Go is needed to build the test bed's servers (https://go.dev/doc/install)"
  exit 1
fi
bash "$(dirname "$0")/build-go-tools.sh"
log "ready (cache: $CACHE)"
