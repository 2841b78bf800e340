"""NDIF requests a real server accepts: nothing of course_utils in a request, and a strict dry run.

An NDIF server has no course_utils. nnsight pickles each request with cloudpickle, which sends an installed module
(the course is `pip install -e`) by reference, so any course function or class named in a request fails on the
server ("Module ... is not whitelisted"). The course's choice: blocks sent to NDIF hold only torch expressions and
envoys resolved on the client, and CourseModel pickles as nnsight's own LanguageModel.

Here every remote entry point runs through nnsight's `remote="local"` dry run, made STRICT:
- every request's bytes (what `RequestModel.serialize` gives the remote backend) are walked opcode by opcode
  (`pickletools.genops`) and fail on any `course_utils` global, or any module root outside ALLOWED_ROOTS;
- while the "server" deserialises, course_utils cannot be imported at all: nnsight hides `sys.path` and
  `sys.modules` entries, and the strict run also removes setuptools' editable finder from `sys.meta_path` and puts
  a finder first that refuses course_utils (covering an installed copy too);
- while the "server" runs the block, CourseModel's own API (`layer`, `layers`, `n_layers`...) raises: on NDIF the
  model is a plain LanguageModel, so a block calling `model.layer(i)` would fail there.
The remote tests of tests/test_architectures.py are imported below and run again under it.
"""

from __future__ import annotations

import importlib.abc
import pickletools
import sys

import pytest
import test_architectures as arch
import torch

import course_utils.steering as steering
from course_utils.activations import extract_activations
from course_utils.lens import direction_logits, top_tokens_of_each
from course_utils.models import CourseModel
from course_utils.scoring import continuation_logprobs, next_token_logprobs

# The remote tests of test_architectures and their fixtures, collected here again: they run under the strict dry run.
build, remote_pair, simulated = arch.build, arch.remote_pair, arch.simulated
_summary, _short_reference_texts = arch._summary, arch._short_reference_texts
test_remote_local_extraction = arch.test_remote_local_extraction
test_remote_local_logprobs_steered = arch.test_remote_local_logprobs_steered
test_remote_local_generate_steered = arch.test_remote_local_generate_steered
test_remote_local_lens = arch.test_remote_local_lens
test_remote_local_from_a_meta_loaded_model = arch.test_remote_local_from_a_meta_loaded_model
test_remote_local_batches_share_one_request = arch.test_remote_local_batches_share_one_request
test_remote_local_norms_vectors_and_cheating = arch.test_remote_local_norms_vectors_and_cheating
test_remote_local_meta_model_extraction_and_generation = arch.test_remote_local_meta_model_extraction_and_generation
test_remote_local_steer_spans = arch.test_remote_local_steer_spans
CONTS, GEN_PROMPTS, PROMPTS, TEXTS, _delta = arch.CONTS, arch.GEN_PROMPTS, arch.PROMPTS, arch.TEXTS, arch._delta
SPAN_CONTS, SPAN_PROMPTS = arch.SPAN_CONTS, arch.SPAN_PROMPTS

# Module roots a request may name: pickle's own machinery, what nnsight's serializer itself emits (cloudpickle, nnsight)
# and NDIF's published server list (builtins, torch, collections, numpy, math, einops, operator, typing, pandas, enum).
ALLOWED_ROOTS = {
    "builtins",
    "copyreg",
    "cloudpickle",
    "nnsight",
    "torch",
    "collections",
    "numpy",
    "math",
    "einops",
    "operator",
    "typing",
    "pandas",
    "enum",
}
COURSE_API = ("layer", "layers", "n_layers", "d_model", "unembed", "final_norm", "_envoy_root")
STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def pickle_globals(blob: bytes) -> set[tuple[str, str]]:
    """Every (module, name) a pickle imports, from its opcodes (GLOBAL, and STACK_GLOBAL through the memo)."""
    pushed: list[object] = []  # what each opcode left on top of the stack, when it is a string (else None)
    memo: dict[int, object] = {}
    found: set[tuple[str, str]] = set()
    for op, arg, _ in pickletools.genops(blob):
        if op.name in STRINGS:
            pushed.append(arg)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushed[-1] if pushed else None
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        elif op.name == "GLOBAL":
            found.add(tuple(arg.split(" ", 1)))
            pushed.append(None)
        elif op.name == "STACK_GLOBAL":
            module, name = pushed[-2], pushed[-1]
            found.add((str(module), str(name)) if isinstance(module, str) and isinstance(name, str) else ("?", "?"))
            pushed.append(None)
        elif op.name not in ("FRAME", "PROTO", "STOP"):
            pushed.append(None)
    return found


def payload_problems(blob: bytes) -> list[str]:
    """What would fail on NDIF: course_utils globals, roots outside ALLOWED_ROOTS, course module names as strings."""
    bad = [f"{m}.{n}" for m, n in sorted(pickle_globals(blob)) if m.split(".")[0] not in ALLOWED_ROOTS]
    for op, arg, _ in pickletools.genops(blob):  # a by-value function or class records its module's name
        if op.name in STRINGS and isinstance(arg, str) and (arg == "course_utils" or arg.startswith("course_utils.")):
            bad.append(f"string {arg!r}")
    return bad


class _RefuseCourse(importlib.abc.MetaPathFinder):
    """A finder placed first on sys.meta_path while the simulated server deserialises: course_utils does not exist."""

    def find_spec(self, name, path=None, target=None):
        if name == "course_utils" or name.startswith("course_utils."):
            raise ModuleNotFoundError(f"No module named {name!r} (strict NDIF dry run: the server has no course_utils)")
        return None


@pytest.fixture()
def requests(monkeypatch):
    """The bytes of every request nnsight serialises (what the remote backend would POST, before compression)."""
    from nnsight.schema.request import RequestModel

    blobs: list[bytes] = []
    serialize = RequestModel.serialize.__func__

    def recording(cls, tracer, compress=False):
        blob = serialize(cls, tracer, compress)
        blobs.append(blob)
        return blob

    monkeypatch.setattr(RequestModel, "serialize", classmethod(recording))
    return blobs


@pytest.fixture(autouse=True)
def strict_dry_run(monkeypatch, requests):
    """nnsight's remote="local" dry run, strict (see the module docstring); fails a test whose requests name course code."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    hide, restore, call = (
        LocalSimulationBackend._hide_local_modules,
        LocalSimulationBackend._restore,
        LocalSimulationBackend.__call__,
    )
    refuse = _RefuseCourse()

    def strict_hide(self):
        hidden = hide(self)
        hidden["finders"] = [f for f in sys.meta_path if "__editable__" in getattr(f, "__module__", "") + repr(f)]
        for f in hidden["finders"]:
            sys.meta_path.remove(f)
        sys.meta_path.insert(0, refuse)
        hidden["course"] = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "course_utils"}
        return hidden

    def strict_restore(self, hidden):
        sys.meta_path.remove(refuse)
        sys.meta_path.extend(hidden.pop("finders"))
        sys.modules.update(hidden.pop("course"))
        restore(self, hidden)

    def as_on_the_server(self, tracer):
        saved = {name: CourseModel.__dict__[name] for name in COURSE_API}

        def absent(name):
            def fail(*args, **kwargs):
                raise AttributeError(f"CourseModel.{name} used inside a remote block: NDIF's model is a plain LanguageModel")

            return property(fail) if isinstance(saved[name], property) else fail

        for name in COURSE_API:
            setattr(CourseModel, name, absent(name))
        try:
            return call(self, tracer)
        finally:
            for name, value in saved.items():
                setattr(CourseModel, name, value)

    monkeypatch.setattr(LocalSimulationBackend, "_hide_local_modules", strict_hide)
    monkeypatch.setattr(LocalSimulationBackend, "_restore", strict_restore)
    monkeypatch.setattr(LocalSimulationBackend, "__call__", as_on_the_server)
    yield
    problems = {p for blob in requests for p in payload_problems(blob)}
    assert not problems, f"a request names what NDIF lacks: {sorted(problems)}"


def test_the_strict_run_hides_the_editable_finder_and_an_installed_copy():
    """While the simulated server deserialises, `import course_utils` fails, whatever finder would find it."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    backend = LocalSimulationBackend(model=None)
    hidden = backend._hide_local_modules()
    try:
        assert not any("__editable__" in repr(f) for f in sys.meta_path)
        with pytest.raises(ModuleNotFoundError, match="course_utils"):
            __import__("course_utils.models")
    finally:
        backend._restore(hidden)
    assert sys.modules["course_utils"].__name__ == "course_utils"


def test_the_payload_walk_finds_course_globals():
    """The opcode walk sees a course function sent by reference, and a course module name sent by value."""
    import cloudpickle

    import course_utils.activations as activations

    by_reference = cloudpickle.dumps((activations.masked_mean, torch.zeros(2)))
    assert ("course_utils.activations", "masked_mean") in pickle_globals(by_reference)
    assert "course_utils.activations.masked_mean" in payload_problems(by_reference)
    assert payload_problems(cloudpickle.dumps({"x": torch.zeros(2)})) == []


def test_a_course_model_is_sent_as_nnsights_language_model(remote_pair, requests):
    _, remote = remote_pair
    with torch.no_grad(), remote.trace("Hello there", remote=remote.remote):
        out = remote.output.logits.save()
    assert out.shape[-1] == len(remote.tokenizer)
    names = pickle_globals(requests[-1])
    assert ("nnsight.modeling.language", "LanguageModel") in names
    assert not any(m.startswith("course_utils") for m, _ in names)


def test_every_remote_entry_point_sends_no_course_code(remote_pair, requests):
    """Extraction (all reductions), norms, steered and option-only scoring, generation (greedy, sampled), the lens."""
    local, remote = remote_pair
    for reduce in ("mean", "last", "none", "norm"):
        extract_activations(remote, TEXTS, layers=[1, 3], reduce=reduce, cache=False)
    steering._MEDIAN_NORMS.clear()
    steering.median_token_norm(remote, 2, TEXTS)
    delta = _delta(local, 3)
    continuation_logprobs(remote, PROMPTS, CONTS, delta=delta, layer=1, cache=False)
    span = (SPAN_PROMPTS[0].index("a cold"), len(SPAN_PROMPTS[0]))
    continuation_logprobs(remote, SPAN_PROMPTS, SPAN_CONTS, delta=delta, layer=2, steer_spans=[span, span], cache=False)
    steering.generate(remote, GEN_PROMPTS, _delta(local, 4), layer=1, strength=0.5, max_new_tokens=3, cache=False)
    steering.generate(remote, GEN_PROMPTS, max_new_tokens=3, do_sample=True, temperature=0.7, seed=3, cache=False)
    direction_logits(remote, delta)
    top_tokens_of_each(remote, torch.stack([delta, -delta]), k=5)
    got = next_token_logprobs(remote, PROMPTS, [5, 7], cache=False)
    torch.testing.assert_close(got, next_token_logprobs(local, PROMPTS, [5, 7], cache=False), atol=1e-4, rtol=1e-4)
    assert len(requests) >= 11 and all(payload_problems(b) == [] for b in requests)


def test_a_notebook_style_trace_resolves_the_layer_first(remote_pair, requests):
    """The notebook idiom for a remote model: take the layer's envoy before the block, use only it and torch inside."""
    local, remote = remote_pair
    layer = remote.layer(2)  # on the client: NDIF's model has no .layer()
    with torch.no_grad(), remote.trace("The cat sat on the mat.", remote=remote.remote):
        h = layer.output
        h = (h[0] if isinstance(h, tuple) else h).float().norm(dim=-1).cpu().save()
    with torch.no_grad(), local.trace("The cat sat on the mat."):
        want = local.layer(2).output.float().norm(dim=-1).cpu().save()
    torch.testing.assert_close(h, want, atol=1e-5, rtol=0)


def test_a_block_calling_course_code_fails_the_strict_run(remote_pair, requests):
    """The strict run catches what the plain dry run let through: course API called inside a remote block."""
    _, remote = remote_pair
    with pytest.raises(AttributeError, match="CourseModel.layer used inside a remote block"):
        with torch.no_grad(), remote.trace("Hello", remote=remote.remote):
            remote.layer(1).output.save()
    requests.clear()  # that request was the point of the test


def test_remote_sampling_is_seeded_where_the_model_runs(remote_pair, monkeypatch):
    """The seed travels inside the request: a server whose random state is anything still samples the same tokens."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    local, remote = remote_pair
    strict = LocalSimulationBackend.__call__
    scramble = iter(range(1000, 2000))

    def other_server_state(self, tracer):
        torch.manual_seed(next(scramble))  # NDIF's own random state, unrelated to the client's
        return strict(self, tracer)

    monkeypatch.setattr(LocalSimulationBackend, "__call__", other_server_state)
    kw = dict(max_new_tokens=6, do_sample=True, temperature=1.5, seed=11, cache=False)
    first = steering.generate(remote, GEN_PROMPTS, **kw)
    assert steering.generate(remote, GEN_PROMPTS, **kw) == first == steering.generate(local, GEN_PROMPTS, **kw)


# ------------------------------------------------- issue 21: the layers a remote run fetches, and its request budget


@pytest.fixture()
def fetched_layers(monkeypatch):
    """The layers each remote extraction request asks for (one entry per request, SESSION_BATCHES batches each)."""
    import course_utils.activations as activations

    asked: list[list[int]] = []
    remote_outputs = activations._remote_outputs

    def recording(model, chunk, layers, reduce, skip_first):
        asked.append(list(layers))
        return remote_outputs(model, chunk, layers, reduce, skip_first)

    monkeypatch.setattr(activations, "_remote_outputs", recording)
    return asked


def test_vector_helpers_fetch_only_the_layers_used(remote_pair, tmp_cache, fetched_layers, requests):
    """Remote: emotion vectors at one layer request that layer only, the notebook's prefetch of several layers is one
    request, and later calls at any of them are cache hits. Local: one all-layer cache file, keyed as before."""
    from course_utils.activations import _cache_key
    from course_utils.cache import cache_path
    from course_utils.data import load_stories
    from course_utils.vectors import build_emotion_vectors, layer_activations, neutral_texts, story_activations

    local, remote = remote_pair
    kw = dict(emotions=["happy", "sad", "afraid"], per_emotion=2, neutral_limit=6)
    vr = build_emotion_vectors(remote, layer=2, **kw)
    assert fetched_layers == [[2], [2]]  # the stories, then the neutral dialogues: layer 2 only, not all four
    stories = load_stories(emotions=kw["emotions"], per_emotion=2)
    fetched_layers.clear()
    both = story_activations(remote, stories, layers=[3, 0, 2])
    assert fetched_layers == [[0, 3]]  # one request for the layers not cached yet, in model order
    again = layer_activations(remote, neutral_texts(remote, 6), [0, 3])
    assert fetched_layers == [[0, 3], [0, 3]] and again.shape == (6, 2, local.d_model)
    build_emotion_vectors(remote, layer=3, **kw)
    build_emotion_vectors(remote, layer=0, **kw)
    assert len(fetched_layers) == 2  # both from the per-layer cache files
    everything = story_activations(local, stories)  # local: every layer, one cache file, keyed as before
    torch.testing.assert_close(both, everything[:, [3, 0, 2]], atol=1e-5, rtol=0)
    texts = stories.text.tolist()
    assert cache_path(_cache_key(local, texts, list(range(local.n_layers)), "mean", 3), "activations").exists()
    vl = build_emotion_vectors(local, layer=2, **kw)
    torch.testing.assert_close(vr.vectors, vl.vectors, atol=1e-4, rtol=0)
    assert not cache_path(_cache_key(local, texts, [2], "mean", 3), "activations").exists()  # no per-layer file locally
    assert cache_path(_cache_key(remote, texts, [2], "mean", 3), "activations").exists()  # remote: one file per layer
    fetched_layers.clear()
    calm = load_stories(emotions=["calm"], per_emotion=2)
    story_activations(remote, calm)  # every layer, as notebooks 02 and 03 ask
    torch.testing.assert_close(story_activations(remote, calm, layers=[3, 1]), story_activations(local, calm)[:, [3, 1]])
    assert fetched_layers == [list(range(local.n_layers))]  # the layers asked after it came from that file


def _code_cells(name: str) -> list[str]:
    """The code cells of course_src/<name>.py (jupytext percent format), in order."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "course_src" / f"{name}.py").read_text(encoding="utf-8")
    cells = [c for c in text.split("\n# %%")[1:] if not c.startswith(" [markdown]")]
    return [c.split("\n", 1)[1] if "\n" in c else "" for c in cells]


def _run_notebook(name: str, model, monkeypatch) -> dict:
    """Every code cell of course_src/<name>.py as written, FAST, with `model` as the notebook's model (REMOTE set to
    its remote flag); figures are neither saved nor shown. Returns the notebook's namespace."""
    import linecache

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import course_utils
    import course_utils.models as models
    import course_utils.plots as plots

    monkeypatch.setattr(course_utils, "load_model", lambda name=None, remote=False, **kw: model)
    monkeypatch.setattr(models, "check_remote", lambda m: "check_remote: not run offline")  # it asks NDIF's server
    monkeypatch.setattr(plots, "save_figure", lambda fig, name: None)
    monkeypatch.setattr(plt, "show", lambda *a, **k: plt.close("all"))
    namespace: dict = {"__name__": f"notebook_{name}"}
    try:
        for i, cell in enumerate(_code_cells(name)):
            where = f"<{name} cell {i}>"
            linecache.cache[where] = (len(cell), None, cell.splitlines(True), where)  # nnsight reads a block's source
            exec(compile(cell, where, "exec"), namespace)
            if "REMOTE" in namespace and "FAST" in namespace and "model" not in namespace:  # the parameters cell
                namespace.update(FAST=True, REMOTE=model.remote)
    finally:
        plt.close("all")
    assert namespace["model"] is model
    return namespace


def test_fast_04_makes_a_handful_of_requests(remote_pair, tmp_cache, tmp_build, requests, simulated, monkeypatch):
    """Notebook 04 in FAST mode, every code cell as written, on a remote model: its extractions (stories and neutral
    dialogues at all the layers it reads) and its logit lens (every emotion vector and 60 random directions) come
    to a handful of NDIF requests, none naming course code (the strict run checks each)."""
    namespace = _run_notebook("04_emotion_vectors", remote_pair[1], monkeypatch)
    assert len(namespace["LAYERS"]) >= 2
    assert len(simulated) == len(requests) <= 4, f"{len(requests)} requests"
    print(f"FAST 04 on a remote model: {len(requests)} requests, {sum(map(len, requests))} bytes sent")


@pytest.mark.parametrize("name", ["00_setup", "02_extracting_activations"])
def test_the_notebooks_own_traces_run_on_ndif(name, remote_pair, tmp_cache, tmp_build, requests, simulated, monkeypatch):
    """Notebooks 00 and 02 write traces in their cells (reading and editing a layer): run as written on a remote
    model, every block holds only envoys resolved before it and torch (the strict run fails a block that calls
    model.layer(i) inside), and every request really went through the simulated server."""
    _run_notebook(name, remote_pair[1], monkeypatch)
    assert len(simulated) == len(requests) >= 3
    print(f"FAST {name} on a remote model: {len(requests)} requests, {sum(map(len, requests))} bytes sent")


def test_every_exercise_answer_runs_on_ndif(remote_pair, requests, capsys):
    """Each exercise's reference answer (course_utils.solutions, generated from the notebooks) that runs the model,
    on a remote model under the strict run, equals its local result; the checks built on them (their references and
    their diagnoses of a wrong answer) send only torch and envoys too."""
    import inspect

    import nnsight

    from course_utils import checks, solutions
    from course_utils.cheating import load_scenarios

    local, remote = remote_pair
    scenario = load_scenarios("cheat_scenarios").iloc[0].to_dict()
    args = {
        "residual_after": ("The lighthouse keeper climbed the stairs.", 2),
        "steered_logits": ("The weather today is", _delta(local, 14), 1),
        "choice_logodds": ("Pick one. (A) a walk (B) a bath. Answer:",),
        "cheat_logodds": (scenario,),
        "next_token_probs": ("The weather today is", 2, 0.5),
        "two_prompt_reads": ("A short one.", "A much longer prompt, with more words in it.", 2),
        "steered_generate": (["The weather today is"], _delta(local, 14), 1, 0.5, 3),
    }
    answers = {
        name: fn
        for name, fn in vars(solutions).items()
        if inspect.isfunction(fn)
        and fn.__module__ == solutions.__name__
        and next(iter(inspect.signature(fn).parameters), None) == "model"
    }
    assert set(answers) == set(args), f"give the new model-running answers arguments here: {set(answers) ^ set(args)}"
    for name, fn in answers.items():
        before = len(requests)
        want, got = fn(local, *args[name]), fn(remote, *args[name])
        assert len(requests) > before, f"{name} sent no request"
        for g, w in zip(got, want) if isinstance(want, (list, tuple)) else [(got, want)]:
            if isinstance(w, str):
                assert g == w, name
            else:
                torch.testing.assert_close(torch.as_tensor(g), torch.as_tensor(w), atol=1e-4, rtol=0, msg=name)
    assert checks.check_residual_after(solutions.residual_after, remote) is solutions.residual_after

    def subtracted(model, prompt, delta, layer):  # a learner's wrong answer, written the remote-safe way
        envoy = model.layer(layer)
        with torch.no_grad(), model.trace(prompt, remote=model.remote):
            envoy.output[:] = envoy.output - delta.to(envoy.output.device)
            logits = nnsight.save(model.output.logits[0, -1])
        return logits.float().cpu()

    assert checks.is_reference(checks.check_steered_logits(subtracted, remote))
    assert "you subtracted the vector" in capsys.readouterr().out  # diagnosed with checks._steer, run remotely


def test_remote_gradients_match_local_and_send_no_course_code(remote_pair, requests):
    """measure_gradients on NDIF (nnsight's backward inside the request) equals the local prefix-replay gradients."""
    from course_utils.derivatives import measure_gradients

    local, remote = remote_pair
    weights = [1.0, -1.0, 0.5]
    want = measure_gradients(local, PROMPTS, CONTS, weights, layer=1, cache=False)
    got = measure_gradients(remote, PROMPTS, CONTS, weights, layer=1, cache=False)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    span = (SPAN_PROMPTS[0].index("a cold"), len(SPAN_PROMPTS[0]))
    kw = dict(layer=2, steer_spans=[span, span], cache=False)
    torch.testing.assert_close(
        measure_gradients(remote, SPAN_PROMPTS, SPAN_CONTS, [1.0, -1.0], **kw),
        measure_gradients(local, SPAN_PROMPTS, SPAN_CONTS, [1.0, -1.0], **kw),
        atol=1e-4,
        rtol=1e-4,
    )
    assert requests and all(payload_problems(b) == [] for b in requests)
