#!/bin/sh
# Install Corral from this folder (the portable .tar.gz) so that it is in your applications menu.
#
#   ./install.sh              for you only: ~/.local/opt/corral, ~/.local/bin/corral, menu entry
#   sudo ./install.sh --system  for everyone: /opt/corral, /usr/local/bin/corral, menu entry
#   ./install.sh --uninstall  (or --system --uninstall) remove it again
#
# Nothing needs installing to just run it: ./corral starts it from here. Uninstalling keeps your
# models and chats (~/.local/share/Corral); delete that folder yourself to remove them too.
set -eu

HERE="$(cd "$(dirname "$0")" && pwd)"
MODE=user
ACTION=install
for arg in "$@"; do
  case "$arg" in
    --system) MODE=system ;;
    --uninstall) ACTION=uninstall ;;
    -h|--help) sed -n '2,9p' "$0" | cut -c3-; exit 0 ;;
    *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$MODE" = system ]; then
  APP_DIR=/opt/corral
  BIN_DIR=/usr/local/bin
  SHARE=/usr/local/share
  if [ "$(id -u)" -ne 0 ]; then echo "install.sh: --system needs root (sudo $0 $*)" >&2; exit 1; fi
else
  APP_DIR="$HOME/.local/opt/corral"
  BIN_DIR="$HOME/.local/bin"
  SHARE="${XDG_DATA_HOME:-$HOME/.local/share}"
fi
ICON_SIZES="16 24 32 48 64 128 256 512"

refresh_menus() {
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$SHARE/applications" 2>/dev/null || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$SHARE/icons/hicolor" 2>/dev/null || true
}

if [ "$ACTION" = uninstall ]; then
  # Only what install.sh put there: the app folder (recognised by its files), link, entry, icons.
  if [ -x "$APP_DIR/corral" ] && [ -d "$APP_DIR/_internal" ]; then rm -rf "$APP_DIR"; fi
  [ -L "$BIN_DIR/corral" ] && rm -f "$BIN_DIR/corral"
  rm -f "$SHARE/applications/corral.desktop" "$SHARE/icons/hicolor/scalable/apps/corral.svg"
  for s in $ICON_SIZES; do rm -f "$SHARE/icons/hicolor/${s}x${s}/apps/corral.png"; done
  refresh_menus
  echo "Corral removed. Your models and chats are still in ${XDG_DATA_HOME:-$HOME/.local/share}/Corral."
  exit 0
fi

if [ ! -x "$HERE/corral" ] || [ ! -d "$HERE/_internal" ]; then
  echo "install.sh: run me from the unpacked Corral folder (corral and _internal/ beside me)" >&2
  exit 1
fi
if [ "$HERE" != "$(cd "$APP_DIR" 2>/dev/null && pwd || true)" ]; then
  if [ -e "$APP_DIR" ]; then
    if [ -x "$APP_DIR/corral" ] && [ -d "$APP_DIR/_internal" ]; then rm -rf "$APP_DIR"
    else echo "install.sh: $APP_DIR exists and is not a Corral install; not touching it" >&2; exit 1; fi
  fi
  mkdir -p "$(dirname "$APP_DIR")"
  cp -a "$HERE" "$APP_DIR"
fi
mkdir -p "$BIN_DIR" "$SHARE/applications" "$SHARE/icons/hicolor/scalable/apps"
ln -sfn "$APP_DIR/corral" "$BIN_DIR/corral"
# The menu entry names the program by its full path: ~/.local/bin is not always on a desktop's PATH.
sed -e "s|^Exec=corral|Exec=$APP_DIR/corral|" -e "s|^TryExec=corral|TryExec=$APP_DIR/corral|" \
  "$HERE/corral.desktop" > "$SHARE/applications/corral.desktop"
for s in $ICON_SIZES; do
  mkdir -p "$SHARE/icons/hicolor/${s}x${s}/apps"
  cp "$HERE/icons/corral-$s.png" "$SHARE/icons/hicolor/${s}x${s}/apps/corral.png"
done
cp "$HERE/icons/corral.svg" "$SHARE/icons/hicolor/scalable/apps/corral.svg"
refresh_menus
echo "Corral installed in $APP_DIR; start it from your applications menu or with: $BIN_DIR/corral"
case ":$PATH:" in *":$BIN_DIR:"*) ;; *) echo "($BIN_DIR is not on your PATH: add it to run 'corral' by name.)" ;; esac
