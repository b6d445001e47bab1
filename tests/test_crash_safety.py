"""Writes that survive a crash: a process killed while it writes a checkpoint, run_info.json or a
summary leaves the previous file whole (ddsp_lab.atomic), through the library and through a real
`ddsp-lab train` killed in the middle of saving its checkpoint, which then resumes."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

CLI = str(Path(sys.executable).parent / "ddsp-lab")

# Run in a child: os._exit in the middle of the write is a kill (no cleanup, no finally blocks).
KILLED_WRITE = textwrap.dedent("""
    import os, sys, torch
    from ddsp_lab import atomic

    class DiesWhilePickled:
        def __reduce__(self):
            os._exit(9)

    kind, path = sys.argv[1], sys.argv[2]
    if kind == "torch":
        atomic.torch_save({"step": 2, "weights": torch.ones(1000), "dies": DiesWhilePickled()}, path)
    elif kind == "plain":  # what a plain write does: the file is cut as soon as it is opened
        with open(path, "wb") as f:
            torch.save({"step": 2, "weights": torch.ones(1000), "dies": DiesWhilePickled()}, f)
    else:
        class Text(str):
            def encode(self, *a):
                os._exit(9)
        atomic.write_text(path, Text('{"status": "finished"}'))
""")


def _killed_write(kind: str, path: Path) -> int:
    return subprocess.run([sys.executable, "-c", KILLED_WRITE, kind, str(path)], timeout=120).returncode


def test_a_process_killed_while_it_writes_leaves_the_previous_file_whole(tmp_path):
    ckpt, info = tmp_path / "last.ckpt", tmp_path / "run_info.json"
    torch.save({"step": 1, "weights": torch.zeros(1000)}, ckpt)
    info.write_text('{"status": "running"}')
    assert _killed_write("torch", ckpt) == 9
    assert torch.load(ckpt, weights_only=True)["step"] == 1
    assert _killed_write("text", info) == 9
    assert json.loads(info.read_text()) == {"status": "running"}
    # the same kill through a plain write destroys the file: the test above would catch a non-atomic writer
    plain = tmp_path / "plain.ckpt"
    torch.save({"step": 1}, plain)
    assert _killed_write("plain", plain) == 9
    assert plain.stat().st_size == 0


@pytest.mark.slow
def test_a_training_run_killed_while_saving_its_checkpoint_resumes_from_the_previous_one(demo_data, tmp_path):
    """sitecustomize kills the process (os._exit) halfway through writing the second last.ckpt of a
    run: the first one (step 2) is intact, run_info.json parses, and resume=true continues from step 2."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent("""
        import os
        if os.environ.get("KILL_AT_SECOND_CHECKPOINT"):
            import torch
            real, calls = torch.save, []
            def save(obj, f, *args, **kwargs):
                name = getattr(f, "name", str(f))
                if "last.ckpt" in str(name):
                    calls.append(name)
                    if len(calls) == 2:
                        f.write(b"PK\\x03\\x04 half a checkpoint")
                        f.flush()
                        os._exit(9)
                return real(obj, f, *args, **kwargs)
            torch.save = save
    """))
    run = tmp_path / "run"
    args = [CLI, "train", "experiment=tiny", f"data.path={demo_data}", f"run_dir={run}", "logger=csv",
            "trainer.enable_progress_bar=false", "data.datamodule.batch_size=1", "trainer.max_steps=4",
            "trainer.val_check_interval=2", "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0",
            "model.f0_metric=false"]
    env = {**__import__("os").environ, "PYTHONPATH": str(hook), "KILL_AT_SECOND_CHECKPOINT": "1"}
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert out.returncode == 9, out.stderr[-3000:]
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2
    assert json.loads((run / "run_info.json").read_text())["status"] == "running"
    assert [p.name for p in sorted((run / "checkpoints").iterdir()) if not p.name.startswith(".")] == ["best.ckpt", "last.ckpt"]
    out = subprocess.run([*args, "resume=true"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert json.loads((run / "run_info.json").read_text())["status"] in ("finished", "evaluated")
