#!/usr/bin/env bash
# Make the Python environment a release build is frozen from: build/venv-FLAVOUR, with
# llama-cpp-python compiled for that flavour, Corral, and installers/requirements-build.txt.
# Prints the environment's python on the last line. Runs on Linux, macOS and Windows (Git Bash).
#
#   installers/setup_build_env.sh cpu     portable CPU build (GGML_NATIVE=off: runs on any x86-64
#                                         with AVX2, or any arm64, not only the build machine's CPU)
#   installers/setup_build_env.sh cuda    NVIDIA GPUs (needs the CUDA toolkit: nvcc on PATH)
#   installers/setup_build_env.sh metal   Apple Silicon GPUs (macOS arm64 only)
#
# Environment: BASE_PYTHON (default python3, or python), CUDA_ARCHITECTURES (default covers
# Pascal to Hopper: 61;70;75;80;86;89;90), EXTRA_CMAKE_ARGS.
# Compiling llama.cpp takes ~8 min on 2 cores for cpu, much longer for cuda.
set -euo pipefail

FLAVOUR="${1:?usage: setup_build_env.sh cpu|cuda|metal}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BASE="${BASE_PYTHON:-$(command -v python3 || command -v python)}"
VENV="$ROOT/build/venv-$FLAVOUR"

case "$FLAVOUR" in
  cpu)   CMAKE="-DGGML_NATIVE=off"; [ "$(uname -s)" = Darwin ] && CMAKE="$CMAKE -DGGML_METAL=off" ;;
  cuda)  CMAKE="-DGGML_CUDA=on -DGGML_NATIVE=off -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES:-61;70;75;80;86;89;90}" ;;
  metal) [ "$(uname -s)" = Darwin ] || { echo "setup_build_env: metal is for macOS" >&2; exit 2; }
         CMAKE="-DGGML_METAL=on -DGGML_NATIVE=off" ;;
  *) echo "setup_build_env: unknown flavour $FLAVOUR (cpu, cuda, metal)" >&2; exit 2 ;;
esac
CMAKE="$CMAKE ${EXTRA_CMAKE_ARGS:-}"

[ -d "$VENV" ] || "$BASE" -m venv "$VENV"
if [ -x "$VENV/bin/python" ]; then PY="$VENV/bin/python"; else PY="$VENV/Scripts/python.exe"; fi
"$PY" -m pip install --quiet --upgrade pip

# llama-cpp-python at the version Corral pins, compiled here with the flavour's options. No
# cache: pip would otherwise reuse a wheel built earlier with other options (a CPU wheel in a
# "cuda" environment); corral.spec refuses a build whose libraries do not match the flavour.
LLAMA_REQ="$("$PY" -c 'import re,sys; print(re.search(r"\"(llama-cpp-python[^\"]*)\"", open("pyproject.toml").read()).group(1))')"
echo "setup_build_env: building $LLAMA_REQ with CMAKE_ARGS=$CMAKE"
CMAKE_ARGS="$CMAKE" FORCE_CMAKE=1 "$PY" -m pip install --no-cache-dir --force-reinstall --no-deps "$LLAMA_REQ"
"$PY" -m pip install --quiet "$ROOT" -r installers/requirements-build.txt
echo "$PY"
