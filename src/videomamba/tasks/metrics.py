"""Classification metrics from averaged class scores: top-k, per-class accuracy, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from videomamba.errors import BackendUnavailableError
from videomamba.utils.io import atomic_path


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores; ``scores`` (N, K)."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    # Stable sort on -scores: ties are broken toward the lower class id, like torch.topk on CPU.
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` counts; row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for classes with no sample)."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def classification_report(scores: np.ndarray, labels: np.ndarray, num_classes: int,
                          class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Top-1/top-5, mean and per-class accuracy, and the confusion matrix, as plain data."""
    predictions = scores.argmax(axis=1)
    matrix = confusion_matrix(predictions, labels, num_classes)
    per_class = per_class_accuracy(matrix)
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    return {
        "num_samples": int(len(labels)),
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class_accuracy": float(np.nanmean(per_class)) if np.any(~np.isnan(per_class)) else float("nan"),
        "per_class_accuracy": {names[i]: (None if np.isnan(a) else float(a)) for i, a in enumerate(per_class)},
        "confusion_matrix": matrix.tolist(),
        "class_names": names,
    }


def save_confusion_png(matrix: np.ndarray, class_names: Sequence[str], path: str | Path,
                       title: str = "confusion matrix") -> None:
    """Row-normalised confusion matrix as a PNG (needs matplotlib), written atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BackendUnavailableError(
            "writing confusion.png needs matplotlib: pip install 'videomamba[plot]' "
            "(or pass --no-confusion)"
        ) from None
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(4.0, 0.35 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046)
    if len(class_names) <= 40:
        ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
