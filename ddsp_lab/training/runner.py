"""Training from a composed config: the model, a Trainer with checkpoints in the run directory,
resume, and `train(cfg)`, what `ddsp-lab train` runs."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

from .. import atomic
from .._resolvers import plain
from .callbacks import PlainProgress
from .preemption import STOPPED, CheckpointOnStop, requeue_on_usr1
from .preemption import is_global_zero as _is_global_zero


def model_config(cfg) -> dict:
    """What a checkpoint carries to rebuild its model alone: the model section (sample and frame
    rate, loss weights, ...) and its parts, resolved to plain values."""
    parts = {k: plain(cfg[k]) for k in ("preprocessor", "encoder", "decoder", "synth", "loss")}
    return {**parts, "model": plain(cfg.model), "sample_rate": int(cfg.sample_rate),
            "frame_rate": int(cfg.frame_rate)}


# What Lightning's DDP launcher sets in the launching process's environment (and a cluster's
# launcher in the ranks'): a second job of a -m sweep in the same process must not inherit them.
DDP_ENVIRONMENT = ("LOCAL_RANK", "NODE_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                   "MASTER_PORT")


@contextmanager
def one_job():
    """One training job, leaving the process as it found it: its process group (DDP) destroyed and
    the DDP environment variables put back. Hydra's basic launcher runs the jobs of a `-m` sweep
    one after another in one process; without this the second job with trainer=ddp reused the
    first one's process group, whose ranks had exited ("Connection closed by peer"), and every job
    logged into the first job's W&B run."""
    import os

    saved = {k: os.environ.get(k) for k in DDP_ENVIRONMENT}
    try:
        yield
    finally:
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish()  # Lightning leaves the run open: the next job of a sweep would log into it
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def train(cfg, validate_first: bool = False):
    """Train the model of a composed train config (`ddsp-lab train`): seed, run directory with its
    resolved config.yaml, data, model, logger, callbacks, fit; then (evaluate.after_training) the
    paper's metrics on the test split with the best checkpoint. <run_dir>/run_info.json says
    how far the run got (running / finished / evaluated), its size and its best validation.
    Returns (final logged metrics, validation metrics before training or None)."""
    with one_job(), requeue_on_usr1(bool(cfg.get("requeue", True))):  # from the start: a warning during set-up too
        return _train(cfg, validate_first)


def check_before_training(cfg) -> None:
    """What would make a run fail after it trained, refused before it starts (a ValueError naming
    the fix): an evaluation after training (evaluate.after_training) of a split with no examples."""
    evaluation = cfg.get("evaluate") or {}
    if evaluation.get("after_training"):  # not after every job of a sweep has trained
        from ..data.datamodule import require_split

        require_split(cfg.data.path, evaluation.get("split", "test"), "evaluate.split")
    objective = cfg.get("optimized_metric")
    if objective is not None:
        from ..eval.evaluate import METRICS

        names = [f"eval/{m}" for m in METRICS]
        if objective not in names:
            raise ValueError(f"optimized_metric: expected null (the best validation score) or one of "
                             f"{', '.join(names)}, got {objective!r}")
        if not evaluation.get("after_training"):
            raise ValueError(f"optimized_metric={objective} is a metric of the evaluation after training, "
                             f"which is off: set evaluate.after_training=true")


def objective_value(cfg, metrics: dict) -> float | None:
    """What `ddsp-lab train` returns to a sweeper (Optuna): the metric named by optimized_metric
    (the evaluation's mean), else the best validation score (checkpoint.monitor)."""
    name = cfg.get("optimized_metric")
    return metrics.get(name or "best_score")


def _train(cfg, validate_first: bool):
    pl.seed_everything(int(cfg.seed), workers=True)
    check_before_training(cfg)
    evaluation = cfg.get("evaluate") or {}
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if _is_global_zero():  # rank 0 alone writes the run's files
        for leftover in atomic.remove_leftovers(run_dir):  # of a job killed mid-write (its files are whole)
            print(f"ddsp-lab train: removed {leftover}, a partial write of a killed job", flush=True)
        atomic.write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    datamodule = hydra.utils.instantiate(cfg.data.datamodule)
    model = build_model(cfg)
    model.config = model_config(cfg)
    n_params = sum(p.numel() for p in model.model.parameters())
    info = RunInfo(run_dir, {"status": "running", "n_parameters": n_params, "max_steps": cfg.trainer.get("max_steps")})
    logger = hydra.utils.instantiate(cfg.logger) if cfg.get("logger") else False
    if logger:  # the resolved config and the model's size, on the dashboard
        n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.log_hyperparams({**plain(cfg), "n_parameters": n_params, "n_trainable_parameters": n_trainable})
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    monitor = (cfg.get("checkpoint") or {}).get("monitor")
    checkpoint = checkpoints(run_dir, monitor, (cfg.get("checkpoint") or {}).get("mode", "min"))
    stop = CheckpointOnStop(run_dir / "checkpoints", requeue=bool(cfg.get("requeue", True)))
    try:
        metrics, initial = fit(model, datamodule, cfg.trainer, logger, run_dir, cfg.resume, [*callbacks, stop],
                               validate_first, checkpoint)
    except SIGTERMException as e:  # stopped by a signal at a step boundary, with a checkpoint
        if stop.saved_step is None:
            raise
        info.update(status="preempted", steps=stop.saved_step, checkpoint=str(run_dir / "checkpoints" / "last.ckpt"))
        if _is_global_zero():
            print(f"ddsp-lab train: stopped by SIGTERM at step {stop.saved_step}; checkpoint "
                  f"{run_dir / 'checkpoints' / 'last.ckpt'} (resume=auto continues from it)", flush=True)
        raise SystemExit(STOPPED) from e
    world = int(getattr(model.trainer, "world_size", 1) or 1)
    if world > 1:  # each rank says what it ends with: DDP keeps them identical
        print(f"ddsp-lab train: rank {model.global_rank} of {world}: weights sha256 {weights_digest(model.model)}",
              flush=True)
    best = checkpoint.best_model_score
    info.update(status="finished", steps=int(model.global_step), monitor=monitor,
                best_score=float(best) if best is not None else None,
                best_checkpoint=checkpoint.best_model_path or None,
                final_metrics=metrics)
    if evaluation.get("after_training") and model.global_rank == 0:
        summary = evaluate_run(run_dir, checkpoint.best_model_path or str(run_dir / "checkpoints" / "last.ckpt"),
                               evaluation, logger, int(model.global_step))
        info.update(status="evaluated", eval_summary=str(run_dir / "eval" / evaluation.get("split", "test") /
                                                         "summary.json"), eval_counts=summary.get("counts"))
        from ..eval import flat_metrics

        metrics.update((k, v) for k, v in flat_metrics(summary).items() if not k.endswith(("_ci_low", "_ci_high")))
    if best is not None:
        metrics["best_score"] = float(best)
    return metrics, initial


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names, dtypes, shapes, bytes, in name order):
    equal on two processes exactly where their weights are bit for bit the same."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def evaluate_run(run_dir: Path, checkpoint: str, evaluation, logger=None, step: int | None = None) -> dict:
    """The paper's metrics of a finished run (its `evaluate` settings) into <run_dir>/eval/<split>/,
    logged to the run's logger under eval/."""
    from ..eval import evaluate, flat_metrics, format_summary, write_results
    from ..models import load

    split = evaluation.get("split", "test")
    model = load(checkpoint)
    result = evaluate(model, model.dataset_info["path"], split=split, limit=evaluation.get("limit"),
                      batch_size=int(evaluation.get("batch_size", 8)), crepe_model=evaluation.get("crepe_model", "full"),
                      viterbi=bool(evaluation.get("viterbi", True)), seed=int(evaluation.get("seed", 0)),
                      progress=False)
    write_results(result, run_dir / "eval" / split)
    if logger:
        logger.log_metrics(flat_metrics(result["summary"]), step=step)
        logger.save()
        logger.finalize("success")
    print(format_summary(result["summary"], f"evaluation of {checkpoint} on the {split} split"), flush=True)
    return result["summary"]


class RunInfo:
    """<run_dir>/run_info.json, rewritten at each update: what `ddsp-lab table` reads to list a run
    (a run killed before the end stays 'running')."""

    def __init__(self, run_dir: Path, values: dict):
        self.path, self.values = Path(run_dir) / "run_info.json", {}
        self.update(**values)

    def update(self, **values) -> None:
        import json

        self.values.update(values)
        if _is_global_zero():
            atomic.write_text(self.path, json.dumps(self.values, indent=2, default=str))


def build_model(cfg, **overrides) -> pl.LightningModule:
    """The model of a composed train config: cfg.model with its parts (preprocessor, encoder,
    decoder, synth, losses) instantiated from their groups."""
    return hydra.utils.instantiate(cfg.model, preprocessor=cfg.preprocessor, encoder=cfg.encoder,
                                   decoder=cfg.decoder, synth=cfg.synth, losses=cfg.loss, **overrides)


def resolve_resume(resume, run_dir: Path) -> str | None:
    """resume: False/None (fresh), True (the run directory's last checkpoint, which must exist),
    'auto' (for jobs a cluster may requeue: the newer of that checkpoint and Lightning's SLURM
    `hpc_ckpt_*.ckpt` in the run directory, else a fresh start), or a checkpoint path."""
    if resume in (None, False, "false", "False"):
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume == "auto":
        found = [p for p in (last, *run_dir.glob("hpc_ckpt_*.ckpt")) if p.exists()]
        return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None
    path = last if resume in (True, "true", "True") else Path(str(resume))
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint at {path}")
    return str(path)


def _interactive() -> bool:
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written under a temporary name beside their place and renamed over it (see
    ddsp_lab.atomic): a job killed while saving (preempted, out of time, a node lost) leaves the
    previous last.ckpt whole, and resume=auto finds a checkpoint that loads. Lightning calls it on
    global rank 0 only."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        atomic.torch_save(checkpoint, path)


def checkpoints(run_dir: Path, monitor: str | None = None, mode: str = "min") -> ModelCheckpoint:
    """<run_dir>/checkpoints/last.ckpt at every validation (and the end), and with a monitor
    (e.g. val/total) best.ckpt: the checkpoint of the best validation so far."""
    if monitor is None:
        return ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, every_n_train_steps=None)
    return ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, every_n_train_steps=None,
                           monitor=monitor, mode=mode, save_top_k=1, filename="best", auto_insert_metric_name=False)


def fit(model: pl.LightningModule, datamodule: pl.LightningDataModule, trainer_cfg, logger, run_dir: Path,
        resume=False, callbacks: list | None = None, validate_first: bool = False,
        checkpoint: ModelCheckpoint | None = None):
    """Fits; returns (final logged metrics, validation metrics before training or None). The
    progress bar shows when stdout is a terminal; otherwise PlainProgress prints plain lines.
    checkpoint: the ModelCheckpoint (default `checkpoints(run_dir)`: last.ckpt only)."""
    checkpoint = checkpoint or checkpoints(run_dir)
    trainer_cfg = OmegaConf.to_container(trainer_cfg, resolve=True) if OmegaConf.is_config(trainer_cfg) else dict(trainer_cfg)
    # The bar reads its metrics from the device (a host sync) at each refresh: on GPUs, refresh
    # only every few steps (trainer.progress_bar_refresh_steps) to keep the step free of syncs.
    refresh = int(trainer_cfg.pop("progress_bar_refresh_steps", 1))
    extra = []
    if trainer_cfg.get("enable_progress_bar", True) and _interactive():
        extra = [TQDMProgressBar(refresh_rate=refresh)]
    elif trainer_cfg.get("enable_progress_bar", True):  # not a terminal: plain lines, not a redrawn bar
        trainer_cfg["enable_progress_bar"] = False
        extra = [PlainProgress(trainer_cfg.get("log_every_n_steps", 50))]
    plugins = list(trainer_cfg.pop("plugins", None) or [])
    if not any(isinstance(p, TorchCheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    trainer: pl.Trainer = hydra.utils.instantiate(trainer_cfg, logger=logger, default_root_dir=str(run_dir),
                                                  callbacks=[checkpoint, *extra, *(callbacks or [])], plugins=plugins)
    initial = None
    if validate_first:
        initial = {k: float(v) for k, v in trainer.validate(model, datamodule=datamodule, verbose=False)[0].items()}
    # a resumed checkpoint is data too (tensors and plain values): a tampered file is refused, unrun
    trainer.fit(model, datamodule=datamodule, ckpt_path=resolve_resume(resume, run_dir), weights_only=True)
    # last.ckpt is the end of the run even where the last step came after the last validation (with a
    # monitor, Lightning's own end-of-training save is skipped once last.ckpt was written); every rank
    # takes part (the checkpoint gathers each rank's random states)
    if trainer.global_step and getattr(checkpoint, "_last_global_step_saved", None) != trainer.global_step:
        trainer.save_checkpoint(str(Path(checkpoint.dirpath) / "last.ckpt"), weights_only=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}, initial
