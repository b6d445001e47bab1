"""Data: sources (demo corpus, audio folders), prepare (features by ddsp_lab.features), statistics, load."""
from ..features import CrepeF0, FeatureSettings, compute_loudness_frames, frame_hop  # the names data/ always offered
from .prepare import PrepareConfig, load_prepared, prepare
from .statistics import compute_statistics
from .sources import DemoSource, FolderSource, SkipItem, split_of
from .nsynth import HubSource, NSynthSource
from .datamodule import DDSPDataModule, PreparedExamples
