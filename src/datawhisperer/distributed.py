"""Where a run's episodes are played: one process, a torch.distributed job, or an independent shard.

Executors only decide *who* plays which episodes: planned episodes are batched in fixed groups of
consecutive ids, group k goes to rank (or shard) k mod w, and every later try of an episode stays with
it (`episodes.owner_of`); what an episode yields never depends on it. Under `torchrun` or `accelerate launch`
(detected from the environment they set) ranks talk over gloo on CPU and nccl on GPU, one GPU per
rank; rank 0 checks the output directory, and after a barrier merges every rank's checkpoint.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Topology:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    launched: bool = False  # a torch.distributed job (torchrun / accelerate launch)
    shard: bool = False  # an independent shard (--shard i/n): no communication, merged later

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def owns_output(self) -> bool:
        """Checks, locks and writes --out: rank 0 of a job, or any shard (each has its own directory)."""
        return self.shard or self.rank == 0


def parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UserError(f"--shard takes i/n (for example 0/4), not {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text}: need 0 <= i < n")
    return index, count


def detect(shard: str | None) -> Topology:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if shard:
            raise UserError("--shard is for independent jobs; under torchrun the ranks split the work themselves")
        return Topology(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")),
                        int(os.environ.get("LOCAL_WORLD_SIZE", str(world))), launched=True)
    if shard:
        index, count = parse_shard(shard)
        return Topology(index, count, shard=True)
    return Topology()


class Group:
    """The few collective operations a run needs; all no-ops outside a torch.distributed job."""

    def __init__(self, topology: Topology, device: str) -> None:
        self.topology = topology
        self.active = False
        if not topology.launched:
            return
        import torch
        import torch.distributed as dist

        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if use_cuda:  # (CPU ranks share the cores: threads.apply_threads, before this)
            torch.cuda.set_device(topology.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        self.active = True

    def agree(self, error: str | None) -> None:
        """Raise the same UserError on every rank when any rank hit one."""
        if self.active:
            import torch.distributed as dist

            errors: list[str | None] = [None] * self.topology.world_size
            dist.all_gather_object(errors, error)
            error = next((e for e in errors if e), None)
        if error:
            raise UserError(error)

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.active = False
