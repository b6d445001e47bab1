"""Pure tensor DSP functions (no state). See the submodules for the conventions."""
from . import fixed_phase
from .fixed_phase import float64_free
from .filters import (OverlapAdd, PartitionedConvolution, apply_window_to_impulse_response, block_convolve, crop_and_compensate_delay,
                      fft_convolve, delay_compensation_samples, design_ir_size, filter_frames,
                      partition_spectra, partitioned_step,
                      frequency_filter, frequency_impulse_response, sinc, sinc_filter,
                      sinc_impulse_response)
from .loudness import a_weighting_db, compute_loudness, compute_power, compute_rms_energy, pad
from .oscillators import (end_phase, get_harmonic_frequencies, harmonic_chunk, harmonic_synthesis, normalize_harmonics,
                          oscillator_bank, remove_above_nyquist)
from .conversions import (frequencies_sigmoid, frequencies_softmax, harmonic_to_sinusoidal,
                          sinusoidal_to_harmonic, streaming_harmonic_synthesis)
from .phase import cumulative_phase, segment_phase, segment_phase_totals
from .precision import exporting, full_precision, tracing
from .resample import RESAMPLE_METHODS, resample, resample_audio, upsample_with_windows
from .spectral import (CQT, compute_logmag, compute_logmel, compute_mag, compute_mel, compute_mfcc,
                       cqt, frame, mel_weight_matrix, stft)
from .units import (DB_RANGE, amplitude_to_db, db_to_amplitude, db_to_power, exp_sigmoid, hop_size,
                    hz_to_midi, hz_to_unit, logb, midi_to_hz, midi_to_unit, power_to_db,
                    safe_divide, safe_log, semitones_to_ratio, soft_limit, sym_exp_sigmoid, unit_to_hz, unit_to_midi)
from .wavetable import (harmonic_distribution_to_wavetable, linear_lookup, variable_length_delay,
                        wavetable_synthesis)
