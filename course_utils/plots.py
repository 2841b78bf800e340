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


def layer_curves(
    df: pd.DataFrame,
    title: str,
    chance: float | None = None,
    baseline: float | None = None,
    baseline_label: str = "bag-of-words baseline",
) -> plt.Figure:
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


def token_html(tokens: list[str], scores: list[float], title: str = "", scale: float | None = None) -> str:
    """HTML of tokens on an orange (negative) to blue (positive) background: colour-blind safe (Okabe-Ito hues)."""
    import html as _html

    scale = scale or max(1e-9, max(abs(s) for s in scores))
    spans = []
    for tok, s in zip(tokens, scores):
        a = min(1.0, abs(s) / scale)
        rgb = "0,114,178" if s >= 0 else "230,159,0"  # Okabe-Ito blue / orange
        text = _html.escape(tok).replace("\n", "↵<br>")
        spans.append(f"<span title='{s:+.3f}' style='background: rgba({rgb},{a:.2f}); padding: 1px 0'>{text}</span>")
    head = f"<div style='font-weight:bold; margin: 4px 0'>{_html.escape(title)}</div>" if title else ""
    return f"{head}<div style='font-family: monospace; line-height: 1.9; white-space: pre-wrap'>{''.join(spans)}</div>"
