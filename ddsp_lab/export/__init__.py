"""Exported real-time models: the per-block step as TorchScript (plugin hosts: nn~, libtorch) and
ONNX (onnxruntime), with the JSON that describes them. engine.py holds the step, files.py writes it."""
from .engine import STATE_NAMES, BlockEngine, ScriptedStream
from .files import FORMATS, describe, export

__all__ = ["FORMATS", "STATE_NAMES", "BlockEngine", "ScriptedStream", "describe", "export"]
