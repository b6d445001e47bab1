"""The Hydra config tree (a package, so that `hydra.initialize_config_module("ddsp_lab.conf")` finds it)."""
