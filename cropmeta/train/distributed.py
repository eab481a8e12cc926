"""torch.distributed for meta-training: each rank takes a contiguous slice of every meta-batch of
tasks (every rank runs the same seeded sampler, so they agree on the batch), the summed
meta-gradients are all-reduced, and every rank takes the identical optimiser step.

gloo on CPU, nccl on CUDA. Two ways in:

- ``torchrun --nproc_per_node=N -m cropmeta.app.train --region kenya …`` (or any entry point that
  calls :func:`cropmeta.train.run.train`): :func:`from_env` picks up ``RANK``/``WORLD_SIZE``;
- ``cropmeta train --nprocs N``: :func:`spawn` starts N local processes.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

import torch
import torch.distributed as tdist

__all__ = ["DistContext", "SINGLE", "from_env", "spawn", "free_port", "backend_for"]


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def slice(self, k: int) -> tuple[int, int]:
        """This rank's contiguous share ``[a, b)`` of ``k`` tasks (sizes differ by at most one)."""
        return (k * self.rank) // self.world_size, (k * (self.rank + 1)) // self.world_size

    def all_reduce_(self, t: torch.Tensor) -> torch.Tensor:
        """In-place SUM over ranks (no-op on one process)."""
        if self.active:
            if self.backend == "nccl" and not t.is_cuda:  # NCCL reduces CUDA tensors only
                tmp = t.cuda()
                tdist.all_reduce(tmp, op=tdist.ReduceOp.SUM)
                t.copy_(tmp.cpu())
            else:
                tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t

    def all_reduce_grads_(self, params) -> None:
        """Sum the gradients of ``params`` over ranks, as one flat buffer."""
        if not self.active:
            return
        params = [p for p in params if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        i = 0
        for p in params:
            n = p.numel()
            p.grad = flat[i : i + n].view_as(p).clone()
            i += n

    def average_buffers_(self, module: torch.nn.Module, weight: float) -> None:
        """Weighted mean of every floating buffer (BatchNorm running statistics) over ranks: each rank
        contributes ``weight`` (its share of the tasks) so the result equals one process."""
        if not self.active:
            return
        bufs = [b for b in module.buffers() if b.is_floating_point()]
        if not bufs:
            return
        flat = torch.cat([b.reshape(-1) * weight for b in bufs])
        tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        i = 0
        for b in bufs:
            n = b.numel()
            b.copy_(flat[i : i + n].view_as(b))
            i += n

    def barrier(self) -> None:
        if self.active:
            tdist.barrier()


SINGLE = DistContext()


def backend_for(device: torch.device | str) -> str:
    return "nccl" if str(device).startswith("cuda") else "gloo"


def from_env(device: torch.device | str = "cpu") -> DistContext:
    """The context of a process started by torchrun (``WORLD_SIZE`` > 1), initialising the default
    process group if needed; :data:`SINGLE` otherwise."""
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    if ws <= 1:
        return SINGLE
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, init_method="env://")
    return DistContext(tdist.get_rank(), tdist.get_world_size(), backend)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, fn, world_size: int, port: int, backend: str, threads: int | None, args: tuple, kwargs: dict):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank)})
    if threads:
        torch.set_num_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(rank % max(1, torch.cuda.device_count()))
    tdist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    try:
        fn(DistContext(rank, world_size, backend), *args, **kwargs)
    finally:
        tdist.destroy_process_group()
    # success: leave at once. torch's interpreter shutdown takes seconds and nothing is left to
    # clean up (the process group is gone, results are on disk); errors above still propagate.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn(fn, nprocs: int, args: tuple = (), kwargs: dict | None = None, backend: str = "gloo",
          threads: int | None = 1) -> None:
    """Run ``fn(ctx, *args, **kwargs)`` on ``nprocs`` local ranks (torch.multiprocessing spawn).
    ``fn`` must be importable (a module-level function); each rank uses ``threads`` torch threads."""
    import torch.multiprocessing as mp

    port = free_port()
    mp.spawn(_entry, args=(fn, nprocs, port, backend, threads, args, kwargs or {}), nprocs=nprocs, join=True)
