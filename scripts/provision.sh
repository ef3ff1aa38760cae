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

command -v openssl >/dev/null || log "warning: openssl is missing; the benchmarks use it as a baseline"
log "ready (cache: $CACHE)"
