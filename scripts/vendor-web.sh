#!/usr/bin/env bash
# Re-fetch the web UI's vendored JavaScript from the npm registry, pinned and checked.
# The UI has no build step: the library's dist file is committed under
# src/pyclan/serve/static/vendor/ with its licence; this script is how it got there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="@json-editor/json-editor"
VERSION="2.17.2"
TARBALL_SHA256="3f286c6ed58a0511c91aca60445cdf84a2288825b96441ae249449d2f589da56"
DEST="src/pyclan/serve/static/vendor"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tarball=$(ls "$work"/*.tgz)
echo "$TARBALL_SHA256  $tarball" | sha256sum -c --quiet -
tar -xzf "$tarball" -C "$work" package/dist/jsoneditor.js package/dist/jsoneditor.js.LICENSE.txt package/LICENSE
mkdir -p "$DEST"
cp "$work/package/dist/jsoneditor.js" "$DEST/jsoneditor.js"
cp "$work/package/dist/jsoneditor.js.LICENSE.txt" "$DEST/jsoneditor.js.LICENSE.txt"
cp "$work/package/LICENSE" "$DEST/jsoneditor.LICENSE"
echo "vendored $PACKAGE@$VERSION into $DEST"
