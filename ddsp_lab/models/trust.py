"""A checkpoint is data: what `load` accepts from a file before it builds anything.

Two doors a model file could run code through, both shut here:
- the pickle: `read_checkpoint` loads with `weights_only=True` (tensors and plain values only; a
  pickled callable is refused before it runs);
- the config: a checkpoint's parts are built by `hydra.utils.instantiate` from `_target_` strings.
  `check_targets` lets through only nn.Module classes of ddsp_lab's model packages (processors,
  networks) and the names a user passes explicitly, and no interpolation (`${...}`: resolvers such
  as `eval` would run on the file's text).
"""
from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

# The packages whose nn.Module classes a checkpoint may name: their constructors only build modules.
TRUSTED_PACKAGES = ("ddsp_lab.processors", "ddsp_lab.networks")


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load of a checkpoint that may only hold tensors and plain values (weights_only):
    a file whose pickle carries objects or callables is refused with ValueError, unrun."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = [line.strip() for line in str(e).splitlines() if "GLOBAL" in line]
        if not found:  # not a pickle torch can read at all
            raise ValueError(f"{path} is not a torch checkpoint (UnpicklingError: {_last_line(e)})") from None
        raise ValueError(
            f"checkpoint {path} holds pickled objects that are not plain data, so ddsp_lab refuses to load it "
            f"(a checkpoint written by `ddsp-lab train` holds only tensors, numbers, strings, lists and dicts; "
            f"unpickling anything else can run code). torch: {found[0][:200]}") from None
    except Exception as e:  # noqa: BLE001 - torch raises several types for a file that is not a checkpoint
        raise ValueError(f"{path} is not a torch checkpoint ({type(e).__name__}: {str(e)[:120]})") from e


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and "documentation" not in line]
    return lines[-1][:120] if lines else type(error).__name__


def check_targets(node: Any, where: str, trusted: Iterable[str] = ()) -> None:
    """Raises ValueError unless every `_target_` in the config tree `node` names an nn.Module class
    of TRUSTED_PACKAGES or one of `trusted` (exact dotted names the user allows), and no string
    holds an interpolation. where: the config's place, for the message."""
    trusted = frozenset(trusted)
    for path, key, value in _walk(node, where):
        if isinstance(value, str) and "${" in value:
            raise ValueError(f"{path}: the checkpoint's config holds an interpolation ({value[:80]!r}); a saved "
                             f"config is resolved to plain values, so this file was not written by ddsp_lab")
        if key == "_target_" and value not in trusted:
            _check_target(value, path)


def _check_target(target: Any, path: str) -> None:
    how = (f"if you trust this checkpoint and its code, allow the class by name: "
           f"ddsp_lab.load(path, trusted_targets=[{target!r}]) or `trusted_targets=[{target}]` on the command line")
    if not isinstance(target, str) or not any(target.startswith(p + ".") for p in TRUSTED_PACKAGES):
        raise ValueError(f"{path}: the checkpoint names _target_ {target!r}, which is not a class of "
                         f"{' or '.join(TRUSTED_PACKAGES)}: refused; {how}")
    module_name, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        obj = None
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)
            and any(obj.__module__ == p or obj.__module__.startswith(p + ".") for p in TRUSTED_PACKAGES)):
        raise ValueError(f"{path}: the checkpoint names _target_ {target!r}, which is not an nn.Module class "
                         f"defined in {' or '.join(TRUSTED_PACKAGES)}: refused; {how}")


def _walk(node: Any, path: str):
    """(path, key, value) for every entry of a tree of dicts and lists."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            yield where, key, value
            yield from _walk(value, where)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield f"{path}[{i}]", None, value
            yield from _walk(value, f"{path}[{i}]")
