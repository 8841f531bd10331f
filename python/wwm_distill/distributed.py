"""torch.distributed under torchrun: this process's rank and the world size, the process
group when ``WORLD_SIZE`` > 1, and each process's own GPU."""

from __future__ import annotations

import os

import torch


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def maybe_init_distributed(device) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)


def process_device(device, rank: int, world: int):
    """This process's device: under torchrun on GPUs its own one (``LOCAL_RANK``, else the
    global rank), otherwise ``device`` as given."""
    if torch.device(device).type == "cuda" and world > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    return device
