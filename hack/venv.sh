#!/usr/bin/env bash
# Creates the Python virtualenv with the pinned tools (requirements-dev.txt), outside the checkout.
# It is rebuilt only when the requirements change.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

want=$(sha256sum "$REPO_ROOT/requirements-dev.txt" | cut -d' ' -f1)
stamp=$PGC_VENV/.requirements.sha256
if [ -x "$PGC_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "$python is required"
log "creating the Python virtualenv in $PGC_VENV"
rm -rf "$PGC_VENV"
"$python" -m venv "$PGC_VENV"
"$PGC_VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$PGC_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REPO_ROOT/requirements-dev.txt"
echo "$want" >"$stamp"
