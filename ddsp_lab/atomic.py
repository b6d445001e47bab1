"""Writes that survive a crash: every file a later command reads (checkpoints, run_info.json,
config.yaml, summaries, dataset records, tables) is written under a temporary name beside it,
flushed to disk, and renamed over it. A reader (or a job resumed after a kill, a requeue or a
node failure) sees the old file or the whole new one, never a part."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Callable


def unique_tmp(path: Path) -> Path:
    """A temporary name beside path (same folder, so the rename stays on one file system),
    unique to this process and call, hidden (a leading dot)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_bytes(path: str | Path, data: bytes) -> Path:
    """path holds `data` whole, or what it held before (the folder is made where missing)."""
    return write_with(path, lambda f: f.write(data))


def torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save through a temporary file and a rename (a checkpoint is whole or absent)."""
    import torch

    return write_with(path, lambda f: torch.save(obj, f))


def write_to(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """write(tmp) to a temporary path beside path (for writers that take a file name: an ONNX
    program), synced to disk, then renamed over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_tmp(path).with_suffix(path.suffix)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_with(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """write(f) into a temporary file beside path, flushed to disk, then renamed over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_tmp(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def create_once(path: str | Path, text: str) -> None:
    """Writes path unless it exists, atomically: of processes starting together (prepare's
    shards), the first wins and the file appears complete."""
    path = Path(path)
    tmp = unique_tmp(path)
    tmp.write_text(text)
    try:
        os.link(tmp, path)  # fails if path exists; path appears complete
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: exclusive create, then write
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(text)
    finally:
        tmp.unlink()


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Deletes the temporary files (unique_tmp's names, in folder and below) that a writer killed
    mid-write left behind (a node lost, SIGKILL), where no process of that pid runs here now.
    The files they were writing are whole (the old version) and stay. Returns what it deleted."""
    import re

    pattern = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}(\.tmp|\.[^.]+)$")
    removed = []
    for path in Path(folder).rglob(".*"):
        found = pattern.match(path.name)
        if not found or not path.is_file():
            continue
        pid = int(found.group(1))
        try:
            os.kill(pid, 0)
            continue  # that process still runs: perhaps writing it now
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's live process
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
