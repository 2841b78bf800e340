"""Build (or check) the committed emotion vectors of the bundled model, which FAST runs load.

python scripts/make_precomputed_vectors.py          # rebuild data/precomputed/ (about 5 minutes cold on 2 cores)
python scripts/make_precomputed_vectors.py --check  # recompute everything and compare with the committed files
"""

from __future__ import annotations

import argparse
import sys

import torch

from course_utils import build_emotion_vectors, load_model
from course_utils.precomputed import load_precomputed, norm_meta, save_precomputed


def main() -> int:
    """Rebuild the files, or with --check compare a full recomputation with them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="recompute and compare instead of writing")
    args = parser.parse_args()
    model = load_model()
    if not args.check:
        print(f"wrote {save_precomputed(model)}")
        return 0
    # recompute first: loading the committed files hands their norm to median_token_norm's memo
    fresh = build_emotion_vectors(model)
    fresh_norm = norm_meta(model, fresh.layer)
    stored = load_precomputed(model)
    diff = float((stored.vectors - fresh.vectors).abs().max())
    same = (
        stored.names == fresh.names and stored.layer == fresh.layer and torch.allclose(stored.vectors, fresh.vectors, atol=1e-4)
    )
    print(f"max |stored - recomputed| = {diff:.2e}: {'match' if same else 'MISMATCH'}")
    norm = stored.meta.get("median_token_norm", {})
    norm_same = norm.get("reference_sha256") == fresh_norm["reference_sha256"] and abs(
        float(norm.get("value", float("nan"))) - float(fresh_norm["value"])
    ) <= 1e-4 * float(fresh_norm["value"])
    print(
        f"median token norm: stored {norm.get('value')}, recomputed {fresh_norm['value']}: {'match' if norm_same else 'MISMATCH'}"
    )
    return 0 if same and norm_same else 1


if __name__ == "__main__":
    sys.exit(main())
