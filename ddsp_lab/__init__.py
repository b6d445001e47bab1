"""ddsp_lab: Differentiable Digital Signal Processing in PyTorch."""
__version__ = "0.1.0"
