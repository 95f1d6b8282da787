#!/usr/bin/env bash
# What a Debian/Ubuntu machine needs to build (and check) Corral's Linux installers, beyond
# Python and a compiler: dpkg-dev (dpkg-deb), binutils (strip), desktop-file-utils (to
# validate the .desktop entry), and the system libraries the frozen app links but does not
# bundle, which PyInstaller and deb_depends.py must find installed (Qt's xcb and Wayland
# platform plugins, GL/EGL, fontconfig, D-Bus). Installs only what is missing; needs root (or sudo).
#
#   sudo installers/linux/build_deps.sh
set -euo pipefail
PACKAGES=(
  dpkg-dev binutils desktop-file-utils file
  libgl1 libegl1 libfontconfig1 libfreetype6 libdbus-1-3 libglib2.0-0
  libx11-6 libx11-xcb1 libxcb1 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
  libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0
  libxcb-xkb1 libxcb-shm0 libxcb-sync1 libxcb-glx0 libwayland-client0 libwayland-cursor0
)
installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
missing=()
for pkg in "${PACKAGES[@]}"; do
  # Ubuntu 24.04 renamed some libraries for the 64-bit time_t transition (libglib2.0-0t64…).
  installed "$pkg" || installed "${pkg}t64" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "build_deps: everything is installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "build_deps: installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
