"""A tiny initramfs (cpio "newc", optionally gzip) built in Python at test time:
static busybox, the virtio-net modules, optional guest tools (ethtool) with
their libraries, ``/init`` (``guest-init.sh``) and files a test adds."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple, Union

from .assets import NET_MODULES, Assets, read_module

INIT_SCRIPT = Path(__file__).resolve().parent / "guest-init.sh"


class Cpio:
    """Writer of the "newc" cpio format the kernel unpacks into rootfs."""

    def __init__(self):
        self._entries: Dict[str, Tuple[int, bytes]] = {}   # path -> (mode, data)

    def _parents(self, path: str):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._entries:
                self._entries[d] = (stat.S_IFDIR | 0o755, b"")

    def add_dir(self, path: str, mode: int = 0o755):
        path = path.strip("/")
        self._parents(path)
        self._entries[path] = (stat.S_IFDIR | mode, b"")

    def add_file(self, path: str, data: Union[bytes, str], mode: int = 0o644):
        path = path.strip("/")
        if isinstance(data, str):
            data = data.encode()
        self._parents(path)
        self._entries[path] = (stat.S_IFREG | mode, data)

    def add_host_file(self, path: str, host: Union[str, Path], mode: Optional[int] = None):
        host = Path(host)
        if mode is None:
            mode = stat.S_IMODE(host.stat().st_mode)
        self.add_file(path, host.read_bytes(), mode)

    def add_symlink(self, path: str, target: str):
        path = path.strip("/")
        self._parents(path)
        self._entries[path] = (stat.S_IFLNK | 0o777, target.encode())

    def paths(self) -> Iterable[str]:
        return self._entries.keys()

    def to_bytes(self) -> bytes:
        out = bytearray()

        def entry(name: str, mode: int, data: bytes, ino: int):
            nm = name.encode() + b"\0"
            hdr = "070701" + "".join(f"{v:08x}" for v in (
                ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nm), 0))
            out.extend(hdr.encode() + nm)
            out.extend(b"\0" * (-len(out) % 4))
            out.extend(data)
            out.extend(b"\0" * (-len(out) % 4))

        # directories first (sorted: parents before children)
        for ino, name in enumerate(sorted(self._entries, key=lambda p: (p.count("/"), p)), 1):
            mode, data = self._entries[name]
            entry(name, mode, data, ino)
        entry("TRAILER!!!", 0, b"", 0)
        return bytes(out)


def build_initramfs(assets: Assets, out: Union[str, Path], *,
                    extra_files: Optional[Dict[str, Union[str, bytes]]] = None,
                    modules: Iterable[str] = NET_MODULES, compress: bool = True) -> Path:
    """Write the guest initramfs to ``out`` and return its path.

    ``extra_files``: guest path -> contents (e.g. ``/etc/vhu/boot.sh``, run by
    /init after the network is up; made executable if it starts with ``#!``).
    """
    c = Cpio()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run",
              "etc/vhu", "lib/modules", "root"):
        c.add_dir(d)
    c.add_host_file("bin/busybox", assets.busybox, 0o755)
    c.add_symlink("bin/sh", "busybox")
    c.add_host_file("init", INIT_SCRIPT, 0o755)
    order = []
    for name, path in assets.kernel.modules_in_load_order(modules):
        c.add_file(f"lib/modules/{name}.ko", read_module(path), 0o644)
        order.append(f"{name}.ko")
    c.add_file("lib/modules/load.order", "\n".join(order) + "\n")
    for tool in assets.tools.values():
        c.add_host_file(tool.guest_path, tool.binary, 0o755)
        for guest, host in tool.libs.items():
            c.add_host_file(guest, host, 0o755)
    c.add_file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    c.add_file("etc/group", "root:x:0:\n")
    for path, data in (extra_files or {}).items():
        raw = data.encode() if isinstance(data, str) else data
        c.add_file(path, raw, 0o755 if raw.startswith(b"#!") else 0o644)
    data = c.to_bytes()
    if compress:
        data = gzip.compress(data, compresslevel=1, mtime=0)
    out = Path(out)
    tmp = out.with_suffix(out.suffix + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def initramfs_digest(path: Union[str, Path]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
