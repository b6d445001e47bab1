"""Reading a user's recording, and what an application gives back (audio, curves, a figure)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SILENT_RMS = 1e-5  # below this RMS (about -100 dBFS) a recording is silence


def read_input(path: str | Path, name: str = "audio") -> tuple[Tensor, int, list[str]]:
    """Any audio file libsndfile reads -> (mono float32 [n_samples], its sample rate, notes on what
    was done: a stereo file is mixed down). Missing, unreadable, empty, non-finite or silent files
    raise with the path and the reason."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such file {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types
        raise ValueError(f"{name}: {path} is not a readable audio file ({type(e).__name__}: {str(e)[:100]})") from e
    notes = []
    if data.shape[1] > 1:
        notes.append(f"{name}: {data.shape[1]} channels mixed down to mono")
    audio = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    check_recording(audio, name)
    return audio, int(sr), notes


def check_recording(audio: Tensor, name: str = "audio") -> Tensor:
    """A recording [n_samples] (or [1, n_samples]) that an application can work on: finite, not
    empty, not silent. Returns it as [n_samples]."""
    if not torch.is_tensor(audio):
        raise ValueError(f"{name} must be a tensor [n_samples], got {type(audio).__name__}")
    if audio.dim() == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if audio.dim() != 1 or audio.numel() == 0:
        raise ValueError(f"{name} must be mono audio [n_samples] (or [1, n_samples]) with samples, got "
                         f"{tuple(audio.shape)}; mix a multichannel signal down first")
    if not bool(torch.isfinite(audio).all()):
        raise ValueError(f"{name} holds NaN or inf samples ({int((~torch.isfinite(audio)).sum())} of {audio.numel()})")
    rms = float(audio.double().square().mean().sqrt())
    if rms < SILENT_RMS:
        raise ValueError(f"{name} is silent (RMS {rms:.1e}, below {SILENT_RMS:g}): nothing to transfer")
    return audio


@dataclass
class AppResult:
    """What an application returns: the output audio at sample_rate, the input it read (if any),
    the control curves before and after editing (f0_hz, loudness_db, ... [n_frames] at
    frame_rate) and notes on what was done (also printed by the CLI)."""

    audio: Tensor
    sample_rate: int
    frame_rate: int
    curves: dict[str, Tensor] = field(default_factory=dict)
    input_audio: Tensor | None = None
    input_sample_rate: int | None = None
    notes: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    title: str = ""

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def save(self, wav: str | Path, png: bool = True, float_wav: bool = False) -> list[Path]:
        """Write the audio to `wav` (16-bit PCM, or 32-bit float) and, with png, the figure beside it
        (same name, .png). Returns the paths written."""
        from ..media import save_wav

        wav = Path(wav)
        written = [save_wav(wav, self.audio, self.sample_rate, subtype="FLOAT" if float_wav else "PCM_16")]
        if png:
            written.append(save_figure(wav.with_suffix(".png"), self))
        return written


def save_figure(path: str | Path, result: AppResult) -> Path:
    """A PNG of the input's and the output's spectrograms over the control curves before and after
    the application changed them (f0 on a log axis, loudness in dB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..media import save_figure as write, show_spectrogram

    panels = [("input", result.input_audio, result.input_sample_rate)] if result.input_audio is not None else []
    panels.append(("output", result.audio, result.sample_rate))
    curve_rows = [k for k in ("f0_hz", "loudness_db") if any(c.startswith(k) for c in result.curves)]
    fig, axes = plt.subplots(len(panels) + len(curve_rows), 1, figsize=(9, 2.3 * (len(panels) + len(curve_rows))),
                             dpi=90, squeeze=False)
    axes = axes[:, 0]
    for ax, (label, audio, sr) in zip(axes, panels):
        audio = audio.detach().float().cpu().reshape(-1)
        show_spectrogram(ax, audio, sr, 1024 if sr <= 24000 else 2048)
        ax.set_title(f"{label} ({audio.numel() / sr:.2f} s at {sr} Hz)", fontsize=9)
    for ax, key in zip(axes[len(panels):], curve_rows):
        for name, curve in result.curves.items():
            if name.startswith(key):
                curve = curve.detach().float().cpu().reshape(-1)
                t = np.arange(curve.numel()) / result.frame_rate
                ax.plot(t, curve.numpy(), lw=1, label=name.split("/", 1)[-1] if "/" in name else name)
        if key == "f0_hz":
            ax.set_yscale("log")
        ax.set_ylabel("f0 (Hz)" if key == "f0_hz" else "loudness (dB)")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("time (s)")
    if result.title:
        fig.suptitle(result.title, fontsize=10)
    return write(fig, path)
