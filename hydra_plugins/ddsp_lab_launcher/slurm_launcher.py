"""`hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml): hydra-submitit-launcher's SLURM launcher, with what a training sweep needs.

- Before anything is submitted, each job's composed config is checked against the resources asked
  of SLURM: `tasks_per_node` must equal `trainer.devices` (Lightning's SLURM environment runs one
  rank per task), `gpus_per_node` must be the devices on a GPU trainer and 0 on a CPU one, `nodes`
  must equal `trainer.num_nodes`. The shipped conf/hydra/launcher/slurm.yaml derives the three
  from the trainer, so they follow `trainer.devices`; a mismatch (an override of one side, or a
  sweep over trainer.devices, which one submission cannot serve) is refused with the fix named.
- The submission is printed: each job's SLURM id, its overrides and where its output goes, then
  each result as it comes back.
- A cluster without accounting (AccountingStorageType=accounting_storage/none, as on a laptop or a
  small lab cluster) has no sacct, which submitit asks for job states: there the states come from
  squeue instead, so a job that dies without a result is still noticed, with no sacct errors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

from .resources import resource_problems


def accounting_enabled() -> bool:
    """Whether this cluster keeps accounting (sacct answers): scontrol's AccountingStorageType."""
    import re
    import subprocess

    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: leave submitit as it is
    found = re.search(r"^AccountingStorageType\s*=\s*(\S+)", out, re.M)
    return not (found and found.group(1).endswith("/none"))


def squeue_watcher():
    """submitit's SLURM state watcher, reading squeue instead of sacct (see the module's doc).
    (submitit builds an array's jobs as SlurmJob itself: the watcher is set on each job.)"""
    import getpass

    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueWatcher(SlurmInfoWatcher):
        def _make_command(self):
            if not self._registered - self._finished:
                return None
            return ["squeue", "--states=all", "--noheader", "--format=%i|%T|%N", f"--user={getpass.getuser()}"]

        def read_info(self, string):
            text = string.decode() if isinstance(string, bytes) else string
            info = super().read_info("JobID|State|NodeList\n" + text)
            # seen before and no longer listed: the controller has let go of a finished job (MinJobAge)
            for job_id in self._registered - self._finished:
                if job_id in self._info_dict and job_id not in info:
                    info[job_id] = {"JobID": job_id, "State": "COMPLETED", "NodeList": ""}
            return info

    return SqueueWatcher(delay_s=60)


class SlurmLauncher(BaseSubmititLauncher):
    """One SLURM job per run of a `-m` sweep (see the module's doc)."""

    _EXECUTOR = "slurm"

    def check(self, job_overrides: Sequence[Sequence[str]]) -> None:
        """Each job's trainer against the resources asked for; SystemExit naming every mismatch
        (and how many of the sweep's jobs it concerns) before anything is submitted."""
        problems: dict[str, list[str]] = {}
        for overrides in job_overrides:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            if "trainer" not in cfg:  # not a training job (ddsp-lab prepare's shards)
                continue
            try:
                found = resource_problems(cfg.trainer, self.params)
            except ValueError as e:
                found = [str(e)]
            for problem in found:
                problems.setdefault(problem, []).append(" ".join(filter_overrides(overrides)))
        if problems:
            lines = [f"{p}" + ("" if len(jobs) == len(job_overrides) else f" (jobs: {'; '.join(jobs)})")
                     for p, jobs in problems.items()]
            raise SystemExit("ddsp-lab train: the SLURM resources do not fit the trainer; nothing was submitted:\n  "
                             + "\n  ".join(lines) + "\nleave hydra.launcher.tasks_per_node / gpus_per_node / nodes "
                             "unset (they follow trainer.devices, accelerator and num_nodes), or set both sides alike; "
                             "a sweep over trainer.devices needs one submission per value")

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        self.check(job_overrides)
        params = dict(self.params)
        folder = params.pop("submitit_folder")
        executor = submitit.AutoExecutor(folder=folder, cluster=self._EXECUTOR,
                                         slurm_max_num_timeout=params.pop("max_num_timeout", 0))
        shared = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name",
                  "stderr_to_stdout"}
        executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        from hydra.core.singleton import Singleton

        arguments = [(list(overrides), "hydra.sweep.dir", initial_job_idx + i, f"job_id_for_{initial_job_idx + i}",
                      Singleton.get_state()) for i, overrides in enumerate(job_overrides)]
        jobs = executor.map_array(self, *zip(*arguments))
        if not accounting_enabled():
            watcher = squeue_watcher()
            for job in jobs:
                job.watcher = watcher
                watcher.register_job(job.job_id)
        print(f"ddsp-lab: submitted {len(jobs)} SLURM job(s) for the sweep in {sweep_dir}", flush=True)
        shown = [filter_overrides(o) for o, *_ in arguments]
        varied = [" ".join(o for o in job if len(jobs) == 1 or any(o not in other for other in shown)) for job in shown]
        for text, job in zip(varied, jobs):
            print(f"  job {job.job_id}: {text or '(no overrides)'}\n    output {job.paths.stdout}", flush=True)
        print("  (squeue shows them; this command waits for them to finish)", flush=True)
        results: list[Any] = []
        for job in jobs:
            result = job.results()[0]
            print(f"ddsp-lab: SLURM job {job.job_id} finished ({result.status.name.lower()})", flush=True)
            results.append(result)
        return results
