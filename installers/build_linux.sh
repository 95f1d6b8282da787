#!/usr/bin/env bash
# Build Corral's Linux installers: the frozen app (PyInstaller, one folder), a .deb, an AppDir
# (which installers/linux/build_appimage.sh turns into an AppImage where appimagetool can be
# fetched), and a portable .tar.gz with the same .desktop entry and an install script.
#
#   installers/build_linux.sh              freeze, then package
#   installers/build_linux.sh --no-freeze  package the dist/corral already built
#
# Environment:
#   PYTHON          the Python with Corral, its dependencies and PyInstaller installed
#                   (default: .venv/bin/python; the release workflow makes one per flavour with
#                   installers/setup_build_env.sh)
#   CORRAL_FLAVOUR  cpu | cuda: what the build must be (corral.spec checks the llama.cpp libraries)
#   DIST            where to put everything (default: dist/)
#   DEB_MAINTAINER  the .deb's Maintainer field
#   DEB_COMPRESSION dpkg-deb's compression options (default "-Zxz": smallest, read by every
#                   dpkg; "-Zzstd -z9" is ~10x faster to build and ~20% bigger)
# Needs dpkg-deb and the system libraries in installers/linux/build_deps.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
DIST="${DIST:-$ROOT/dist}"
WORK="$ROOT/build/linux"
FREEZE=1
for arg in "$@"; do
  case "$arg" in
    --no-freeze) FREEZE=0 ;;
    *) echo "build_linux.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
mkdir -p "$DIST"
seconds() { date +%s; }
T_ALL=$(seconds)

# ---- 1. the frozen app -------------------------------------------------------------------
# The CUDA flavour bundles the CUDA runtime (cudart, cuBLAS): PyInstaller must be able to find it.
if [ -n "${CUDA_PATH:-}" ] && [ -d "$CUDA_PATH/lib64" ]; then
  export LD_LIBRARY_PATH="$CUDA_PATH/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if [ "$FREEZE" = 1 ]; then
  T=$(seconds)
  "$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" \
    --workpath "$ROOT/build/pyinstaller" installers/corral.spec
  echo "build_linux: froze dist/corral in $(( $(seconds) - T )) s"
fi
APP="$DIST/corral"
STAMP="$APP/_internal/resources/build_flavour.json"
[ -x "$APP/corral" ] && [ -f "$STAMP" ] || { echo "build_linux: no frozen app in $APP" >&2; exit 1; }
read -r VERSION FLAVOUR < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["version"], d["flavour"])' "$STAMP")
DEB_ARCH="$(dpkg --print-architecture)"
MACHINE="$(uname -m)"
# The CPU build is plain "corral"; the CUDA one is a separate package that replaces it.
if [ "$FLAVOUR" = cpu ]; then PKG=corral; SUFFIX=""; else PKG="corral-$FLAVOUR"; SUFFIX="-$FLAVOUR"; fi

ICON_SIZES="16 24 32 48 64 128 256 512"
install_share() {  # $1 = a usr/share folder: the .desktop entry and the hicolor icons
  install -Dm644 installers/linux/corral.desktop "$1/applications/corral.desktop"
  for s in $ICON_SIZES; do
    install -Dm644 "resources/icons/corral-$s.png" "$1/icons/hicolor/${s}x${s}/apps/corral.png"
  done
  install -Dm644 resources/icons/corral.svg "$1/icons/hicolor/scalable/apps/corral.svg"
}

# ---- 2. the .deb -------------------------------------------------------------------------
T=$(seconds)
DEB_ROOT="$WORK/deb"
rm -rf "$DEB_ROOT"
mkdir -p "$DEB_ROOT/opt" "$DEB_ROOT/usr/bin" "$DEB_ROOT/DEBIAN"
cp -a "$APP" "$DEB_ROOT/opt/corral"
ln -s /opt/corral/corral "$DEB_ROOT/usr/bin/corral"
install_share "$DEB_ROOT/usr/share"
chmod -R u=rwX,go=rX "$DEB_ROOT"
DEPENDS="$("$PY" installers/linux/deb_depends.py "$APP")"
INSTALLED_KB="$(du -sk --exclude=DEBIAN "$DEB_ROOT" | cut -f1)"
{
  echo "Package: $PKG"
  echo "Version: $VERSION"
  echo "Architecture: $DEB_ARCH"
  echo "Maintainer: ${DEB_MAINTAINER:-Corral maintainers <corral@users.noreply.github.com>}"
  echo "Installed-Size: $INSTALLED_KB"
  echo "Depends: $DEPENDS"
  if [ "$PKG" != corral ]; then
    echo "Provides: corral"
    echo "Conflicts: corral"
    echo "Replaces: corral"
  else
    echo "Conflicts: corral-cuda"
  fi
  echo "Section: utils"
  echo "Priority: optional"
  echo "Description: Run LLaMA-family language models on your own computer, offline ($FLAVOUR build)"
  echo " Corral keeps a library of GGUF models, reads each model's metadata from its file,"
  echo " and chats with it through llama.cpp. Once a model is on your disk, nothing leaves"
  echo " your machine. Your models and chats live in ~/.local/share/Corral and are kept when"
  echo " the package is removed."
} > "$DEB_ROOT/DEBIAN/control"
DEB="$DIST/${PKG}_${VERSION}_${DEB_ARCH}.deb"
rm -f "$DEB"
# shellcheck disable=SC2086  # DEB_COMPRESSION is a list of options
dpkg-deb --build --root-owner-group ${DEB_COMPRESSION:--Zxz} "$DEB_ROOT" "$DEB" >/dev/null
echo "build_linux: $(basename "$DEB") in $(( $(seconds) - T )) s"

# ---- 3. the AppDir (the release workflow makes the AppImage from it) ----------------------
T=$(seconds)
APPDIR="$DIST/Corral${SUFFIX}.AppDir"
rm -rf "$APPDIR"
mkdir -p "$APPDIR/usr/lib"
cp -a "$APP" "$APPDIR/usr/lib/corral"
install_share "$APPDIR/usr/share"
install -m755 installers/linux/AppRun "$APPDIR/AppRun"
install -m644 installers/linux/corral.desktop "$APPDIR/corral.desktop"
install -m644 resources/icons/corral-256.png "$APPDIR/corral.png"
ln -s corral.png "$APPDIR/.DirIcon"
echo "build_linux: $(basename "$APPDIR") in $(( $(seconds) - T )) s"

# ---- 4. the portable .tar.gz ---------------------------------------------------------------
T=$(seconds)
NAME="corral-${VERSION}-linux-${MACHINE}${SUFFIX}"
TAR_ROOT="$WORK/tar"
rm -rf "$TAR_ROOT"
mkdir -p "$TAR_ROOT"
cp -a "$APP" "$TAR_ROOT/$NAME"
install -m644 installers/linux/corral.desktop "$TAR_ROOT/$NAME/corral.desktop"
install -m755 installers/linux/install.sh "$TAR_ROOT/$NAME/install.sh"
mkdir -p "$TAR_ROOT/$NAME/icons"
for s in $ICON_SIZES; do install -m644 "resources/icons/corral-$s.png" "$TAR_ROOT/$NAME/icons/"; done
install -m644 resources/icons/corral.svg "$TAR_ROOT/$NAME/icons/"
cat > "$TAR_ROOT/$NAME/README.txt" <<EOF
Corral $VERSION for Linux ($MACHINE, $FLAVOUR build)

Run it from here:            ./corral          (the window; ./corral --help for the command line)
Add it to your menu:         ./install.sh      (into ~/.local; sudo ./install.sh --system for all users)
Remove it again:             ./install.sh --uninstall

Your models and chats live in ~/.local/share/Corral and are never removed by the uninstaller.
EOF
TARBALL="$DIST/$NAME.tar.gz"
tar -C "$TAR_ROOT" --owner=0 --group=0 --numeric-owner -czf "$TARBALL" "$NAME"
echo "build_linux: $(basename "$TARBALL") in $(( $(seconds) - T )) s"

# ---- sizes -------------------------------------------------------------------------------
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
echo "build_linux: $FLAVOUR build of Corral $VERSION in $(( $(seconds) - T_ALL )) s"
echo "  frozen app  dist/corral                 $(mb "$(du -sb "$APP" | cut -f1)") unpacked"
echo "  .deb        $(basename "$DEB")   $(mb "$(stat -c %s "$DEB")")"
echo "  tarball     $(basename "$TARBALL")   $(mb "$(stat -c %s "$TARBALL")")"
echo "  AppDir      $(basename "$APPDIR")   $(mb "$(du -sb "$APPDIR" | cut -f1)") unpacked"
