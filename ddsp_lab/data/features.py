"""Moved to `ddsp_lab.features` (one feature path for prepare, the model and users); these names
stay importable from here for older code."""
from ..features import (CREPE_SAMPLE_RATE, CrepeF0, compute_loudness_frames, frame_hop,  # noqa: F401
                        recording_loudness, resample_recording)
