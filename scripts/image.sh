#!/usr/bin/env bash
# Builds an image of this repository (sidecar/Dockerfile or operator/Dockerfile) without Docker and
# without a registry, with buildah.
#
#   scripts/image.sh [sidecar]  # prints a JSON summary; the archive is <cache>/image/tarn-sidecar.tar
#   scripts/image.sh operator   # the same for the operator: <cache>/image/tarn-operator.tar
#   scripts/image.sh pause      # the node's sandbox image, from the kubernetes module's pause.c
#   scripts/image.sh busybox    # a test image: Debian's static busybox, nothing else
#   scripts/image.sh app        # the end-to-end test's app: the sidecar image and test/e2e/app.mjs
#
# 1. Two base images made from this machine's own Node.js (no registry to pull node:24 from):
#    `tarn-node` (the runtime: node, the shared libraries ldd names, CA certificates, /etc/passwd
#    with uid 65532; no shell) and `tarn-node-build` (the same plus npm, /bin/sh and env).
# 2. `buildah bud` of the image's Dockerfile on them, with no network: npm installs --offline from
#    this machine's npm cache (an overlay mount).
# 3. `buildah push` to an OCI archive (for `ctr -n k8s.io images import`) and an OCI layout folder
#    (for `umoci unpack`).
#
# Everything lives in $TARN_CACHE_DIR/image (default ~/.cache/tarn-ts/image), buildah's storage
# included, so the system's container storage is not touched. Each result is keyed by a hash of
# its inputs: a warm run whose inputs did not change builds nothing. Needs root (buildah, runc).
set -euo pipefail
NAME=${1:-sidecar}
case $NAME in
  sidecar | operator | pause | busybox | app) ;;
  *) echo "usage: scripts/image.sh [sidecar|operator|pause|busybox|app]" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${TARN_CACHE_DIR:-$HOME/.cache/tarn-ts}"
OUT="$CACHE/image"
mkdir -p "$OUT"
log() { printf 'image: %s\n' "$*" >&2; }
sha() { sha256sum | cut -c1-16; }
# buildah's own storage under the cache; its run state on a tmpfs (a reboot cannot leave it stale),
# one per storage (a run state shared by two storages would mix their locks and mounts).
B=(buildah --root "$OUT/storage" --runroot "/run/tarn-ts-buildah-$(echo "$OUT" | sha)" --storage-driver overlay)
has_image() { "${B[@]}" inspect --type image "$1" >/dev/null 2>&1; }
started=$(date +%s%N)

# The app image is built on the sidecar image: that one first (it takes the lock itself).
if [ "$NAME" = app ]; then
  APP_BASE=$(bash "$0" sidecar | tail -n 1 | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).image))')
fi

# Builds with the same inputs never run at once (two test files, two engineers).
exec 9>"$OUT/.lock"
flock 9

# ---- 1. the base images, from this machine's Node.js ------------------------------------------
NODE=$(readlink -f "$(command -v node)")
NPM_DIR=$(readlink -f "$(dirname "$(readlink -f "$(command -v npm)")")/..")
NODE_VERSION=$(node --version)
SH=$(readlink -f /bin/sh)
ENV_BIN=$(readlink -f "$(command -v env)")
CA=/etc/ssl/certs/ca-certificates.crt
# The shared libraries of node, sh and env, as ldd resolves them (ld-linux included).
mapfile -t LIBS < <(ldd "$NODE" "$SH" "$ENV_BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }' | sort -u)
base_key=$(
  {
    sed -n '/^# ---- 1\./,/^# ---- 1b\./p' "$0"
    sha256sum "$NODE" "$SH" "$ENV_BIN" "$CA" "${LIBS[@]}" "$NPM_DIR/package.json"
  } | sha
)
BASE="localhost/tarn-node:${NODE_VERSION#v}-$base_key"
BUILD_BASE="localhost/tarn-node-build:${NODE_VERSION#v}-$base_key"

# Copies the file $2 into the root filesystem $1 at the same path, under /usr for /lib and /lib64.
put() {
  local to=$2
  case $to in /lib/* | /lib64/*) to=/usr$to ;; esac
  mkdir -p "$1$(dirname "$to")" && cp -L --preserve=mode "$2" "$1$to"
}

make_base() { # $1: image name, $2: "build" for npm and a shell
  local dir ctr lib
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tarn-base-XXXXXX")
  # Debian's merged /usr: /lib, /lib64 and /bin are links into /usr.
  mkdir -p "$dir/usr/bin" "$dir/usr/lib" "$dir/usr/lib64" "$dir/etc/ssl/certs" "$dir/tmp" "$dir/var/lib" "$dir/run"
  ln -s usr/lib "$dir/lib" && ln -s usr/lib64 "$dir/lib64" && ln -s usr/bin "$dir/bin"
  for lib in "${LIBS[@]}"; do put "$dir" "$lib"; done
  cp -L "$NODE" "$dir/usr/bin/node"
  cp "$CA" "$dir/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$dir/etc/nsswitch.conf"
  if [ "${2:-}" = build ]; then
    mkdir -p "$dir/usr/lib/node_modules" "$dir/root"
    cp -a "$NPM_DIR" "$dir/usr/lib/node_modules/npm"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/bin/npx"
    cp -L "$SH" "$dir/usr/bin/sh"
    cp -L "$ENV_BIN" "$dir/usr/bin/env"
  fi
  chmod 1777 "$dir/tmp"
  tar -C "$dir" --sort=name --mtime=@0 --numeric-owner -cf "$dir.tar" .
  ctr=$("${B[@]}" from scratch)
  "${B[@]}" add "$ctr" "$dir.tar" / >/dev/null
  "${B[@]}" config --env PATH=/usr/local/bin:/usr/bin:/bin --env HOME=/root --cmd node \
    --label "org.opencontainers.image.description=Node.js $NODE_VERSION from the build machine" "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$1" >/dev/null
  rm -rf "$dir" "$dir.tar"
}

if ! has_image "$BASE" || ! has_image "$BUILD_BASE"; then
  # New bases invalidate every layer built on the old ones: start the storage afresh, so the cache
  # does not grow by a full image tree per Node.js update.
  "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
  for pair in "$BASE:" "$BUILD_BASE:build"; do
    log "making the base ${pair%:*}"
    make_base "${pair%:*}" "${pair##*:}"
  done
fi

# ---- 1b. the node's small images, made from one static binary each (no Dockerfile) -------------
# pause: the sandbox every pod starts with (containerd's sandbox_image), compiled from the
# kubernetes module's build/pause/linux/pause.c; busybox: Debian's busybox-static as /bin/*.
if [ "$NAME" = pause ] || [ "$NAME" = busybox ]; then
  # Keyed by what goes in (pause.c and the compiler, or the busybox binary), not by the output.
  if [ "$NAME" = pause ]; then
    src="$(go env GOMODCACHE)/k8s.io/kubernetes@v1.37.2/build/pause/linux/pause.c"
    inputs=$({ sha256sum "$src"; gcc --version | head -n 1; })
    TAG=3.10
  else
    inputs=$(sha256sum /usr/bin/busybox)
    TAG=1.35
  fi
  key=$({ sed -n '/^# ---- 1b\./,/^# ---- 2\./p' "$0"; echo "$inputs"; } | sha)
  IMAGE="localhost/$NAME:$TAG"
  ARCHIVE="$OUT/$NAME-$key.tar"
  built=false
  if [ ! -s "$ARCHIVE" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tarn-$NAME-XXXXXX")
    mkdir -p "$dir/root/bin" "$dir/root/tmp" "$dir/root/etc"
    chmod 1777 "$dir/root/tmp"
    if [ "$NAME" = pause ]; then
      gcc -Os -static -DVERSION=v3.10-tarn -o "$dir/root/pause" "$src"
      entry='["/pause"]'
    else
      cp /usr/bin/busybox "$dir/root/bin/busybox"
      for applet in sh ls cat echo sleep wget nc ip ping id mkdir test env sha256sum timeout; do
        ln -s busybox "$dir/root/bin/$applet"
      done
      printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/nonexistent:/bin/sh\n' >"$dir/root/etc/passwd"
      entry='["/bin/sh"]'
    fi
    tar -C "$dir/root" --sort=name --mtime=@0 --numeric-owner -cf "$dir/root.tar" .
    ctr=$("${B[@]}" from scratch)
    "${B[@]}" add "$ctr" "$dir/root.tar" / >/dev/null
    "${B[@]}" config --entrypoint "$entry" --env PATH=/bin "$ctr"
    "${B[@]}" commit --quiet --rm "$ctr" "$IMAGE" >/dev/null
    rm -f "$OUT/$NAME"-*.tar
    "${B[@]}" push --quiet "$IMAGE" "oci-archive:$ARCHIVE.part:$IMAGE" >&2
    mv "$ARCHIVE.part" "$ARCHIVE"
    rm -rf "$dir"
    built=true
  fi
  ln -sfn "$(basename "$ARCHIVE")" "$OUT/$NAME.tar"
  ms=$((($(date +%s%N) - started) / 1000000))
  echo "{\"image\":\"$IMAGE\",\"key\":\"$key\",\"archive\":\"$ARCHIVE\",\"archiveBytes\":$(stat -c %s "$ARCHIVE"),\"built\":$built,\"ms\":$ms}"
  exit 0
fi

# ---- 2. the image -----------------------------------------------------------------------------
# Keyed by the bases and every file of the build context that git knows or would know of
# (untracked but not ignored files count, so an edit is never served stale).
cd "$ROOT"
if [ "$NAME" = app ]; then
  # On the sidecar image (built before the lock was taken, above).
  BASE=$APP_BASE
  IGNORE=test/e2e/app.Dockerfile.dockerignore
  PARTS=(test/e2e/app.mjs test/e2e/app.Dockerfile)
elif [ "$NAME" = sidecar ]; then
  IGNORE=.dockerignore
  PARTS=(src-lib sidecar operator/package.json)
else
  IGNORE=operator/Dockerfile.dockerignore
  PARTS=(src-lib operator sidecar/package.json sidecar/scripts/prune-modules.mjs)
fi
mapfile -t CONTEXT < <(git ls-files -co --exclude-standard -- \
  package.json package-lock.json tsconfig.base.json "$IGNORE" "${PARTS[@]}" | sort)
key=$(
  {
    echo "$NAME $BASE $BUILD_BASE"
    sed -n '/^# ---- 2\./,$p' "$0"
    sha256sum "${CONTEXT[@]}"
  } | sha
)
DOCKERFILE="$NAME/Dockerfile"
[ "$NAME" = app ] && DOCKERFILE=test/e2e/app.Dockerfile
VERSION=$(node -p "require('./${NAME/app/sidecar}/package.json').version")
IMAGE="localhost/tarn-$NAME:$VERSION-$key"
ARCHIVE="$OUT/tarn-$NAME-$key.tar"
if [ "$NAME" = sidecar ]; then LAYOUT="$OUT/oci"; else LAYOUT="$OUT/oci-$NAME"; fi
built=false
if [ ! -s "$ARCHIVE" ]; then
  if ! has_image "$IMAGE"; then
    log "building $IMAGE"
    # No network at all: npm installs --offline from this machine's npm cache, mounted as an overlay
    # (npm fails on a read-only cache; the overlay drops whatever it writes).
    "${B[@]}" bud --quiet --layers --network none \
      --build-arg "BASE=$BASE" --build-arg "BUILD_BASE=$BUILD_BASE" \
      --build-arg "NPM_FLAGS=--offline --cache=/npm-cache" \
      --volume "$(npm config get cache):/npm-cache:O" \
      --ignorefile "$IGNORE" -f "$DOCKERFILE" -t "$IMAGE" . >&2
  fi
  rm -f "$OUT"/tarn-"$NAME"-*.tar
  "${B[@]}" push --quiet "$IMAGE" "oci-archive:$ARCHIVE.part:$IMAGE" >&2
  mv "$ARCHIVE.part" "$ARCHIVE"
  built=true
fi
ln -sfn "$(basename "$ARCHIVE")" "$OUT/tarn-$NAME.tar"
# The same image as an OCI layout folder, tagged with the key alone (what umoci takes).
if [ ! -s "$LAYOUT/index.json" ] || ! grep -q "\"$key\"" "$LAYOUT/index.json"; then
  rm -rf "$LAYOUT"
  "${B[@]}" push --quiet "$IMAGE" "oci:$LAYOUT:$key" >&2
fi

# ---- 3. a summary -----------------------------------------------------------------------------
ms=$((($(date +%s%N) - started) / 1000000))
cat <<EOF
{"image":"$IMAGE","key":"$key","base":"$BASE","buildBase":"$BUILD_BASE","archive":"$ARCHIVE","layout":"$LAYOUT","tag":"$key","archiveBytes":$(stat -c %s "$ARCHIVE"),"built":$built,"ms":$ms}
EOF
