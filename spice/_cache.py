"""Housekeeping of the SPICE cache: what it holds, and removing what killed or failed runs left.

Layout of a cache directory (``$IMCPNN_CACHE`` or ``~/.cache/imcpnn``)::

    models/sky130_<corner>_<hash>.spice    minimal model sets, each with its .sha256 checksum
    runs/<key>/                            finished runs: deck.cir, out.raw, done.json
    runs/<key>.tmp<pid>_<thread>/          a run in progress (or left by a killed process)
    runs/<key>.failed/                     the last failure of a deck, kept for inspection

Leftovers are the ``.tmp`` folders (and files) of processes that no longer run, ``.failed``
folders and run folders without ``done.json``. ``run`` removes the dead processes' ``.tmp``
folders itself (once per process and cache); ``imcpnn cache clean`` removes all leftovers.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from imcpnn.rundir import pid_alive

from ._models import cache_root

_TMP_RE = re.compile(r"\.tmp(\d+)(?:_\d+)?$")


def tmp_owner(name: str) -> int | None:
    """The process id in a ``<name>.tmp<pid>[_<thread>]`` leftover name, or None."""
    m = _TMP_RE.search(name)
    return int(m.group(1)) if m else None


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        try:
            return path.lstat().st_size
        except OSError:
            return 0
    total = 0
    for base, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(base, f)).st_size
            except OSError:
                pass
    return total


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


@dataclass
class CacheInfo:
    """What a SPICE cache holds. Paths are absolute; sizes in bytes."""

    root: Path
    exists: bool
    size_bytes: int = 0
    entries: int = 0  #: finished runs (runs/<key> with done.json)
    model_sets: int = 0  #: minimal model sets (models/*.spice)
    dead_tmp: list[Path] = field(default_factory=list)  #: .tmp leftovers of processes that no longer run
    running_tmp: list[Path] = field(default_factory=list)  #: .tmp folders of runs in progress
    failed: list[Path] = field(default_factory=list)  #: runs/<key>.failed
    incomplete: list[Path] = field(default_factory=list)  #: runs/<key> without done.json
    leftover_bytes: int = 0

    @property
    def leftovers(self) -> list[Path]:
        """What ``clean_cache`` removes (without ``everything``)."""
        return [*self.dead_tmp, *self.failed, *self.incomplete]


def cache_info(cache_dir: str | Path | None = None) -> CacheInfo:
    """Size, finished entries, model sets and leftovers of a cache (default: the default cache)."""
    root = cache_root(cache_dir)
    info = CacheInfo(root, root.is_dir())
    if not info.exists:
        return info
    info.size_bytes = _size(root)
    for p in _children(root / "models"):
        if tmp_owner(p.name) is not None:
            (info.running_tmp if pid_alive(tmp_owner(p.name)) else info.dead_tmp).append(p)
        elif p.suffix == ".spice":
            info.model_sets += 1
    for p in _children(root / "runs"):
        pid = tmp_owner(p.name)
        if pid is not None:
            (info.running_tmp if pid_alive(pid) else info.dead_tmp).append(p)
        elif p.name.endswith(".failed"):
            info.failed.append(p)
        elif (p / "done.json").is_file():
            info.entries += 1
        else:
            info.incomplete.append(p)
    info.leftover_bytes = sum(_size(p) for p in info.leftovers)
    return info


@dataclass
class CleanReport:
    """What ``clean_cache`` removed, and the folders of runs in progress it kept."""

    root: Path
    removed: list[Path]
    freed_bytes: int
    kept_running: list[Path]


def clean_cache(cache_dir: str | Path | None = None, *, everything: bool = False) -> CleanReport:
    """Remove the leftovers of killed and failed runs; ``everything=True`` also removes every
    finished run and model set. Only ``runs/`` and ``models/`` are touched (other files in the
    folder stay), and the ``.tmp`` folders of processes still running are kept."""
    info = cache_info(cache_dir)
    if not info.exists:
        return CleanReport(info.root, [], 0, [])
    if everything:
        running = set(info.running_tmp)
        targets = [p for d in ("runs", "models") for p in _children(info.root / d) if p not in running]
    else:
        targets = info.leftovers
    freed = 0
    for p in targets:
        freed += _size(p)
        _remove(p)
    return CleanReport(info.root, targets, freed, info.running_tmp)


def remove_dead_tmp(root: Path) -> list[Path]:
    """Remove the ``.tmp`` leftovers of dead processes under ``root/runs`` and ``root/models``."""
    removed = []
    for folder in (root / "runs", root / "models"):
        for p in _children(folder):
            pid = tmp_owner(p.name)
            if pid is not None and pid != os.getpid() and not pid_alive(pid):
                _remove(p)
                removed.append(p)
    return removed


def human_bytes(n: int) -> str:
    """``1536 -> '1.5 KiB'``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
