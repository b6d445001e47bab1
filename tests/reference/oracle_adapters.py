"""Adapters from the reference oracle (../shared/oracle, magenta ddsp 3.7.0) to ddsp_lab's public API.

    python ../shared/oracle/check_impl.py --adapters tests/reference/oracle_adapters.py --ref f64

Each adapter is `(inputs, kwargs, meta) -> array | tuple | dict`, computes in float32 on CPU and
passes the option that selects reference behaviour wherever ddsp_lab's default departs from it
(documented in README "Departures from the reference").
"""
from __future__ import annotations

import numpy as np
import torch

from ddsp_lab import dsp

torch.set_grad_enabled(True)


def T(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def _fn(f, *names, **fixed):
    """Adapter calling dsp function f with the named inputs (in order) and the case kwargs."""
    def adapter(inputs, kwargs, meta):
        args = [T(inputs[n]) for n in (names or meta["inputs"])]
        with torch.no_grad():
            return f(*args, **{**kwargs, **fixed})
    return adapter


def _resample(inputs, kwargs, meta):
    return dsp.resample(T(inputs["inputs"]), **kwargs)


def _upsample_with_windows(inputs, kwargs, meta):
    return dsp.upsample_with_windows(T(inputs["inputs"]), **kwargs)


def _oscillator_bank(inputs, kwargs, meta):
    kwargs.pop("use_angular_cumsum", None)  # ddsp_lab's phase is always accurate
    return dsp.oscillator_bank(T(inputs["frequency_envelopes"]), T(inputs["amplitude_envelopes"]), **kwargs)


def _angular_cumsum(inputs, kwargs, meta):
    return dsp.cumulative_phase(T(inputs["angular_frequency"]), dim=1)


def _remove_above_nyquist(inputs, kwargs, meta):
    return dsp.remove_above_nyquist(T(inputs["frequency_envelopes"]), T(inputs["amplitude_envelopes"]), **kwargs)


def _normalize_harmonics(inputs, kwargs, meta):
    f0 = T(inputs["f0_hz"]) if "f0_hz" in inputs else None
    return dsp.normalize_harmonics(T(inputs["harmonic_distribution"]), f0, kwargs.get("sample_rate"))


def _harmonic_synthesis(inputs, kwargs, meta):
    kwargs.pop("use_angular_cumsum", None)
    opt = {k: T(inputs[k]) for k in ("harmonic_shifts", "harmonic_distribution") if k in inputs}
    return dsp.harmonic_synthesis(T(inputs["frequencies"]), T(inputs["amplitudes"]), **opt, **kwargs)


def _streaming(inputs, kwargs, meta):
    return dsp.streaming_harmonic_synthesis(
        T(inputs["frequencies"]), T(inputs["amplitudes"]), T(inputs["harmonic_distribution"]),
        T(inputs["initial_phase"]), **kwargs)


def _fft_convolve(inputs, kwargs, meta):
    return dsp.fft_convolve(T(inputs["audio"]), T(inputs["impulse_response"]), **kwargs)


def _apply_window(inputs, kwargs, meta):
    return dsp.apply_window_to_impulse_response(T(inputs["impulse_response"]), **kwargs)


def _loudness(inputs, kwargs, meta):
    kwargs.pop("use_tf", None)
    return dsp.compute_loudness(T(inputs["audio"]), **kwargs)


def _pad(inputs, kwargs, meta):
    return dsp.pad(T(inputs["x"]), kwargs["frame_size"], kwargs["hop_size"], kwargs.get("padding", "center"))


ADAPTERS = {
    "core.midi_to_hz": _fn(dsp.midi_to_hz),
    "core.hz_to_midi": _fn(dsp.hz_to_midi),
    "core.exp_sigmoid": _fn(dsp.exp_sigmoid),
    "core.sym_exp_sigmoid": _fn(dsp.sym_exp_sigmoid),
    "core.soft_limit": _fn(dsp.soft_limit),
    "core.amplitude_to_db": _fn(dsp.amplitude_to_db),
    "core.power_to_db": _fn(dsp.power_to_db),
    "core.db_to_amplitude": _fn(dsp.db_to_amplitude),
    "core.unit_to_hz": _fn(dsp.unit_to_hz),
    "core.hz_to_unit": _fn(dsp.hz_to_unit),
    "core.resample": _resample,
    "core.upsample_with_windows": _upsample_with_windows,
    "core.oscillator_bank": _oscillator_bank,
    "core.angular_cumsum": _angular_cumsum,
    "core.remove_above_nyquist": _remove_above_nyquist,
    "core.get_harmonic_frequencies": _fn(dsp.get_harmonic_frequencies),
    "core.normalize_harmonics": _normalize_harmonics,
    "core.harmonic_synthesis": _harmonic_synthesis,
    "core.streaming_harmonic_synthesis": _streaming,
    "core.linear_lookup": _fn(dsp.linear_lookup),
    "core.harmonic_distribution_to_wavetable": _fn(dsp.harmonic_distribution_to_wavetable),
    "core.wavetable_synthesis": _fn(dsp.wavetable_synthesis),
    "core.variable_length_delay": _fn(dsp.variable_length_delay),
    "core.frequency_impulse_response": _fn(dsp.frequency_impulse_response),
    "core.frequency_filter": _fn(dsp.frequency_filter),
    "core.fft_convolve": _fft_convolve,
    "core.apply_window_to_impulse_response": _apply_window,
    "core.sinc_impulse_response": _fn(dsp.sinc_impulse_response),
    "core.sinc_filter": _fn(dsp.sinc_filter),
    "core.frequencies_softmax": _fn(dsp.frequencies_softmax),
    "core.frequencies_sigmoid": _fn(dsp.frequencies_sigmoid),
    "core.sinusoidal_to_harmonic": _fn(dsp.sinusoidal_to_harmonic),
    "core.harmonic_to_sinusoidal": _fn(dsp.harmonic_to_sinusoidal),
    "spectral_ops.compute_mag": _fn(dsp.compute_mag),
    "spectral_ops.compute_logmag": _fn(dsp.compute_logmag),
    "spectral_ops.compute_mel": _fn(dsp.compute_mel),
    "spectral_ops.compute_logmel": _fn(dsp.compute_logmel),
    "spectral_ops.compute_mfcc": _fn(dsp.compute_mfcc),
    "spectral_ops.compute_loudness": _loudness,
    "spectral_ops.compute_rms_energy": _fn(dsp.compute_rms_energy),
    "spectral_ops.compute_power": _fn(dsp.compute_power),
    "spectral_ops.pad": _pad,
}
