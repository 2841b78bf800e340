"""The course's speed unit: a bare transformers forward pass with all hidden states over the first 64 course
stories, batch 16 (best of 2), on this machine. Timings elsewhere are quoted in these units beside seconds.

The 64 stories are those the unit was first defined on (the first 64 of the course's earlier one-voice corpus),
kept verbatim in benchmarks/speed_unit_stories.jsonl, so that the unit means the same work whatever the corpus.

    .venv/bin/python benchmarks/speed_unit.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

N_STORIES, BATCH = 64, 16


def unit_texts() -> list[str]:
    """The 64 stories of the unit."""
    path = Path(__file__).with_name("speed_unit_stories.jsonl")
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    if len(texts) != N_STORIES:
        raise ValueError(f"{path}: {len(texts)} stories, the unit needs {N_STORIES}")
    return texts


def speed_unit(model=None) -> float:
    """Seconds for one unit on this machine (best of 2, after a warm-up batch)."""
    from course_utils import load_model
    from course_utils.models import tokenize

    model = model or load_model(device="cpu")
    texts = unit_texts()
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
