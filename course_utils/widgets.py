"""Small ipywidgets panels (work with ipywidgets 8 in JupyterLab and 7.7 on Colab)."""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import pandas as pd


def emotion_explorer(vectors: Any, tokens: dict[str, list[str]], coords: pd.DataFrame) -> W.VBox:
    """Pick an emotion: its nearest emotions (cosine), the tokens it promotes, and its place on the PC1/PC2 plane."""
    cos = pd.DataFrame((vectors.unit() @ vectors.unit().T).numpy(), index=vectors.names, columns=vectors.names)
    pick = W.Dropdown(options=vectors.names, value=vectors.names[0], description="emotion")
    out = W.HTML()

    def show(name: str) -> None:
        near = cos[name].drop(name).sort_values(ascending=False)
        row = coords.loc[name]
        nearest = "".join(f"<li>{html.escape(n)} ({v:+.2f})</li>" for n, v in near.head(5).items())
        farthest = "".join(f"<li>{html.escape(n)} ({v:+.2f})</li>" for n, v in near.tail(3).items())
        toks = ", ".join(html.escape(repr(t)) for t in tokens.get(name, []))
        out.value = (f"<b>{html.escape(name)}</b> · PC1 {row.pc1:+.2f}, PC2 {row.pc2:+.2f}"
                     f" · human valence {row.valence:.2f}, arousal {row.arousal:.2f}"
                     f"<br>nearest:<ul>{nearest}</ul>farthest:<ul>{farthest}</ul>top tokens: {toks}")

    pick.observe(lambda change: show(change["new"]), names="value")
    show(pick.value)
    return W.VBox([pick, out])
