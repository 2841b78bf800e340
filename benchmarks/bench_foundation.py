"""Benchmark the foundation: model load time, peak memory, extraction vs a bare transformers forward.

    .venv/bin/python benchmarks/bench_foundation.py [--n 128] [--batch-size 16]
Prints figures; asserts nothing (targets: load < 20 s, peak < 2 GB, extraction within 10% of bare).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

import torch


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=128, help="number of stories")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cold", action="store_true", help="also time the first GGUF conversion (fresh cache)")
    args = parser.parse_args()
    import os

    if args.cold:
        tmp = tempfile.mkdtemp()
        os.environ["COURSE_CACHE_DIR"] = tmp
    t0 = time.perf_counter()
    from course_utils import extract_activations, load_model
    from course_utils.data import load_stories
    from course_utils.models import tokenize

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = load_model(device="cpu")
    t_load = time.perf_counter() - t0
    print(
        f"import course_utils: {t_import:.1f} s; load_model(): {t_load:.1f} s "
        f"({'cold: includes the one-time GGUF conversion' if args.cold else 'warm conversion cache'})"
    )
    texts = load_stories().text.tolist()[: args.n]
    # Same batches for both: the course's length-sorted order.
    lengths = [len(model.tokenizer(t)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    batches = [[texts[i] for i in order[j : j + args.batch_size]] for j in range(0, len(order), args.batch_size)]
    hf = model._module
    for _ in range(2):  # warm up both paths
        extract_activations(model, batches[0], cache=False, progress=False)
        with torch.no_grad():
            hf(**tokenize(model, batches[0]), output_hidden_states=True)
    t_bare, t_ours = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        with torch.no_grad():
            for b in batches:
                hf(**tokenize(model, b), output_hidden_states=True)
        t_bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        extract_activations(model, texts, cache=False, progress=False, batch_size=args.batch_size)
        t_ours.append(time.perf_counter() - t0)
    bare, ours = min(t_bare), min(t_ours)
    print(
        f"{len(texts)} stories, batch {args.batch_size}: bare transformers forward (output_hidden_states) "
        f"{bare:.2f} s, extract_activations (nnsight, all 30 layers, masked mean) {ours:.2f} s, "
        f"ratio {ours / bare:.3f}"
    )
    extract_activations(model, texts)  # fill the cache
    t0 = time.perf_counter()
    extract_activations(model, texts)
    print(f"cache hit for {len(texts)} stories x 30 layers: {time.perf_counter() - t0:.3f} s")
    print(f"peak resident memory: {peak_mb():.0f} MB")
    if args.cold:
        shutil.rmtree(os.environ["COURSE_CACHE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
