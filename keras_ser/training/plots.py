"""Run figures, drawn on `matplotlib.figure.Figure` objects: no pyplot, no backend to choose, no
process-wide state (a library call never calls `matplotlib.use`)."""

import numpy as np
from matplotlib.figure import Figure

from keras_ser.utils import save_figure


def plot_confusion(cm, labels, path, title):
    """A confusion matrix (rows: true, columns: predicted) with counts, shaded by row share."""
    cm = np.asarray(cm)
    fig = Figure(figsize=(4 + 0.4 * len(labels), 3.5 + 0.4 * len(labels)))
    ax = fig.add_subplot()
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_strength(s_true, s_pred, e_true, labels, path, title):
    """Predicted against target strength by emotion, and the two distributions."""
    fig = Figure(figsize=(10, 4))
    a, b = fig.subplots(1, 2)
    for k, name in enumerate(labels):
        sel = e_true == k
        a.scatter(s_true[sel], s_pred[sel], s=10, alpha=0.6, label=name)
    a.plot([0, 1], [0, 1], "k--", lw=1)
    a.set_xlabel("target strength")
    a.set_ylabel("predicted strength")
    a.legend(fontsize=8)
    bins = np.linspace(-0.1, 1.1, 25)
    b.hist(s_true, bins, alpha=0.5, label="target")
    b.hist(s_pred, bins, alpha=0.5, label="predicted")
    b.set_xlabel("strength")
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
