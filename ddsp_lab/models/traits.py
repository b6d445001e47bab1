"""What kind of model a DDSP is: the questions that transfer, streaming and export ask of it."""
from __future__ import annotations


def check_model(model) -> None:
    from ..models import DDSP

    if not isinstance(model, DDSP):
        raise ValueError(f"model must be a ddsp_lab DDSP (ddsp_lab.load(checkpoint)), got {type(model).__name__}")


def predicts_f0(model) -> bool:
    """The model's encoder predicts f0 from audio (an unsupervised model): f0 is not a control."""
    from ..networks import F0ResNetEncoder

    return model.encoder is not None and any(isinstance(m, F0ResNetEncoder) for m in model.encoder.modules())


def reads_z(model) -> bool:
    """The model's encoder computes z from the audio (timbre from the recording)."""
    from ..networks import ZEncoder

    return model.encoder is not None and any(isinstance(m, ZEncoder) for m in model.encoder.modules())
