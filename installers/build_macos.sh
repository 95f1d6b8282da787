#!/usr/bin/env bash
# Build Corral for macOS: the frozen app (PyInstaller, dist/Corral.app), signed when an identity
# is given, in a .dmg (dmgbuild) that is signed and notarized when Apple credentials are given.
# Run on a Mac (the release workflow runs it on macos-14, Apple Silicon: the Metal build).
#
#   installers/build_macos.sh
#
# Environment:
#   PYTHON              Python with Corral, its dependencies and installers/requirements-build.txt
#                       (default .venv/bin/python; installers/setup_build_env.sh metal makes one)
#   CORRAL_FLAVOUR      metal (Apple Silicon default) | cpu
#   CODESIGN_IDENTITY   e.g. "Developer ID Application: Name (TEAMID)"; unset: not signed
#   APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD   notarize with notarytool; unset: not notarized
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
DIST="${DIST:-$ROOT/dist}"
T_ALL=$(date +%s)

# PyInstaller signs every binary it collects when given an identity (hardened runtime and the
# entitlements in installers/macos/entitlements.plist come from corral.spec).
export CORRAL_CODESIGN_IDENTITY="${CODESIGN_IDENTITY:-}"
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" \
  --workpath "$ROOT/build/pyinstaller" installers/corral.spec
APP="$DIST/Corral.app"
STAMP="$APP/Contents/Resources/resources/build_flavour.json"
[ -f "$STAMP" ] || STAMP="$APP/Contents/Frameworks/resources/build_flavour.json"
read -r VERSION FLAVOUR < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["version"], d["flavour"])' "$STAMP")
ARCH="$(uname -m)"
SUFFIX=""
[ "$FLAVOUR" = metal ] || SUFFIX="-$FLAVOUR"

# The app runs from the bundle exactly as the installed package does.
"$APP/Contents/MacOS/corral" --version
QT_QPA_PLATFORM=offscreen "$APP/Contents/MacOS/corral" gui --quit-after-show

if [ -n "${CODESIGN_IDENTITY:-}" ]; then
  codesign --force --options runtime --timestamp \
    --entitlements installers/macos/entitlements.plist --sign "$CODESIGN_IDENTITY" "$APP"
  codesign --verify --strict --verbose=2 "$APP"
fi

DMG="$DIST/Corral-${VERSION}-macos-${ARCH}${SUFFIX}.dmg"
rm -f "$DMG"
"$PY" -m dmgbuild -s installers/macos/dmg_settings.py -D app="$APP" \
  -D icon="$ROOT/resources/icons/corral.icns" "Corral" "$DMG"

if [ -n "${CODESIGN_IDENTITY:-}" ]; then
  codesign --force --timestamp --sign "$CODESIGN_IDENTITY" "$DMG"
fi
if [ -n "${CODESIGN_IDENTITY:-}" ] && [ -n "${APPLE_ID:-}" ] && [ -n "${APPLE_TEAM_ID:-}" ] && [ -n "${APPLE_APP_PASSWORD:-}" ]; then
  xcrun notarytool submit "$DMG" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
    --password "$APPLE_APP_PASSWORD" --wait
  xcrun stapler staple "$DMG"
  xcrun stapler validate "$DMG"
else
  echo "build_macos: not notarized (set CODESIGN_IDENTITY, APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD)"
fi

echo "build_macos: $FLAVOUR build of Corral $VERSION in $(( $(date +%s) - T_ALL )) s"
echo "  Corral.app  $(du -sh "$APP" | cut -f1) unpacked"
echo "  $(basename "$DMG")  $(du -h "$DMG" | cut -f1)"
