"""ddsp_lab: Differentiable Digital Signal Processing in PyTorch."""
__version__ = "0.1.0"

from . import _resolvers  # noqa: F401,E402 - the configs' ${eval:...} resolver


def load(checkpoint, map_location="cpu", trusted_targets=()):
    """A trained model from a `ddsp-lab train` checkpoint (see ddsp_lab.models.load): read as data,
    built only from ddsp_lab's classes and those named in trusted_targets."""
    from .models import load as _load

    return _load(checkpoint, map_location, trusted_targets)
