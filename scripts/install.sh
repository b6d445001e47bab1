#!/usr/bin/env bash
# One-command install of ddsp_lab into ./.venv (or the active virtualenv / $DDSP_LAB_VENV).
#   bash scripts/install.sh          # library, CLI and the whole stack
#   bash scripts/install.sh --dev    # + test tools
#   bash scripts/install.sh --optuna # + the Optuna sweeper (hparams_search=optuna); flags combine
# - where no torch is installed, takes the local CPU build torch==2.13.0 first and pins whatever torch
#   is present with a constraints file, so no later step pulls a different (multi-GB CUDA) torch;
# - installs torchcrepe with --no-deps after its real needs: it declares torchaudio, whose only wheels
#   break `import torch*` on this torch (ddsp_lab/features/crepe.py imports torchcrepe without it).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
for flag in "$@"; do
  case "$flag" in
    --dev|--optuna) extras="$extras ${flag#--}" ;;
    *) echo "install.sh: unknown option $flag (expected --dev and/or --optuna)" >&2; exit 2 ;;
  esac
done
venv="${DDSP_LAB_VENV:-${VIRTUAL_ENV:-.venv}}"
if [[ ! -x "$venv/bin/python" ]]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }
if ! "$py" -c "import torch" >/dev/null 2>&1; then
  pip install "torch==${DDSP_LAB_TORCH:-2.13.0}"
fi
constraints="$venv/ddsp_lab-constraints.txt"
"$py" -W ignore -c "import torch; print('torch==' + torch.__version__)" 2>/dev/null > "$constraints"
# the package's dependencies (and the extras asked for), torchcrepe excepted, from pyproject.toml
mapfile -t deps < <(EXTRAS="$extras" "$py" - <<'PY'
import os, re
text = open("pyproject.toml").read()
def array(key):  # a flat TOML array of strings (tomllib is not in Python 3.10)
    body = re.search(rf"^{key} = \[(.*?)^\]", text, re.S | re.M).group(1)
    return re.findall(r'"([^"]+)"', body)
deps = [d for d in array("dependencies") if not d.startswith("torchcrepe")]
for extra in os.environ.get("EXTRAS", "").split():
    deps += array(extra)
print("\n".join(deps))
PY
)
# torchcrepe's own needs (its declared torchaudio excepted)
pip install -c "$constraints" "${deps[@]}" resampy
pip install -c "$constraints" --no-deps "torchcrepe>=0.0.22"
# compat: the checkout itself on sys.path, so that Hydra's plugin scan (pkgutil over the hydra_plugins
# namespace) finds hydra_plugins/ddsp_lab_launcher; setuptools' default editable finder hides it
pip install -c "$constraints" --no-deps -e . --config-settings editable_mode=compat
"$py" -c "import ddsp_lab, torch; print(f'ddsp_lab installed in $venv (torch {torch.__version__})')"
