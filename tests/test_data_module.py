"""The DataModule: batch layout, crops, config checks, the prepared dataset's record (statistics,
feature settings, name, content hash; older datasets too), and DDP coverage (each example once)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from ddsp_lab.data import DDSPDataModule, DemoSource, FeatureSettings, PrepareConfig, prepare

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare(DemoSource(n_examples=16), out, PrepareConfig("demo", example_seconds=1.0, crepe_model="tiny",
                                                          viterbi=False, items_per_part=8), progress=False)
    return out


@pytest.mark.slow
def test_batches_have_the_documented_layout(prepared):
    dm = DDSPDataModule(str(prepared), batch_size=3, crop_seconds=0.5, sample_rate=16000, frame_rate=250)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (3, 8000) and batch["audio"].dtype == torch.float32
    for key in ("f0_hz", "f0_confidence", "loudness_db"):
        assert batch[key].shape == (3, 125, 1) and batch[key].dtype == torch.float32
    val = next(iter(dm.val_dataloader()))
    full = dm.splits["validation"].ds[int(val["index"][0])]
    assert torch.equal(val["audio"][0], torch.as_tensor(full["audio"][:8000]))  # validation: first crop


def test_random_crops_are_frame_aligned_and_reproducible(prepared):
    dm = DDSPDataModule(str(prepared), batch_size=1, crop_seconds=0.25)
    dm.setup()
    data = dm.splits["train"]
    a, b = data[0], data[0]
    assert torch.equal(a["audio"], b["audio"])
    row = data.ds[0]
    audio, frames = torch.as_tensor(row["audio"]), dm.crop_frames
    n = frames * 64
    assert a["audio"].shape == (n,) and a["f0_hz"].shape == (frames, 1)
    start = next(s for s in range(0, 16000 - n + 1, 64) if torch.equal(audio[s:s + n], a["audio"]))
    assert torch.equal(a["f0_hz"][:, 0], torch.as_tensor(row["f0_hz"][start // 64:start // 64 + frames]))
    starts = set()
    for round_ in range(6):  # crops move between shuffle rounds
        starts.add(tuple(data[(0, round_)]["f0_hz"][:3, 0].tolist()))
    assert len(starts) > 1


def test_train_batch_stream_is_a_function_of_the_batch_position(prepared):
    """Batch j depends on j alone (so a resumed run continues the stream exactly), every round is a
    permutation, and starting at position p yields the batches p, p + 1, ..."""
    from ddsp_lab.data.datamodule import TrainBatchStream

    stream = TrainBatchStream(10, 4, seed=3)
    assert len(stream) == 3
    whole = [stream.batch(j) for j in range(10)]
    items = [item for b in whole for item in b]
    for r in range(3):
        assert sorted(i for i, rr in items if rr == r) == list(range(10))  # each round: every example once
    late = TrainBatchStream(10, 4, seed=3, position=lambda: 4)
    assert list(late) == whole[4:7]
    assert TrainBatchStream(10, 4, seed=4).batch(0) != whole[0]
    ranks = [TrainBatchStream(10, 4, seed=3, rank=k, world_size=3) for k in range(3)]
    first_round = [i for s in ranks for b in (s.batch(0),) for i, r in b if r == 0]
    assert len(first_round) == len(set(first_round)) == 9  # disjoint shares, one example sits out


def test_dataloader_batches_follow_the_stream(prepared):
    dm = DDSPDataModule(str(prepared), batch_size=2, crop_seconds=0.25)
    dm.setup()
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader.batch_sampler)
    assert batches[1]["index"].tolist() == [i for i, _ in loader.batch_sampler.batch(1)]


def test_config_mismatch_and_missing_path_fail_clearly(prepared, tmp_path):
    with pytest.raises(ValueError, match="frame_rate=250"):
        DDSPDataModule(str(prepared), frame_rate=200)
    with pytest.raises(FileNotFoundError, match="data.path"):
        DDSPDataModule(str(tmp_path / "nothing"))


def test_the_dataset_record_holds_its_statistics_settings_name_and_content_hash(prepared):
    dm = DDSPDataModule(str(prepared))
    info = json.loads((prepared / "dataset_info.json").read_text())
    card = dm.dataset_card()
    assert card["statistics"] == dm.statistics == info["statistics"]
    assert dm.feature_settings == FeatureSettings(16000, 250, "tiny", False, 2048)
    assert card["feature_settings"] == dm.feature_settings.to_dict() and card["name"] == prepared.name
    assert card["source"] == "demo" and len(card["content_hash"]) == 40
    assert json.loads(json.dumps(card)) == card  # plain values
    assert DDSPDataModule(str(prepared)).content_hash == card["content_hash"]  # stable


def test_an_older_dataset_is_read_and_resumed_and_its_hash_follows_its_content(prepared, tmp_path):
    """A dataset prepared before loudness_n_fft was recorded: read with 2048, a rerun is not refused;
    the content hash changes with a shard's summary, not with its run time."""
    old = tmp_path / "old"
    shutil.copytree(prepared, old)
    config = json.loads((old / "prepare_config.json").read_text())
    before = DDSPDataModule(str(old)).content_hash
    del config["loudness_n_fft"]
    (old / "prepare_config.json").write_text(json.dumps(config))
    assert DDSPDataModule(str(old)).feature_settings.loudness_n_fft == 2048
    again = prepare(DemoSource(n_examples=16), old, PrepareConfig("demo", example_seconds=1.0, crepe_model="tiny",
                                                                  viterbi=False, items_per_part=8), progress=False)
    assert again["already_complete"]
    (old / "prepare_config.json").write_text(json.dumps({**config, "loudness_n_fft": 2048}, indent=3))
    complete = old / "shard-000-of-001" / "COMPLETE.json"
    summary = json.loads(complete.read_text())
    complete.write_text(json.dumps({**summary, "seconds": summary["seconds"] + 99.0}))
    assert DDSPDataModule(str(old)).content_hash == before  # the same settings and summary
    complete.write_text(json.dumps({**summary, "examples": summary["examples"] - 1}))
    assert DDSPDataModule(str(old)).content_hash != before


DDP_SCRIPT = textwrap.dedent('''
    import os, sys, torch, torch.distributed as dist
    from ddsp_lab.data import DDSPDataModule
    rank, world, path, store = int(sys.argv[1]), 2, sys.argv[2], sys.argv[3]
    # a file store: no port to probe, so no race with other processes for one
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    dm = DDSPDataModule(path, batch_size=2)
    dm.setup()
    loader = dm.train_dataloader()
    seen = torch.cat([b["index"] for b in loader])
    gathered = [torch.zeros_like(seen) for _ in range(world)]
    dist.all_gather(gathered, seen)
    if rank == 0:
        print("SEEN", sorted(torch.cat(gathered).tolist()), len(dm.splits["train"]))
    dist.destroy_process_group()
''')


@pytest.mark.slow
def test_ddp_two_ranks_see_each_training_example_once(prepared, tmp_path):
    script = tmp_path / "ddp_check.py"
    script.write_text(DDP_SCRIPT)
    store = str(tmp_path / "dist_store")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(prepared), store], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][1][-2000:] + outs[1][1][-2000:]
    line = next(l for l in outs[0][0].splitlines() if l.startswith("SEEN"))
    seen, n_train = eval(line[5:line.rindex("]") + 1]), int(line.rsplit(" ", 1)[1])
    assert len(seen) == len(set(seen)), "an example was served twice in one round"
    assert len(seen) >= n_train - 1 and set(seen) <= set(range(n_train))
