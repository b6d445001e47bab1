"""`ddsp-lab table <sweep dir>`: a finished Hydra sweep -> the paper's table.

Each run directory of the sweep (Hydra's `<sweep dir>/<job>/`) holds `.hydra/overrides.yaml` (its
settings), `run_info.json` (status, parameter count, steps, best validation) and
`eval/<split>/summary.json` (the paper's metrics with bootstrap intervals). Rows are the settings
that vary between runs (seeds pooled: mean and spread over seeds); columns the metrics. Runs that
failed, were killed, or never started are listed under the table, not dropped.
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from .. import atomic
from .evaluate import METRICS

COLUMNS = ("loudness_l1_db", "f0_l1_semitones", "f0_outlier", "spectral_distance", "loudness_l1_paper_std",
           "encoder_f0_l1_semitones")
SHORT = {"loudness_l1_db": "loudness L1 (dB)", "f0_l1_semitones": "f0 L1 (semitones)", "f0_outlier": "f0 outliers",
         "spectral_distance": "spectral distance", "loudness_l1_paper_std": "loudness L1 (paper unit)",
         "encoder_f0_l1_semitones": "encoder f0 L1 (semitones)"}


def _read_json(path: Path, run: Path, problems: list[str]) -> dict | None:
    """The JSON file's dict, or None with the reason added to problems (a file cut short by a
    crash of a run written before writes were atomic, or edited by hand)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"{path.relative_to(run)} is unreadable ({type(e).__name__}: {str(e)[:80]})")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.relative_to(run)} holds a {type(value).__name__}, not a JSON object")
        return None
    return value


def _overrides(run: Path, problems: list[str]) -> dict[str, str]:
    import yaml

    path = run / ".hydra" / "overrides.yaml"
    try:
        items = yaml.safe_load(path.read_text()) if path.exists() else []
    except (OSError, yaml.YAMLError) as e:
        problems.append(f".hydra/overrides.yaml is unreadable ({type(e).__name__})")
        items = []
    out = {}
    for item in items or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _expected_jobs(sweep_dir: Path) -> int | None:
    """How many jobs the sweep launched (from multirun.yaml), or None where it cannot tell."""
    path = sweep_dir / "multirun.yaml"
    if not path.exists():
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(path)
        params = cfg.hydra.sweeper.get("params") or {}
        args = [f"{k}={v}" for k, v in params.items()] + list(cfg.hydra.overrides.task)
        parsed = OverridesParser.create().parse_overrides(args)
        return sum(len(b) for b in BasicSweeper.split_arguments(parsed, None))
    except Exception:  # noqa: BLE001 - an unreadable multirun.yaml only loses this count
        return None


def collect(sweep_dir: str | Path, split: str = "test") -> dict:
    """{"runs": [one dict per run directory], "varied": [keys that differ], "expected": n or None}."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory does not exist: {sweep_dir}")
    dirs = sorted({p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")}
                  | {p.parent for p in sweep_dir.glob("*/run_info.json")})
    if not dirs:
        raise ValueError(f"{sweep_dir} holds no runs (no */.hydra/overrides.yaml or */run_info.json): "
                         f"give the folder of a `ddsp-lab train -m ...` sweep")
    runs = []
    for run in dirs:
        info_path, summary_path = run / "run_info.json", run / "eval" / split / "summary.json"
        problems = []
        info = _read_json(info_path, run, problems) if info_path.exists() else {"status": "not started by ddsp-lab"}
        summary = _read_json(summary_path, run, problems) if summary_path.exists() else None
        overrides = _overrides(run, problems)
        info = info if info is not None else {"status": "unreadable"}
        runs.append({"dir": run, "overrides": overrides, "info": info, "summary": summary, "problems": problems,
                     "done": summary is not None and info.get("status") == "evaluated" and not problems})
    keys = sorted({k for r in runs for k in r["overrides"]})
    varied = [k for k in keys if len({r["overrides"].get(k) for r in runs}) > 1]
    return {"runs": runs, "varied": varied, "expected": _expected_jobs(sweep_dir), "sweep_dir": sweep_dir}


def rows(collected: dict) -> list[dict]:
    """One row per setting of the varied keys other than the seed; metrics over its finished runs:
    one seed: the run's mean and bootstrap interval; several: mean over seeds and their std."""
    settings = [k for k in collected["varied"] if k != "seed"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in collected["runs"]:
        if run["done"]:
            groups[tuple(run["overrides"].get(k, "") for k in settings)].append(run)
    out = []
    for values, runs in groups.items():
        row = {"setting": dict(zip(settings, values)), "n_runs": len(runs),
               "seeds": sorted(r["overrides"].get("seed", "") for r in runs),
               "n_parameters": runs[0]["info"].get("n_parameters"), "steps": runs[0]["info"].get("steps")}
        for key in COLUMNS:
            means = [r["summary"][key]["mean"] for r in runs if key in r["summary"]]
            means = [m for m in means if m is not None and math.isfinite(m)]
            if not means:
                continue
            if len(runs) == 1:
                s = runs[0]["summary"][key]
                row[key] = {"mean": means[0], "low": s["ci_low"], "high": s["ci_high"], "kind": "95% CI"}
            else:
                spread = statistics.stdev(means) if len(means) > 1 else 0.0
                row[key] = {"mean": statistics.fmean(means), "low": statistics.fmean(means) - spread,
                            "high": statistics.fmean(means) + spread, "kind": f"std over {len(means)} seeds"}
        out.append(row)
    return out


def unfinished(collected: dict) -> list[str]:
    """A line per run left out of the table, with why."""
    lines = []
    for r in collected["runs"]:
        if r["done"]:
            continue
        if r["problems"]:
            lines.append(f"{r['dir'].name}: skipped, " + "; ".join(r["problems"]))
            continue
        status = r["info"].get("status", "unknown")
        why = {"finished": " (not evaluated: evaluate.after_training=false?)",
               "evaluated": " (but its eval summary is missing)"}.get(status, "")
        lines.append(f"{r['dir'].name}: {status}{why}")
    expected = collected.get("expected")
    if expected is not None and expected > len(collected["runs"]):
        lines.append(f"{expected - len(collected['runs'])} of the sweep's {expected} jobs have no run directory "
                     f"(not started)")
    return lines


def _cell(value: dict | None) -> str:
    if value is None:
        return "-"
    return f"{value['mean']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def format_table(table_rows: list[dict], fmt: str = "md") -> str:
    """The rows as a Markdown, CSV or LaTeX table."""
    if fmt not in ("md", "csv", "latex"):
        raise ValueError(f"format must be md, csv or latex, got {fmt!r}")
    settings = list(table_rows[0]["setting"]) if table_rows else []
    metrics = [k for k in COLUMNS if any(k in r for r in table_rows)]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([*settings, "n_runs", "seeds", "n_parameters", "steps",
                         *[f"{k}{s}" for k in metrics for s in ("", "_low", "_high")], "interval"])
        for r in table_rows:
            kind = next((r[k]["kind"] for k in metrics if k in r), "")
            writer.writerow([*r["setting"].values(), r["n_runs"], " ".join(r["seeds"]), r["n_parameters"], r["steps"],
                             *[r[k][f] if k in r else "" for k in metrics for f in ("mean", "low", "high")], kind])
        return buf.getvalue()
    head = [*settings, "runs", "parameters", "steps", *[SHORT[k] for k in metrics]]
    body = [[*r["setting"].values(), str(r["n_runs"]), f"{r['n_parameters']:,}" if r["n_parameters"] else "-",
             str(r["steps"]), *[_cell(r.get(k)) for k in metrics]] for r in table_rows]
    if fmt == "md":
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines) + "\n"
    esc = lambda s: s.replace("_", r"\_").replace("%", r"\%")  # noqa: E731
    lines = [r"\begin{tabular}{" + "l" * len(settings) + "r" * (len(head) - len(settings)) + "}", r"\hline",
             " & ".join(esc(h) for h in head) + r" \\", r"\hline"]
    lines += [" & ".join(esc(c) for c in row) + r" \\" for row in body]
    return "\n".join([*lines, r"\hline", r"\end{tabular}"]) + "\n"


def plot(table_rows: list[dict], png: str | Path, title: str = "") -> Path | None:
    """One bar chart per metric across the rows, with their intervals (or seed spread)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [k for k in COLUMNS if any(k in r for r in table_rows)]
    if not metrics:
        return None
    labels = [",".join(f"{k}={v}" for k, v in r["setting"].items()) or "run" for r in table_rows]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), squeeze=False)
    for ax, key in zip(axes[0], metrics):
        vals = [r[key]["mean"] if key in r else math.nan for r in table_rows]
        err = [[v - r[key]["low"] if key in r else 0 for v, r in zip(vals, table_rows)],
               [r[key]["high"] - v if key in r else 0 for v, r in zip(vals, table_rows)]]
        ax.bar(range(len(vals)), vals, yerr=err, capsize=3, color="#4c72b0")
        ax.set_title(SHORT[key], fontsize=9)
        ax.set_xticks(range(len(vals)), labels, rotation=60, ha="right", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return Path(png)


def make_table(sweep_dir: str | Path, fmt: str = "md", split: str = "test") -> dict:
    """Collect, write table.<md|csv|tex> and table.png into the sweep folder, return what was made."""
    collected = collect(sweep_dir, split)
    table_rows = rows(collected)
    text = format_table(table_rows, fmt)
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / ("table." + {"md": "md", "csv": "csv", "latex": "tex"}[fmt])
    atomic.write_text(path, text)
    png = plot(table_rows, sweep_dir / "table.png", sweep_dir.name)
    return {"text": text, "path": path, "png": png, "rows": table_rows, "unfinished": unfinished(collected),
            "varied": collected["varied"]}


def metric_notes() -> str:
    return "\n".join(f"  {SHORT[k]}: {METRICS[k]}" for k in COLUMNS)


# The paper's Table 1 (Engel et al. 2020): parameters of its models, for comparison.
PAPER_SIZES = {"solo_violin": 6.0e6, "nsynth_supervised": 7.0e6, "nsynth_z": 7.0e6, "nsynth_unsupervised": 12.0e6, "tiny": 0.24e6}
SIZE_NOTES = {
    "solo_violin": "decoder RNN-FC (GRU 512, 3 x 512 MLPs, 60 harmonics + 65 bands) + the 3 s reverb (48k taps), "
                   "as the paper and the reference's solo-instrument config describe it; what else the paper's "
                   "6M counts is not stated, and we have not matched it",
    "nsynth_supervised": "ours has no z; the paper's NSynth models carry the z encoder: compare nsynth_z with the "
                         "paper's 7M",
    "nsynth_z": "the supervised model + the z encoder (MFCC -> GRU 512 -> 16-d z) and z into the decoder: "
                "the paper's supervised NSynth model (7M)",
    "nsynth_unsupervised": "+ the f0 ResNet on log-mel (ours: pre-activation blocks striding in frequency only, "
                           "every frame kept); the paper does not size its ResNet, ours is smaller than its 12M total",
    "tiny": "ours is a laptop/test model (GRU 64, MLPs 2 x 64, 20 harmonics), not the paper's tiny "
            "(0.24M: a smaller RNN-FC decoder)",
    "solo_48k": "the solo model at 48 kHz: 100 harmonics, a 3 s reverb of 144k taps",
}


def model_sizes(experiments: list[str] | None = None) -> list[dict]:
    """Parameters of each experiment's model, as `ddsp-lab train experiment=<name>` builds it, by part
    (the DDSP module from the composed parts, as the training module holds it)."""
    import contextlib

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ..conf import CONF_DIR
    from ..models.loading import build

    names = experiments or sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    out = []
    # inside the CLI Hydra is set up on the same config tree; elsewhere (a script, a test) set it up here
    within = (contextlib.nullcontext() if GlobalHydra.instance().is_initialized()
              else initialize_config_dir(config_dir=str(CONF_DIR), version_base=None))
    with within:
        for name in names:
            cfg = compose("train", overrides=[f"experiment={name}", "data.path=unused", "run_dir=unused",
                                              "logger=csv"])
            model = build(cfg, cfg.model.sample_rate, cfg.model.frame_rate)
            parts = {part: sum(p.numel() for p in getattr(model, part).parameters())
                     for part in ("encoder", "decoder", "synth") if getattr(model, part) is not None}
            out.append({"experiment": name, "parameters": sum(parts.values()), "parts": parts,
                        "paper": PAPER_SIZES.get(name), "note": SIZE_NOTES.get(name, "")})
    return out


def format_sizes(sizes: list[dict]) -> str:
    lines = ["| experiment | ours | encoder | decoder | synth | the paper (Table 1) | why they differ |",
             "|---|---|---|---|---|---|---|"]
    for s in sizes:
        paper = f"{s['paper'] / 1e6:.2f}M" if s["paper"] else "-"
        parts = [f"{s['parts'].get(k, 0) / 1e6:.3f}M" for k in ("encoder", "decoder", "synth")]
        lines.append(f"| {s['experiment']} | {s['parameters'] / 1e6:.3f}M | {' | '.join(parts)} | {paper} | {s['note']} |")
    return "\n".join(lines) + "\n"
