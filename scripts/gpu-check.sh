#!/usr/bin/env bash
# The checks that need a GPU, in one command for a CUDA machine (about 6 minutes):
#   bash scripts/gpu-check.sh            # after bash scripts/install.sh --dev (a CUDA torch kept as it is)
# 1. the CUDA-parametrised tests (every module on cuda, float32 and float64);
# 2. solo_violin training steps at batch 32 in float32 and in bf16 mixed precision (ms/step, steps/s,
#    peak memory: benchmarks/train.py);
# 3. evaluation with CREPE full on the GPU (benchmarks/eval.py: examples/s);
# 4. export from a model on CUDA (TorchScript and ONNX, each file checked against the eager stream);
# then one summary block to paste into the README. Without CUDA it says so and exits 0.
# Each step has its own time limit; a step that fails is reported in the summary and the rest run.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${DDSP_LAB_PYTHON:-.venv/bin/python}"
[[ -x "$py" ]] || py="$(command -v python3)"
if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing to check, nothing failed"
  exit 0
fi
out="$(mktemp -d)"
status=()
run() {  # run NAME SECONDS CMD...: its output in $out/NAME.txt, its result in the summary
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  status+=("$name: $([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc, log $out/$name.txt)") in $((SECONDS - t0)) s")
}
device="$("$py" -c "import torch; print(torch.cuda.get_device_name(0))")"
echo "gpu-check on $device (torch $("$py" -c "import torch; print(torch.__version__)")); logs in $out"

run tests 150 "$py" -m pytest -q -n 0 -p no:cacheprovider -k cuda tests
run train_fp32 90 "$py" benchmarks/train.py --device cuda --batch 32 --modes eager --no-compile --steps 20 --warmup 5 --precision 32
run train_bf16 90 "$py" benchmarks/train.py --device cuda --batch 32 --modes eager --no-compile --steps 20 --warmup 5 --precision bf16-mixed
run eval_crepe_full 90 "$py" benchmarks/eval.py --device cuda --examples 16 --crepe full
run export 90 "$py" - <<'PY'
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from ddsp_lab.conf import CONF_DIR
from ddsp_lab.realtime import export
from ddsp_lab.realtime.files import check_export
from ddsp_lab.training import build_model

with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
    cfg = compose("train", overrides=["experiment=solo_violin", "data.path=unused", "run_dir=unused", "model.f0_metric=false"])
model = build_model(cfg).model.eval().cuda()
with tempfile.TemporaryDirectory() as tmp:
    for fmt, suffix in (("torchscript", ".ts"), ("onnx", ".onnx")):
        info = export(model, Path(tmp) / f"m{suffix}", fmt, 512)
        checked = check_export(model, Path(tmp) / f"m{suffix}", info, seconds=2.0)
        print(f"export {fmt} from cuda: max error {checked['max_abs_error']:.1e} of peak {checked['peak']:.2f}, "
              f"x{checked['real_time_factor']:.1f} real time")
    assert next(model.parameters()).is_cuda, "export moved the caller's model"
PY

echo
echo "## GPU check: $device, $(date -u +%Y-%m-%d)"
for s in "${status[@]}"; do echo "- $s"; done
echo "- tests: $(tail -n 1 "$out/tests.txt")"
for name in train_fp32 train_bf16; do
  echo "- $name (solo_violin, batch 32): $(grep -E 'ms/step|steps/s' "$out/$name.txt" | tail -n 2 | tr -s ' ' | paste -sd ';' -)"
done
echo "- eval with CREPE full: $(grep -Ei 'examples/s|real time' "$out/eval_crepe_full.txt" | tail -n 1)"
grep -E '^export ' "$out/export.txt" | sed 's/^/- /'
[[ "${status[*]}" != *FAILED* ]]
