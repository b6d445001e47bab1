"""OmegaConf helpers: `plain`, and the resolvers the project's configs use, registered when ddsp_lab is imported, so that the
configs compose through the CLI, Hydra's compose API (a notebook, a script) and the tests alike."""
from __future__ import annotations

import ast
from pathlib import Path
import operator

from omegaconf import OmegaConf

from hydra_plugins.ddsp_lab_launcher.resources import slurm_gpus, slurm_tasks


def _eval(expr: str):
    """${eval:'int(4.0 * 16000)'}: arithmetic on config values: numbers, + - * / // % **, and
    int() / float() / round(). Parsed, not passed to Python's eval, so a config (or a file that
    carries one) cannot run code through it."""
    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS
                and not node.keywords and len(node.args) in (1, 2)):
            return _CALLS[node.func.id](*(value(a) for a in node.args))
        raise ValueError(f"${{eval:...}} takes arithmetic on numbers with int(), float() and round(); "
                         f"{ast.dump(node)[:60]} in {expr!r} is not")

    return value(ast.parse(str(expr), mode="eval").body)


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_CALLS = {"int": int, "float": float, "round": round}


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


def _hydra_job():
    """The running Hydra job's config (HydraConfig), or None outside one (compose API, tests)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get()
    except (ImportError, ValueError):
        return None


def _in_sweep(hydra) -> bool:
    return hydra is not None and str(hydra.mode) in ("RunMode.MULTIRUN", "MULTIRUN")


def _sweep_group(sweep_name):
    """${sweep_group:${sweep_name}}: a sweep's W&B group: its name (+sweep=<name>), else, in any
    -m sweep, its folder's name (multirun/sweep-<date>); None for a single run."""
    if sweep_name not in (None, "", "None", "null"):
        return str(sweep_name)
    hydra = _hydra_job()
    return Path(str(hydra.sweep.dir)).name if _in_sweep(hydra) else None


def _sweep_run_name(_=None):
    """${sweep_run_name:}: a sweep run's name, its overrides (hydra.job.override_dirname, less the
    keys every run shares: train.yaml's exclude_keys); None for a single run."""
    hydra = _hydra_job()
    return str(hydra.job.override_dirname) or None if _in_sweep(hydra) else None


def _sweep_axes(_=None):
    """${sweep_axes:}: a sweep run's W&B job type: the axes the sweep varies, '+'-joined (e.g.
    'decoder', or 'model.optimizer.lr+seed'): the sweeper's multi-valued params and the command
    line's (from the sweep's multirun.yaml, which Hydra writes before launching); None for a
    single run."""
    hydra = _hydra_job()
    if not _in_sweep(hydra):
        return None
    sweeps = ("range(", "choice(", "interval(", "glob(")

    def varied(value) -> bool:
        return "," in str(value) or str(value).strip().startswith(sweeps)

    axes = {k for k, v in dict(hydra.sweeper.get("params") or {}).items() if varied(v)}
    recorded = Path(str(hydra.sweep.dir)) / "multirun.yaml"
    if recorded.exists():
        typed = OmegaConf.load(recorded).hydra.overrides.task
        axes |= {o.split("=", 1)[0].lstrip("+~") for o in typed if "=" in o and varied(o.split("=", 1)[1])}
    return "+".join(sorted(axes)) or None


def plain(cfg):
    """A config node as plain Python (dicts, lists, scalars), resolved: what leaves Hydra for the
    library (JSON files, constructors, loggers, checkpoints), never an OmegaConf container."""
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


RESOLVERS = {"eval": _eval, "suffix": _suffix, "tags": _tags, "parent": _parent, "sweep_group": _sweep_group,
             "sweep_run_name": _sweep_run_name, "sweep_axes": _sweep_axes, "slurm_tasks": slurm_tasks,
             "slurm_gpus": slurm_gpus}


def register() -> None:
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


register()
