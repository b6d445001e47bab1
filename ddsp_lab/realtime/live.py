"""Features of a live signal, block by block: the loudness and CREPE pitch of each frame as soon as
the frame's analysis window has arrived, equal to what `ddsp_lab.features.compute` gives offline.

    live = LiveFeatures(model.feature_settings, block_size=512)   # at the model's rate
    for block in microphone:                                      # [1, 512] samples
        f0_hz, confidence, loudness_db = live(block)              # [1, 8] each: frames k*8 - D .. k*8 - D + 7

Frame j is centred on sample j * hop, as offline. Its loudness window (n_fft 2048) and CREPE window
(1024 samples at 16 kHz) reach half their length past the centre, so block k yields the frames
that are complete: those of block k delayed by `delay_frames` D = ceil(max(n_fft, CREPE window at
the model's rate) / 2 / hop) frames (16 frames, 64 ms, at 16 kHz with the default n_fft; `latency`
in samples). The D frames before the signal come out as silence (f0 0 Hz, confidence 0, loudness
-120 dB). CREPE is decoded frame by frame (argmax, no Viterbi: Viterbi needs the frames after).
Cost on CPU: CREPE tiny about 1.5 ms per frame (one thread), i.e. about x2.5 real time at 250
frames/s; the loudness is negligible. CREPE full is far slower than real time on CPU.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import dsp
from ..features.crepe import CREPE_SAMPLE_RATE, CREPE_WINDOW, CrepeF0, normalize_frames
from ..features.framing import frame_hop
from ..features.loudness import loudness_n_fft
from ..features.settings import FeatureSettings

SILENCE_DB = -120.0


class LiveFeatures:
    """Loudness (dB), f0 (Hz) and CREPE confidence of a live signal, block by block.

    Args:
        settings: the model's FeatureSettings (model.feature_settings): its rate, frame rate and
            loudness n_fft. Its crepe_model is used unless `crepe_model` is given; the decoding is
            always argmax (live).
        block_size: samples per call, a whole number of hops.
        crepe_model: 'tiny' (default: the one fast enough for real time on CPU) or 'full'.
        device: CREPE's device (default CPU: the host's thread).
    """

    def __init__(self, settings: FeatureSettings, block_size: int, crepe_model: str | None = "tiny",
                 device: str | None = "cpu"):
        self.settings = settings
        self.sample_rate, self.frame_rate = settings.sample_rate, settings.frame_rate
        self.hop = frame_hop(self.sample_rate, self.frame_rate)
        if block_size < self.hop or block_size % self.hop:
            raise ValueError(f"block_size must be a whole number of hops ({self.hop} samples at {self.sample_rate} Hz), "
                             f"got {block_size}")
        self.block_size, self.frames_per_block = int(block_size), int(block_size) // self.hop
        self.n_fft = loudness_n_fft(settings.loudness_n_fft, self.hop)
        self.hop16 = CrepeF0._check_frame_rate(self.frame_rate)
        if self.sample_rate % CREPE_SAMPLE_RATE:
            raise ValueError(f"LiveFeatures: the model's rate must be a multiple of CREPE's 16000 Hz (16, 32, 48 kHz) "
                             f"for its frames to align, got {self.sample_rate} Hz")
        crepe_half = -(-CREPE_WINDOW * self.sample_rate // (2 * CREPE_SAMPLE_RATE))  # at the model's rate
        self.half = max(self.n_fft // 2, crepe_half)
        self.delay_frames = -(-self.half // self.hop)
        self.latency = self.delay_frames * self.hop
        self.crepe = CrepeF0(crepe_model or settings.crepe_model, viterbi=False, device=device)
        # margin for the resampling to 16 kHz (windowed sinc): its kernel reaches this far
        self.margin = 0 if self.sample_rate == CREPE_SAMPLE_RATE else 64 * max(1, self.sample_rate // CREPE_SAMPLE_RATE)
        self.reset()

    def reset(self) -> None:
        """Forget the signal: the next block starts a new one."""
        self._frames_out = 0
        keep = self.half + self.margin + (self.frames_per_block + self.delay_frames) * self.hop + self.half
        self._history = torch.zeros(1, keep)  # the last `keep` samples (zeros before the signal)
        self._received = 0

    @torch.no_grad()
    def __call__(self, audio: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The next block [1, block_size] (or [block_size]) at the model's rate -> (f0_hz,
        confidence, loudness_db), each [1, frames_per_block]: frames [k F - D, (k + 1) F - D)."""
        audio = torch.as_tensor(audio)
        audio = audio.reshape(1, -1) if audio.dim() == 1 else audio
        if audio.shape != (1, self.block_size):
            raise ValueError(f"audio must be one block [1, {self.block_size}] at {self.sample_rate} Hz, got "
                             f"{tuple(audio.shape)}")
        if not bool(torch.isfinite(audio).all()):
            raise ValueError("audio holds NaN or inf")
        history = torch.cat([self._history, audio.float().cpu()], dim=-1)[:, -self._history.shape[-1]:]
        self._history, self._received = history, self._received + self.block_size
        f, hop = self.frames_per_block, self.hop
        first = self._received // hop - f - self.delay_frames  # the first frame out
        self._frames_out += f
        # history ends at sample `received`; frame j's window is [j hop - half, j hop + half)
        start = history.shape[-1] - (self._received - (first * hop - self.half))
        window = history[:, start:start + (f - 1) * hop + 2 * self.half]
        lo = (self.half - self.n_fft // 2)
        loud = dsp.compute_loudness(window[:, lo:window.shape[-1] - lo], self.sample_rate, self.frame_rate,
                                    n_fft=self.n_fft, padding="valid")[:, :f]
        f0, confidence = self._pitch(history, start, f)
        virtual = (first + torch.arange(f)) < 0
        loud = torch.where(virtual[None], torch.full_like(loud, SILENCE_DB), loud)
        f0 = torch.where(virtual[None], torch.zeros_like(f0), f0)
        confidence = torch.where(virtual[None], torch.zeros_like(confidence), confidence)
        return f0, confidence, loud

    def _pitch(self, history: Tensor, start: int, f: int) -> tuple[Tensor, Tensor]:
        """CREPE (argmax) of the f frames whose windows start `half` before their centres at `start`."""
        if self.sample_rate == CREPE_SAMPLE_RATE:
            x16 = history[:, start + self.half - CREPE_WINDOW // 2:]
        else:
            a = max(0, start - self.margin)
            x16 = dsp.resample_audio(history[:, a:], self.sample_rate, CREPE_SAMPLE_RATE)
            centre16 = (start + self.half - a) * CREPE_SAMPLE_RATE // self.sample_rate
            x16 = x16[:, centre16 - CREPE_WINDOW // 2:]
        frames = x16[:, :(f - 1) * self.hop16 + CREPE_WINDOW].unfold(-1, CREPE_WINDOW, self.hop16).reshape(-1, CREPE_WINDOW)
        return self.crepe.decode(self.crepe._net(normalize_frames(frames))[None])


class LiveZ:
    """z of a live signal, block by block, from a model's ZEncoder (MFCCs -> layer norm -> GRU ->
    dense), equal to what the encoder gives offline.

    Frame j's MFCC window (fft_size samples) is centred on sample j * hop, as offline, where the
    signal is zero-padded by half a window at the start: block k yields frames [k F - D, (k + 1) F - D)
    with D = ceil(fft_size / 2 / hop) (8 frames, 32 ms, at 16 kHz with the paper's 1024; `latency` in
    samples). The D frames before the signal come out as z = 0 and do not advance the GRU, whose
    state is carried from block to block.

    Args:
        encoder: the model's ZEncoder (one z per model frame: time_steps None).
        block_size: samples per call, a whole number of hops.
    """

    def __init__(self, encoder, block_size: int):
        if getattr(encoder, "time_steps", None) is not None:
            raise ValueError(f"LiveZ: the encoder resamples z to {encoder.time_steps} frames (a fixed-length model); "
                             "live z needs one z per frame (time_steps=None)")
        self.encoder, self.hop, self.fft_size = encoder, int(encoder.hop), int(encoder.fft_size)
        if block_size < self.hop or block_size % self.hop:
            raise ValueError(f"block_size must be a whole number of hops ({self.hop} samples), got {block_size}")
        self.block_size, self.frames_per_block = int(block_size), int(block_size) // self.hop
        self.half = self.fft_size // 2
        self.delay_frames = -(-self.half // self.hop)
        self.latency = self.delay_frames * self.hop
        self.z_dims = int(encoder.dense.out_features)
        self.reset()

    def reset(self) -> None:
        """Forget the signal: the next block starts a new one."""
        self._history = torch.zeros(1, self.delay_frames * self.hop + self.half)  # zeros before the signal
        self._state: Tensor | None = None
        self._frames_out = -self.delay_frames  # index of the next frame out

    @torch.no_grad()
    def __call__(self, audio: Tensor) -> Tensor:
        """The next block [1, block_size] at the encoder's rate -> z [1, frames_per_block, z_dims]."""
        audio = torch.as_tensor(audio)
        audio = audio.reshape(1, -1) if audio.dim() == 1 else audio
        if audio.shape != (1, self.block_size):
            raise ValueError(f"audio must be one block [1, {self.block_size}], got {tuple(audio.shape)}")
        if not bool(torch.isfinite(audio).all()):
            raise ValueError("audio holds NaN or inf")
        param = next(self.encoder.parameters())
        segment = torch.cat([self._history, audio.float().cpu()], dim=-1)  # starts half a window before frame k F - D
        self._history = segment[:, -self._history.shape[-1]:]
        f = self.frames_per_block
        frames = segment[:, :(f - 1) * self.hop + self.fft_size].to(param.device)
        mfcc = dsp.full_precision(dsp.compute_mfcc, frames, **self.encoder.mfcc_args)  # [1, F, n_mfcc]
        first, self._frames_out = self._frames_out, self._frames_out + f
        z = torch.zeros(1, f, self.z_dims, device=param.device, dtype=param.dtype)
        skip = min(f, max(0, -first))  # frames before the signal
        if skip < f:
            out, self._state = self.encoder.rnn(self.encoder.norm(mfcc[:, skip:].to(param.dtype)), self._state)
            z[:, skip:] = self.encoder.dense(out)
        return z
