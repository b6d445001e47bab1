"""The cluster path against a real scheduler: a one-node SLURM (munged, slurmctld, slurmd from
Debian's slurm-wlm and munge) brought up by scripts/local-slurm.sh for this module, the way the
README tells a user to, and torn down after it.

What runs through it: a Hydra sweep through `hydra/launcher=slurm` (one job per point, then
`ddsp-lab table`); a two-rank DDP job from scripts/slurm/train_ddp.sbatch (srun, gloo); a refused
resource mismatch; a job requeued by `scontrol requeue` mid-run, and jobs warned by
`--signal=USR1@<s>` and `--signal=TERM@<s>` before their time limit, each resuming (resume=auto)
to the same final weights as an uninterrupted job, bit for bit; a job whose tasks are SIGKILLed
in the middle of writing a checkpoint (a node lost), which leaves only whole files and resumes.

Skipped, with the reason, where SLURM and munge are not installed and cannot be (not root, no
apt-get). `.ci/run` installs them where it can.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "ddsp-lab")
SCRIPT = ROOT / "scripts" / "local-slurm.sh"
SBATCH = ROOT / "scripts" / "slurm" / "train_ddp.sbatch"

pytestmark = pytest.mark.slow

# a toy DDP run: two ranks of the tiny model on the demo data, a checkpoint every 25 steps
TOY = ["experiment=tiny", "logger=csv", "model.f0_metric=false", "trainer.max_steps=120",
       "trainer.val_check_interval=25", "trainer.log_every_n_steps=10", "trainer.num_sanity_val_steps=0"]


def _free_port_pair() -> int:
    for _ in range(100):
        port = 20000 + int.from_bytes(os.urandom(2), "little") % 20000
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two free consecutive ports")


def _can_have_slurm() -> str | None:
    """None where SLURM is installed or `up` can install it; else why not."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        return None
    if os.geteuid() != 0:
        return "SLURM (slurm-wlm) and munge are not installed, and installing them needs root"
    if not shutil.which("apt-get"):
        return "SLURM (slurm-wlm) and munge are not installed, and this machine has no apt-get"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running one-node SLURM; yields the environment (SLURM_CONF) its commands need."""
    why = _can_have_slurm()
    if why:
        pytest.skip(why)
    folder = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, DDSP_LAB_SLURM_DIR=str(folder), DDSP_LAB_SLURM_PORT=str(_free_port_pair()),
               DDSP_LAB_SLURM_KILL_WAIT="15", OMP_NUM_THREADS="1")
    up = subprocess.run(["bash", str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=900)
    if up.returncode != 0 and "apt-get install" in up.stderr:
        pytest.skip(f"SLURM could not be installed: {up.stderr.strip()}")
    assert up.returncode == 0, up.stdout + up.stderr
    env["SLURM_CONF"] = str(folder / "slurm.conf")
    assert f"export SLURM_CONF={env['SLURM_CONF']}" in up.stdout  # what the user is told to run
    status = subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "idle" in status.stdout, status.stdout + status.stderr
    yield env
    down = subprocess.run(["bash", str(SCRIPT), "down", "--purge"], env=env, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr


def _sbatch(env, *args) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def _job(env, job: str) -> dict:
    """scontrol's fields of a job ({} once the controller has let it go)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job], env=env, capture_output=True, text=True)
    return dict(re.findall(r"(\w+)=(\S*)", out.stdout)) if out.returncode == 0 else {}


def _wait(env, job: str, timeout: float = 400, release: bool = False, until=None) -> dict:
    """Waits for a job to end (or `until(fields)`); release=True starts a requeued job as soon as
    it is pending again (SLURM holds a requeued job back ~2 minutes; what a user could also do,
    and nothing else of the job changes). Returns its last fields."""
    deadline, fields = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        fields = _job(env, job)
        if until is not None and until(fields):
            return fields
        state = fields.get("JobState", "")
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", ""):
            if not release:
                return fields
            time.sleep(3)  # a job requeued as it ends can show its end state before it is pending again
            again = _job(env, job)
            if again.get("JobState", "") == state:
                return again
            continue
        if state == "PENDING" and fields.get("Reason") in ("PartitionConfig", "BadConstraints", "PartitionNodeLimit"):
            subprocess.run(["scancel", job], env=env)
            raise AssertionError(f"job {job} can never start here ({fields.get('Reason')}): {fields}")
        if release and state == "PENDING" and fields.get("Reason") == "BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, capture_output=True)
        time.sleep(0.5)
    subprocess.run(["scancel", job], env=env)
    raise AssertionError(f"job {job} did not end in {timeout} s: {fields}")


def _digests(log: Path) -> dict[int, str]:
    """Each rank's final weights (what `ddsp-lab train` prints at the end of a DDP run)."""
    return {int(r): d for r, d in re.findall(r"rank (\d+) of \d+: weights sha256 ([0-9a-f]{64})", log.read_text())}


def _ddp_job(env, run: Path, *sbatch_args, overrides=()) -> tuple[str, Path]:
    log = run.parent / f"{run.name}.out"
    job = _sbatch(dict(env, RUN_DIR=str(run), DDSP_LAB=CLI), f"--output={log}", *sbatch_args, str(SBATCH),
                  *TOY, *overrides)
    return job, log


@pytest.fixture(scope="module")
def uninterrupted(slurm, demo_data, tmp_path_factory):
    """The toy DDP job, run through to the end: (run dir, its output, the final weights' digest)."""
    run = tmp_path_factory.mktemp("ddp") / "whole"
    job, log = _ddp_job(slurm, run, overrides=[f"data.path={demo_data}"])
    fields = _wait(slurm, job)
    assert fields.get("JobState") == "COMPLETED", (fields, log.read_text()[-3000:])
    digests = _digests(log)
    assert sorted(digests) == [0, 1], log.read_text()[-3000:]
    return run, log, digests[0]


def test_a_two_rank_ddp_job_from_the_shipped_sbatch_script(uninterrupted):
    """srun gives Lightning two ranks (its SLURM environment), both train, the weights end equal on
    both, and rank 0 alone wrote the run's files."""
    run, log, _ = uninterrupted
    text = log.read_text()
    assert "1 node(s) x 2 task(s), accelerator cpu" in text
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in text and "GLOBAL_RANK: 1, MEMBER: 2/2" in text
    digests = _digests(log)
    assert digests[0] == digests[1]
    assert text.count("ddsp-lab train: run directory") == 1  # one summary, from rank 0
    info = json.loads((run / "run_info.json").read_text())
    assert info["status"] == "finished" and info["steps"] == 120
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert len(list(run.glob("logs/version_*/metrics.csv"))) == 1  # one logger, rank 0's
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 120 and len(saved["rng_states"]) == 2  # both ranks' random states


def test_scontrol_requeue_mid_run_resumes_to_the_same_weights(slurm, demo_data, uninterrupted, tmp_path):
    run = tmp_path / "requeued"
    job, log = _ddp_job(slurm, run, overrides=[f"data.path={demo_data}"])
    _wait(slurm, job, until=lambda f: log.exists() and "step 40/" in log.read_text())
    done = subprocess.run(["scontrol", "requeue", job], env=slurm, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fields = _wait(slurm, job, release=True)
    text = log.read_text()
    assert fields.get("JobState") == "COMPLETED" and int(fields.get("Restarts", 0)) >= 1, (fields, text[-3000:])
    stopped = [int(s) for s in re.findall(r"stopped by SIGTERM at step (\d+)", text)]
    assert stopped and 40 <= stopped[0] < 120, text[-3000:]
    assert "(restart 1)" in text
    assert _digests(log) == {0: uninterrupted[2], 1: uninterrupted[2]}  # bit for bit the uninterrupted run's
    assert json.loads((run / "run_info.json").read_text())["status"] == "finished"


def _task_pids(env, job: str) -> list[int]:
    """The processes of the job's first srun step (the training ranks), from `scontrol listpids`."""
    out = subprocess.run(["scontrol", "listpids", job], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    return [int(r[0]) for r in rows if len(r) >= 3 and r[2] == "0"]


def _stopped(pid: int) -> bool:
    """Whether a process is stopped (SIGSTOP); False once it is gone."""
    with contextlib.suppress(OSError):
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
        return state.split()[1] in ("T", "t")
    return False


@pytest.mark.parametrize("warning", ["USR1", "TERM"])
def test_a_time_limit_warning_checkpoints_requeues_and_resumes_to_the_same_weights(
        slurm, demo_data, uninterrupted, tmp_path, warning):
    """--time=2 --signal=<sig>@60: slurmctld's time-limit check runs every 30 s and looks 30 s
    ahead, so the warning comes 30 to 60 s into each start. The toy job trains for about 15 s, so
    once it is training the test pauses its ranks (SIGSTOP) until the warning comes: slurmd sends a
    SIGCONT with every signal of a step (its log: "sending signal 18 ... sending signal 10"), so the
    ranks running again is the warning's arrival. The signal is slurmctld's own; only the race is
    taken out. The job checkpoints at a step boundary, requeues itself (rank 0) and continues with
    resume=auto."""
    run = tmp_path / f"warned_{warning}"
    job, log = _ddp_job(slurm, run, "--time=2", f"--signal={warning}@60", overrides=[f"data.path={demo_data}"])
    _wait(slurm, job, until=lambda f: log.exists() and "step 20/" in log.read_text())
    pids = _task_pids(slurm, job)
    assert pids, "no task processes found for the job"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10  # a stop is asynchronous: wait until the kernel has stopped them
        while time.monotonic() < deadline and not all(_stopped(pid) for pid in pids):
            time.sleep(0.05)
        assert all(_stopped(pid) for pid in pids), "the ranks did not stop"
        deadline = time.monotonic() + 100  # the warning is due by 60 s after the start, the limit at 120 s
        while time.monotonic() < deadline and all(_stopped(pid) for pid in pids):
            time.sleep(0.2)
        assert not all(_stopped(pid) for pid in pids), f"slurmctld sent no SIG{warning} (and SIGCONT) in 100 s"
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    fields = _wait(slurm, job, release=True, timeout=600)
    text = log.read_text()
    assert fields.get("JobState") == "COMPLETED", (fields, text[-3000:])
    assert int(fields.get("Restarts", 0)) >= 1 and "requeued SLURM job" in text, text[-3000:]
    stopped = [int(s) for s in re.findall(r"stopped by SIGTERM at step (\d+)", text)]
    assert stopped and 20 <= stopped[0] < 120, text[-3000:]
    assert _digests(log) == {0: uninterrupted[2], 1: uninterrupted[2]}


def test_tasks_killed_while_writing_a_checkpoint_leave_whole_files_and_resume(slurm, demo_data, uninterrupted,
                                                                            tmp_path):
    """A node lost mid-write (every task SIGKILLed the moment a checkpoint's temporary file
    appears): last.ckpt and run_info.json are whole, the resubmitted job removes the leftover and
    ends with the uninterrupted run's weights."""
    run = tmp_path / "killed"
    job, log = _ddp_job(slurm, run, "--no-requeue", overrides=[f"data.path={demo_data}", "trainer.val_check_interval=5"])
    folder, caught = run / "checkpoints", None
    _wait(slurm, job, until=lambda f: log.exists() and "step 10/" in log.read_text())
    listed = subprocess.run(["scontrol", "listpids", job], env=slurm, capture_output=True, text=True).stdout
    tasks = [int(f[0]) for f in (line.split() for line in listed.splitlines()[1:])
             if len(f) >= 3 and f[2] == "0" and f[0].isdigit()]  # step 0: srun's tasks, the two ranks
    assert len(tasks) >= 2, listed
    deadline = time.monotonic() + 120
    while caught is None and time.monotonic() < deadline:  # poll, and kill the moment a write is under way
        tmp = [p for p in folder.iterdir() if p.name.startswith(".last.ckpt.")] if folder.exists() else []
        if tmp and (folder / "last.ckpt").exists():
            for pid in tasks:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            caught = tmp
        time.sleep(0.0005)
    assert caught, "no checkpoint write was caught"
    _wait(slurm, job)
    assert any(p.exists() for p in caught), "the temporary file was gone: the kill came after the rename"
    saved = torch.load(folder / "last.ckpt", weights_only=True)  # the previous checkpoint, whole
    assert saved["global_step"] % 5 == 0 and saved["global_step"] < 120
    info = json.loads((run / "run_info.json").read_text())
    assert info["status"] == "running"
    job, _ = _ddp_job(slurm, run, overrides=[f"data.path={demo_data}", "trainer.val_check_interval=5"])
    log2 = run.parent / f"{run.name}.out"
    assert _wait(slurm, job).get("JobState") == "COMPLETED", log2.read_text()[-3000:]
    assert "a partial write of a killed job" in log2.read_text()
    assert not [p for p in run.rglob(".*") if p.is_file()]
    assert _digests(log2) == {0: uninterrupted[2], 1: uninterrupted[2]}


def _readme_cluster_lines() -> list[str]:
    """The README's cluster block (from `local-slurm.sh up` to `down`), line by line."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(bash scripts/local-slurm.sh up.*?)```", text, re.S)
    assert block, "README.md lost its cluster block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_sweep_through_the_slurm_launcher_then_its_table(slurm, demo_data, tmp_path):
    """The README's cluster block as typed, in a folder whose data/prepared/demo is the demo corpus
    (`up`, `env` and `down` are the module fixture's, on its own ports): one SLURM job per decoder,
    each with its checkpoint and eval summary, job ids and logs printed, then `ddsp-lab table`."""
    lines = _readme_cluster_lines()
    assert lines[0].startswith("bash scripts/local-slurm.sh up") and 'eval "$(bash scripts/local-slurm.sh env)"' in lines[0]
    assert lines[-1] == "bash scripts/local-slurm.sh down"
    env = subprocess.run(["bash", str(SCRIPT), "env"], env=slurm, capture_output=True, text=True)
    assert env.stdout.strip() == f"export SLURM_CONF={slurm['SLURM_CONF']}"
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "prepared" / "demo").symlink_to(demo_data)
    sweep_line = next(line for line in lines if "hydra/launcher=slurm" in line)
    assert sweep_line.startswith(".venv/bin/ddsp-lab train -m ")
    out = subprocess.run([CLI, *sweep_line.split()[1:]], env=slurm, capture_output=True, text=True, timeout=900,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "submitted 3 SLURM job(s)" in out.stdout
    ids = re.findall(r"job (\d+_\d): decoder=(\S+)", out.stdout)
    assert sorted(d for _, d in ids) == ["mlp", "rnn_fc", "rnn_fc_tiny"], out.stdout
    for job, _ in ids:
        assert f"SLURM job {job} finished (completed)" in out.stdout
    assert "sacct" not in out.stdout + out.stderr  # no accounting here: states come from squeue, quietly
    sweeps = list((tmp_path / "multirun").glob("ablation_decoder-*"))
    assert len(sweeps) == 1, list((tmp_path / "multirun").iterdir())
    sweep = sweeps[0]
    runs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(runs) == 3
    for run in runs:
        assert (run / "checkpoints" / "last.ckpt").exists()
        assert json.loads((run / "eval" / "test" / "summary.json").read_text())
        assert json.loads((run / "run_info.json").read_text())["status"] == "evaluated"
    table_line = next(line for line in lines if " table " in line)
    assert table_line == ".venv/bin/ddsp-lab table multirun/ablation_decoder-<date>"
    table = subprocess.run([CLI, "table", str(sweep.relative_to(tmp_path))], capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    assert table.returncode == 0, table.stderr[-3000:]
    rows = [line for line in table.stdout.splitlines() if re.match(r"\| (rnn_fc|rnn_fc_tiny|mlp) \|", line)]
    assert len(rows) == 3 and (sweep / "table.md").exists(), table.stdout


def test_resources_that_do_not_fit_the_trainer_are_refused_before_submission(slurm, demo_data, tmp_path):
    def sweep(*overrides):
        return subprocess.run([CLI, "train", "-m", "hydra/launcher=slurm", "experiment=tiny", "trainer=cpu",
                               f"data.path={demo_data}", f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides],
                              env=slurm, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    before = subprocess.run(["squeue", "-h", "-o", "%i"], env=slurm, capture_output=True, text=True).stdout
    out = sweep("hydra.launcher.tasks_per_node=2", "seed=0,1")
    assert out.returncode != 0
    assert "nothing was submitted" in out.stderr and "tasks_per_node=2 but trainer.devices=1" in out.stderr
    out = sweep("trainer.devices=1,2")
    assert out.returncode != 0 and "a sweep over trainer.devices needs one submission per value" in out.stderr
    out = sweep("hydra.launcher.gpus_per_node=1")
    assert out.returncode != 0 and "gpus_per_node=1 for a trainer.accelerator=cpu job" in out.stderr
    after = subprocess.run(["squeue", "-h", "-o", "%i"], env=slurm, capture_output=True, text=True).stdout
    assert before == after  # nothing reached the queue


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
                    reason="the [optuna] extra is not installed (bash scripts/install.sh --optuna)")
def test_an_optuna_search_runs_its_trials_as_slurm_jobs(slurm, demo_data, tmp_path):
    """hparams_search=optuna with hydra/launcher=slurm: two trials at a time as SLURM jobs, their
    eval metrics back to the sweeper, the best of the four reported (the lowest in the summaries)."""
    sweep = tmp_path / "search"
    out = subprocess.run(
        [CLI, "train", "-m", "hydra/launcher=slurm", "hparams_search=optuna", "experiment=tiny", "trainer=cpu",
         "logger=csv", "model.f0_metric=false", f"data.path={demo_data}", "example_seconds=1.0",
         "trainer.max_steps=4", "trainer.val_check_interval=2", "data.datamodule.batch_size=2",
         "evaluate.crepe_model=tiny", "evaluate.limit=2", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
         "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10",
         f"hydra.sweep.dir={sweep}"],
        env=slurm, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.count("submitted 2 SLURM job(s)") == 2, out.stdout[-3000:]
    values = {run: json.loads((run / "eval" / "test" / "summary.json").read_text())["spectral_distance"]["mean"]
              for run in sweep.iterdir() if (run / "eval").is_dir()}
    assert len(values) == 4
    best = re.search(r"best trial eval/spectral_distance (\S+) \(run (.+)\)", out.stdout)
    assert best and Path(best.group(2)) == min(values, key=values.get), out.stdout[-3000:]
    assert float(best.group(1)) == pytest.approx(min(values.values()), rel=1e-6)
