"""Figure helpers: the course's style, and saving figures for the report."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .paths import build_dir


def setup_style() -> None:
    """One consistent, readable style for every notebook."""
    sns.set_theme(context="notebook", style="whitegrid", palette="deep")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "figure.autolayout": True})


def save_figure(fig: plt.Figure, name: str) -> None:
    """Save a figure as build/figures/<name>.png (the report collects them)."""
    folder = build_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", bbox_inches="tight")


def layer_curves(df: pd.DataFrame, title: str, chance: float | None = None, baseline: float | None = None,
                 baseline_label: str = "bag-of-words baseline") -> plt.Figure:
    """Accuracy by layer for several conditions (columns layer, accuracy, ci_low, ci_high, condition)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, part in df.groupby("condition", sort=False):
        ax.plot(part.layer, part.accuracy, marker="o", label=name)
        ax.fill_between(part.layer, part.ci_low, part.ci_high, alpha=0.2)
    if baseline is not None:
        ax.axhline(baseline, color="black", linestyle="--", label=baseline_label)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    ax.set(xlabel="layer (residual stream after decoder layer i)", ylabel="test accuracy", title=title, ylim=(0, 1.02))
    ax.legend(loc="best", fontsize="small")
    return fig
