# llama_cpp loads its shared libraries (libllama, libggml*, and ggml-cuda/-metal when built with
# them) from llama_cpp/lib with ctypes, which PyInstaller cannot see: collect them explicitly.
# Without this the frozen app fails with "Shared library with base name 'llama' not found".
from PyInstaller.utils.hooks import collect_dynamic_libs

binaries = collect_dynamic_libs("llama_cpp")
