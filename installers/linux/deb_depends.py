"""Print the Debian `Depends:` value for a frozen Corral folder (dist/corral).

    python3 installers/linux/deb_depends.py dist/corral
    -> libc6 (>= 2.36), libegl1, libfontconfig1, libgl1, …

The frozen app bundles most of what it needs, but leaves out on purpose the libraries that must
come from the system (glibc, GL/EGL, X11/xcb core, fontconfig, GLib, D-Bus, the C++ runtime: see
LINUX_SYSTEM_LIBS in corral.spec). This finds them the way the dynamic loader will: every ELF
file's DT_NEEDED entries that no file in the bundle provides, resolved with `ldconfig -p`, and
mapped to the package that owns them with `dpkg -S`. So the .deb built on a machine depends on
that distribution's package names (Debian 12's, Ubuntu 22.04's…).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

# Libraries that come with a driver, never from a package a .deb can name: the CUDA flavour links
# libcuda.so.1, which the NVIDIA driver installs (its package name differs per distribution).
DRIVER_LIBS = {"libcuda.so.1", "libnvidia-ml.so.1"}
# ldconfig's tag for the ELF machine (e_machine): which entry of `ldconfig -p` matches.
LDCONFIG_ARCH = {62: "x86-64", 183: "AArch64"}


def elf_needed(path: Path) -> tuple[int, list[str]] | None:
    """(e_machine, DT_NEEDED names) of an ELF shared object or executable; None if not ELF."""
    with open(path, "rb") as fh:
        head = fh.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF":
            return None
        is64, little = head[4] == 2, head[5] == 1
        e = "<" if little else ">"
        if is64:
            machine, = struct.unpack_from(e + "H", head, 18)
            shoff, = struct.unpack_from(e + "Q", head, 40)
            shentsize, shnum = struct.unpack_from(e + "HH", head, 58)
        else:
            machine, = struct.unpack_from(e + "H", head, 18)
            shoff, = struct.unpack_from(e + "I", head, 32)
            shentsize, shnum = struct.unpack_from(e + "HH", head, 46)
        fh.seek(shoff)
        table = fh.read(shentsize * shnum)
        sections = []
        for i in range(shnum):
            raw = table[i * shentsize:(i + 1) * shentsize]
            if is64:
                _, stype, _, _, off, size, link, _, _, entsize = struct.unpack_from(e + "IIQQQQIIQQ", raw)
            else:
                _, stype, _, _, off, size, link, _, _, entsize = struct.unpack_from(e + "IIIIIIIIII", raw)
            sections.append((stype, off, size, link, entsize))
        needed: list[str] = []
        for stype, off, size, link, entsize in sections:
            if stype != 6:  # SHT_DYNAMIC
                continue
            fh.seek(off)
            dyn = fh.read(size)
            _, str_off, str_size, _, _ = sections[link]
            fh.seek(str_off)
            strtab = fh.read(str_size)
            fmt = e + ("qQ" if is64 else "iI")
            step = struct.calcsize(fmt)
            for pos in range(0, len(dyn) - step + 1, step):
                tag, val = struct.unpack_from(fmt, dyn, pos)
                if tag == 0:
                    break
                if tag == 1:  # DT_NEEDED
                    needed.append(strtab[val:strtab.index(b"\0", val)].decode())
        return machine, needed


def system_libraries(bundle: Path) -> tuple[set[str], set[int]]:
    """The sonames the bundle needs and does not contain; the ELF machines seen."""
    provided: set[str] = set()
    needed: set[str] = set()
    machines: set[int] = set()
    for dirpath, _dirs, files in os.walk(bundle):
        for name in files:
            provided.add(name)
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            found = elf_needed(path)
            if found:
                machines.add(found[0])
                needed.update(found[1])
    return needed - provided, machines


def ldconfig_paths(arch: str) -> dict[str, str]:
    out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        name, _, rest = line.strip().partition(" (")
        flags, _, path = rest.partition(") => ")
        if path and (arch in flags or ("," not in flags and arch == "")) and name not in paths:
            paths[name] = path
    return paths


def owning_package(path: str) -> str | None:
    candidates = {path, os.path.realpath(path)}
    for p in list(candidates):  # usrmerge: dpkg may know a file under /lib or /usr/lib only
        candidates.add(p[4:] if p.startswith("/usr/") else "/usr" + p)
    for p in sorted(candidates):
        res = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if res.returncode == 0:
            pkg = res.stdout.splitlines()[0].split(":")[0].split(",")[0].strip()
            return pkg
    return None


def package_version(pkg: str) -> str:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return res.stdout.strip()


def depends(bundle: Path) -> tuple[list[str], list[str]]:
    """(Depends entries, notes about libraries left to the user's drivers)."""
    missing, machines = system_libraries(bundle)
    arch = next((LDCONFIG_ARCH[m] for m in machines if m in LDCONFIG_ARCH), "")
    paths = ldconfig_paths(arch)
    packages: set[str] = set()
    notes: list[str] = []
    unknown: list[str] = []
    for soname in sorted(missing):
        if soname in DRIVER_LIBS:
            notes.append(f"{soname}: comes with the GPU driver, not named in Depends")
            continue
        path = paths.get(soname)
        if path is None and soname.startswith("ld-linux"):
            continue  # the dynamic loader itself: part of libc6
        pkg = owning_package(path) if path else None
        if pkg is None:
            unknown.append(soname)
        else:
            packages.add(pkg)
    if unknown:
        raise SystemExit("deb_depends: no installed package provides " + ", ".join(unknown)
                         + " (install it on the build machine, or bundle it)")
    packages.add("libc6")
    entries = []
    for pkg in sorted(packages):
        if pkg == "libc6":  # the glibc the app was linked on, or newer
            upstream = package_version(pkg).split("-")[0]
            entries.append(f"libc6 (>= {upstream})" if upstream else "libc6")
        else:
            entries.append(pkg)
    return entries, notes


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    entries, notes = depends(Path(argv[0]))
    for note in notes:
        print(f"deb_depends: {note}", file=sys.stderr)
    print(", ".join(entries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
