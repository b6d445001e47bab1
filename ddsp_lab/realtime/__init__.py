"""Real time: a model played block by block with its state inside (streaming, equal to the offline
render), live input (pitch, loudness and z tracked block by block), and the exported per-block step
(engine) as TorchScript and ONNX files with the JSON that describes them (files).

    from ddsp_lab import load
    from ddsp_lab.realtime import StreamingModel, export
    live = StreamingModel(load("runs/violin/checkpoints/best.ckpt"), block_size=512)
"""
from .engine import BlockEngine, ScriptedStream
from .files import FORMATS, describe, export, run_exported
from .live import LiveFeatures, LiveZ
from .streaming import LiveTransfer, StreamingModel, check_block_size

__all__ = ["FORMATS", "BlockEngine", "LiveFeatures", "LiveTransfer", "LiveZ", "ScriptedStream",
           "StreamingModel", "check_block_size", "describe", "export", "run_exported"]
