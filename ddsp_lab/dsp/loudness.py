"""A-weighted loudness, RMS energy and power per frame, for any sample rate and frame rate.

Frames are centred by default (n_fft // 2 zeros on both sides): n_samples // hop + 1 frames with
hop = sample_rate // frame_rate; 'same' gives n_samples // hop frames (for hop | n_samples), the
count the models use; 'valid' no padding. A frame rate that does not divide the sample rate is
floored to an integer hop, as the reference does.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._cache import cached_constant
from ._checks import check_choice, check_sample_rate
from .spectral import squeeze_audio, frame
from .units import DB_RANGE, amplitude_to_db, hop_size, power_to_db

PADDINGS = ("center", "same", "valid")


def a_weighting_db(frequencies: Tensor, min_db: float = -80.0) -> Tensor:
    """IEC 61672 A-weighting in dB (0 dB at 1 kHz), floored at min_db (DC -> min_db)."""
    f_sq = frequencies.to(torch.float64) ** 2
    c = torch.tensor([12194.217, 20.598997, 107.65265, 737.86223], dtype=torch.float64) ** 2
    with torch.no_grad():
        w = 2.0 + 20.0 * (torch.log10(c[0]) + 2 * torch.log10(f_sq) - torch.log10(f_sq + c[0])
                          - torch.log10(f_sq + c[1]) - 0.5 * torch.log10(f_sq + c[2])
                          - 0.5 * torch.log10(f_sq + c[3]))
    return torch.clamp(w, min=min_db)


@cached_constant
def _a_weights_power(sample_rate: float, n_fft: int) -> Tensor:
    """A-weighting as power gains [n_fft // 2 + 1] over the rfft bins (cached per device, dtype)."""
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    return 10.0 ** (a_weighting_db(freqs) / 10.0)


def pad(x: Tensor, frame_size: int, hop_size: int, padding: str = "center") -> Tensor:
    """Pad [batch, n] for framing: 'center' adds frame_size // 2 on each side; 'same' pads the end so
    that framing without padding gives ceil(n / hop) frames."""
    check_choice("padding", padding, PADDINGS)
    if hop_size > frame_size:
        raise ValueError(f"hop_size ({hop_size}) must not exceed frame_size ({frame_size})")
    if padding == "valid":
        return x
    if padding == "center":
        return torch.nn.functional.pad(x, (frame_size // 2, frame_size // 2))
    n_frames = -(-x.shape[-1] // hop_size)
    return torch.nn.functional.pad(x, (0, (n_frames - 1) * hop_size + frame_size - x.shape[-1]))


def _hop(sample_rate: float, frame_rate: float) -> int:
    check_sample_rate("sample_rate", sample_rate)
    check_sample_rate("frame_rate", frame_rate)
    return hop_size(sample_rate, frame_rate, exact=False)


def compute_loudness(audio: Tensor, sample_rate: float = 16000, frame_rate: float = 250,
                     n_fft: int = 512, range_db: float = DB_RANGE, ref_db: float = 0.0,
                     padding: str = "center") -> Tensor:
    """A-weighted loudness in dB per frame: mean over bins of A-weighted power |STFT|^2, in dB
    (floored at -range_db). Periodic Hann window of n_fft, hop sample_rate // frame_rate.

    The low-level function, with the reference's defaults (n_fft 512, an extra final frame). Its
    values depend on n_fft (mean power over bins: n_fft 512 reads about 6 dB below 2048): the
    loudness a model is trained on (prepared data: n_fft 2048, n_samples / hop frames) comes from
    `ddsp_lab.features.compute`, which is what users call.

    Args:
        audio: [batch, n_samples] or [n_samples].
    Returns:
        [batch, n_frames] (or [n_frames]) dB.
    """
    is_1d = audio.dim() == 1
    x = squeeze_audio(audio)
    hop = _hop(sample_rate, frame_rate)
    if hop > n_fft:
        raise ValueError(f"n_fft ({n_fft}) must be at least the hop sample_rate // frame_rate = {hop} "
                         f"(sample_rate={sample_rate}, frame_rate={frame_rate}); raise n_fft")
    x = pad(x, n_fft, hop, padding)
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
    spec = torch.fft.rfft(frame(x, n_fft, hop, pad_end=False) * window)
    power = spec.real ** 2 + spec.imag ** 2
    weights = _a_weights_power(float(sample_rate), n_fft, dtype=x.dtype, device=x.device)
    loudness = power_to_db((power * weights).mean(-1), ref_db=ref_db, range_db=range_db)
    return loudness[0] if is_1d else loudness


def compute_rms_energy(audio: Tensor, sample_rate: float = 16000, frame_rate: float = 250,
                       frame_size: int = 512, padding: str = "center") -> Tensor:
    """Root-mean-square amplitude per frame [batch, n_frames]."""
    is_1d = audio.dim() == 1
    x = squeeze_audio(audio)
    hop = _hop(sample_rate, frame_rate)
    if hop > frame_size:
        raise ValueError(f"frame_size ({frame_size}) must be at least the hop sample_rate // frame_rate "
                         f"= {hop} (sample_rate={sample_rate}, frame_rate={frame_rate})")
    frames = frame(pad(x, frame_size, hop, padding), frame_size, hop, pad_end=False)
    rms = torch.sqrt((frames ** 2).mean(-1))
    return rms[0] if is_1d else rms


def compute_power(audio: Tensor, sample_rate: float = 16000, frame_rate: float = 250,
                  frame_size: int = 512, range_db: float = DB_RANGE, ref_db: float = 0.0,
                  padding: str = "center") -> Tensor:
    """Frame power in dB: amplitude_to_db of the RMS energy."""
    rms = compute_rms_energy(audio, sample_rate, frame_rate, frame_size, padding)
    return amplitude_to_db(rms, ref_db=ref_db, range_db=range_db)
