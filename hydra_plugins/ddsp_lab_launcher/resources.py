"""What a training job asks of SLURM, from its trainer config: one task per device, the GPUs of
a GPU trainer, the trainer's nodes (imported by Hydra's plugin discovery and by ddsp_lab's config
resolvers: light, no torch)."""
from __future__ import annotations

from omegaconf import OmegaConf


def slurm_tasks(devices) -> int:
    """${slurm_tasks:${trainer.devices}}: the tasks per node a trainer with these devices runs as
    (an int; a list of device indices: its length; 'auto' / -1 cannot be known before the job)."""
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        return devices
    raise ValueError(f"trainer.devices={devices!r}: a SLURM job needs a number of devices (or a list of them), "
                     "to ask SLURM for one task per device; set trainer.devices=<n>")


def slurm_gpus(accelerator, devices) -> int:
    """${slurm_gpus:${trainer.accelerator},${trainer.devices}}: the GPUs per node to ask for: the
    devices on a gpu/cuda (or auto) trainer, 0 on a cpu one."""
    return 0 if str(accelerator).lower() == "cpu" else slurm_tasks(devices)


def resource_problems(trainer, params: dict) -> list[str]:
    """What in a job's trainer config the launcher's resources (`params`) cannot serve."""
    problems = []
    tasks = slurm_tasks(trainer.get("devices", 1))
    if int(params.get("tasks_per_node") or 1) != tasks:
        problems.append(f"hydra.launcher.tasks_per_node={params.get('tasks_per_node')} but trainer.devices="
                        f"{trainer.get('devices')} runs {tasks} rank(s) per node (one SLURM task each)")
    gpus = int(params.get("gpus_per_node") or 0)
    if str(trainer.get("accelerator", "auto")).lower() == "cpu":
        if gpus:
            problems.append(f"hydra.launcher.gpus_per_node={gpus} for a trainer.accelerator=cpu job (it would hold "
                            "GPUs it does not use)")
    elif str(trainer.get("accelerator", "auto")).lower() in ("gpu", "cuda") and gpus != tasks:
        problems.append(f"hydra.launcher.gpus_per_node={gpus} but the trainer uses {tasks} GPU(s) per node")
    nodes = int(trainer.get("num_nodes", 1) or 1)
    if int(params.get("nodes") or 1) != nodes:
        problems.append(f"hydra.launcher.nodes={params.get('nodes')} but trainer.num_nodes={nodes}")
    return problems
