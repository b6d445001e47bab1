"""Evaluation speed: seconds of audio evaluated per second, and the share taken by CREPE.

    python benchmarks/eval.py                         # CPU, 2 threads, 16 x 4 s demo examples, CREPE full
    python benchmarks/eval.py --device cuda --examples 64
    python benchmarks/eval.py --crepe tiny

A demo corpus is prepared once (CREPE with the evaluation's settings, so the targets' f0 comes from
the dataset's columns, as for a dataset prepared with the paper's settings; the examples are the
train split's, the largest); the paper's
solo-violin model (untrained: the cost does not depend on the weights; built as `ddsp-lab train
experiment=solo_violin` builds it) is evaluated on it by `ddsp_lab.eval.evaluate`, the function
`ddsp-lab eval` runs. Prints the audio seconds per wall second, the time in CREPE (the resynthesis's
f0) and the time around it (resynthesis, loudness, spectral distance, the paper-unit loudness,
batching), as a share of CREPE's: the goal is under 15 %. The first call is a warm-up.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--examples", type=int, default=16)
    ap.add_argument("--crepe", default="full", choices=["full", "tiny"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    from hydra import compose, initialize_config_dir

    from ddsp_lab.conf import CONF_DIR
    from ddsp_lab.data import DemoSource, PrepareConfig, load_prepared, prepare
    from ddsp_lab.eval import evaluate
    from ddsp_lab.training import build_model

    data = Path(tempfile.gettempdir()) / f"ddsp_lab_bench_eval_{args.crepe}_{args.examples}"
    if not (data / "dataset_info.json").exists():
        t0 = time.perf_counter()
        # enough items that every split gets whole items; the examples evaluated are the test split's
        prepare(DemoSource(max(20, args.examples)), data,
                PrepareConfig("demo", example_seconds=4.0, crepe_model=args.crepe, viterbi=True), progress=False)
        print(f"prepared {data} in {time.perf_counter() - t0:.0f} s")
    n_test = min(args.examples, len(load_prepared(data, "train")))  # the train split: enough examples
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("train", overrides=["experiment=solo_violin", "data.path=unused", "run_dir=unused",
                                          "logger=csv"])
    model = build_model(cfg).model.eval()
    kwargs = dict(batch_size=args.batch, crepe_model=args.crepe, viterbi=True, device=args.device, progress=False,
                  n_resamples=1000)
    evaluate(model, data, split="train", limit=2, **kwargs)  # warm-up: CREPE weights, kernels
    result = evaluate(model, data, split="train", limit=n_test, **kwargs)
    t = result["summary"]["timing"]
    around = t["wall_s"] - t["crepe_s"]
    print(f"eval, solo-violin model, {args.device}" + (f" ({args.threads} threads)" if args.device == "cpu" else "")
          + f", CREPE {args.crepe} with Viterbi, batch {args.batch}")
    print(f"  {n_test} examples, {t['audio_s']:.0f} s of audio in {t['wall_s']:.1f} s: "
          f"{t['audio_s_per_s']:.2f} s of audio per s")
    print(f"  CREPE {t['crepe_s']:.1f} s ({100 * t['crepe_share']:.0f} % of the time); everything around it "
          f"{around:.1f} s = {100 * around / max(t['crepe_s'], 1e-9):.0f} % on top of CREPE (goal: < 15 %)")


if __name__ == "__main__":
    main()
