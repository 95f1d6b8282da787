# dmgbuild settings for Corral's disk image: the app and an Applications link side by side, so
# that installing is one drag. dmgbuild runs this file with `defines` set from its -D options:
#
#   python -m dmgbuild -s installers/macos/dmg_settings.py -D app=dist/Corral.app \
#       -D icon=resources/icons/corral.icns "Corral" dist/Corral-0.1.0-macos-arm64.dmg
#
# (installers/build_macos.sh does exactly that). dmgbuild needs macOS's hdiutil; on Linux,
# tests/cli/test_installers.py loads this file the way dmgbuild does and checks what it sets.
import os.path

defines = globals().get("defines", {})
app = defines.get("app", "dist/Corral.app")
appname = os.path.basename(app)

format = defines.get("format", "UDZO")  # zlib: opens on every macOS Corral supports
filesystem = "HFS+"
size = None  # dmgbuild measures the app

files = [app]
symlinks = {"Applications": "/Applications"}
icon = defines.get("icon", "resources/icons/corral.icns")  # the mounted volume's icon
hide_extensions = [appname]

background = "builtin-arrow"
window_rect = ((200, 120), (640, 300))
default_view = "icon-view"
icon_size = 128
text_size = 14
show_icon_preview = False
icon_locations = {appname: (160, 130), "Applications": (480, 130)}
