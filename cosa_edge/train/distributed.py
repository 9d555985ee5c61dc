"""Distributed data parallel: process-group set-up inside a worker, and the torchrun launcher.

``cosa-edge train --nproc-per-node N`` writes the resolved run description to
RUN_DIR/launch.json and starts torch's own launcher (torch.distributed.run,
i.e. torchrun) on ``python -m cosa_edge.train.worker RUN_DIR/launch.json``.
Each worker finds RANK/WORLD_SIZE/LOCAL_RANK in its environment, as torchrun
sets them, and joins the group: NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import CosaEdgeError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CosaEdgeError(f"device {name} was asked for but no CUDA GPU is available; use --device cpu or auto")
    return device


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def init_distributed(device_name: str = "auto") -> DistContext:
    """Join the process group if torchrun started this process; otherwise a one-process context."""
    if not launched_by_torchrun():
        return DistContext(device=resolve_device(device_name))
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=device if backend == "nccl" else None)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class LaunchOptions:
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def needs_launcher(self) -> bool:
        return (self.nproc_per_node > 1 or self.nnodes > 1) and not launched_by_torchrun()


def torchrun_command(options: LaunchOptions, launch_file: Path) -> list[str]:
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={options.nproc_per_node}"]
    if options.nnodes == 1:
        command.append("--standalone")  # picks a free port; no rendezvous server needed
    else:
        command += [f"--nnodes={options.nnodes}", f"--node-rank={options.node_rank}",
                    f"--master-addr={options.master_addr}", f"--master-port={options.master_port}"]
    return command + ["-m", "cosa_edge.train.worker", str(launch_file)]


def run_torchrun(options: LaunchOptions, launch_file: Path) -> None:
    command = torchrun_command(options, launch_file)
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise CosaEdgeError(f"distributed training failed (torchrun exit code {result.returncode}); see the workers' "
                            "output above")
