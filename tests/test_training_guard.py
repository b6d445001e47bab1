"""Training robustness: the non-finite-step guard on step one and under DDP (one verdict for all
ranks, a stop that ends every rank), training noise independent of media rendering, plain
progress lines when stdout is not a terminal."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from ddsp_lab.conf import CONF_DIR
from ddsp_lab.data import DDSPDataModule
from ddsp_lab.media.logger import MediaLogger
from ddsp_lab.training import build_model, fit
from _ddp import run_ddp

CLI = str(__import__("pathlib").Path(sys.executable).parent / "ddsp-lab")  # the installed console script

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def _compose(overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=False)


class _Examples(torch.utils.data.IterableDataset):
    """One example, clean or with a NaN sample in its audio, in the order of `pattern` (True: NaN)."""

    def __init__(self, example: dict, pattern: list[bool]):
        self.example, self.pattern = example, pattern

    def __iter__(self):
        for bad in self.pattern:
            item = {k: v[0].clone() for k, v in self.example.items()}
            if bad:
                item["audio"][100] = float("nan")
            yield item


class _Watch(pl.Callback):
    """Per step: the loss, and after step one the parameters and the optimizer state."""

    def __init__(self):
        self.losses, self.after_first = [], None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        if batch_idx == 0:
            opt = trainer.optimizers[0]
            self.after_first = ({k: v.detach().clone() for k, v in pl_module.named_parameters()},
                                [{k: v.clone() for k, v in opt.state[p].items()} for p in pl_module.parameters()])


@pytest.mark.parametrize("fused,mode", [("true", "found_inf"), ("false", "host"), ("false", "copy")])
def test_a_nan_first_step_leaves_parameters_and_adam_state_fresh_and_training_continues(fused, mode, demo_data,
                                                                                         tmp_path, monkeypatch):
    """Adam has no state before its first step: a NaN first step must not leave NaN moments behind
    (the next good step would then write NaN into every parameter). Fused Adam (the default) skips
    on the device through found_inf; the foreach one on CPU by dropping the gradients."""
    torch.manual_seed(0)
    model = build_model(_compose(["experiment=tiny", f"data.path={demo_data}", f"run_dir={tmp_path}",
                                  f"model.optimizer.fused={fused}"]))
    if mode == "copy":  # what an accelerator with a non-fused optimizer takes, forced here on CPU
        monkeypatch.setattr(model, "skip_mode", lambda optimizer: "copy")
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    dm = DDSPDataModule(str(demo_data), batch_size=1)
    dm.setup()
    example = next(iter(dm.val_dataloader()))
    pattern = [True] + [False] * 40
    watch = _Watch()
    trainer = pl.Trainer(max_steps=len(pattern), logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         log_every_n_steps=1, limit_val_batches=0, enable_model_summary=False, callbacks=[watch])
    trainer.fit(model, torch.utils.data.DataLoader(_Examples(example, pattern), batch_size=1))
    assert model.skip_mode(trainer.optimizers[0]) == mode
    params, states = watch.after_first
    assert all(torch.equal(params[k], initial[k]) for k in initial)
    states = [s for s in states if s]
    # fused, copy: the step made Adam's state for every parameter and left it fresh; host: it made none
    assert len(states) == (0 if mode == "host" else len(initial))
    for s in states:  # the fresh state: zero moments, step 0
        assert float(s["step"]) == 0 and not s["exp_avg"].any() and not s["exp_avg_sq"].any()
    assert int(model.skipped_steps) == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    good = watch.losses[1:]
    assert all(v == v for v in good) and min(good[-5:]) < 0.8 * good[0], good


# Loaded by the DDP runs below from PYTHONPATH (Hydra `_target_`s): ways to make one rank's step
# non-finite, and a per-rank record of the guard's counters and a parameter checksum.
PROBE = '''
import hashlib, json, os
import pytorch_lightning as pl
import torch



def _rank():
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


class NanTerm(torch.nn.Module):
    """A loss term: 0, or NaN on `rank` at the training steps in `steps` (every step if empty).
    It has no gradient path: the loss is NaN, the gradients stay finite."""

    def __init__(self, rank, steps=()):
        super().__init__()
        self.rank, self.steps, self.calls = rank, set(steps), 0

    def forward(self, target, audio):
        bad = False
        if self.training:  # validation and media run in eval mode
            bad = _rank() == self.rank and (not self.steps or self.calls in self.steps)
            self.calls += 1
        return torch.full((), float("nan") if bad else 0.0, device=audio.device)


class PoisonBatch(pl.Callback):
    """A NaN sample in the audio of `rank`'s batch at the training steps in `steps`."""

    def __init__(self, rank, steps):
        self.rank, self.steps = rank, set(steps)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_rank == self.rank and trainer.global_step in self.steps:
            batch["audio"] = batch["audio"].clone()
            batch["audio"][:, 100] = float("nan")


class Record(pl.Callback):
    """Writes <out>/rank<r>.json: per step the counters and a parameter checksum; the error if any."""

    def __init__(self, out):
        self.out, self.rows, self.error = out, [], None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        digest = hashlib.sha1()
        for p in pl_module.parameters():
            digest.update(p.detach().cpu().numpy().tobytes())
        self.rows.append({"step": trainer.global_step, "skipped": int(pl_module.skipped_steps),
                          "consecutive": int(pl_module.consecutive_skips), "params": digest.hexdigest()})
        self._dump(trainer)

    def on_exception(self, trainer, pl_module, exception):
        self.error = str(exception)
        self._dump(trainer)

    def _dump(self, trainer):
        os.makedirs(self.out, exist_ok=True)
        with open(os.path.join(self.out, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump({"rows": self.rows, "error": self.error}, f)
'''


def _ddp_train(data, tmp_path, *overrides, timeout=300):
    """A 2-rank CPU (gloo) `ddsp-lab train` of a few 1-example steps with the probe on PYTHONPATH;
    returns (the finished process, {rank: record})."""
    (tmp_path / "guard_probe.py").write_text(PROBE)
    record = tmp_path / "record"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]))
    command = [str(CLI), "train", "experiment=tiny", "logger=none",
               f"data.path={data}", f"run_dir={tmp_path / 'run'}", "data.datamodule.batch_size=1",
               "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
               "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "trainer.num_sanity_val_steps=0",
               "trainer.val_check_interval=1000", "model.f0_metric=false", "callbacks.media.every_n_steps=1000",
               "+callbacks.record._target_=guard_probe.Record", f"+callbacks.record.out={record}", *overrides]
    try:
        out = run_ddp(command, env=env, timeout=timeout, cwd=tmp_path)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"the DDP run hung (> {timeout} s): {str(e.stderr)[-3000:]}") from None
    records = {r: json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1) if (record / f"rank{r}.json").exists()}
    return out, records


@pytest.mark.slow
def test_ddp_a_step_bad_on_one_rank_is_skipped_on_both_and_replicas_stay_identical(demo_data, tmp_path):
    """Step 1: rank 1's batch holds a NaN sample: its loss is NaN, yet the gradients stay finite
    (torch's |x|' is sign(x), 0 at NaN), so only rank 1's loss check sees it. Step 4: rank 0's loss
    is NaN through a term without gradient. Both steps are skipped on both ranks; the counters and
    the parameters agree on both ranks at every step."""
    out, records = _ddp_train(demo_data, tmp_path, "trainer.max_steps=6",
                              "+callbacks.poison._target_=guard_probe.PoisonBatch", "+callbacks.poison.rank=1",
                              "+callbacks.poison.steps=[1]", "+loss.nan._target_=guard_probe.NanTerm",
                              "+loss.nan.rank=0", "+loss.nan.steps=[4]")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [records[r]["rows"] for r in (0, 1)]
    assert [row["step"] for row in rows[0]] == [row["step"] for row in rows[1]] == [1, 2, 3, 4, 5, 6]
    assert [row["skipped"] for row in rows[0]] == [row["skipped"] for row in rows[1]] == [0, 1, 1, 1, 2, 2]
    assert [row["params"] for row in rows[0]] == [row["params"] for row in rows[1]]  # identical replicas
    params = [row["params"] for row in rows[0]]
    assert params[1] == params[0] and params[4] == params[3]  # the skipped steps moved nothing
    assert len({params[0], params[2], params[3], params[5]}) == 4  # the others did


@pytest.mark.slow
def test_ddp_persistent_nan_on_one_rank_stops_every_rank_at_the_same_step_without_hanging(demo_data, tmp_path):
    """Rank 1's loss is NaN at every step, rank 0's never: the guard stops both ranks together with
    its message (neither is left waiting in a collective)."""
    out, records = _ddp_train(demo_data, tmp_path, "trainer.max_steps=20", "++model.max_consecutive_skips=3",
                              "+loss.nan._target_=guard_probe.NanTerm", "+loss.nan.rank=1", timeout=180)
    assert out.returncode != 0
    assert "consecutive steps had a non-finite loss or gradient on some rank" in out.stderr, out.stderr[-3000:]
    assert sorted(records) == [0, 1], out.stderr[-3000:]
    for r in (0, 1):
        assert "consecutive steps had a non-finite loss" in (records[r]["error"] or ""), (r, records[r])
    assert records[0]["rows"] == records[1]["rows"]  # same steps, counters and parameters
    assert records[0]["rows"][-1]["step"] == 4 and records[0]["rows"][-1]["skipped"] == 4


class _Losses(pl.Callback):
    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


def test_media_rendering_does_not_change_the_training_run(demo_data, tmp_path):
    """Identical runs but for how often media are rendered (each render synthesizes noise) log the
    same training losses: training noise has its own generator."""
    cfg = _compose(["experiment=tiny", f"data.path={demo_data}", f"run_dir={tmp_path}", "model.f0_metric=false",
                    "trainer.max_steps=8", "trainer.val_check_interval=4", "trainer.enable_progress_bar=false",
                    "trainer.log_every_n_steps=1"])

    def run(every_n_steps: int) -> dict[int, float]:
        pl.seed_everything(0)
        losses = _Losses()
        fit(build_model(cfg), DDSPDataModule(str(demo_data), batch_size=1), cfg.trainer, False,
            tmp_path / str(every_n_steps), callbacks=[MediaLogger(every_n_steps=every_n_steps, n_examples=1), losses])
        return losses.losses

    often, rarely = run(2), run(1000)
    assert len(list((tmp_path / "2" / "media").glob("step-*"))) > len(list((tmp_path / "1000" / "media").glob("step-*")))
    assert sorted(often) == list(range(1, 9)) and len(set(often.values())) == 8
    assert often == rarely


@pytest.mark.slow
def test_train_to_a_pipe_prints_plain_progress_lines_not_a_redrawn_bar(demo_data, tmp_path):
    """stdout is a pipe (CI, SLURM, `| tee`): one line per log interval, no carriage-return redraws."""
    script = Path(sys.executable).parent / "ddsp-lab"
    out = subprocess.run([str(script), "train", "experiment=tiny", "logger=csv", f"data.path={demo_data}",
                          f"run_dir={tmp_path / 'run'}", "data.datamodule.batch_size=1", "trainer.max_steps=6",
                          "trainer.log_every_n_steps=3", "trainer.val_check_interval=6", "model.f0_metric=false"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["3/6", "6/6"], out.stdout[-2000:]
    assert all("train/total" in line and "steps/s" in line and "ETA" in line for line in lines), lines
    assert "validation at step 6" in out.stdout
    text = out.stdout + out.stderr
    assert text.count("\r") <= 2 and len(text) < 20000, (text.count("\r"), len(text))


@pytest.mark.parametrize("interactive", [True, False], ids=["terminal", "pipe"])
def test_a_terminal_keeps_the_progress_bar_and_a_pipe_gets_plain_lines(demo_data, tmp_path, monkeypatch, interactive):
    import ddsp_lab.training.runner
    from pytorch_lightning.callbacks import TQDMProgressBar

    monkeypatch.setattr(ddsp_lab.training.runner, "_interactive", lambda: interactive)
    seen = {}

    class Look(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["bar"] = trainer.progress_bar_callback
            seen["plain"] = [c for c in trainer.callbacks if isinstance(c, ddsp_lab.training.PlainProgress)]

    cfg = _compose(["experiment=tiny", f"data.path={demo_data}", f"run_dir={tmp_path}", "trainer.max_steps=1",
                    "trainer.num_sanity_val_steps=0", "trainer.val_check_interval=1000"])
    fit(build_model(cfg), DDSPDataModule(str(demo_data), batch_size=1), cfg.trainer, False, tmp_path, callbacks=[Look()])
    assert isinstance(seen["bar"], TQDMProgressBar) == interactive
    assert len(seen["plain"]) == (0 if interactive else 1)


def test_plain_progress_rate_and_eta_leave_validation_out(capsys):
    """A long validation between two log lines neither dips the printed rate nor inflates the ETA."""
    from types import SimpleNamespace

    from ddsp_lab.training import PlainProgress

    now = [0.0]
    progress = PlainProgress(every_n_steps=10)
    progress._clock = lambda: now[0]
    trainer = SimpleNamespace(global_step=0, max_steps=100, is_global_zero=True, sanity_checking=False,
                              callback_metrics={"train/total": torch.tensor(1.5)})
    progress.on_train_start(trainer, None)
    for step in range(1, 21):
        now[0] += 0.1                      # 10 steps/s of training
        trainer.global_step = step
        progress.on_train_batch_end(trainer, None, None, None, step)
        if step == 10:
            progress.on_validation_start(trainer, None)
            now[0] += 100.0                # a 100 s validation
            progress.on_validation_end(trainer, None)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert lines[-1].startswith("step 20/100") and "10.00 steps/s" in lines[-1] and "ETA 0:00:08" in lines[-1], lines
    # trainer.max_time ends the run before max_steps would: the ETA is the time it leaves
    from pytorch_lightning.callbacks import Timer

    timer = Timer(duration="00:00:00:05")
    timer.time_remaining = lambda stage="train": 5.0
    trainer.callbacks = [timer]
    for step in range(21, 31):
        now[0] += 0.1
        trainer.global_step = step
        progress.on_train_batch_end(trainer, None, None, None, step)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert lines[-1].startswith("step 30/100") and lines[-1].endswith("ETA 0:00:05 (max_time)"), lines


def test_the_guard_with_the_default_fused_adam_reads_nothing_from_the_device_and_copies_nothing(demo_data, tmp_path,
                                                                                               monkeypatch):
    """Steps good and bad through the guard's hooks while any host read of a tensor (bool, item,
    float, int, tolist, numpy) or a clone raises: the verdict goes to the fused kernel as found_inf,
    on the device. The bad step is still skipped and counted (read after the fit)."""
    torch.manual_seed(0)
    model = build_model(_compose(["experiment=tiny", f"data.path={demo_data}", f"run_dir={tmp_path}"]))
    dm = DDSPDataModule(str(demo_data), batch_size=1)
    dm.setup()
    example = next(iter(dm.val_dataloader()))
    pattern = [False, True, False, False]
    guarded = {"on": False, "reads": []}

    def forbid(name):
        real = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            if guarded["on"]:
                guarded["reads"].append(name)
                raise RuntimeError(f"host read Tensor.{name} inside the guard")
            return real(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, read)

    for name in ("__bool__", "item", "__float__", "__int__", "tolist", "numpy", "clone"):
        forbid(name)

    def watched(hook):
        def run(*args, **kwargs):
            guarded["on"] = True
            try:
                return hook(*args, **kwargs)
            finally:
                guarded["on"] = False
        return run
    monkeypatch.setattr(model, "on_before_optimizer_step", watched(model.on_before_optimizer_step))
    monkeypatch.setattr(model, "_step_restoring", watched(model._step_restoring))
    trainer = pl.Trainer(max_steps=len(pattern), logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         log_every_n_steps=1000, limit_val_batches=0, enable_model_summary=False)
    trainer.fit(model, torch.utils.data.DataLoader(_Examples(example, pattern), batch_size=1))
    assert guarded["reads"] == []
    assert model.skip_mode(trainer.optimizers[0]) == "found_inf"
    assert int(model.skipped_steps) == 1 and all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradients_of_the_fused_optimizer_are_clipped_without_a_grad_scaler(algorithm, demo_data, tmp_path):
    """Lightning's mixed-precision plugin refuses to clip for a fused optimizer (bf16 included, the
    GPU default); the module clips them itself when no GradScaler is in play."""
    torch.manual_seed(0)
    model = build_model(_compose(["experiment=tiny", f"data.path={demo_data}", f"run_dir={tmp_path}"]))
    opt = model.configure_optimizers()["optimizer"]
    assert getattr(opt, "_step_supports_amp_scaling", False)  # fused, as shipped
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    model.configure_gradient_clipping(opt, gradient_clip_val=0.01, gradient_clip_algorithm=algorithm)
    grads = [p.grad for p in model.parameters()]
    if algorithm == "norm":
        assert float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) <= 0.0101
    else:
        assert max(float(g.abs().max()) for g in grads) <= 0.01
