#!/usr/bin/env bash
# What a Windows machine needs to build Corral's installer beyond Python and the C++ build
# tools: NSIS (makensis). Installs it with Chocolatey when it is missing. Git Bash.
#
#   installers/windows/build_deps.sh
set -euo pipefail
if command -v makensis >/dev/null || [ -x "/c/Program Files (x86)/NSIS/makensis.exe" ] \
   || [ -x "/c/Program Files/NSIS/makensis.exe" ]; then
  echo "build_deps: NSIS is installed"
  exit 0
fi
command -v choco >/dev/null || { echo "build_deps: install NSIS 3 from its website, or Chocolatey first" >&2; exit 1; }
choco install nsis -y --no-progress
