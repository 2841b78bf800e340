"""The course's speed unit: a bare transformers forward pass with all hidden states over the first 64 course
stories, batch 16 (best of 2), on this machine. Timings elsewhere are quoted in these units beside seconds.

    .venv/bin/python benchmarks/speed_unit.py
"""

from __future__ import annotations

import time

import torch

N_STORIES, BATCH = 64, 16


def speed_unit(model=None) -> float:
    """Seconds for one unit on this machine (best of 2, after a warm-up batch)."""
    from course_utils import load_model
    from course_utils.data import load_stories
    from course_utils.models import tokenize

    model = model or load_model(device="cpu")
    texts = load_stories().text.tolist()[:N_STORIES]
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    hf = model._module
    with torch.no_grad():
        hf(**tokenize(model, batches[0]), output_hidden_states=True)
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            for b in batches:
                hf(**tokenize(model, b), output_hidden_states=True)
            best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    print(f"speed unit: {speed_unit():.2f} s")
