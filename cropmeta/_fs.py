"""Atomic writes: write to a temporary sibling, fsync, then rename over the target, so an
interrupted write never leaves a half-written file or directory behind."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import signal
import socket
import stat
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.
    On any exception the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix or path.suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600: give the file the usual permissions
            os.chmod(tmp_path, _default_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
        remove_side_files(tmp_path)


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def _temp_prefix(path: Path) -> str:
    """Temporary siblings of ``path`` are ``.<name>.<pid>-<host>-<random>…``: the writer's process id
    and (a hash of) its host let :func:`sweep_stale_temps` tell a dead writer's leftovers from a live
    writer's file — on a shared file system only this host's processes are judged."""
    return f".{path.name}.{os.getpid()}-{_host_tag()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary siblings of ``path`` (and GDAL's side files beside them) that a process
    killed mid-write (SIGKILL, power loss: no ``finally`` ran) left behind; called before each new
    atomic write of ``path``. Only names of this module's pattern whose writer process is gone are
    touched (this host's); a live writer's temporary file and ``.<name>.old`` are left alone. Returns what was removed."""
    path = Path(path)
    head = f".{path.name}."
    removed = []
    if not path.parent.is_dir():
        return removed
    for p in path.parent.glob(f"{glob.escape(head)}*"):
        parts = p.name[len(head):].split("-", 2)  # ".<name>.old" and other siblings have no pid-host part
        if len(parts) < 3:
            continue
        pid, host, _ = parts
        if host != _host_tag() or not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def remove_side_files(tmp: Path) -> None:
    """Remove the files GDAL writes beside a temporary raster (``<tmp>.ovr.tmp``, ``<tmp>.aux.xml``...)."""
    for side in tmp.parent.glob(f"{tmp.name}.*"):
        with contextlib.suppress(OSError):
            if side.is_dir():
                shutil.rmtree(side, ignore_errors=True)
            else:
                side.unlink()


def _default_mode(directory: bool = False) -> int:
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH
    if directory:
        mode |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    return mode & ~umask


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` (as SIGINT does), so every
    ``finally`` clause runs and temporary files are removed before the process ends. A no-op outside
    the main thread (signal handlers can only be set there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def finite_json(obj):
    """``obj`` with every non-finite float (NaN, ±inf; numpy's too) replaced by None, numpy scalars
    and arrays by Python values: what :func:`json_text` writes."""
    import math

    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if np is not None and isinstance(obj, np.ndarray):
        return finite_json(obj.tolist())
    if np is not None and isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(obj, indent: int | None = 2, default=str) -> str:
    """Strict JSON (no bare NaN or Infinity, which JSON parsers reject): missing numbers are null."""
    import json

    return json.dumps(finite_json(obj), indent=indent, allow_nan=False, default=default)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` (the old one is
    moved aside first and deleted last). On failure ``path`` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _default_mode(directory=True))  # mkdtemp creates 0700
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def recover_dir(path: str | Path) -> None:
    """If a previous :func:`atomic_dir` swap was interrupted between its two renames, put the old
    directory back."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.exists():
        os.replace(old, path)


@contextlib.contextmanager
def output_dir(path: str | Path, create: bool = True) -> Iterator[Path]:
    """Create ``path`` (and parents) for a command's outputs; if the block fails, every folder that
    did not exist before and is still empty is removed again (a failed run leaves no empty output
    folder). ``create=False``: the block creates them (or not) itself."""
    path = Path(path)
    created = []
    p = path
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    if create:
        path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for d in created:  # deepest first
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
