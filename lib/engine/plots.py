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

    y = np.asarray(values, dtype=float)
    if y.size == 0:
        return
    x = np.arange(1, len(y) + 1) if epochs is None else np.asarray(list(epochs), dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"save_curve: {len(y)} values but {len(x)} epochs")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(x, y, "b-o", markersize=3, label=title)
    finite = np.isfinite(y)
    if finite.any():
        best = int(np.nanargmin(np.where(finite, y, np.nan)))
        ax.annotate(f"{y[best]:.2f}", (x[best], y[best]), textcoords="offset points",
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
