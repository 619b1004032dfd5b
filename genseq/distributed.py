"""Data parallelism through ``torchrun``: the same ``genseq train`` command, one process per GPU
(nccl) or per share of a CPU (gloo), each on its own batches, gradients averaged by
:class:`torch.nn.parallel.DistributedDataParallel`. Rank 0 alone validates and writes files.

    torchrun --nproc_per_node=4 -m genseq train lm corpus.txt -o runs/big
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --nproc_per_node=8 -m genseq train ...
"""

import os

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (once), and return this rank's device."""
    rank, size = world()
    if size == 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_int(value: int, device: torch.device) -> int:
    """Rank 0's ``value`` on every rank."""
    if world()[1] == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.long, device=device)
    dist.broadcast(tensor, 0)
    return int(tensor.item())


def broadcast_object(obj):
    """Rank 0's ``obj`` (a codec's state: numbers, strings, bytes) on every rank, so that all
    ranks tokenise with the same vocabulary even if fitting it were not deterministic."""
    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, 0)
    return box[0]


class LossModule(nn.Module):
    """A model's ``loss(batch, step)`` as its forward, so that DistributedDataParallel, which
    averages gradients through hooks on forward, can wrap every genseq model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor, step: int, **options) -> dict:
        return self.model.loss(batch, step, **options)


def wrap(model: nn.Module, device: torch.device):
    """``model.loss`` for one process; a DistributedDataParallel wrapper of it under torchrun."""
    if world()[1] == 1:
        return model.loss
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(LossModule(model), device_ids=ids)
