"""nn.Modules from controls to signals, composable into a DAG (ProcessorGroup)."""
from .base import SCALE_FNS, Processor, get_scale_fn
from .effects import ExpDecayReverb, FilteredNoiseReverb, FIRFilter, ModDelay, Reverb
from .group import ProcessorGroup
from .noise import PositionalNoise
from .signals import Add, Crop, Mix
from .synths import FilteredNoise, Harmonic, Sinusoidal, TensorToAudio, Wavetable
