#!/usr/bin/env bash
# Install the Label Studio server into its own virtualenv (.venv-ls, or $LABEL_STUDIO_VENV):
# its pins (Django, pytz<2023, pyarrow) clash with the project's environment. Idempotent:
# does nothing when the pinned version is already there. Takes about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LABEL_STUDIO_VENV:-.venv-ls}"
VERSION=1.23.2
if [ -x "$VENV/bin/label-studio" ] \
   && "$VENV/bin/python" -m pip show label-studio 2>/dev/null | grep -qx "Version: $VERSION"; then
  echo "label-studio $VERSION already installed in $VENV"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "label-studio==$VERSION"
echo "label-studio $VERSION installed in $VENV"
