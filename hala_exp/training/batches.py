"""Deterministic batch plans, collation, and a data loader Lightning can resume mid-epoch.

The order of every epoch is a pure function of (seed, epoch, world size), so a resumed run replays the
same batches: the loader's state is just (epoch, batches done), taken from the batches the module has
actually trained on (not from how far a prefetching loader has read).

Loss normalisation: each batch carries the number of trainable tokens in its whole accumulation window
across all ranks, so the gradient is the mean over every trainable token of an optimizer step (not a mean
of per-batch means, which overweights short batches).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hala_exp.training.chat import IGNORE_INDEX
from hala_exp.training.packing import pack_rows

GROUP_FACTOR = 64  # length-grouped batching sorts within windows of 64 batches (our choice)


@dataclass
class DataPosition:
    """Where training is in the data: updated by the module as it trains on each batch."""

    epoch: int = 0
    done: int = 0  # batches of `epoch` already trained on (this rank)


class BatchPlan:
    """Per epoch, the micro-batches of each rank (lists of example indices; with packing, lists of rows)."""

    def __init__(
        self,
        lengths: list[int],
        trainable: list[int],
        micro_batch_size: int,
        *,
        packing: bool,
        max_length: int,
        batching: str,
        seed: int,
        world_size: int = 1,
        accumulate: int = 1,
    ):
        self.lengths, self.trainable = lengths, trainable
        self.micro, self.packing, self.batching = micro_batch_size, packing, batching
        self.seed, self.world, self.accumulate = seed, world_size, accumulate
        self.rows = pack_rows(lengths, max_length) if packing else [[i] for i in range(len(lengths))]
        n_batches = -(-len(self.rows) // micro_batch_size)
        self.batches_per_rank = n_batches // world_size
        if self.batches_per_rank < 1:
            raise ValueError(
                f"{len(lengths)} examples make {n_batches} micro-batches of {micro_batch_size}: "
                f"too few for {world_size} ranks"
            )
        self._cache: dict[int, list[list[list[int]]]] = {}

    def steps_per_epoch(self) -> int:
        return -(-self.batches_per_rank // self.accumulate)

    def epoch(self, epoch: int) -> list[list[list[int]]]:
        """[rank][batch] -> row indices (each row a list of example indices)."""
        if epoch not in self._cache:
            self._cache = {epoch: self._plan(epoch)}
        return self._cache[epoch]

    def _plan(self, epoch: int) -> list[list[list[int]]]:
        rng = random.Random(self.seed * 100_003 + epoch)
        order = list(range(len(self.rows)))
        rng.shuffle(order)
        row_len = [sum(self.lengths[i] for i in row) for row in self.rows]
        if self.batching == "length_grouped":
            group = self.micro * GROUP_FACTOR
            order = [
                i for g in range(0, len(order), group) for i in sorted(order[g : g + group], key=lambda r: -row_len[r])
            ]
        batches = [order[b : b + self.micro] for b in range(0, len(order), self.micro)]
        if self.batching == "length_grouped":
            rng.shuffle(batches)  # sorted within groups, but no long-to-short trend over the epoch
        return [batches[r :: self.world][: self.batches_per_rank] for r in range(self.world)]

    def window_tokens(self, epoch: int, index: int) -> int:
        """Trainable tokens of the accumulation window holding batch ``index``, summed over all ranks."""
        plan = self.epoch(epoch)
        start = index - index % self.accumulate
        stop = min(start + self.accumulate, self.batches_per_rank)
        return sum(
            self.trainable[i] for rank in plan for batch in rank[start:stop] for row in batch for i in self.rows[row]
        )


def collate(
    rows: list[list[int]],
    input_ids: list[list[int]],
    labels: list[list[int]],
    pad_id: int,
    packing: bool,
    pad_to_multiple_of: int = 1,
):
    """Right-padded tensors; packed rows get per-example position ids and no attention mask."""
    import torch

    seqs, labs, pos = [], [], []
    for row in rows:
        s, l, p = [], [], []
        for i in row:
            s += input_ids[i]
            lab = list(labels[i])
            lab[0] = IGNORE_INDEX  # the first token of an example is never predicted from its neighbour
            l += lab
            p += list(range(len(input_ids[i])))
        seqs.append(s), labs.append(l), pos.append(p)
    width = max(len(s) for s in seqs)
    width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    lab = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    position = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for k, (s, l, p) in enumerate(zip(seqs, labs, pos)):
        n = len(s)
        ids[k, :n], lab[k, :n], mask[k, :n] = torch.tensor(s), torch.tensor(l), 1
        position[k, :n] = torch.tensor(p)
        position[k, n:] = torch.arange(width - n)  # padding tail: its own "example", never trained
    batch = {
        "input_ids": ids,
        "labels": lab,
        "position_ids": position,
        "real_tokens": int(mask.sum()),
        "padded_tokens": ids.numel(),
    }
    if not packing:
        batch["attention_mask"] = mask
    return batch


def make_loader(
    examples,
    plan: BatchPlan,
    rank: int,
    pad_id: int,
    position: DataPosition,
    num_workers: int = 0,
    pad_to_multiple_of: int = 1,
):
    """A DataLoader over this rank's planned batches, resumable through Lightning's loader state."""
    import torch
    from torch.utils.data import DataLoader, Dataset, Sampler

    class PlannedBatches(Dataset):
        def __getitem__(self, key):
            epoch, index = key
            rows = [plan.rows[r] for r in plan.epoch(epoch)[rank][index]]
            batch = collate(rows, examples.input_ids, examples.labels, pad_id, plan.packing, pad_to_multiple_of)
            batch["window_tokens"] = plan.window_tokens(epoch, index)
            batch["epoch"], batch["index"] = epoch, index
            return batch

        def __len__(self):
            return plan.batches_per_rank

    class EpochSampler(Sampler):
        def __init__(self):
            self.epoch, self.resume = 0, None

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            skip = 0
            if self.resume is not None:
                if self.resume.epoch == self.epoch:
                    skip = self.resume.done
                self.resume = None
            return iter([(self.epoch, i) for i in range(skip, plan.batches_per_rank)])

        def __len__(self):
            return plan.batches_per_rank

    class ResumableLoader(DataLoader):
        def state_dict(self):
            return {"epoch": position.epoch, "done": position.done}

        def load_state_dict(self, state):
            # Lightning calls iter() on the loader before it sets the resumed epoch: set it here.
            epoch, done = state["epoch"], state["done"]
            if done >= plan.batches_per_rank:
                epoch, done = epoch + 1, 0
            self.sampler.epoch = epoch
            self.sampler.resume = DataPosition(epoch, done)

    def keep_ints(batch):  # batch_size=None: items arrive one by one, already collated
        return batch

    return ResumableLoader(
        PlannedBatches(),
        batch_size=None,
        sampler=EpochSampler(),
        num_workers=num_workers,
        collate_fn=keep_ints,
        generator=torch.Generator().manual_seed(0),
    )
