"""Data: sources (demo corpus, audio folders), features (CREPE f0, loudness), prepare, load."""
from .features import CrepeF0, compute_loudness_frames, frame_hop
from .prepare import PrepareConfig, compute_statistics, load_prepared, prepare
from .sources import DemoSource, FolderSource, SkipItem, split_of
from .nsynth import HubSource, NSynthSource
from .datamodule import DDSPDataModule, PreparedExamples
