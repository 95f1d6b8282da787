#!/usr/bin/env bash
# Turn the AppDir that build_linux.sh made (dist/Corral.AppDir) into an AppImage with
# appimagetool. Neither Debian nor PyPI has appimagetool or the AppImage runtime without a
# download at build time, so this runs where the network allows it (the release workflow);
# `make dist` stops at the AppDir and the .tar.gz.
#
#   installers/linux/build_appimage.sh [dist/Corral.AppDir]
#
# Environment: APPIMAGETOOL (an appimagetool binary; default: on PATH, else downloaded once
# into build/tools/ from the AppImage project's GitHub releases).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
APPDIR="${1:-dist/Corral.AppDir}"
ARCH="$(uname -m)"
TOOL="${APPIMAGETOOL:-$(command -v appimagetool || true)}"
if [ -z "$TOOL" ]; then
  TOOL="$ROOT/build/tools/appimagetool-$ARCH.AppImage"
  if [ ! -x "$TOOL" ]; then
    mkdir -p "$(dirname "$TOOL")"
    curl -fsSL -o "$TOOL" \
      "https://github.com/AppImage/appimagetool/releases/download/continuous/appimagetool-$ARCH.AppImage"
    chmod +x "$TOOL"
  fi
fi
STAMP="$APPDIR/usr/lib/corral/_internal/resources/build_flavour.json"
read -r VERSION FLAVOUR < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["version"], d["flavour"])' "$STAMP")
SUFFIX=""
[ "$FLAVOUR" = cpu ] || SUFFIX="-$FLAVOUR"
OUT="dist/Corral-${VERSION}-${ARCH}${SUFFIX}.AppImage"
# --appimage-extract-and-run: the tool is itself an AppImage, and CI runners have no FUSE.
ARCH="$ARCH" "$TOOL" --appimage-extract-and-run --no-appstream "$APPDIR" "$OUT"
echo "build_appimage: $OUT $(du -h "$OUT" | cut -f1)"
