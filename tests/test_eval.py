"""The paper's metrics on constructed cases, the bootstrap interval, and `evaluate` on a split."""
from __future__ import annotations

import math

import pytest
import torch

from ddsp_lab.eval import bootstrap_ci, f0_metrics, loudness_l1, paper_loudness, summarise
from ddsp_lab.features import CrepeF0, compute_loudness_frames

SR, FR = 16000, 250


def _tone(f0: float, seconds: float = 1.0, amplitude: float = 0.3, n_harmonics: int = 6) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return sum(amplitude / k * torch.sin(2 * torch.pi * k * f0 * t) for k in range(1, n_harmonics + 1))[None]


@pytest.fixture(scope="module")
def crepe():
    return CrepeF0("tiny", viterbi=True, device="cpu")


def test_identical_audio_scores_zero(crepe):
    audio = _tone(330.0)
    f0, conf = crepe(audio, SR, FR)
    ld = compute_loudness_frames(audio, SR, FR)
    assert float(loudness_l1(ld, ld)) == 0.0
    scores = f0_metrics(f0, conf, f0, conf)
    assert float(scores["f0_l1_semitones"]) == 0.0 and float(scores["f0_outlier"]) == 0.0
    assert float(loudness_l1(paper_loudness(audio), paper_loudness(audio))) == 0.0


def test_a_tone_one_semitone_higher_scores_one_semitone(crepe):
    f0_t, conf_t = crepe(_tone(330.0), SR, FR)
    f0, conf = crepe(_tone(330.0 * 2 ** (1 / 12)), SR, FR)
    scores = f0_metrics(f0, conf, f0_t, conf_t)
    assert abs(float(scores["f0_l1_semitones"]) - 1.0) < 0.05
    assert float(scores["f0_outlier"]) == 0.0


def test_an_octave_and_a_half_off_and_a_silent_resynthesis_are_outliers_and_an_unpitched_target_is_left_out(crepe):
    f0_t, conf_t = crepe(_tone(220.0), SR, FR)
    f0_far, conf_far = crepe(_tone(220.0 * 2 ** (13 / 12)), SR, FR)  # 13 semitones: above the 12 limit
    f0_0, conf_0 = crepe(torch.zeros(1, SR), SR, FR)
    assert float(conf_0.max()) < 0.85
    assert float(f0_metrics(f0_far, conf_far, f0_t, conf_t)["f0_outlier"]) == 1.0
    silent = f0_metrics(f0_0, conf_0, f0_t, conf_t)
    assert float(silent["f0_outlier"]) == 1.0
    noise = 0.3 * (torch.rand(1, SR, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    f0_n, conf_n = crepe(noise, SR, FR)
    left_out = f0_metrics(f0_t, conf_t, f0_n, conf_n)
    assert not bool(left_out["target_confident"]) and math.isnan(float(left_out["f0_outlier"]))
    assert math.isnan(float(left_out["f0_l1_semitones"]))
    rows = [{"loudness_l1_db": 1.0, "f0_l1_semitones": 0.2, "f0_outlier": 0.0, "target_confident": True,
             "spectral_distance": 1.0, "loudness_l1_paper_std": 0.1},
            {"loudness_l1_db": 3.0, "f0_l1_semitones": float(silent["f0_l1_semitones"]), "f0_outlier": 1.0,
             "target_confident": True, "spectral_distance": 2.0, "loudness_l1_paper_std": 0.3},
            {"loudness_l1_db": 2.0, "f0_l1_semitones": math.nan, "f0_outlier": math.nan, "target_confident": False,
             "spectral_distance": 3.0, "loudness_l1_paper_std": 0.2}]
    summary = summarise(rows)
    assert summary["counts"] == {"examples": 3, "left_out_no_confident_target": 1, "outliers": 1}
    assert summary["f0_outlier"]["mean"] == 0.5 and summary["f0_outlier"]["n"] == 2
    assert summary["f0_l1_semitones"]["mean"] == pytest.approx(0.2) and summary["f0_l1_semitones"]["n"] == 1
    assert summary["loudness_l1_db"]["mean"] == pytest.approx(2.0)


def test_the_paper_loudness_unit_is_the_reference_log_amplitude_in_its_standard_deviations():
    quiet, loud = _tone(440.0, amplitude=0.1), _tone(440.0, amplitude=0.2)
    # twice the amplitude: log(mean amplitude) + ln 2 wherever the 1e-4 floor is negligible
    diff = paper_loudness(loud)[:, 10:-10] - paper_loudness(quiet)[:, 10:-10]
    torch.testing.assert_close(diff, torch.full_like(diff, math.log(2.0) / 3.5105), atol=2e-3, rtol=0)
    assert paper_loudness(quiet).shape == (1, SR // 64 + 1)


def test_the_bootstrap_interval_holds_the_mean_shrinks_with_more_examples_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    few, many = torch.randn(20, generator=g).tolist(), torch.randn(2000, generator=g).tolist()
    a, b = bootstrap_ci(few), bootstrap_ci(many)
    for ci, values in ((a, few), (b, many)):
        assert ci["ci_low"] <= ci["mean"] <= ci["ci_high"] and ci["mean"] == pytest.approx(sum(values) / len(values))
    assert (b["ci_high"] - b["ci_low"]) < 0.3 * (a["ci_high"] - a["ci_low"])  # ~ 1 / sqrt(n): 0.1
    assert bootstrap_ci(few) == a and bootstrap_ci(few, seed=1) != a
    assert bootstrap_ci([math.nan, 1.0, 3.0])["n"] == 2
    assert math.isnan(bootstrap_ci([math.nan])["mean"])
    # 95 %: about 1.96 standard errors either side for a normal sample
    se = torch.tensor(many).std().item() / math.sqrt(len(many))
    assert (b["ci_high"] - b["ci_low"]) / (2 * se) == pytest.approx(1.96, rel=0.1)
