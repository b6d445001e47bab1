"""Spectral front-ends: ddsp_lab's STFT (reference framing: shifted-view frames + rfft) against
torch.stft and nnAudio, forward and forward + backward, and the mel front-end against nnAudio's.

    python benchmarks/spectral.py [--threads 2]

ddsp_lab keeps its own framing (the reference's uncentred, end-padded frames; torch.stft pads a
short window inside a longer FFT differently, and nnAudio centres), so the comparison is at equal
FFT size = window size, where torch.stft(center=False) computes the same frames.
"""
from __future__ import annotations

import argparse
import time

import torch

from ddsp_lab import dsp


def timeit(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from nnAudio import features

    x = torch.randn(4, 64000)
    size, hop = 2048, 512
    window = torch.hann_window(size)
    nn_stft = features.STFT(n_fft=size, hop_length=hop, window="hann", freq_scale="no",
                            center=False, output_format="Magnitude", verbose=False)
    variants = {
        "ddsp_lab compute_mag": lambda a: dsp.compute_mag(a, size, 0.75),
        "torch.stft(center=False)": lambda a: torch.stft(a, size, hop, window=window, center=False,
                                                         return_complex=True).abs(),
        "nnAudio STFT": lambda a: nn_stft(a),
    }
    print(f"STFT magnitude {size}/{hop} on [4, 64000], {args.threads} threads")
    for name, fn in variants.items():
        fwd = timeit(lambda: fn(x))
        xg = x.clone().requires_grad_(True)
        both = timeit(lambda: fn(xg).sum().backward())
        print(f"  {name:26s} forward {fwd * 1000:6.1f} ms   forward+backward {both * 1000:6.1f} ms")
    nn_mel = features.MelSpectrogram(sr=16000, n_fft=2048, n_mels=64, hop_length=512, power=1.0,
                                     htk=True, norm=None, center=False, verbose=False)
    print("log-mel 2048/512, 64 bands")
    for name, fn in {"ddsp_lab compute_logmel": lambda a: dsp.compute_logmel(a),
                     "nnAudio MelSpectrogram+log": lambda a: torch.log(nn_mel(a) + 1e-5)}.items():
        print(f"  {name:26s} forward {timeit(lambda: fn(x)) * 1000:6.1f} ms")
    cqt = dsp.CQT(16000, hop_length=64)
    print(f"  {'nnAudio CQT (84 bins)':26s} forward {timeit(lambda: cqt(x)) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
