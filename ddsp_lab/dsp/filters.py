"""FIR filters: frequency-sampled design, sinc filters, FFT convolution, time-varying filtering.

Shapes: audio [batch, n_samples]; impulse responses [batch, ir_size] (one filter) or
[batch, n_frames, ir_size] (one filter per frame: audio is cut into n_frames equal blocks, each
convolved with its own IR and overlap-added, the reference's time-varying filtering).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_batch, check_choice, check_rank
from .precision import exporting


def _hann(n: int, dtype, device, periodic: bool = True) -> Tensor:
    return torch.hann_window(n, periodic=periodic, dtype=dtype, device=device)


def apply_window_to_impulse_response(impulse_response: Tensor, window_size: int = 0,
                                     causal: bool = False) -> Tensor:
    """Window a zero-phase (or causal) IR with a Hann window and return it in causal form.

    Args:
        impulse_response: [..., ir_size], zero-phase form (peak at index 0) unless causal=True.
        window_size: Hann length; <= 0 or > ir_size means ir_size. A shorter window also trims the
            IR to window_size taps (time resolution vs. frequency resolution).
    Returns:
        causal IR [..., ir_size] for a full-length window; a shortened window trims the IR to
        window_size taps when window_size is odd and window_size - 1 when even (the reference's
        arithmetic; the shortened window then sits one sample off-centre, also as the reference).
    """
    if causal:
        impulse_response = torch.fft.fftshift(impulse_response, dim=-1)
    ir_size = impulse_response.shape[-1]
    if window_size <= 0 or window_size > ir_size:
        window_size = ir_size
    padding = ir_size - window_size
    # The reference uses a periodic Hann over the whole IR, a symmetric one when it shortens it.
    window = _hann(window_size, impulse_response.dtype, impulse_response.device, periodic=padding == 0)
    if padding > 0:
        half = (window_size + 1) // 2
        window = torch.cat([window[half:], window.new_zeros(padding), window[:half]])
        ir = impulse_response * window
        first_half_start = (ir_size - (half - 1)) + 1
        return torch.cat([ir[..., first_half_start:], ir[..., :half + 1]], dim=-1)
    ir = impulse_response * torch.fft.fftshift(window, dim=-1)
    return torch.fft.fftshift(ir, dim=-1)


def frequency_impulse_response(magnitudes: Tensor, window_size: int = 0) -> Tensor:
    """Linear-phase FIR from sampled magnitudes (frequency sampling method).

    Args:
        magnitudes: [batch, n_frames, n_freq] or [batch, n_freq], linearly spaced from 0 Hz to
            Nyquist inclusive.
        window_size: Hann window length (see apply_window_to_impulse_response).
    Returns:
        [batch, (n_frames,) ir_size] causal IRs, ir_size = 2 (n_freq - 1), or about window_size
        for a shorter window (see apply_window_to_impulse_response).
    """
    check_rank("magnitudes", magnitudes, (2, 3), "[batch, n_frames, n_freq] or [batch, n_freq]")
    ir = torch.fft.irfft(magnitudes.to(torch.promote_types(magnitudes.dtype, torch.float32)), dim=-1)
    return apply_window_to_impulse_response(ir, window_size)


def _overlap_add(frames: Tensor, hop: int, rotate: int = 0, length: int | None = None) -> Tensor:
    """[batch, n_frames, frame_len] -> [batch, (n_frames - 1) * hop + frame_len].

    rotate: overlap-add every frame rolled right by that many samples (circular, a multiple of hop
    that divides frame_len: the roll is then an order of the hop chunks, no copy). length: only
    the first `length` samples of each (rolled) frame can be non-zero; chunks past it are skipped.
    """
    batch, n_frames, frame_len = frames.shape
    if rotate and (rotate % hop or frame_len % hop):
        frames, rotate = torch.roll(frames, rotate, -1), 0
    if n_frames == 1:
        return torch.roll(frames[:, 0], rotate, -1) if rotate else frames[:, 0]
    r = -(-frame_len // hop)
    x = frames if r * hop == frame_len else torch.nn.functional.pad(frames, (0, r * hop - frame_len))
    x = x.reshape(batch, n_frames, r, hop)
    out = frames.new_zeros(batch, n_frames + r - 1, hop)
    shift = rotate // hop
    for i in range(min(r, -(-length // hop)) if length else r):  # slice-adds into one buffer (CopySlices under autograd)
        out[:, i:i + n_frames] += x[:, :, (i - shift) % r]
    return out.reshape(batch, -1)[:, : (n_frames - 1) * hop + frame_len]


def crop_and_compensate_delay(audio: Tensor, audio_size: int, ir_size: int, padding: str,
                              delay_compensation: int) -> Tensor:
    """Crop a full convolution to 'same' (audio_size) or 'valid' (audio_size + ir_size - 1).

    delay_compensation < 0 removes (ir_size - 1) // 2 - 1 samples from the front (the reference's
    convention: a 2-sample delay remains for even IRs of frequency_impulse_response); >= 0 removes
    exactly that many.
    """
    check_choice("padding", padding, ("same", "valid"))
    crop_size = audio_size if padding == "same" else ir_size + audio_size - 1
    start = delay_compensation_samples(ir_size, delay_compensation)
    return audio[:, start:start + crop_size]


def delay_compensation_samples(ir_size: int, delay_compensation: int = -1) -> int:
    """Samples crop_and_compensate_delay removes from the front of a full convolution."""
    return (ir_size - 1) // 2 - 1 if delay_compensation < 0 else delay_compensation


def fast_fft_size(n: int) -> int:
    """The smallest 2^k or 3 * 2^k >= n: sizes the FFT libraries transform fastest, 3 * 2^k up to
    a third smaller than the next power of two (a 64-sample block with a 128-tap filter: 192, not
    256)."""
    power = 1 << math.ceil(math.log2(max(1, n)))
    three = 3 << max(0, math.ceil(math.log2(max(1, n) / 3)))
    return min(power, three) if three >= n else power


def block_convolve(frames: Tensor, impulse_response: Tensor) -> Tensor:
    """Full FFT convolution of each block with its IR: frames [batch, n_blocks, block] and
    impulse_response [batch | 1, n_blocks | 1, ir_size] -> [batch, n_blocks, fft_size], fft_size
    = fast_fft_size(block + ir_size - 1) (the samples past block + ir_size - 1 are ~0).
    Overlap-added every `block` samples (_overlap_add) it is the full time-varying convolution."""
    fft_size = fast_fft_size(frames.shape[-1] + impulse_response.shape[-1] - 1)
    spec = torch.fft.rfft(frames, n=fft_size) * torch.fft.rfft(impulse_response, n=fft_size)
    return torch.fft.irfft(spec, n=fft_size)


class OverlapAdd:
    """A running overlap-add buffer for signals rendered chunk by chunk: `add(segment, at)` sums a
    segment that starts at absolute sample `at`; `take(position, n)` returns samples
    [position, position + n) (zeros where nothing was added) and forgets everything before
    position + n. The state of a convolution's tail between chunks (filtered noise, reverb)."""

    def __init__(self) -> None:
        self.buffer: Tensor | None = None
        self.start = 0

    def add(self, segment: Tensor, at: int) -> None:
        if self.buffer is None or self.buffer.shape[-1] == 0:
            self.buffer, self.start = segment, at
            return
        if at < self.start:
            raise ValueError(f"OverlapAdd: a segment at {at} starts before the buffer ({self.start})")
        end = max(self.start + self.buffer.shape[-1], at + segment.shape[-1])
        out = segment.new_zeros(segment.shape[0], end - self.start)
        out[:, : self.buffer.shape[-1]] = self.buffer
        out[:, at - self.start: at - self.start + segment.shape[-1]] += segment
        self.buffer = out

    def take(self, position: int, n: int) -> Tensor:
        if self.buffer is None:
            raise ValueError("OverlapAdd.take before any add")
        lo = position - self.start
        if lo < 0:
            raise ValueError(f"OverlapAdd: samples from {position} were already taken (buffer starts at {self.start})")
        out = self.buffer[:, lo: lo + n]
        if out.shape[-1] < n:
            out = torch.nn.functional.pad(out, (0, n - out.shape[-1]))
        self.buffer, self.start = self.buffer[:, lo + n:], position + n
        return out


class PartitionedConvolution:
    """A long FIR (a reverb's IR) applied to a stream of blocks by uniformly partitioned
    overlap-save: the IR is cut into P partitions of block_size taps, each transformed once
    (FFT size 2 x block_size); each block costs one FFT, one inverse FFT and P complex
    multiply-adds of block_size + 1 bins (a frequency-domain delay line of the last P input
    spectra), never a convolution over the IR's whole length. Output sample for sample equals
    the linear convolution of everything streamed so far with the IR, within float rounding.

    ir: [batch, n_taps]; calls take x [batch, block_size] and return [batch, block_size].
    """

    def __init__(self, ir: Tensor, block_size: int):
        check_rank("ir", ir, (2,), "[batch, n_taps]")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = int(block_size)
        self.spectra = partition_spectra(ir, block_size)  # [batch, P, b + 1, 2]
        self.delay_line = torch.zeros_like(self.spectra)
        self.previous = ir.new_zeros(ir.shape[0], self.block_size)

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.block_size or x.shape[0] != self.previous.shape[0]:
            raise ValueError(f"PartitionedConvolution: blocks must be [{self.previous.shape[0]}, {self.block_size}], "
                             f"got {tuple(x.shape)}")
        y, self.delay_line, self.previous = partitioned_step(x, self.spectra, self.delay_line, self.previous)
        return y


def partition_spectra(ir: Tensor, block_size: int) -> Tensor:
    """A FIR cut into P partitions of block_size taps, each transformed (FFT size 2 x block_size):
    ir [batch, n_taps] -> [batch, P, block_size + 1, 2] (real views), `partitioned_step`'s filter."""
    b = int(block_size)
    n_parts = -(-ir.shape[-1] // b)
    parts = torch.nn.functional.pad(ir, (0, n_parts * b - ir.shape[-1])).reshape(ir.shape[0], n_parts, b)
    return torch.view_as_real(torch.fft.rfft(parts, n=2 * b)).contiguous()


def partitioned_step(x: Tensor, spectra: Tensor, delay_line: Tensor, previous: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One block of uniformly partitioned overlap-save, a pure function of its state (the one
    implementation: PartitionedConvolution, the reverb's block rendering and the exported engine).

    Args:
        x: [batch, block_size], the next block of input.
        spectra: [batch | 1, P, block_size + 1, 2], the filter (`partition_spectra`).
        delay_line: [batch, P, block_size + 1, 2], the last P input spectra, newest first (zeros at
            the start). previous: [batch, block_size], the previous input block (zeros at the start).
    Returns:
        (y [batch, block_size], the next delay_line, the next previous): y is the linear convolution
        of everything streamed so far with the filter, sample for sample (float rounding).
    """
    b = x.shape[-1]
    spectrum = torch.view_as_real(torch.fft.rfft(torch.cat([previous, x], dim=-1)))  # [batch, b + 1, 2]
    delay_line = torch.cat([spectrum[:, None], delay_line[:, :-1]], dim=1)
    return torch.fft.irfft(_complex_product(delay_line, spectra).sum(1), n=2 * b)[:, b:], delay_line, x


def _complex_product(a: Tensor, b: Tensor) -> Tensor:
    """a * b for complex numbers held as real views [..., 2] -> a complex tensor (from real
    arithmetic where the graph is exported: ONNX has no complex tensors)."""
    if exporting():
        a_re, a_im, b_re, b_im = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
        return torch.view_as_complex(torch.stack([a_re * b_re - a_im * b_im, a_re * b_im + a_im * b_re], dim=-1))
    return torch.view_as_complex(a) * torch.view_as_complex(b)


def fft_convolve(audio: Tensor, impulse_response: Tensor, padding: str = "same",
                 delay_compensation: int = -1) -> Tensor:
    """Convolve audio with one IR, or one IR per block of audio, by FFT.

    Args:
        audio: [batch, n_samples].
        impulse_response: [batch | 1, ir_size] or [batch | 1, n_frames, ir_size]; with n_frames
            IRs the audio is cut into n_frames blocks of ceil(n_samples / n_frames) samples.
        padding: 'same' (n_samples out) or 'valid' (n_samples + ir_size - 1 out).
        delay_compensation: see crop_and_compensate_delay.
    """
    check_rank("audio", audio, (2,), "[batch, n_samples]")
    check_rank("impulse_response", impulse_response, (2, 3),
               "[batch, ir_size] or [batch, n_frames, ir_size]")
    check_choice("padding", padding, ("same", "valid"))
    check_batch("audio", audio, "impulse_response", impulse_response)
    ir = impulse_response[:, None, :] if impulse_response.dim() == 2 else impulse_response
    batch, n_samples = audio.shape
    n_ir_frames, ir_size = ir.shape[1], ir.shape[2]
    frame_size = -(-n_samples // n_ir_frames)
    n_audio_frames = -(-n_samples // frame_size)
    if n_audio_frames != n_ir_frames:
        raise ValueError(f"fft_convolve: {n_samples} audio samples cut into blocks of {frame_size} "
                         f"give {n_audio_frames} blocks, but impulse_response has {n_ir_frames} "
                         f"frames; use n_samples divisible by n_frames")
    pad = n_audio_frames * frame_size - n_samples
    frames = torch.nn.functional.pad(audio, (0, pad)).reshape(batch, n_audio_frames, frame_size)
    out = _overlap_add(block_convolve(frames, ir), frame_size)
    return crop_and_compensate_delay(out, n_samples, ir_size, padding, delay_compensation)


def frequency_filter(audio: Tensor, magnitudes: Tensor, window_size: int = 0,
                     padding: str = "same") -> Tensor:
    """Filter audio with FIRs designed from sampled magnitudes (time-varying with framed mags).

    Args:
        audio: [batch, n_samples].
        magnitudes: [batch, n_frames, n_freq] (one filter per block) or [batch, n_freq].
        window_size: FIR length; 0 = 2 (n_freq - 1).
    Equals fft_convolve(audio, frequency_impulse_response(magnitudes, window_size), padding). With
    framed magnitudes the filters' spectra come from one matrix product instead: the design (an
    inverse FFT, the window, the shift to causal form) and the FFT of the IR are linear in the
    magnitudes, so they are one [n_freq, bins] complex matrix, made once per shape and cached
    (design_spectrum). Two FFTs per block fewer: (b) of benchmarks/dsp.py 2x faster.
    """
    if magnitudes.dim() != 3:
        return fft_convolve(audio, frequency_impulse_response(magnitudes, window_size), padding=padding)
    check_rank("audio", audio, (2,), "[batch, n_samples]")
    check_choice("padding", padding, ("same", "valid"))
    check_batch("audio", audio, "magnitudes", magnitudes)
    batch, n_samples = audio.shape
    n_frames, n_freq = magnitudes.shape[1], magnitudes.shape[2]
    frame_size = -(-n_samples // n_frames)
    if -(-n_samples // frame_size) != n_frames:
        raise ValueError(f"frequency_filter: {n_samples} audio samples cut into blocks of {frame_size} give "
                         f"{-(-n_samples // frame_size)} blocks, but magnitudes has {n_frames} frames; use n_samples "
                         f"divisible by n_frames")
    frames = torch.nn.functional.pad(audio, (0, n_frames * frame_size - n_samples)).reshape(batch, n_frames, frame_size)
    out = filter_frames(frames, magnitudes, window_size)
    ir_size = design_ir_size(n_freq, window_size)
    return crop_and_compensate_delay(out, n_samples, ir_size, padding, -1)


def filter_frames(frames: Tensor, magnitudes: Tensor, window_size: int = 0) -> Tensor:
    """Each frame convolved with its own FIR, designed from sampled magnitudes, and overlap-added:
    frames [batch, n_frames, frame_size] (consecutive blocks of a signal), magnitudes [batch | 1,
    n_frames, n_freq] -> the full time-varying convolution [batch, (n_frames - 1) * frame_size +
    fft_size] (its first n_frames * frame_size + ir_size - 1 samples; the rest ~0), undelayed.

    The one implementation of the time-varying FIR filter: `frequency_filter` crops it, the filtered
    noise renders its blocks with it (one shot, chunk by chunk, exported). The design and the IR's
    FFT are linear in the magnitudes: one cached [n_freq, bins] matrix (design_spectrum); the
    complex products run on real views where the graph is exported (ONNX has no complex tensors)."""
    frame_size, n_freq = int(frames.shape[-1]), int(magnitudes.shape[-1])  # plain ints in a traced graph too
    dtype = torch.promote_types(magnitudes.dtype, torch.float32)
    ir_size = design_ir_size(n_freq, window_size)
    fft_size = fast_fft_size(frame_size + ir_size - 1)
    real, imag, shift = design_spectrum(n_freq, window_size, fft_size, dtype, magnitudes.device)
    mags = magnitudes.to(dtype)
    length = frame_size + ir_size - 1  # of each block's linear convolution
    ri = torch.view_as_real(torch.fft.rfft(frames.to(dtype), n=fft_size))  # [b, f, bins, 2]
    if imag is None:  # a zero-phase design: a real response; the causal shift rolls each block after
        response = torch.matmul(mags, real)[..., None]
        needs_spectrum = torch.is_grad_enabled() and (mags.requires_grad or frames.requires_grad)
        filtered = ri * response if needs_spectrum else ri.mul_(response)
    else:
        response = torch.stack([torch.matmul(mags, real), torch.matmul(mags, imag)], dim=-1)  # [b | 1, f, bins, 2]
        filtered = torch.view_as_real(_complex_product(ri, response))
    blocks = torch.fft.irfft(torch.view_as_complex(filtered), n=fft_size)
    return _overlap_add(blocks, frame_size, rotate=shift, length=length)


def design_ir_size(n_freq: int, window_size: int = 0) -> int:
    """Taps of frequency_impulse_response for n_freq magnitudes and a window_size."""
    ir_size = 2 * (n_freq - 1)
    if 0 < window_size < ir_size:
        return window_size if window_size % 2 else window_size - 1
    return ir_size


_DESIGN_CACHE: dict = {}


def design_spectrum(n_freq: int, window_size: int, fft_size: int, dtype: torch.dtype,
                    device: torch.device | str) -> tuple[Tensor, Tensor | None, int]:
    """frequency_impulse_response as a linear map of the magnitudes, in the frequency domain:
    `rfft(frequency_impulse_response(m, window_size), n=fft_size) = m @ (real + i imag)`, each
    [n_freq, fft_size // 2 + 1]; returns (real, imag, 0). Where the design is a zero-phase filter
    shifted to causal form by `shift` samples (the full-length window: a symmetric IR), its
    spectrum is real up to that shift: returns (real, None, shift), with `m @ real` the spectrum
    of the IR advanced by `shift`. Designed in float64 once per arguments and cached."""
    key = (n_freq, window_size, fft_size, dtype, str(device))
    if key not in _DESIGN_CACHE:
        if len(_DESIGN_CACHE) > 64:
            _DESIGN_CACHE.clear()
        with torch.inference_mode(False), torch.no_grad():  # plain tensors: a first call in a validation loop
            _DESIGN_CACHE[key] = _design_spectrum(n_freq, window_size, fft_size, dtype, device)  # serves training too
    return _DESIGN_CACHE[key]


def _design_spectrum(n_freq: int, window_size: int, fft_size: int, dtype: torch.dtype,
                     device: torch.device | str) -> tuple[Tensor, Tensor | None, int]:
    design = frequency_impulse_response(torch.eye(n_freq, dtype=torch.float64)[None], window_size)[0]
    spectrum = torch.fft.rfft(design, n=fft_size)
    shift = design.shape[-1] // 2
    k = torch.arange(spectrum.shape[-1], dtype=torch.float64)
    advanced = spectrum * torch.exp(2j * math.pi * k * shift / fft_size)
    if float(advanced.imag.abs().max()) <= 1e-12 * max(1.0, float(advanced.real.abs().max())):
        return advanced.real.to(dtype).contiguous().to(device), None, shift
    return spectrum.real.to(dtype).contiguous().to(device), spectrum.imag.to(dtype).contiguous().to(device), 0


def sinc(x: Tensor, threshold: float = 1e-20) -> Tensor:
    """Normalised sinc, sin(pi x) / (pi x)."""
    x = torch.where(x.abs() < threshold, torch.full_like(x, threshold), x)
    return torch.sin(math.pi * x) / (math.pi * x)


def sinc_impulse_response(cutoff_frequency: Tensor, window_size: int = 512,
                          sample_rate: float | None = None) -> Tensor:
    """Symmetric-Hamming-windowed sinc low-pass with unity DC gain, window_size // 2 * 2 + 1 taps.

    Args:
        cutoff_frequency: [batch, n_frames, 1] (or broadcastable); in Hz with sample_rate, else as
            a fraction of Nyquist in [0, 1].
    Returns:
        [batch, n_frames, window_size // 2 * 2 + 1].
    """
    if sample_rate is not None:
        cutoff_frequency = cutoff_frequency * (2.0 / float(sample_rate))
    half = window_size // 2
    n_taps = 2 * half + 1
    idx = torch.arange(-half, half + 1, dtype=cutoff_frequency.dtype, device=cutoff_frequency.device)
    ir = sinc(cutoff_frequency * idx)
    ir = ir * torch.hamming_window(n_taps, periodic=False, dtype=ir.dtype, device=ir.device)
    return ir / ir.sum(-1, keepdim=True).abs()


def sinc_filter(audio: Tensor, cutoff_frequency: Tensor, window_size: int = 512,
                sample_rate: float | None = None, padding: str = "same",
                high_pass: bool = False) -> Tensor:
    """Filter audio with time-varying sinc low-pass (or high-pass) filters."""
    ir = sinc_impulse_response(cutoff_frequency, window_size, sample_rate)
    if high_pass:  # spectral inversion: delta at the centre tap minus the low-pass
        delta = torch.zeros(ir.shape[-1], dtype=ir.dtype, device=ir.device)
        delta[ir.shape[-1] // 2] = 1.0
        ir = delta - ir
    return fft_convolve(audio, ir, padding=padding)
