"""When a frame's f0 is believed: one threshold and one rule for the whole framework (dataset
statistics, validation f0 metrics, timbre transfer's notes, the live tracker), and the pitch
held through the frames that are not.

The rule is the reference's (its eval code keeps frames with `f0_confidence >= threshold`): a
frame whose confidence equals the threshold counts. The paper's metrics use 0.85
(eval.metrics.CONFIDENCE_THRESHOLD) through the same rule."""
from __future__ import annotations

import torch
from torch import Tensor

CONFIDENT = 0.5  # CREPE confidence from which a frame's pitch is believed (a note)


def is_confident(confidence, threshold: float = CONFIDENT):
    """confidence >= threshold, for a tensor or a numpy array (same type back, boolean)."""
    return confidence >= threshold


def hold_f0(f0_hz: Tensor, on: Tensor) -> Tensor:
    """f0 where `on`, else the nearest earlier `on` frame's (the first one's before it): the pitch a
    note had, held through the unconfident frames (CREPE's f0 there is noise)."""
    if not bool(on.any()):
        return f0_hz
    index = torch.arange(f0_hz.numel(), device=f0_hz.device)
    last = torch.where(on, index, torch.full_like(index, -1)).cummax(0).values
    first = int(index[on][0])
    return f0_hz[torch.where(last < 0, torch.full_like(last, first), last)]
