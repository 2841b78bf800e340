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
        out.value = (
            f"<b>{html.escape(name)}</b> · PC1 {row.pc1:+.2f}, PC2 {row.pc2:+.2f}"
            + (
                f" · human valence {row.valence:.2f}, arousal {row.arousal:.2f}"
                if row.valence == row.valence and row.arousal == row.arousal  # NaN: a word the NRC lexicon lacks
                else " · no human valence/arousal rating (not in the NRC lexicon)"
            )
            + f"<br>nearest:<ul>{nearest}</ul>farthest:<ul>{farthest}</ul>top tokens: {toks}"
        )

    pick.observe(lambda change: show(change["new"]), names="value")
    show(pick.value)
    return W.VBox([pick, out])


def steering_panel(
    model: Any, vectors: Any, prompt: str = "Tell me about your day.", max_new_tokens: int = 30, strength: float = 0.0
) -> W.VBox:
    """Emotion, strength, layer and prompt -> the steered reply (regenerated on every change)."""
    from .models import chat
    from .steering import generate

    emotion = W.Dropdown(options=vectors.names, value=vectors.names[0], description="emotion")
    slider = W.FloatSlider(
        value=strength, min=-2.0, max=2.0, step=0.25, description="strength", continuous_update=False, readout_format="+.2f"
    )
    layer = W.IntSlider(value=vectors.layer, min=0, max=model.n_layers - 1, description="layer", continuous_update=False)
    text = W.Text(value=prompt, description="prompt", continuous_update=False, layout=W.Layout(width="90%"))
    reply = W.Label(value="", layout=W.Layout(width="95%"))

    def update(_: Any = None) -> None:
        out = generate(
            model,
            chat(model, text.value),
            vectors[emotion.value],
            layer=layer.value,
            strength=slider.value,
            max_new_tokens=max_new_tokens,
        )[0]
        reply.value = f"[{emotion.value} {slider.value:+.2f} @ layer {layer.value}] {out}"

    for w in (emotion, slider, layer, text):
        w.observe(update, names="value")
    update()
    return W.VBox([emotion, slider, layer, text, reply])
