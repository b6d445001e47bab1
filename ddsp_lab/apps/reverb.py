"""Dereverberation (the dry signal a model with a reverb learned) and reverb transfer (its
impulse response, exported and applied to any audio)."""
from __future__ import annotations

import torch
from torch import Tensor

from .io import AppResult, check_recording
from .transfer import DEFAULT_CHUNK_SECONDS, check_model, recording_features


def reverb_nodes(model) -> list[str]:
    """The names of the model's reverb nodes (processors.Reverb and its kinds)."""
    from ..processors import Reverb

    return model.synth.effect_nodes(Reverb)


def _reverb_node(model, node: str | None) -> str:
    nodes = reverb_nodes(model)
    if not nodes:
        raise ValueError(f"this model's synth stack has no reverb node (its nodes: {model.synth.names}): "
                         f"nothing to dereverberate or export; train with synth=harmonic_noise_reverb")
    if node is None:
        return nodes[-1]
    if node not in nodes:
        raise ValueError(f"node: {node!r} is not a reverb node of this model; its reverb nodes are {nodes}")
    return node


@torch.no_grad()
def dereverb(model, audio: Tensor, sample_rate: int, crepe_model: str | None = None, f0_hz: Tensor | None = None,
             chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS, seed: int | None = 0) -> AppResult:
    """A recording resynthesised with the model's reverb nodes bypassed: the dry signal the model
    learned to put through its room (blind dereverberation, the paper's section 5.3). info['wet']
    holds the resynthesis with the reverb, for comparison."""
    check_model(model)
    nodes = reverb_nodes(model)
    _reverb_node(model, None)
    features, notes = recording_features(model, audio, sample_rate, crepe_model, f0_hz)
    wet = model.render(features, chunk_seconds=chunk_seconds, seed=seed)[0].cpu()
    with model.synth.bypass(nodes):
        dry = model.render(features, chunk_seconds=chunk_seconds, seed=seed)[0].cpu()
    curves = {"f0_hz/input": features["f0_hz"][0, :, 0].cpu(), "loudness_db/input": features["loudness_db"][0, :, 0].cpu()}
    notes.append(f"reverb node(s) {nodes} bypassed")
    return AppResult(dry, model.sample_rate, model.frame_rate, curves, check_recording(audio), int(sample_rate), notes,
                     {"wet": wet, "bypassed": nodes}, "dereverberation: the model's dry signal")


@torch.no_grad()
def impulse_response(model, node: str | None = None, seed: int = 0) -> Tensor:
    """The impulse response [n_taps] of the model's reverb node (the last one by default): what the
    node does to a unit impulse, the dry path included (tap 0 is 1 when it adds the dry signal).
    A reverb whose IR is drawn from noise (ExpDecayReverb, FilteredNoiseReverb) draws the one
    `model.render(..., seed=seed)` draws."""
    check_model(model)
    name = _reverb_node(model, node)
    proc = model.synth.processors[model.synth.names.index(name)]
    if not getattr(proc, "trainable", False):
        raise ValueError(f"reverb node {name!r} ({type(proc).__name__}) takes its IR from the decoder per "
                         f"recording, not as a learned parameter: there is no single IR to export")
    from ..processors import PositionalNoise

    with model.synth.noise_from(PositionalNoise(int(seed))):  # the IR model.render(..., seed=seed) draws
        ir = proc._mask_dry_ir(proc.get_controls(torch.zeros(1, 1, device=model.device))["ir"].float())[0]
    if proc.add_dry:
        ir = ir.clone()
        ir[0] = ir[0] + 1.0
    return ir.cpu()


def apply_reverb(audio: Tensor, sample_rate: int, ir: Tensor, ir_sample_rate: int, keep_tail: bool = True) -> AppResult:
    """Any recording [n_samples] through an impulse response [n_taps] (a model's, from
    impulse_response, or any IR). The audio is resampled to the IR's rate (said in the notes);
    the output keeps the reverb's tail (n_samples + n_taps - 1) unless keep_tail=False."""
    from .. import dsp
    from ..features import resample_recording

    audio = check_recording(audio)
    ir = torch.as_tensor(ir).reshape(-1).float()
    if ir.numel() == 0 or not bool(torch.isfinite(ir).all()):
        raise ValueError(f"ir must be a finite impulse response [n_taps], got {tuple(ir.shape)}")
    notes = []
    x = audio
    if int(sample_rate) != int(ir_sample_rate):
        x = resample_recording(audio, int(sample_rate), int(ir_sample_rate))
        notes.append(f"audio resampled from {int(sample_rate)} Hz to the IR's {int(ir_sample_rate)} Hz")
    wet = dsp.fft_convolve(x[None].double(), ir[None].double(), padding="valid", delay_compensation=0)[0]
    if not keep_tail:
        wet = wet[:x.numel()]
    notes.append(f"IR of {ir.numel()} taps ({ir.numel() / ir_sample_rate:.2f} s) applied")
    return AppResult(wet.float(), int(ir_sample_rate), 0, {}, audio, int(sample_rate), notes,
                     {"ir_taps": int(ir.numel())}, "reverb transfer")


def model_reverb(model, audio: Tensor, sample_rate: int, node: str | None = None, seed: int = 0,
                 keep_tail: bool = True) -> AppResult:
    """apply_reverb with the model's learned impulse response (reverb transfer)."""
    return apply_reverb(audio, sample_rate, impulse_response(model, node, seed), model.sample_rate, keep_tail)
