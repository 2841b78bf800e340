"""course_utils.vectors: the recipe's pieces, build_emotion_vectors, save/load, determinism."""

from __future__ import annotations

import pytest
import torch

from course_utils import EmotionVectors, build_emotion_vectors
from course_utils.data import load_stories
from course_utils.lens import top_tokens
from course_utils.vectors import (
    center,
    default_layer,
    emotion_means,
    neutral_components,
    project_out,
    story_activations,
    within_emotion_components,
    without_story_variation,
)

SMALL = dict(emotions="core", per_emotion=2, neutral_limit=8)  # 72 stories (every split) and 8 dialogues


@pytest.fixture(scope="module")
def vec_cache(tmp_path_factory):
    """One private activation cache for this module: the first build fills it, later ones hit it."""
    path = tmp_path_factory.mktemp("vec_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("COURSE_CACHE_DIR", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def small_vectors(model, vec_cache):
    return build_emotion_vectors(model, **SMALL)


def test_default_layer_rule():
    assert default_layer(30) == 20 and default_layer(24) == 16 and default_layer(12) == 8


def test_means_and_centering_weigh_each_emotion_once():
    acts = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 0.0], [0.0, 4.0]])
    means = emotion_means(acts, ["a", "a", "a", "b"], ["a", "b"])
    assert means.tolist() == [[3.0, 0.0], [0.0, 4.0]]
    assert center(means).tolist() == [[1.5, -2.0], [-1.5, 2.0]]
    with pytest.raises(ValueError, match="no texts for emotions"):
        emotion_means(acts, ["a"] * 4, ["a", "z"])


def test_neutral_projection_removes_what_it_should():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 16, generator=g))[0]
    # neutral data varies strongly along basis[0] and basis[1], weakly elsewhere
    coeffs = torch.randn(200, 16, generator=g) * torch.tensor([10.0, 8.0] + [1e-3] * 14)
    neutral = coeffs @ basis.T
    pcs = neutral_components(neutral, variance=0.5)
    assert pcs.shape[0] == 1  # the first PC alone explains > 50%
    pcs = neutral_components(neutral, variance=0.9)
    assert pcs.shape[0] == 2
    v = torch.randn(5, 16, generator=g)
    out = project_out(v, pcs)
    assert (out @ pcs.T).abs().max() < 1e-4  # nothing left along the neutral directions
    # what is orthogonal to them is untouched
    rest = basis[:, 2:]
    torch.testing.assert_close(out @ rest, v @ rest, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="between 0 and 1"):
        neutral_components(neutral, variance=1.5)


def test_story_variation_is_removed_exactly_on_a_hand_made_example():
    # two emotions apart along x; inside each, the stories spread along y only (their form, say)
    acts = torch.tensor([[1.0, 3.0, 0.0], [1.0, -3.0, 0.0], [-1.0, 3.0, 0.0], [-1.0, -3.0, 0.0]])
    labels = ["a", "a", "b", "b"]
    pcs = within_emotion_components(acts, labels)
    assert pcs.shape == (1, 3) and torch.allclose(pcs.abs(), torch.tensor([[0.0, 1.0, 0.0]]))
    vec = EmotionVectors(["a", "b"], 0, torch.tensor([[1.0, 2.0, 0.0], [-1.0, -2.0, 0.0]]), meta={"denoise": True})
    out = without_story_variation(vec, acts, labels)
    assert torch.allclose(out.vectors, torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]), atol=1e-6)
    assert out.meta == {"denoise": True, "story_components": 1, "story_variance": 0.5} and vec.vectors[0, 1] == 2.0
    story = torch.tensor([[0.2, -3.0, 0.0]])  # an 'a' story written in the other form
    assert vec.cosine(story).argmax().item() == 1 and out.cosine(story).argmax().item() == 0  # wrong, then right
    with pytest.raises(ValueError, match="two different stories"):
        within_emotion_components(acts[[0, 2]], ["a", "b"])
    with pytest.raises(ValueError, match="labels has 3 entries"):
        without_story_variation(vec, acts, labels[:3])
    with pytest.raises(ValueError, match="no story has an emotion"):
        without_story_variation(vec, acts, ["x"] * 4)


def test_build_can_remove_story_variation_and_keeps_the_default(model, small_vectors):
    assert "story_components" not in small_vectors.meta  # the default stays the paper's recipe
    out = build_emotion_vectors(model, story_variance=0.5, **SMALL)
    assert out.meta["story_components"] >= 1 and torch.equal(out.origin, small_vectors.origin)
    stories = load_stories(emotions=SMALL["emotions"], per_emotion=SMALL["per_emotion"])
    train = (stories.split == "train").to_numpy()
    acts = story_activations(model, stories, layers=[out.layer])[torch.tensor(train), 0]
    expected = without_story_variation(small_vectors, acts, stories.emotion[train].to_numpy())
    assert torch.allclose(out.vectors, expected.vectors) and not torch.allclose(out.vectors, small_vectors.vectors)


def test_build_shapes_and_meta(model, small_vectors):
    ev = small_vectors
    assert ev.layer == 20 and len(ev.names) == 12 and ev.vectors.shape == (12, model.d_model)
    assert ev.meta["denoise"] and ev.meta["neutral_components"] >= 1
    assert torch.allclose(ev.vectors.mean(0), torch.zeros(model.d_model), atol=1e-3 * ev.vectors.norm(dim=1).mean())
    raw = build_emotion_vectors(model, denoise=False, **SMALL)
    assert torch.allclose(ev.origin, raw.origin)
    assert not torch.allclose(raw.vectors, ev.vectors)
    with pytest.raises(ValueError, match="layer=99"):
        build_emotion_vectors(model, layer=99, **SMALL)


def test_build_uses_the_cache(model, small_vectors, vec_cache):
    n_files = len(list(vec_cache.glob("activations/*.safetensors")))
    b = build_emotion_vectors(model, **SMALL)
    assert torch.equal(small_vectors.vectors, b.vectors) and torch.equal(small_vectors.origin, b.origin)
    assert len(list(vec_cache.glob("activations/*.safetensors"))) == n_files  # second build: cache hits only


def test_build_is_deterministic(model, vec_cache):
    # A slice (3 emotions, one story per split, 4 neutral dialogues: 13 texts, one batch) built twice from the model:
    # the first build computes and caches, the second computes again with no cache read; the same numbers.
    kw = dict(emotions=["calm", "afraid", "happy"], per_emotion=1, neutral_limit=4)
    first = build_emotion_vectors(model, **kw)
    fresh = build_emotion_vectors(model, **kw, cache=False)
    assert first.names == fresh.names == ["happy", "calm", "afraid"]  # data/emotions.csv order, not the argument's
    torch.testing.assert_close(fresh.vectors, first.vectors, rtol=0, atol=1e-6)
    torch.testing.assert_close(fresh.origin, first.origin, rtol=0, atol=1e-6)


def test_save_load_round_trip(small_vectors, tmp_path):
    ev = small_vectors
    path = ev.save(tmp_path / "vecs")
    back = EmotionVectors.load(path)
    assert back.names == ev.names and back.layer == ev.layer and torch.equal(back.vectors, ev.vectors)
    assert torch.equal(back.origin, ev.origin)
    assert back.meta == ev.meta
    with pytest.raises(FileNotFoundError, match="json"):
        (tmp_path / "vecs.json").unlink()
        EmotionVectors.load(tmp_path / "vecs")


def test_score_returns_one_row_per_text(model, small_vectors):
    ev = small_vectors
    df = ev.score(model, ["The dog came home.", "They cancelled the flight again, the third time this week."])
    assert list(df.columns) == ev.names and len(df) == 2
    assert df.abs().le(1.0 + 1e-5).all().all()
    with pytest.raises(ValueError, match="reduce='none'"):
        ev.score(model, ["x y z w"], reduce="none")
    with pytest.raises(KeyError, match="available"):
        ev["hangry"]


def test_logit_lens_returns_tokens(model, small_vectors):
    ev = small_vectors
    toks = top_tokens(model, ev["calm"], k=5)
    assert len(toks) == 5 and all(isinstance(t, str) for t in toks)


@pytest.mark.slow
def test_precomputed_vectors_match_what_the_code_computes(model):
    from safetensors.torch import load_file

    from course_utils import extract_activations
    from course_utils.data import load_stories
    from course_utils.precomputed import load_precomputed, precomputed_path
    from course_utils.vectors import neutral_texts

    stored = load_precomputed(model)  # refuses another model, or data changed since the files were built
    inputs = load_file(f"{precomputed_path(stored.layer)}_inputs.safetensors")
    # 1. The committed vectors follow from the committed inputs by the course's recipe.
    expect = project_out(center(inputs["means"]), neutral_components(inputs["neutral"]))
    torch.testing.assert_close(stored.vectors, expect, rtol=0, atol=1e-5)
    torch.testing.assert_close(stored.origin, inputs["means"].mean(0), rtol=0, atol=1e-5)
    # 2. The committed inputs are what the model gives now: a sample of emotions and dialogues, re-extracted.
    train = load_stories(split="train")
    for name in ["desperate", "nostalgic", stored.names[-1]]:
        texts = train[train.emotion == name].text.tolist()
        acts = extract_activations(model, texts, layers=[stored.layer], cache=False)[:, 0]
        torch.testing.assert_close(acts.mean(0), inputs["means"][stored.names.index(name)], rtol=1e-4, atol=1e-3)
    sample = list(range(0, len(inputs["neutral"]), 11))
    texts = neutral_texts(model)
    acts = extract_activations(model, [texts[i] for i in sample], layers=[stored.layer], cache=False)[:, 0]
    torch.testing.assert_close(acts, inputs["neutral"][sample], rtol=1e-4, atol=1e-3)


def test_fast_path_loads_precomputed_only_for_the_bundled_model(model, tiny_model):
    from course_utils.precomputed import course_vectors, load_precomputed

    fast = course_vectors(model, fast=True)
    assert len(fast.names) == 171 and fast.meta["split"] == "train"  # every emotion of data/emotions.csv
    with pytest.raises(ValueError, match="only for the bundled model"):
        load_precomputed(tiny_model, layer=20)


def test_fast_reads_the_committed_steering_scale_instead_of_a_reference_pass(model, monkeypatch):
    """load_precomputed hands median_token_norm the committed value (measured by `scripts/make_precomputed_vectors.py`,
    which --check recomputes), but only for the reference corpus it was measured on."""
    from course_utils import steering
    from course_utils.precomputed import load_precomputed

    monkeypatch.setattr(steering, "_MEDIAN_NORMS", {})
    stored = load_precomputed(model)
    monkeypatch.setattr(steering, "extract_activations", lambda *a, **k: pytest.fail("a reference pass was run"))
    assert steering.median_token_norm(model, stored.layer) == stored.meta["median_token_norm"]["value"]
    monkeypatch.setattr(steering, "_MEDIAN_NORMS", {})
    assert not steering.remember_median_norm(model, stored.layer, "another corpus", 1.0)
    with pytest.raises(pytest.fail.Exception, match="reference pass"):
        steering.median_token_norm(model, stored.layer)


def test_the_control_statistic_is_the_score_statistic():
    """cosine_to (used by the random-direction controls) on the emotion vectors themselves is exactly cosine."""
    from course_utils.vectors import EmotionVectors

    g = torch.Generator().manual_seed(0)
    v = EmotionVectors(["a", "b", "c"], 2, torch.randn(3, 8, generator=g), torch.randn(8, generator=g))
    acts = torch.randn(5, 8, generator=g)
    torch.testing.assert_close(v.cosine_to(acts, v.vectors), v.cosine(acts))
    torch.testing.assert_close(v.cosine_to(acts, 7 * v.vectors[:1]), v.cosine(acts)[:, :1])  # the norm does not matter
    raw = (acts - v.origin) @ v.unit()[0]  # the old control: a projection, not a cosine
    assert not torch.allclose(raw, v.cosine(acts)[:, 0])


def test_label_shuffled_vectors_are_built_like_the_real_ones(model, small_vectors, monkeypatch):
    """With the identity 'shuffle' the rebuild equals build_emotion_vectors; real shuffles differ and are seeded."""
    import numpy as np

    import course_utils.vectors as V

    kw = SMALL  # the module's subset: its activations are cached already (small_vectors), so each rebuild is cheap
    real = small_vectors
    assert real.layer == 20
    names, shuffled = V.label_shuffled_vectors(model, 20, 3, seed=0, **kw)
    assert names == real.names and shuffled.shape == (3, len(names), model.d_model)
    assert torch.equal(shuffled, V.label_shuffled_vectors(model, 20, 3, seed=0, **kw)[1])
    assert not torch.allclose(shuffled[0], real.vectors, atol=1e-3)

    class Identity:  # a generator whose permutation keeps every label: the rebuild must be the real vectors
        def permutation(self, n):
            return np.arange(n)

    monkeypatch.setattr(V.np.random, "default_rng", lambda seed: Identity())
    torch.testing.assert_close(V.label_shuffled_vectors(model, 20, 1, **kw)[1][0], real.vectors, atol=1e-4, rtol=1e-4)
