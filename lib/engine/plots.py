"""PNG curves of the training loss and test errors (the original wrote PDFs into graph/)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

__all__ = ["save_curve"]


def save_curve(values: Sequence[float], path: Path, title: str, epochs: Optional[Iterable[float]] = None) -> None:
    """Plot one value per epoch, marking the minimum; written atomically as PNG.

    ``epochs``: the epoch of each value (default 1, 2, ...): a test run only after the last
    epoch is drawn there, not at epoch 1.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return
    epochs = np.arange(1, len(values) + 1) if epochs is None else np.asarray(list(epochs), dtype=float)
    if epochs.shape != values.shape:
        raise ValueError(f"save_curve: {len(values)} values but {len(epochs)} epochs")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(epochs, values, "b-o", markersize=3, label=title)
    finite = np.isfinite(values)
    if finite.any():
        best = int(np.nanargmin(np.where(finite, values, np.nan)))
        ax.annotate(f"{values[best]:.2f}", (epochs[best], values[best]), textcoords="offset points",
                    xytext=(5, 8))
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
