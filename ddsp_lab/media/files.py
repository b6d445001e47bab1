"""Writing audio and spectrogram images (the demo, the applications and the media logger)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def save_wav(path: str | Path, audio: Tensor | np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write mono float audio [n_samples] as WAV: 16-bit PCM (peak-normalised only if it clips) or,
    with subtype='FLOAT', 32-bit float as it is (an impulse response's quiet tail survives)."""
    import soundfile as sf

    x = audio.detach().cpu().double().numpy() if isinstance(audio, Tensor) else np.asarray(audio, np.float64)
    x = x.reshape(-1)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0 and subtype != "FLOAT":
        x = x / peak
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, int(sample_rate), subtype=subtype)
    return path


def spectrogram_db(audio, fft_size: int = 1024) -> Tensor:
    """Log-magnitude spectrogram [n_frames, n_bins] of mono audio in dB re its maximum, 80 dB range."""
    from ..dsp import amplitude_to_db, compute_mag

    mag = compute_mag(torch.as_tensor(audio).detach().float().cpu().reshape(1, -1), fft_size)[0]
    return amplitude_to_db(mag, ref_db=float(amplitude_to_db(mag.max().clamp(min=1e-9))), range_db=80.0)


def show_spectrogram(ax, audio: Tensor, sample_rate: int, fft_size: int = 1024) -> None:
    """Draw the log-magnitude spectrogram (dB, 80 dB range) of mono audio on a matplotlib axis."""
    audio = torch.as_tensor(audio).detach().float().cpu().reshape(-1)
    db = spectrogram_db(audio, fft_size)
    ax.imshow(db.T.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
              extent=(0, audio.numel() / sample_rate, 0, sample_rate / 2 / 1000))
    ax.set_ylabel("kHz")


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (making its folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_spectrogram(path: str | Path, audio: Tensor, sample_rate: int, title: str = "",
                     fft_size: int = 1024) -> Path:
    """Log-magnitude spectrogram PNG (dB, 80 dB range) of mono audio [n_samples]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    show_spectrogram(ax, audio, sample_rate, fft_size)
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    return save_figure(fig, path)
