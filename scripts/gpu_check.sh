#!/usr/bin/env bash
# GPU check for a lent CUDA device (issue 21): offline, under 8 minutes. Exits 0 with a message where there is no CUDA.
# Runs: attention on the packed additive mask in bf16/fp16/fp32 (sdpa and eager) against
# one-row references, peak memory of the lens and the memo, the policy under a simulated 15 GB card, and the FAST
# solution notebooks on CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 COURSE_BLOCK_NETWORK=1 COURSE_TEST_DEVICE=cuda
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing to check, not run."
  exit 0
fi
"$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"gpu_check on {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 1e9:.1f} GB")'
start=$(date +%s)

echo "== 1. attention on the packed additive mask, bf16/fp16/fp32, sdpa and eager, CUDA vs one text at a time"
timeout 120 "$PY" - <<'PYEOF'
import torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
for attn in ("sdpa", "eager"):
    cfg = LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128)
    cfg._attn_implementation = attn
    base = LlamaForCausalLM(cfg).eval()
    for dtype, tol in ((torch.float32, 1e-4), (torch.float16, 2e-2), (torch.bfloat16, 1.5e-1)):
        m = base.to("cuda", dtype)
        prompt, a, b = torch.randint(0, 512, (7,)), torch.randint(0, 512, (4,)), torch.randint(0, 512, (5,))
        ids = torch.cat([prompt, a, b])[None].cuda()
        T, P = ids.shape[1], 7
        sees = torch.ones(T, T, dtype=torch.bool).tril()
        sees[P + 4 :, P : P + 4] = False  # the second continuation does not see the first
        mask = torch.zeros(1, 1, T, T, dtype=dtype, device="cuda").masked_fill(~sees.cuda(), torch.finfo(dtype).min)
        pos = torch.cat([torch.arange(P + 4), torch.arange(P, P + 5)])[None].cuda()
        with torch.no_grad():
            packed = m(input_ids=ids, attention_mask=mask, position_ids=pos).logits[0].float()
            alone = m(input_ids=torch.cat([prompt, b])[None].cuda()).logits[0].float()
        diff = float((packed[P + 4 :] - alone[P:]).abs().max())
        print(f"  {attn:5s} {str(dtype):15s} packed vs alone max|diff| {diff:.3g} (allowed {tol})")
        assert diff <= tol, (attn, dtype, diff)
PYEOF

echo "== 2. peak GPU memory: the lens (no float32 unembedding copy) and the prefix memo (bounded by bytes)"
timeout 120 "$PY" - <<'PYEOF'
import torch
import course_utils.lens as lens
import course_utils.scoring as scoring
from course_utils.models import CourseModel
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from course_utils.models import _converted_copy, bundled_model_path
tok = AutoTokenizer.from_pretrained(_converted_copy(bundled_model_path()))
tok.padding_side = "left"
cfg = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=256, num_hidden_layers=2, num_attention_heads=16,
                  num_key_value_heads=4, tie_word_embeddings=False)
m = CourseModel(LlamaForCausalLM(cfg).to("cuda", torch.bfloat16).eval(), tokenizer=tok)
m.course_id = "gpu-check-wide-vocab"
w = m.unembed.weight
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); before = torch.cuda.memory_allocated()
lens.direction_logits(m, torch.randn(8, 2048))
extra = torch.cuda.max_memory_allocated() - before
full = w.numel() * 4
print(f"  lens: peak extra {extra / 1e6:.0f} MB; a float32 copy of the unembedding would be {full / 1e6:.0f} MB")
assert extra < full / 2, extra
scoring.PREFIX_CACHE_BYTES = 64 * 2**20
texts = [f"Line {i}: " + "the weather was calm and the sea was flat " * 20 for i in range(24)]
scoring.continuation_logprobs(m, texts, [" yes"] * len(texts), delta=torch.randn(2048), layer=1, batch_size=2, cache=False)
print(f"  prefix memo holds {scoring._prefix_bytes() / 1e6:.1f} MB (bound {scoring.PREFIX_CACHE_BYTES / 1e6:.1f} MB)")
assert scoring._prefix_bytes() <= scoring.PREFIX_CACHE_BYTES
PYEOF

echo "== 3. the memory policy under a simulated 15 GB card (a T4's free memory, capability 7.5)"
timeout 120 "$PY" - <<'PYEOF'
import torch
from course_utils import models
for n, want in ((1.7e9, torch.float32), (3.1e9, torch.float16)):
    got = models.gpu_dtype(n, 14.7e9, (7, 5))
    print(f"  {n / 1e9:.1f}B -> {got}"); assert got == want
try:
    models.gpu_dtype(8.0e9, 14.7e9, (7, 5), name="an 8B model")
    raise SystemExit("an 8B model must not be loaded on a 15 GB card")
except models.ModelNotAvailableError as e:
    print("  8.0B ->", str(e).splitlines()[0][:140])
cap = torch.cuda.get_device_capability()
print(f"  this GPU: capability {cap[0]}.{cap[1]} -> half precision {models.half_dtype(cap)}")
PYEOF

# Not yet: tests/test_architectures.py on CUDA (its fixtures do not read COURSE_TEST_DEVICE yet; set here for them).
echo "== 4. library tests (CPU tensors; the GPU policy is mocked): models, lens/memo, strict NDIF dry run"
OMP_NUM_THREADS=4 timeout 240 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_models.py tests/test_lens.py tests/test_remote.py

echo "== 5. the FAST solution notebooks on CUDA (bundled model)"
OMP_NUM_THREADS=4 timeout 240 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_notebooks.py -k "solutions" || {
  echo "gpu_check: FAST solution notebooks failed on CUDA"; exit 1; }

echo "gpu_check: all passed in $(( $(date +%s) - start )) s"
