"""Evaluation: the paper's resynthesis metrics with bootstrap intervals (`ddsp-lab eval`), and the
sweep -> table collector (`ddsp-lab table`)."""
from .bootstrap import bootstrap_ci
from .evaluate import METRICS, evaluate, flat_metrics, summarise, write_results
from .metrics import CONFIDENCE_THRESHOLD, OUTLIER_SEMITONES, f0_metrics, loudness_l1, paper_loudness
from .run import format_summary, run_eval
from .table import collect, format_table, make_table
