"""What a QEMU guest needs, from Debian's packages only, cached between runs.

* ``qemu-system-x86_64`` (package ``qemu-system-x86``): apt-get installed on
  the host if missing (root needed once; CI runs as root).
* ``busybox`` (static): the host's ``/bin/busybox`` if it is a static binary,
  else ``busybox-static`` is fetched with ``apt-get download`` into the cache
  (installing it would conflict with the ``busybox`` package some hosts have).
* A Debian cloud kernel: ``apt-cache depends linux-image-cloud-amd64`` names
  the versioned package, ``apt-get download`` + ``dpkg -x`` puts it into the
  cache; its ``vmlinuz`` boots the guest and its virtio modules go into the
  initramfs (the cloud kernel builds virtio as modules).
* Guest tools (``ethtool``): the package and its direct dependencies other
  than libc are fetched and unpacked into the cache; the ELF libraries the
  binary needs are resolved with ``ldd`` (extracted tree first, then the host,
  which runs the same Debian release).

Cache: ``$VHU_QEMU_CACHE`` or ``~/.cache/vhu/qemu``.  Nothing is downloaded
once the cache holds a kernel (``$VHU_QEMU_KERNEL_PKG`` forces a package).
Every fetch goes through apt; nothing else is downloaded.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import struct
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

QEMU_BINARY = os.environ.get("VHU_QEMU_BINARY", "qemu-system-x86_64")
KERNEL_META_PKG = "linux-image-cloud-amd64"

# Modules the guest needs for a virtio-net NIC; their dependencies (read from
# each module's .modinfo "depends=") are added and loaded first.
NET_MODULES = ["virtio_pci", "virtio_net"]

APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


class AssetError(RuntimeError):
    """A guest asset could not be obtained (message says why and how to fix)."""


def cache_dir() -> Path:
    base = os.environ.get("VHU_QEMU_CACHE")
    path = Path(base) if base else Path(os.environ.get("HOME") or "/root") / ".cache/vhu/qemu"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _cache_lock():
    """Serialise fetches between concurrent test processes."""
    lock_path = cache_dir() / ".lock"
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], timeout: float = 600, cwd=None, env=None) -> str:
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                             cwd=cwd, env=env)
    except FileNotFoundError as exc:
        raise AssetError(f"{cmd[0]} not found: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise AssetError(f"{' '.join(cmd)} timed out after {timeout}s") from exc
    if res.returncode != 0:
        raise AssetError(f"{' '.join(cmd)} failed (rc={res.returncode}):\n"
                         f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return res.stdout


_apt_updated = False


def _apt(args: Sequence[str], cwd=None) -> str:
    """apt-get with one ``apt-get update`` retry when a package is not found."""
    global _apt_updated
    if os.geteuid() != 0 and args[0] == "install":
        raise AssetError(f"need root to apt-get {' '.join(args)} (or install it by hand)")
    try:
        return _run(["apt-get", "-q", *args], cwd=cwd, env=APT_ENV)
    except AssetError:
        if _apt_updated:
            raise
    _apt_updated = True
    _run(["apt-get", "-q", "update"], env=APT_ENV)
    return _run(["apt-get", "-q", *args], cwd=cwd, env=APT_ENV)


def _download_and_extract(packages: Sequence[str], dest: Path) -> None:
    """apt-get download ``packages`` and dpkg -x all of them into ``dest``
    (built in a temp dir, renamed into place: a cache entry is complete or absent)."""
    if dest.exists():
        return
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        debs = tmp / "debs"
        debs.mkdir()
        os.chmod(tmp, 0o755)
        os.chmod(debs, 0o777)   # apt's _apt sandbox user writes there (else a warning)
        _apt(["download", *packages], cwd=debs)
        root = tmp / "root"
        root.mkdir()
        files = sorted(debs.glob("*.deb"))
        if len(files) < len(packages):
            raise AssetError(f"apt-get download {packages} gave only {[f.name for f in files]}")
        for deb in files:
            _run(["dpkg-deb", "-x", str(deb), str(root)])
        (root / ".packages").write_text("\n".join(f.name for f in files) + "\n")
        os.rename(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ host side

def is_static_elf(path: Path) -> bool:
    """True if ``path`` is an ELF executable without a PT_INTERP segment."""
    try:
        with open(path, "rb") as fh:
            hdr = fh.read(64)
            if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
                return False
            phoff, = struct.unpack_from("<Q", hdr, 32)
            phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", table, i * phentsize)
        if p_type == 3:   # PT_INTERP
            return False
    return True


def ensure_qemu() -> str:
    """Path of qemu-system-x86_64; apt-get installs qemu-system-x86 if missing."""
    path = shutil.which(QEMU_BINARY)
    if path:
        return path
    with _cache_lock():
        path = shutil.which(QEMU_BINARY)
        if not path:
            _apt(["install", "-y", "--no-install-recommends", "qemu-system-x86"])
            path = shutil.which(QEMU_BINARY)
    if not path:
        raise AssetError(f"{QEMU_BINARY} still missing after installing qemu-system-x86")
    return path


def busybox_path() -> Path:
    """A static busybox: the host's, or busybox-static unpacked in the cache."""
    env = os.environ.get("VHU_QEMU_BUSYBOX")
    if env:
        return Path(env)
    for cand in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if cand.is_file() and is_static_elf(cand):
            return cand
    dest = cache_dir() / "pkg-busybox-static"
    with _cache_lock():
        _download_and_extract(["busybox-static"], dest)
    for cand in (dest / "bin/busybox", dest / "usr/bin/busybox"):
        if cand.is_file():
            return cand
    raise AssetError(f"busybox-static unpacked into {dest} but no bin/busybox in it")


# --------------------------------------------------------------------- kernel

@dataclass
class Kernel:
    version: str          # e.g. 6.1.0-56-cloud-amd64
    root: Path            # dpkg -x tree
    vmlinuz: Path

    @property
    def module_dir(self) -> Path:
        return self.root / "lib/modules" / self.version

    def _module_index(self) -> Dict[str, Path]:
        index = self.__dict__.get("_index")
        if index is None:
            index = {}
            for ko in self.module_dir.rglob("*.ko*"):
                name = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", ko.name)
                index[name.replace("-", "_")] = ko
            self.__dict__["_index"] = index
        return index

    def module_path(self, name: str) -> Path:
        try:
            return self._module_index()[name.replace("-", "_")]
        except KeyError:
            raise AssetError(f"module {name} not found under {self.module_dir} (built in? "
                             f"see {self.root}/boot/config-{self.version})") from None

    def module_deps(self, name: str) -> List[str]:
        data = read_module(self.module_path(name))
        m = re.search(rb"(?:^|\0)depends=([^\0]*)", data)
        return [d for d in m.group(1).decode().split(",") if d] if m else []

    def modules_in_load_order(self, names: Iterable[str]) -> List[Tuple[str, Path]]:
        """``names`` plus their dependencies, dependencies first."""
        order: List[str] = []
        visiting = set()

        def visit(n):
            n = n.replace("-", "_")
            if n in order:
                return
            if n in visiting:
                raise AssetError(f"module dependency cycle at {n}")
            visiting.add(n)
            for d in self.module_deps(n):
                visit(d)
            visiting.discard(n)
            order.append(n)

        for n in names:
            visit(n)
        return [(n, self.module_path(n)) for n in order]


def read_module(path: Path) -> bytes:
    """Module contents, decompressed (.ko.xz / .ko.zst / .ko.gz) if needed."""
    if path.name.endswith(".ko"):
        return path.read_bytes()
    if path.name.endswith(".xz"):
        import lzma
        return lzma.decompress(path.read_bytes())
    if path.name.endswith(".gz"):
        import gzip
        return gzip.decompress(path.read_bytes())
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    raise AssetError(f"unknown module format {path}")


def _kernel_package() -> str:
    env = os.environ.get("VHU_QEMU_KERNEL_PKG")
    if env:
        return env
    out = _run(["apt-cache", "depends", KERNEL_META_PKG])
    m = re.search(r"Depends:\s*(linux-image-[0-9]\S*-cloud-amd64)\b", out)
    if not m:
        _apt(["update"])
        out = _run(["apt-cache", "depends", KERNEL_META_PKG])
        m = re.search(r"Depends:\s*(linux-image-[0-9]\S*-cloud-amd64)\b", out)
    if not m:
        raise AssetError(f"apt-cache depends {KERNEL_META_PKG} names no versioned kernel:\n{out}")
    return m.group(1)


def _kernel_from_tree(root: Path) -> Optional[Kernel]:
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    if not vmlinuz:
        return None
    version = vmlinuz[-1].name[len("vmlinuz-"):]
    return Kernel(version, root, vmlinuz[-1])


def ensure_kernel() -> Kernel:
    """The cached cloud kernel, fetched with apt on first use."""
    cache = cache_dir()
    forced = os.environ.get("VHU_QEMU_KERNEL_PKG")
    with _cache_lock():
        if not forced:
            trees = sorted(cache.glob("kernel-linux-image-*"), key=lambda p: p.stat().st_mtime)
            for tree in reversed(trees):
                k = _kernel_from_tree(tree)
                if k:
                    return k
        pkg = _kernel_package()
        dest = cache / f"kernel-{pkg}"
        _download_and_extract([pkg], dest)
    k = _kernel_from_tree(dest)
    if not k:
        raise AssetError(f"{pkg} unpacked into {dest} but it has no boot/vmlinuz-*")
    return k


# ----------------------------------------------------------------- guest tools

@dataclass
class GuestTool:
    """A dynamically linked program from a Debian package for the guest."""
    name: str
    binary: Path                       # in the extracted tree
    guest_path: str                    # where it goes in the guest
    libs: Dict[str, Path] = field(default_factory=dict)   # guest path -> host file


def _package_depends(pkg: str) -> List[str]:
    out = _run(["apt-cache", "depends", pkg])
    deps = []
    for line in out.splitlines():
        m = re.match(r"\s*\|?Depends:\s*(\S+)", line)
        if m and not m.group(1).startswith("<") and m.group(1) not in ("libc6",):
            deps.append(m.group(1))
    return deps


def ensure_guest_tool(pkg: str, binary: str) -> GuestTool:
    """Program ``binary`` (e.g. ``ethtool``, looked up in sbin, usr/sbin, bin,
    usr/bin) of Debian package ``pkg``, with the shared libraries it needs."""
    dest = cache_dir() / f"pkg-{pkg}"
    with _cache_lock():
        if not dest.exists():
            _download_and_extract([pkg] + _package_depends(pkg), dest)
    found = [dest / d / binary for d in ("sbin", "usr/sbin", "bin", "usr/bin")
             if (dest / d / binary).is_file()]
    if not found:
        raise AssetError(f"{pkg} unpacked into {dest} but no {binary} in its bin dirs")
    path = found[0]
    lib_dirs = sorted({str(p.parent) for p in dest.rglob("*.so*")})
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(lib_dirs))
    out = _run(["ldd", str(path)], env=env)
    libs: Dict[str, Path] = {}
    for line in out.splitlines():
        line = line.strip()
        m = re.match(r"(\S+) => (\S+) \(", line) or re.match(r"(/\S+) \(", line)
        if "not found" in line:
            raise AssetError(f"{binary}: library missing: {line}")
        if not m:
            continue
        resolved = Path(m.group(m.lastindex))
        if not resolved.is_absolute():
            continue
        if str(resolved).startswith(str(dest)):
            guest = "/lib/x86_64-linux-gnu/" + resolved.name
        elif m.lastindex == 1:          # the interpreter line: keep its path
            guest = str(resolved)
        else:
            guest = "/lib/x86_64-linux-gnu/" + resolved.name
        libs[guest] = resolved.resolve()
    return GuestTool(pkg, path, "/" + str(path.relative_to(dest)), libs)


@dataclass
class Assets:
    qemu: str
    busybox: Path
    kernel: Kernel
    tools: Dict[str, GuestTool]


@lru_cache(maxsize=None)
def ensure_assets(with_ethtool: bool = True) -> Assets:
    """Everything a guest needs; installs/fetches what is missing (see module doc)."""
    qemu = ensure_qemu()
    busybox = busybox_path()
    kernel = ensure_kernel()
    tools = {}
    if with_ethtool:
        tools["ethtool"] = ensure_guest_tool("ethtool", "ethtool")
    return Assets(qemu, busybox, kernel, tools)


if __name__ == "__main__":
    # scripts/setup.sh runs this (/usr/bin/python3 -m tests.qemu.assets) so that
    # the QEMU tests find everything cached.
    got = ensure_assets()
    print(f"qemu: {got.qemu}\nbusybox: {got.busybox}\nkernel: {got.kernel.vmlinuz}")
    for tool in got.tools.values():
        print(f"{tool.name}: {tool.binary}")
