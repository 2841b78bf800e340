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
from course_utils.scoring import continuation_logprobs

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
    assert len(requests) >= 10 and all(payload_problems(b) == [] for b in requests)


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
