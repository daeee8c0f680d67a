#!/usr/bin/env bash
# Installs the object-store emulators of the backup data-plane tests into the project's cache
# (outside the checkout, never globally), once per version:
#   - Azurite (Azure Blob Storage), from npm, into $PGC_CACHE/azurite (the version pinned below);
#   - fake-gcs-server (Google Cloud Storage), built from the Go module that hack/tools/fake-gcs-server
#     pins, as $PGC_BIN/fake-gcs-server.
# Needs node and npm, and Go. Idempotent: what is already installed at its version is kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

AZURITE_VERSION=3.37.0
AZURITE_DIR=$PGC_CACHE/azurite

command -v npm >/dev/null || die "npm is required to install Azurite (Debian packages nodejs and npm)"
command -v go >/dev/null || die "Go is required to build fake-gcs-server"
mkdir -p "$PGC_BIN/.versions"

installed=$(node -p "require('$AZURITE_DIR/node_modules/azurite/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$AZURITE_VERSION" ] || [ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
  log "installing azurite $AZURITE_VERSION into $AZURITE_DIR"
  mkdir -p "$AZURITE_DIR"
  # A package.json of its own, so that npm installs here and not into a parent directory's project.
  [ -f "$AZURITE_DIR/package.json" ] || echo '{"name": "pgc-azurite", "private": true}' >"$AZURITE_DIR/package.json"
  npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --omit=dev --loglevel=error \
    "azurite@$AZURITE_VERSION" >/dev/null || die "npm install azurite@$AZURITE_VERSION failed"
fi
[ -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ] || die "azurite-blob is missing after npm install"

gcs_version=$(cd "$HACK_DIR/tools/fake-gcs-server" && go list -m -f '{{.Version}}' github.com/fsouza/fake-gcs-server)
if [ ! -x "$PGC_BIN/fake-gcs-server" ] || [ "$(cat "$PGC_BIN/.versions/fake-gcs-server" 2>/dev/null)" != "$gcs_version" ]; then
  log "building fake-gcs-server $gcs_version"
  (cd "$HACK_DIR/tools/fake-gcs-server" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$PGC_BIN/fake-gcs-server.tmp" github.com/fsouza/fake-gcs-server)
  mv "$PGC_BIN/fake-gcs-server.tmp" "$PGC_BIN/fake-gcs-server"
  echo "$gcs_version" >"$PGC_BIN/.versions/fake-gcs-server"
fi
log "object-store emulators ready: azurite $AZURITE_VERSION, fake-gcs-server $gcs_version"
