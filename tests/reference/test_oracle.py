"""The reference oracle (magenta ddsp 3.7.0 recorded outputs) over every case at hand.

Runs ../shared/oracle/check_impl.py with our adapters in float64-reference mode; any failure,
error or missing output fails the test. Without the shared folder it is skipped, except under CI
(CI=true), where that is a failure.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORACLE = Path(os.environ.get("DDSP_LAB_ORACLE", ROOT.parent / "shared" / "oracle"))


def test_reference_oracle_all_cases():
    if not (ORACLE / "check_impl.py").exists():
        if os.environ.get("CI"):
            pytest.fail(f"the reference oracle is missing at {ORACLE} (CI must run beside ../shared)")
        pytest.skip(f"no oracle at {ORACLE} (set DDSP_LAB_ORACLE)")
    adapters = ROOT / "tests" / "reference" / "oracle_adapters.py"
    proc = subprocess.run([sys.executable, str(ORACLE / "check_impl.py"), "--adapters", str(adapters),
                           "--ref", "f64"], capture_output=True, text=True, timeout=600)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:]
    failures = [line for line in proc.stdout.splitlines()
                if any(f" {s} " in f" {line} " for s in ("FAIL", "ERROR", "MISSING"))]
    assert proc.returncode == 0 and not failures, f"{summary}\n" + "\n".join(failures[:40])
    assert " 0 failed" in summary, summary
