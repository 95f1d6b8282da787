#!/usr/bin/env bash
# Build Corral for Windows, on Windows (Git Bash; the release workflow's windows-latest job):
# the frozen app (PyInstaller: corral.exe for the command line, corralw.exe for the window),
# the per-user NSIS installer, and a portable .zip.
#
#   installers/build_windows.sh
#
# Environment:
#   PYTHON          Python with Corral, its dependencies and installers/requirements-build.txt
#                   (default .venv/Scripts/python.exe; installers/setup_build_env.sh cpu|cuda)
#   CORRAL_FLAVOUR  cpu | cuda (corral.spec checks the llama.cpp libraries against it)
#   MAKENSIS        makensis.exe (default: on PATH, or NSIS's usual install folder)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/Scripts/python.exe}"
DIST="${DIST:-$ROOT/dist}"
T_ALL=$(date +%s)
winpath() { if command -v cygpath >/dev/null; then cygpath -w "$1"; else echo "$1"; fi; }

"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" \
  --workpath "$ROOT/build/pyinstaller" installers/corral.spec
APP="$DIST/corral"
read -r VERSION FLAVOUR < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["version"], d["flavour"])' "$APP/_internal/resources/build_flavour.json" | tr -d '\r')
SUFFIX=""
[ "$FLAVOUR" = cpu ] || SUFFIX="-$FLAVOUR"

# The frozen app runs as the installed package does (the window offscreen, then quits).
"$APP/corral.exe" --version
QT_QPA_PLATFORM=offscreen "$APP/corral.exe" gui --quit-after-show

MAKENSIS="${MAKENSIS:-$(command -v makensis || true)}"
if [ -z "$MAKENSIS" ]; then
  for candidate in "/c/Program Files (x86)/NSIS/makensis.exe" "/c/Program Files/NSIS/makensis.exe"; do
    if [ -x "$candidate" ]; then MAKENSIS="$candidate"; break; fi
  done
fi
[ -n "$MAKENSIS" ] || { echo "build_windows: makensis not found: install NSIS (choco install nsis)" >&2; exit 1; }
SETUP="$DIST/Corral-${VERSION}-windows-x64${SUFFIX}-setup.exe"
"$MAKENSIS" -WX -V2 -DVERSION="$VERSION" -DFLAVOUR="$FLAVOUR" -DPAYLOAD="$(winpath "$APP")" \
  -DOUTFILE="$(winpath "$SETUP")" "$(winpath "$ROOT/installers/windows/corral.nsi")"

ZIP="$DIST/corral-${VERSION}-windows-x64${SUFFIX}.zip"
"$PY" - "$APP" "$ZIP" "corral-${VERSION}-windows-x64${SUFFIX}" <<'EOF'
import os, sys, zipfile
app, out, top = sys.argv[1:]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
    for folder, _dirs, files in os.walk(app):
        for name in files:
            path = os.path.join(folder, name)
            z.write(path, os.path.join(top, os.path.relpath(path, app)))
EOF

size() { "$PY" -c 'import os,sys; p=sys.argv[1]; print(f"{(sum(os.path.getsize(os.path.join(d,f)) for d,_,fs in os.walk(p) for f in fs) if os.path.isdir(p) else os.path.getsize(p))/1e6:.1f} MB")' "$1"; }
echo "build_windows: $FLAVOUR build of Corral $VERSION in $(( $(date +%s) - T_ALL )) s"
echo "  frozen app  $(size "$APP") unpacked"
echo "  $(basename "$SETUP")  $(size "$SETUP")"
echo "  $(basename "$ZIP")  $(size "$ZIP")"
