"""Using a trained model without a Trainer: load a checkpoint as a DDSP module, export it."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import hydra
import torch
from torch import Tensor, nn

from .ddsp import DDSP
from .trust import check_targets, read_checkpoint

_PARTS = ("preprocessor", "encoder", "decoder", "synth")


def load(checkpoint: str | Path, map_location: str | torch.device = "cpu",
         trusted_targets: Iterable[str] = ()) -> DDSP:
    """A trained DDSP model in eval mode from a checkpoint written by `ddsp-lab train`.

    Self-contained: the checkpoint carries the resolved config of the parts and the model's rates
    (and loss weights, in `model.config['model']`), so nothing else is needed. The model comes
    back with its training data's record: `model.feature_settings` (the FeatureSettings that
    `ddsp_lab.features.compute` and `model.from_audio` use for a new recording),
    `model.dataset_statistics` (f0 and loudness quantiles, ...) and `model.dataset_info` (name,
    content hash, ...); all None for checkpoints written before they were saved.

    Older checkpoints load too: those without the model section with the default rates (16 kHz,
    250 frames/s) and a warning; fixed lengths (n_samples, time_steps) of checkpoints written
    before any-length rendering are dropped; parts saved at the top level of the state dict
    (before the DDSP module) are found there."""
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint does not exist: {path}")
    ckpt = read_checkpoint(path, map_location)
    cfg = ckpt.get("ddsp_lab_config") if isinstance(ckpt, dict) else None
    if not isinstance(cfg, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path} holds no ddsp_lab model (no ddsp_lab_config / state_dict): was it written "
                         f"by `ddsp-lab train`?")
    trusted_targets = tuple(trusted_targets or ())
    for k in _PARTS:
        check_targets(cfg.get(k), f"{path.name}:{k}", trusted_targets)
    section = cfg.get("model") or {}
    if not section:
        warnings.warn(f"{path} predates checkpoints that carry the model section: loaded with the default "
                      f"model settings (sample_rate 16000, frame_rate 250)")
    model = build({k: _any_length(cfg.get(k)) for k in _PARTS},
                  sample_rate=int(section.get("sample_rate", cfg.get("sample_rate", 16000))),
                  frame_rate=int(section.get("frame_rate", cfg.get("frame_rate", 250))))
    model.load_state_dict(_model_state(ckpt["state_dict"]))
    model.config = cfg
    model.set_dataset(ckpt.get("ddsp_lab_dataset"))  # older checkpoints: None
    return model.eval()


def build(parts, sample_rate: int, frame_rate: int) -> DDSP:
    """A DDSP from the configs of its parts ({preprocessor, encoder, decoder, synth}: `_target_`
    trees, None where absent), each built with hydra.utils.instantiate."""
    built = {k: hydra.utils.instantiate(parts[k]) if parts.get(k) is not None else None for k in _PARTS}
    return DDSP(built["preprocessor"], built["decoder"], built["synth"], encoder=built["encoder"],
                sample_rate=int(sample_rate), frame_rate=int(frame_rate))


def upgrade_state_dict(state_dict: dict) -> dict:
    """A training checkpoint's state dict with the parts under `model.` (the DDSP module): those
    written before it held them (preprocessor.*, decoder.*, ...) are moved there; newer ones come
    back as they are. Used by `load` and by the training module when it resumes."""
    return {f"model.{k}" if k.split(".", 1)[0] in _PARTS else k: v for k, v in state_dict.items()}


def _model_state(state_dict: dict) -> dict:
    """The DDSP module's entries of a training checkpoint's state dict (the training module's own,
    losses and counters, left out)."""
    return {k[len("model."):]: v for k, v in upgrade_state_dict(state_dict).items() if k.startswith("model.")}


def _any_length(node):
    """A part's config without the fixed lengths that checkpoints written before any-length
    rendering carry (processors' n_samples, the preprocessor's and encoders' time_steps)."""
    if isinstance(node, dict):
        return {k: _any_length(v) for k, v in node.items() if k not in ("n_samples", "time_steps")}
    if isinstance(node, list):
        return [_any_length(v) for v in node]
    return node


class _Rendering(nn.Module):
    """f0 [batch, n_frames, 1] (Hz) and loudness [batch, n_frames, 1] (dB) -> audio: the model's
    one-shot render (DDSP.render_once) as a module of two tensors, for torch.export."""

    def __init__(self, model: DDSP):
        super().__init__()
        self.model = model

    def forward(self, f0_hz: Tensor, loudness_db: Tensor) -> Tensor:
        return self.model.render_once({"f0_hz": f0_hz, "loudness_db": loudness_db})


def export(model: DDSP, f0_hz: Tensor, loudness_db: Tensor):
    """torch.export of the model's rendering from f0 and loudness, for the example input shapes;
    returns the ExportedProgram (save with torch.export.save). Check it against the eager model
    with the same inputs. A model with an encoder needs more than f0 and loudness: not exported."""
    if model.encoder is not None:
        raise ValueError("export: the model has an encoder; only f0 + loudness models export for now")
    return torch.export.export(_Rendering(model).eval(), (f0_hz, loudness_db))
