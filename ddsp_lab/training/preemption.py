"""A training job stopped by its scheduler saves where it is and comes back.

What a SLURM job meets and what happens:
- SIGTERM: `scontrol requeue`, a preemption, `scancel`, the time limit, or a `--signal=TERM@<s>`
  warning. `CheckpointOnStop` stops training at the end of the step, every DDP rank at the same
  step, and writes <run_dir>/checkpoints/last.ckpt (atomically, rank 0
  writing, every rank contributing its random states), and the run stops with status 'preempted'.
  A job that SLURM still reports RUNNING (a time-limit warning, a plain `kill`) is requeued by
  rank 0; a requeued or cancelled one is left to SLURM.
- SIGUSR1 (`--signal=USR1@<s>`, the usual time-limit warning): rank 0 requeues the job, and SLURM's
  SIGTERM follows, as above. Lightning's own handler would save from inside the signal handler,
  which can land in the middle of an optimiser step; this one only asks for the requeue.
A requeued job started with `resume=auto` continues from that checkpoint at the same step, data
position and random state (the batch stream is a function of the step; see training.data).
Under hydra-submitit-launcher, submitit owns SIGUSR1 (it resubmits the job itself) and is left so.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

STOPPED = 128 + signal.SIGTERM  # the exit status of a run stopped by a signal (after its checkpoint)


def slurm_job_id() -> str | None:
    """This process's SLURM job (an array task as <array job>_<task>), or None outside SLURM."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array is not None and "SLURM_ARRAY_TASK_ID" in os.environ:
        return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    job = os.environ.get("SLURM_JOB_ID")
    return job if job and re.fullmatch(r"[0-9_]+", job) else None


def is_global_zero() -> bool:
    """Whether this process is global rank 0, from the environment (Lightning's DDP launcher, srun):
    the one that writes a run's files, before and after a Trainer exists."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0)) or 0) == 0 and \
        int(os.environ.get("LOCAL_RANK", 0) or 0) == 0


def job_state(job: str) -> str | None:
    """SLURM's state of a job (RUNNING, REQUEUED, CANCELLED, ...) from scontrol (not sacct: a
    cluster without accounting has no sacct), or None where scontrol cannot tell."""
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\bJobState=(\S+)", out.stdout)
    return found.group(1) if out.returncode == 0 and found else None


def requeue(job: str, why: str) -> bool:
    """`scontrol requeue <job>`; says what it did. True where SLURM took it."""
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"ddsp-lab train: could not requeue SLURM job {job} ({why}): {e}", flush=True)
        return False
    if done.returncode == 0:
        print(f"ddsp-lab train: requeued SLURM job {job} ({why}); resume=auto continues it", flush=True)
        return True
    print(f"ddsp-lab train: scontrol requeue {job} failed ({why}): {done.stderr.strip()}", flush=True)
    return False


@contextmanager
def requeue_on_usr1(enabled: bool = True):
    """Inside a SLURM job, SIGUSR1 makes rank 0 requeue the job (then SLURM's SIGTERM stops the
    run at a step boundary, with a checkpoint). Left alone where SIGUSR1 already has a handler
    (submitit's), outside SLURM, off the main thread, or with enabled=False."""
    import threading

    job = slurm_job_id()
    previous = signal.getsignal(signal.SIGUSR1)
    install = enabled and job is not None and previous in (signal.SIG_DFL, None) \
        and threading.current_thread() is threading.main_thread()

    def handler(signum, frame) -> None:
        if is_global_zero():
            requeue(job, "SIGUSR1: the time limit is near")

    if install:
        signal.signal(signal.SIGUSR1, handler)
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGUSR1, previous)


class CheckpointOnStop(Callback):
    """SIGTERM stops training at the end of a training step, on every rank at the same step: it
    writes last.ckpt there (every rank takes part: the checkpoint gathers each rank's random
    states) and raises SIGTERMException; then (requeue=True, inside SLURM, rank 0) requeues a job
    that SLURM still reports RUNNING.

    Lightning's own SIGTERM handler is replaced: it broadcasts from inside the signal handler and
    checks the flag on each rank alone (in validation too), so two ranks signalled a moment apart
    could stop at different points and wait on each other until SLURM's SIGKILL (seen here: a
    requeue during validation lost the run's progress). This one only records the signal; the
    ranks agree on it after each step through a gloo group of their own (a CPU flag, no device
    sync)."""

    def __init__(self, dirpath: str | Path, requeue: bool = True):
        self.dirpath, self.requeue = Path(dirpath), requeue
        self.signalled, self.saved_step, self._group, self._trainer = False, None, None, None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        self._trainer, self.signalled = trainer, False
        # read when Lightning registers its handlers, after the setup hooks
        trainer._signal_connector._sigterm_notifier_fn = self._notify
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            self._group = dist.new_group(backend="gloo")

    def _notify(self, signum, frame) -> None:
        if not self.signalled:
            launcher = self._trainer.strategy.launcher if self._trainer is not None else None
            if launcher is not None:  # ranks this process started itself (local DDP) are told too
                launcher.kill(signum)
        self.signalled = True

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and self._group is not None:
            import torch.distributed as dist

            dist.destroy_process_group(self._group)
            self._group = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stop = self.signalled
        if self._group is not None:
            import torch
            import torch.distributed as dist

            flag = torch.tensor([int(stop)], dtype=torch.int32)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
            stop = bool(flag.item())
        if not stop:
            return
        trainer.save_checkpoint(str(self.dirpath / "last.ckpt"), weights_only=False)
        self.saved_step = int(trainer.global_step)
        job = slurm_job_id()
        if self.requeue and job is not None and trainer.is_global_zero and job_state(job) == "RUNNING":
            requeue(job, "SIGTERM while running")
        raise SIGTERMException()
