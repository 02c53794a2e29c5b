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
    """Per epoch, the micro-batches of each rank (arrays of row indices; a row is one example, or with
    packing a list of examples). Reads only the per-example length and trainable-token counts (numpy)."""

    def __init__(
        self,
        lengths,
        trainable,
        micro_batch_size: int,
        *,
        packing: bool,
        max_length: int,
        batching: str,
        seed: int,
        world_size: int = 1,
        accumulate: int = 1,
    ):
        import numpy as np

        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.trainable = np.asarray(trainable, dtype=np.int64)
        self.micro, self.packing, self.batching = micro_batch_size, packing, batching
        self.seed, self.world, self.accumulate = seed, world_size, accumulate
        # Without packing row r is example r: no per-row Python object at all.
        self.rows = pack_rows(self.lengths, max_length) if packing else None
        if self.rows is None:
            self.row_len, self.row_trainable = self.lengths, self.trainable
        else:
            self.row_len = np.array([self.lengths[r].sum() for r in self.rows], dtype=np.int64)
            self.row_trainable = np.array([self.trainable[r].sum() for r in self.rows], dtype=np.int64)
        n_batches = -(-len(self.row_len) // micro_batch_size)
        self.batches_per_rank = n_batches // world_size
        if self.batches_per_rank < 1:
            raise ValueError(
                f"{len(self.lengths)} examples make {n_batches} micro-batches of {micro_batch_size}: "
                f"too few for {world_size} ranks"
            )
        self._cache: dict[int, list] = {}

    def steps_per_epoch(self) -> int:
        return -(-self.batches_per_rank // self.accumulate)

    def examples_of(self, row: int) -> list[int]:
        return [int(row)] if self.rows is None else self.rows[row]

    def epoch(self, epoch: int) -> list:
        """[rank][batch] -> row indices (numpy arrays)."""
        if epoch not in self._cache:
            self._cache = {epoch: self._plan(epoch)}
        return self._cache[epoch]

    def _plan(self, epoch: int) -> list:
        import numpy as np

        rng = random.Random(self.seed * 100_003 + epoch)
        order_list = list(range(len(self.row_len)))
        rng.shuffle(order_list)
        order = np.asarray(order_list, dtype=np.int64)
        del order_list
        if self.batching == "length_grouped":
            group = self.micro * GROUP_FACTOR
            chunks = [order[g : g + group] for g in range(0, len(order), group)]
            # longest first within each window; a stable sort keeps equal lengths in shuffled order
            order = np.concatenate([c[np.argsort(-self.row_len[c], kind="stable")] for c in chunks])
        batches = [order[b : b + self.micro] for b in range(0, len(order), self.micro)]
        if self.batching == "length_grouped":
            rng.shuffle(batches)  # sorted within groups, but no long-to-short trend over the epoch
        return [batches[r :: self.world][: self.batches_per_rank] for r in range(self.world)]

    def window_tokens(self, epoch: int, index: int) -> int:
        """Trainable tokens of the accumulation window holding batch ``index``, summed over all ranks."""
        plan = self.epoch(epoch)
        start = index - index % self.accumulate
        stop = min(start + self.accumulate, self.batches_per_rank)
        return int(sum(self.row_trainable[batch].sum() for rank in plan for batch in rank[start:stop]))


def collate(
    rows: list[list[tuple]], pad_id: int, packing: bool, pad_to_multiple_of: int = 1, split_saving: float = 1.0
):
    """Right-padded tensors from rows of (input_ids, labels) examples (sequences or numpy arrays); packed rows
    get per-example position ids and no attention mask. Filled as numpy arrays in place: no Python list
    of tokens is built.

    ``pieces`` says how the step feeds the batch: unpacked rows go longest first, and when feeding the longest
    rows apart from the rest cuts the batch's padded tokens by at least ``split_saving`` (a fraction), they
    are two pieces of rows, each as wide as its own longest row: one outlier no longer pads every other row
    to its length. The step's examples and loss are the same either way; 1.0 never splits.
    """
    import numpy as np
    import torch

    lengths = np.array([sum(len(ids) for ids, _ in row) for row in rows], dtype=np.int64)
    if not packing:  # longest first: a piece is a run of rows (their order within a step changes nothing)
        order = np.argsort(-lengths, kind="stable")
        rows, lengths = [rows[k] for k in order], lengths[order]
    width = _aligned(int(lengths.max()), pad_to_multiple_of)
    shape = (len(rows), width)
    ids = np.full(shape, pad_id, dtype=np.int64)
    targets = np.full(shape, IGNORE_INDEX, dtype=np.int64)
    position = np.empty(shape, dtype=np.int64)
    counting = np.arange(width, dtype=np.int64)
    for k, row in enumerate(rows):
        start = 0
        for example_ids, example_labels in row:
            n = len(example_ids)
            ids[k, start : start + n] = example_ids
            targets[k, start + 1 : start + n] = example_labels[1:]  # an example's first token is never predicted
            position[k, start : start + n] = counting[:n]
            start += n
        position[k, start:] = counting[: width - start]  # padding tail: its own "example", never trained
    bounds = [0, len(rows)] if packing else _split(lengths, pad_to_multiple_of, split_saving)
    pieces = [_piece(targets, a, b, pad_to_multiple_of) for a, b in zip(bounds, bounds[1:])]
    batch = {
        "input_ids": torch.from_numpy(ids),
        "labels": torch.from_numpy(targets),
        "position_ids": torch.from_numpy(position),
        "pieces": pieces,
        "n_target": sum(p["n_target"] for p in pieces),
        "real_tokens": int(lengths.sum()),
        "padded_tokens": sum(
            (b - a) * _aligned(int(lengths[a:b].max()), pad_to_multiple_of) for a, b in zip(bounds, bounds[1:])
        ),
    }
    if not packing:
        batch["attention_mask"] = torch.from_numpy((counting < lengths[:, None]).astype(np.int64))
    return batch


def _aligned(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _split(lengths, multiple: int, min_saving: float) -> list[int]:
    """Row bounds of the pieces for rows sorted longest first: one piece, or two when the best cut saves at
    least ``min_saving`` of the padded tokens (a second forward has a fixed cost, so small savings do not pay)."""
    widths = [_aligned(int(n), multiple) for n in lengths]
    n, whole = len(widths), len(widths) * widths[0]
    if n < 2:
        return [0, n]
    cost, cut = min((k * widths[0] + (n - k) * widths[k], k) for k in range(1, n))
    return [0, cut, n] if whole - cost >= min_saving * whole else [0, n]


def _piece(targets, start: int, stop: int, multiple: int) -> dict:
    """What the train step reads for rows ``start:stop`` (``module.target_loss``), worked out on the host so
    that the step needs no device sync: position j of a row predicts its token j + 1, and only positions with a
    trained target go through the output head (``target_index``: row * feed_width + column, within the piece)."""
    import numpy as np
    import torch

    rows_t, cols_t = np.nonzero(targets[start:stop, 1:] != IGNORE_INDEX)
    # The model is fed the columns up to the last one that predicts a trained token: the ones after it (padding,
    # the row's last column, an untrained end of turn such as chatml's "\n" after <|im_end|>) predict nothing,
    # and a causal model reads them at no earlier position. Rounded up to the multiple (aligned shapes).
    last = int(cols_t.max()) + 1 if cols_t.size else 1
    feed = min(targets.shape[1], _aligned(last, multiple))
    return {
        "rows": (start, stop),
        "feed_width": feed,
        "target_index": torch.from_numpy(rows_t * feed + cols_t),
        "target_ids": torch.from_numpy(targets[start + rows_t, cols_t + 1]),
        "n_target": int(rows_t.size),
    }


def make_loader(
    examples,
    plan: BatchPlan,
    rank: int,
    pad_id: int,
    position: DataPosition,
    num_workers: int = 0,
    pad_to_multiple_of: int = 1,
    split_saving: float = 1.0,
):
    """A DataLoader over this rank's planned batches, resumable through Lightning's loader state.

    Each rank reads only the examples of its own batches, one row at a time from the memory-mapped
    dataset. The sampler keeps its own (epoch, next batch) and does not follow Lightning's epoch counter:
    the data position saved with a checkpoint is what the module trained on, and a resumed run continues
    from exactly there, however many times it was resumed before.
    """
    import torch
    from torch.utils.data import DataLoader, Dataset, Sampler

    class PlannedBatches(Dataset):
        def __getitem__(self, key):
            epoch, index = key
            rows = [[examples.example(i) for i in plan.examples_of(r)] for r in plan.epoch(epoch)[rank][index]]
            batch = collate(rows, pad_id, plan.packing, pad_to_multiple_of, split_saving)
            batch["window_tokens"] = plan.window_tokens(epoch, index)
            batch["epoch"], batch["index"] = epoch, index
            return batch

        def __len__(self):
            return plan.batches_per_rank

    class PositionSampler(Sampler):
        def __init__(self):
            self.start = DataPosition()

        def __iter__(self):
            epoch, first = self.start.epoch, self.start.done
            if first >= plan.batches_per_rank:
                epoch, first = epoch + 1, 0
            # the next pass (Lightning's next epoch) starts after this one, whenever it is requested
            self.start = DataPosition(epoch + 1, 0)
            return iter([(epoch, i) for i in range(first, plan.batches_per_rank)])

        def __len__(self):
            return plan.batches_per_rank

    class ResumableLoader(DataLoader):
        def state_dict(self):
            return {"epoch": position.epoch, "done": position.done}

        def load_state_dict(self, state):
            position.epoch, position.done = state["epoch"], state["done"]
            sampler.start = DataPosition(state["epoch"], state["done"])

    def keep_ints(batch):  # batch_size=None: items arrive one by one, already collated
        return batch

    sampler = PositionSampler()
    return ResumableLoader(
        PlannedBatches(),
        batch_size=None,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=keep_ints,
        generator=torch.Generator().manual_seed(0),
    )
