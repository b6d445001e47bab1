"""Command line: `ddsp-lab <command> [hydra overrides]`.

Commands (Hydra entry points over conf/<command>.yaml): see COMMANDS.
"""
from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from ._resolvers import plain
from .conf import CONF_DIR
COMMANDS = {
    "demo": "Render every synth and effect from hand-made controls (WAV + spectrogram PNG).",
    "prepare": "Prepare training examples (CREPE f0, loudness) from source=demo|folder|nsynth|hub into out=DIR.",
    "inspect": "Print a prepared dataset's statistics and plot its f0 / loudness distributions (path=DIR).",
    "train": "Train a DDSP autoencoder (experiment=NAME, data=..., trainer=..., logger=csv|wandb).",
    "eval": "Score a checkpoint on a prepared split with the paper's metrics and bootstrap intervals (checkpoint=CKPT).",
    "table": "Turn a finished sweep folder into the paper's table (table.md|csv|tex + table.png): table DIR [format=...].",
    "sizes": "The paper's Table 1: every experiment's parameter count, by part, next to the paper's figures.",
    "transfer": "Timbre transfer: any recording played by a model (checkpoint=CKPT audio=FILE [auto_adjust, pitch_shift]).",
    "control": "Synthesis from edited curves: notes=\"A4:0:0.5 C5:0.5:0.5:90\" or audio=FILE with pitch/loudness shift and scale.",
    "dereverb": "Resynthesis of a recording with the model's reverb bypassed (checkpoint=CKPT audio=FILE).",
    "reverb": "Export a model's learned impulse response (WAV), and apply it or ir=WAV to audio=FILE.",
    "interpolate": "z interpolation: audio_a's notes with z blended toward audio_b's timbre (alpha=0.5).",
    "export": "Export a model for real time: TorchScript (nn~, libtorch) or ONNX, and a JSON of its rate, block, latency "
              "and inputs (checkpoint=CKPT format=torchscript|onnx block_size=512).",
    "quickstart": "Prepare the demo corpus and train a small model on it for a few minutes (the main job).",
}



def _demo(cfg) -> None:
    import hydra
    import torch

    from .demo import run_demo

    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    stack = hydra.utils.instantiate(cfg.synth) if cfg.get("synth") else None
    if stack is not None:  # a trainable reverb starts as ~silence: give it a short decaying IR
        for proc in stack.processors:
            if getattr(proc, "trainable", False) and getattr(proc, "ir", None) is not None:
                with torch.no_grad():
                    n = proc.ir.shape[0]
                    gen = torch.Generator().manual_seed(int(cfg.seed))
                    decay = torch.exp(-6.0 * torch.arange(n) / n)
                    proc.ir.copy_(0.02 * decay * (torch.rand(n, generator=gen) * 2 - 1))
    files = run_demo(cfg.out, cfg.sample_rate, cfg.frame_rate, cfg.duration_s, cfg.seed, stack)
    wavs = [f for f in files if f.suffix == ".wav"]
    print(f"ddsp-lab demo: wrote {len(wavs)} renders ({len(files)} files: WAV + spectrogram PNG) to "
          f"{Path(cfg.out).resolve()}")
    for f in wavs:
        print(f"  {f.stem:24s} {f}  {f.with_suffix('.png')}")


def _prepare(cfg) -> None:
    import hydra
    import torch

    from .data import PrepareConfig, prepare

    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    source_cfg = plain(cfg.source)
    source = hydra.utils.instantiate(source_cfg)
    source_args = {k: v for k, v in source_cfg.items() if k != "_target_"}
    config = PrepareConfig(source=type(source).name, sample_rate=cfg.sample_rate, frame_rate=cfg.frame_rate,
                           example_seconds=cfg.example_seconds, crepe_model=cfg.crepe_model,
                           viterbi=cfg.viterbi, num_shards=cfg.num_shards,
                           items_per_part=cfg.items_per_part, source_args=source_args,
                           loudness_n_fft=cfg.get("loudness_n_fft", 2048))
    summary = prepare(source, cfg.out, config, shard=cfg.shard, device=cfg.device, progress=cfg.progress)
    reasons: dict[str, int] = {}
    for s in summary["skipped"]:
        key = s["reason"].split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    hours = summary["examples"] * config.example_seconds / 3600
    state = "already complete, nothing to do" if summary.get("already_complete") else f"{summary['seconds']} s"
    print(f"ddsp-lab prepare: shard {cfg.shard}/{cfg.num_shards} of {config.source} -> {Path(cfg.out).resolve()}\n"
          f"  {summary['items']} items, {summary['examples']} examples ({hours:.3f} h of audio), "
          f"{len(summary['skipped'])} skipped{' ' + str(reasons) if reasons else ''}; {state}")
    splits = summary.get("splits") or {}
    if splits:
        rule = {"by_file": "by file", "by_item": "by item", "time_blocks": "each item cut in time blocks",
                "published": "the source's own splits"}.get(summary.get("split_rule"), summary.get("split_rule"))
        print("  splits: " + ", ".join(f"{name} {splits.get(name, 0)}" for name in ("train", "validation", "test"))
              + f" examples ({rule})")
    for warning in summary.get("warnings") or ():
        print(f"  warning: {warning}")
    if summary["examples"] == 0:
        print("  warning: no examples were made; see the skip reasons above (and in dataset_info.json)")


def _inspect(cfg) -> None:
    from .data.inspect import inspect_prepared

    print(inspect_prepared(cfg.path, cfg.png))


MULTIRUN = {"-m", "--multirun"}
SWEEPING = ("train", "prepare")  # the commands whose -m runs go through a launcher


def _require_optuna(overrides: list[str]) -> None:
    """hparams_search=... needs Hydra's Optuna sweeper (an extra) and a -m run."""
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        raise SystemExit("ddsp-lab train: hparams_search needs the Optuna sweeper, an extra: "
                         "bash scripts/install.sh --optuna (or pip install -e '.[optuna]')")
    if not MULTIRUN & set(overrides):
        raise SystemExit("ddsp-lab train: hparams_search runs a search of many trainings: add -m "
                         "(ddsp-lab train -m hparams_search=optuna ...)")


def _train(cfg) -> float | None:
    """Returns what Hydra's sweepers (Optuna) optimise: optimized_metric (an eval metric), else the
    best validation score (checkpoint.monitor)."""
    from .training import train
    from .training.runner import check_before_training, objective_value

    from .runtime import quiet_offline_wandb

    try:
        check_before_training(cfg)
    except (ValueError, FileNotFoundError) as e:  # a config that cannot work: its message, not a traceback
        raise SystemExit(f"ddsp-lab train: {e}") from e
    quiet_offline_wandb(cfg.get("logger"))
    metrics, _ = train(cfg)
    run = Path(cfg.run_dir).resolve()
    from .training.preemption import is_global_zero

    if not is_global_zero():  # one summary per run, not per DDP rank
        return objective_value(cfg, metrics)
    print(f"ddsp-lab train: run directory {run}\n  " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    _print_wandb_runs(run)
    return objective_value(cfg, metrics)


def _eval(cfg) -> dict:
    from .eval import run_eval

    try:
        return run_eval(cfg)
    except (ValueError, FileNotFoundError) as e:  # bad input: its message, not a traceback
        raise SystemExit(f"ddsp-lab eval: {e}") from e


def _table(cfg) -> None:
    from .eval.table import make_table, metric_notes

    try:
        made = make_table(cfg.sweep_dir, cfg.format, cfg.split)
    except (ValueError, FileNotFoundError) as e:  # no such folder, nothing finished in it: the message
        raise SystemExit(f"ddsp-lab table: {e}") from e
    print(f"ddsp-lab table: {cfg.sweep_dir} (varied: {', '.join(made['varied']) or 'nothing'})\n")
    print(made["text"])
    print(f"intervals: one seed: the 95 % bootstrap interval over examples; several seeds: mean +- their std")
    print(metric_notes())
    if made["unfinished"]:
        print("runs not in the table (unfinished or failed):\n  " + "\n  ".join(made["unfinished"]))
    print(f"\nwrote {made['path']}" + (f" and {made['png']}" if made["png"] else ""))


def _sizes(cfg) -> None:
    from .eval.table import format_sizes, model_sizes

    print("ddsp-lab sizes: parameters of each experiment's model (as `ddsp-lab train experiment=<name>` builds it)\n")
    print(format_sizes(model_sizes(list(cfg.experiments) if cfg.experiments else None)))


def _quickstart(cfg) -> None:
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    out = Path(cfg.out)
    _prepare(compose("prepare", overrides=["source=demo", f"out={out / 'data'}", "crepe_model=tiny",
                                           "example_seconds=1.0", f"source.n_examples={cfg.n_examples}"]))
    train_cfg = compose("train", overrides=[
        "experiment=tiny", f"data.path={out / 'data'}", f"run_dir={cfg.run_dir}", f"seed={cfg.seed}",
        f"trainer.max_steps={cfg.steps}", f"trainer.val_check_interval={min(100, int(cfg.steps))}",
        "trainer.num_sanity_val_steps=0",
        f"logger={HydraConfig.get().runtime.choices.logger}", f"callbacks.media.every_n_steps={cfg.steps}"])
    from .runtime import quiet_offline_wandb
    from .training import train

    quiet_offline_wandb(train_cfg.get("logger"))
    final, initial = train(train_cfg, validate_first=True)
    run = Path(cfg.run_dir).resolve()
    drop = 100 * (1 - final["val/spectral"] / initial["val/spectral"])
    print(f"\nddsp-lab quickstart: trained the tiny model for {cfg.steps} steps on the demo corpus")
    print(f"  validation spectral loss {initial['val/spectral']:.2f} -> {final['val/spectral']:.2f} ({drop:.0f} % lower)")
    for key in ("val/loudness_l1_db", "val/f0_l1_cents"):
        if key in final:
            print(f"  {key} {initial.get(key, float('nan')):.2f} -> {final[key]:.2f}")
    last_media = sorted((run / "media").glob("step-*"))
    print(f"  run directory: {run} (config.yaml, checkpoints/last.ckpt)")
    if last_media:
        print(f"  target / resynthesis audio and spectrograms: {last_media[-1]}")
    _print_wandb_runs(run)


def _print_wandb_runs(run: Path) -> None:
    for wandb_run in sorted((run / "wandb").glob("offline-run-*")):
        print(f"  offline W&B run: {wandb_run}  (wandb sync {wandb_run})")


APPS = ("transfer", "control", "dereverb", "reverb", "interpolate")


def _export(cfg) -> None:
    from .realtime.files import run_export

    try:
        run_export(cfg)
    except (ValueError, FileNotFoundError) as e:  # bad input: its message, not a traceback
        raise SystemExit(f"ddsp-lab export: {e}") from e


def _app(name: str):
    def run(cfg) -> None:
        from .apps.run import run_app

        try:
            run_app(name, cfg)
        except (ValueError, FileNotFoundError) as e:  # bad input: its message, not a traceback
            raise SystemExit(f"ddsp-lab {name}: {e}") from e
    return run


def _refuse_train_keys(overrides: list[str]) -> None:
    """prepare reads a source (source=..., source.root=...); data=... is what train reads."""
    import re

    old = [o for o in overrides if re.match(r"^[+~]*data([.=]|$)", o)]
    if old:
        hint = " ".join(re.sub(r"^([+~]*)data(\.source)?", r"\1source", o) for o in old)
        raise SystemExit(f"ddsp-lab prepare: {' '.join(old)}: prepare reads a source (source=demo|folder|"
                         f"nsynth|hub, source.root=..., source.<filter>=...); data=... and data.path are "
                         f"what train reads. Did you mean: {hint}")


PATH_KEYS = ("checkpoint", "data.path", "out", "sweep_dir", "path", "run_dir", "source.root", "resume", "audio",
             "audio_a", "audio_b", "ir", "notes")


def _quote_paths(overrides: list[str]) -> list[str]:
    """Paths as values, quoted for Hydra's override grammar where they hold its special characters
    (a sweep's run directory is named `3_decoder=mlp,seed=1`): `checkpoint=<that>/checkpoints/best.ckpt`
    then works as typed."""
    out = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key.lstrip("+~") in PATH_KEYS and value[:1] not in ("'", '"') and any(c in value for c in "=,[]{}()' \""):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out.append(f"{key}{sep}{value}")
    return out


def _argv_of_this_job() -> None:
    """In a -m sweep, sys.argv becomes this job's own overrides (no -m, no sweep lists) and
    hydra.run.dir this job's directory: Lightning's DDP launcher re-runs sys.argv for ranks 1..n with
    hydra.run.dir=<hydra.run.dir>, so they join this run in its own sweep directory instead of
    starting the whole sweep again or writing elsewhere."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import read_write

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        hydra_cfg = HydraConfig.get()
        sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
        with read_write(hydra_cfg.run):  # Lightning passes hydra.run.dir to the ranks: make it this job's
            hydra_cfg.run.dir = hydra_cfg.runtime.output_dir


def _command_help(command: str, overrides: list[str]) -> str:
    """`ddsp-lab <command> --help`: what it does, its config groups (the chosen option marked) and
    every option with its default, as composed with the given overrides (interpolations unresolved)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(command, overrides=overrides, return_hydra_config=True)
    choices = {g: c for g, c in cfg.hydra.runtime.choices.items() if not g.startswith("hydra/")}
    if command in SWEEPING:
        choices["hydra/launcher"] = cfg.hydra.runtime.choices.get("hydra/launcher")
    lines = [f"usage: ddsp-lab {command} [group=option ...] [key=value ...]" +
             ("  (-m: a sweep, one run per value: key=a,b)" if command in SWEEPING else ""),
             "", COMMANDS[command], ""]
    groups = []
    for group, chosen in sorted(choices.items()):
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")) if (CONF_DIR / group).is_dir() else []
        if group == "hydra/launcher":
            options = sorted({*options, "basic"})
        marked = [f"{o}*" if o == chosen else o for o in options] or [str(chosen)]
        groups.append(f"  {group:15s} {', '.join(marked)}" + ("  (none chosen)" if chosen is None else ""))
    if command == "train":
        sweeps = sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml"))
        groups.append(f"  {'+sweep':15s} {', '.join(sweeps)}  (a sweep of the paper's: -m +sweep=NAME)")
    if groups:
        lines += ["config groups (group=option; * marks the one in use):", *groups, ""]
    body = OmegaConf.to_container(cfg, resolve=False)  # interpolations as written, ??? as ???
    body.pop("hydra", None)
    lines += ["options and their defaults (key=value, nested keys with dots; ??? = required):",
              OmegaConf.to_yaml(OmegaConf.create(body)).rstrip(), "",
              f"Hydra's own options (-m, --cfg job, hydra.*): ddsp-lab {command} --hydra-help"]
    return "\n".join(lines)


def _usage() -> str:
    lines = ["usage: ddsp-lab <command> [key=value ...]  (Hydra overrides)", "", "commands:"]
    lines += [f"  {name:10s} {doc}" for name, doc in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import hydra

    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    inherited = os.environ.get("DDSP_LAB_COMMAND")
    if argv and argv[0] in COMMANDS:
        command, overrides = argv[0], argv[1:]
    elif inherited in COMMANDS and os.environ.get("LOCAL_RANK"):
        command, overrides = inherited, argv  # a DDP rank re-launched by Lightning with our argv
    elif not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    else:
        command, overrides = argv[0], argv[1:]
    if command == "inspect" and overrides and "=" not in overrides[0] and not overrides[0].startswith("-"):
        overrides[0] = f"path={overrides[0]}"  # `ddsp-lab inspect <prepared dir>`
    if command == "table" and overrides and "=" not in overrides[0] and not overrides[0].startswith("-"):
        overrides[0] = f"sweep_dir={overrides[0]}"  # `ddsp-lab table <sweep dir>`
    if command not in COMMANDS:
        import difflib

        near = difflib.get_close_matches(command, COMMANDS, n=1, cutoff=0.5)
        hint = f" (did you mean `ddsp-lab {near[0]}`?)" if near else ""
        raise SystemExit(f"ddsp-lab: unknown command {command!r}{hint}\n\n{_usage()}")
    if {"-h", "--help"} & set(overrides):
        text = _command_help(command, [o for o in overrides if o not in {"-h", "--help", *MULTIRUN}])
        try:
            print(text, flush=True)
        except BrokenPipeError:  # `ddsp-lab train --help | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if command == "prepare":
        _refuse_train_keys(overrides)
    if command == "train" and any(o.lstrip("+").startswith("hparams_search=") for o in overrides):
        _require_optuna(overrides)
    if not MULTIRUN & set(overrides):  # a sweep may list paths: leave its commas alone
        overrides = _quote_paths(overrides)
    task = {"demo": _demo, "prepare": _prepare, "inspect": _inspect, "train": _train, "eval": _eval, "table": _table, "sizes": _sizes,
            "quickstart": _quickstart, "export": _export, **{name: _app(name) for name in APPS}}[command]
    os.environ["DDSP_LAB_COMMAND"] = command
    sys.argv = [sys.argv[0], *overrides]
    from .runtime import quiet_libraries, tune_cpu_allocator

    tune_cpu_allocator()  # CPU DSP without page faults for every fresh tensor (DDSP_LAB_MALLOC_TUNING=0: off)
    quiet_libraries()  # no start-up lines a user cannot act on (Lightning's tips, matplotlib's INFO)

    def checked(cfg) -> None:
        _argv_of_this_job()
        missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra."))
        if missing:
            raise SystemExit(f"ddsp-lab {command}: missing mandatory value(s) {', '.join(missing)}: set "
                             + " ".join(f"{k}=..." for k in missing))
        return task(cfg)

    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=command)(checked)()


if __name__ == "__main__":
    main()
