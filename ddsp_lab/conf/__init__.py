"""The Hydra config tree (a package, so that `hydra.initialize_config_module("ddsp_lab.conf")` finds
it, and a wheel carries it). CONF_DIR: its folder, the one place that says where the configs are."""
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent
