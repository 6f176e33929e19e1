"""Training on several datasets at once: the original's uniform mixing.

With ``make_same_len`` (what the original's trainer used) every dataset counts as long as the
longest one, ``L``, and the mixture has ``L * n`` samples. Sample ``i`` comes from a dataset
chosen uniformly at random; within it, position ``i mod L`` maps onto the dataset by modulo
while whole copies of the dataset fit into ``L``, and to a random sample in the last, partial
copy. Without ``make_same_len`` the datasets are simply concatenated.

Unlike the original (Python's global ``random``), the random choices are a function of
``(seed, epoch, i)``: reproducible, and the same in every DataLoader worker.

A smaller dataset is drawn several times per epoch. The original drew fresh random numbers for
every draw; here each draw's augmentation and synthesized errors are keyed on its mixture
position ``i`` (a dataset's ``draw_items``), so two draws of the same sample in one epoch
differ, while position ``i`` of epoch ``e`` is the same sample every time it is read (exact
resume, any number of workers).
"""
from __future__ import annotations

from typing import Any, List, Protocol, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset

__all__ = ["MultipleDatasets"]


class SizedDataset(Protocol):
    """What the mixer needs of a dataset: its length and its samples by index."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Any: ...


class MultipleDatasets(Dataset):
    """Mix datasets for training.

    Args:
        datasets: the datasets (non-empty each).
        make_same_len: the original's uniform mixing (see the module docstring); False concatenates.
        seed: base of the mixing choices.
    """

    def __init__(self, datasets: Sequence[SizedDataset], make_same_len: bool = True, seed: int = 0):
        if not datasets:
            raise ValueError("MultipleDatasets needs at least one dataset")
        lengths = [len(db) for db in datasets]
        if min(lengths) <= 0:
            empty = [type(db).__name__ for db, n in zip(datasets, lengths) if n <= 0]
            raise ValueError(f"MultipleDatasets: empty dataset(s): {', '.join(empty)}")
        self.datasets = list(datasets)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_len = int(self.lengths.max())
        self.cumulative = np.cumsum(self.lengths)
        self.make_same_len = bool(make_same_len)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        if self.make_same_len:
            return self.max_len * len(self.datasets)
        return int(self.cumulative[-1])

    def set_epoch(self, epoch: int) -> None:
        """New mixing choices per epoch; forwarded to the datasets that vary per epoch."""
        self.epoch = int(epoch)
        for db in self.datasets:
            if hasattr(db, "set_epoch"):
                db.set_epoch(epoch)

    def locate(self, index: int) -> Tuple[int, int]:
        """``(dataset number, index in that dataset)`` of mixture sample ``index``."""
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"MultipleDatasets index {index} out of range (length {len(self)})")
        if not self.make_same_len:
            db = int(np.searchsorted(self.cumulative, index, side="right"))
            return db, index - (int(self.cumulative[db - 1]) if db else 0)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))
        db = int(rng.integers(len(self.datasets)))
        n = int(self.lengths[db])
        pos = index % self.max_len
        if pos >= n * (self.max_len // n):  # the last, partial copy: a random sample
            return db, int(rng.integers(n))
        return db, pos % n

    def __getitem__(self, index: int):
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> List:
        """A batch, fetched per dataset in one call. A dataset with ``draw_items`` (every loader
        of this package) keys each sample's random stream on its mixture position; others are
        read with ``__getitems__`` or by index."""
        indices = [int(i) for i in indices]
        where = [self.locate(i) for i in indices]
        out: List = [None] * len(where)
        for db_num, db in enumerate(self.datasets):
            slots = [k for k, (d, _) in enumerate(where) if d == db_num]
            if not slots:
                continue
            local = [where[k][1] for k in slots]
            draw_items = getattr(db, "draw_items", None)
            getitems = getattr(db, "__getitems__", None)
            if draw_items is not None:
                samples = draw_items(local, [indices[k] for k in slots])
            elif getitems is not None:
                samples = getitems(local)
            else:
                samples = [db[i] for i in local]
            for k, sample in zip(slots, samples):
                out[k] = sample
        return out
