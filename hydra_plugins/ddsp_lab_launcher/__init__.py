"""ddsp_lab's Hydra launcher plugin (Hydra loads launchers from the hydra_plugins namespace only)."""
