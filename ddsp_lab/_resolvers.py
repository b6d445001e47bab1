"""OmegaConf helpers: `plain`, and the resolvers the project's configs use, registered when ddsp_lab is imported, so that the
configs compose through the CLI, Hydra's compose API (a notebook, a script) and the tests alike."""
from __future__ import annotations

from omegaconf import OmegaConf


def _eval(expr: str):
    """${eval:'int(4.0 * 16000)'}: arithmetic on config values (only int() is available)."""
    return eval(expr, {"__builtins__": {"int": int}})  # noqa: S307 - the configs' own expressions


def _parent(path: str, levels: int = 1) -> str:
    """${parent:<path>,2}: the path's ancestor `levels` up (a checkpoint's run directory)."""
    from pathlib import Path

    return str(Path(str(path)).parents[int(levels) - 1])


def _tags(override_dirname: str | None):
    """${tags:seed=1,synth=harmonic} -> ['seed=1', 'synth=harmonic'] (a sweep run's W&B tags)."""
    return OmegaConf.create([t for t in str(override_dirname or "").split(",") if t])


def _suffix(prefix: str, value) -> str:
    """${suffix:-swap_,${swap}}: '' for a null value, else prefix + value (a folder name's tail)."""
    return "" if value is None or str(value) in ("", "None", "null") else f"{prefix}{value}"


def plain(cfg):
    """A config node as plain Python (dicts, lists, scalars), resolved: what leaves Hydra for the
    library (JSON files, constructors, loggers, checkpoints), never an OmegaConf container."""
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


def register() -> None:
    if not OmegaConf.has_resolver("eval"):
        OmegaConf.register_new_resolver("eval", _eval)
    if not OmegaConf.has_resolver("suffix"):
        OmegaConf.register_new_resolver("suffix", _suffix)
    if not OmegaConf.has_resolver("tags"):
        OmegaConf.register_new_resolver("tags", _tags)
    if not OmegaConf.has_resolver("parent"):
        OmegaConf.register_new_resolver("parent", _parent)


register()
