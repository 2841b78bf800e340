"""The course report: numbers the notebooks measure go to build/results.json (`record`), and the main job
turns them into build/report.html beside the paper's numbers (`write_report`).

`RESULT_KEYS` is the one list of what a notebook may record: `record` refuses any other section or key,
and a test ties it to the `record(...)` calls in course_src/ and to the comparison table.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import html
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paths import build_dir

RESULT_KEYS: dict[str, tuple[str, ...]] = {
    "run": ("model", "fast", "date"),
    # Every section may record its verdicts with `record_verdict` (keys "verdict_<finding>").
    "01_reading_stories": (
        "next_token_top1",
        "next_token_top1_ci",
        "n_test_stories",
        "bow_core",
        "bow_core_ci",
        "bow_all",
        "bow_all_ci",
        "verdict_*",
    ),
    "03_probing": (
        "core_layer",
        "core_acc_at_layer",
        "core_ci_at_layer",
        "core_best_layer",
        "core_best_acc",
        "core_bow",
        "core_shuffled_at_layer",
        "core_acc_by_layer",
        "errors_same_valence",
        "errors_same_valence_ci",
        "errors_same_valence_null",
        "shuffled_null_mean",
        "shuffled_null_n",
        "shuffled_rank_p",
        "mcnemar_probe_vs_words_p",
        "all_acc_at_layer",
        "all_best_acc",
        "all_bow",
        "all_ci_at_layer",
        "style_*",
        "situation_*",
        "new_words_*",
        "instyle_probe_p_vs_words",
        "verdict_*",
    ),
    "04_emotion_vectors": (
        "layer",
        "n_emotions",
        "cosine_top1",
        "cosine_top1_ci",
        "cosine_top1_shuffled_mean",
        "cosine_top1_chance",
        "neutral_components",
        "kmeans_ari",
        "kmeans_ari_null_mean",
        "kmeans_ari_p",
        "pc1_variance",
        "pc2_variance",
        "r_pc1_valence",
        "r_pc1_valence_ci",
        "r_pc2_arousal",
        "r_pc2_arousal_ci",
        "valence_best_pc",
        "valence_best_pc_r",
        "arousal_best_pc",
        "arousal_best_pc_r",
        "rsa_words",
        "rsa_words_ci",
        "rsa_words_p",
        "rsa_layer0",
        "rsa_layer0_ci",
        "words_pc1_valence",
        "words_pc1_arousal",
        "core_r_pc1_valence",
        "core_r_pc2_arousal",
        "lens_emotion_words",
        "lens_random_emotion_words",
        "raw_cosine_top1",
        "r_pc1_valence_p",
        "r_pc2_arousal_p",
        "valence_best_pc_r_ci",
        "arousal_best_pc_r_ci",
        "words_pc1_valence_ci",
        "words_pc1_arousal_ci",
        "core_r_pc1_valence_ci",
        "core_r_pc2_arousal_ci",
        "lens_difference",
        "lens_difference_ci",
        "lens_random_n",
        "split_half_*",
        "partial_*",
        "layer_stability_*",
        "style_*",
        "situation_*",
        "new_words_*",
        "verdict_*",
    ),
    "05_conversation": (
        "implicit_top1",
        "implicit_top1_ci",
        "implicit_top1_null",
        "implicit_n",
        "dose_matches",
        "dose_templates",
        "dose_mean_abs_rho",
        "dose_random_mean_abs_rho",
        "speakers_profile_r",
        "speakers_profile_r_raw",
        "loving_sad_minus_neutral",
        "loving_ci",
        "afraid_pills_rho",
        "implicit_top1_p",
        "dose_beyond_random",
        "dose_sign_p",
        "speakers_profile_r_ci",
        "speakers_shuffled_r",
        "speakers_p",
        "loving_p",
        "afraid_pills_p",
        "verdict_*",
    ),
    "06_steering": (
        "n_scenes",
        "feels_top1",
        "feels_margin",
        "feels_margin_p",
        "feels_null_n",
        "feels_direct_margin",
        "feels_exact_margin",
        "feels_exact_top1",
        "fluency_safe_strength",
        "perplexity_unsteered",
        "perplexity_by_strength",
        "valence_*",
        "verdict_*",
    ),
    "07_choices": (
        "n_activities",
        "n_pairs",
        "answer_format",
        "order_decides",
        "position_bias",
        "reliability",
        "label_r",
        "label_r_ci",
        "length_r",
        "valid",
        "text_control",
        "text_control_ci",
        "best_reading_emotion",
        "best_reading_r",
        "n_predicting",
        "valence_rho",
        "valence_rho_ci",
        "strength",
        "n_null",
        "steer_valence_rho",
        "steer_valence_p",
        "agreement_r",
        "steer_derivative_*",
        "steer_p_*",
        "verdict_*",
    ),
    "08_cheating": (
        "failures_rho_desperate",
        "failures_rho_calm",
        "failures_rho_random_mean",
        "failures_rho_random_range",
        "strength",
        "n_scenarios",
        "n_null",
        "null_derivative_band",
        "derivative_*",
        "p_*",
        "z_*",
        "agreement_r",
        "agreement_max_error",
        "agreement_n",
        "matched_p_*",
        "positive_control_derivative",
        "positive_control_p",
        "unsteered_cheat_logodds",
        "slope_*",
        "sampled_cheat_rate",
        "sampled_other_rate",
        "sampled_n_per_condition",
        "failures_rho_desperate_from1",
        "failures_rho_random_p95",
        "failures_rises",
        "positive_control_slope",
        "positive_control_ci",
        "positive_control_detects",
        "positive_control_z",
        "positive_control_fold_p",
        "text_control",
        "text_control_ci",
        "equivalence_bound",
        "circular_control_derivative",
        "circular_control_p",
        "matched_null_n",
        "verdict_*",
    ),
}


def check_key(section: str, key: str) -> None:
    """Raise a clear error unless `section`/`key` is listed in RESULT_KEYS (patterns like 'slope_*' allowed)."""
    if section not in RESULT_KEYS:
        raise ValueError(
            f"record: unknown section {section!r}; allowed: {sorted(RESULT_KEYS)} (add it to course_utils.report.RESULT_KEYS)"
        )
    if not any(fnmatch.fnmatchcase(key, pattern) for pattern in RESULT_KEYS[section]):
        raise ValueError(
            f"record: unknown key {key!r} for section {section!r}; allowed: {list(RESULT_KEYS[section])} "
            "(add it to course_utils.report.RESULT_KEYS)"
        )


def record(section: str, **values: Any) -> None:
    """Store measured values under `section` in build/results.json (merging with what is there)."""
    for key in values:
        check_key(section, key)
    path = build_dir() / "results.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    results.setdefault(section, {}).update({k: _plain(v) for k, v in values.items()})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


VERDICTS = ("replicates", "partly replicates", "does not replicate", "cannot be measured on this model")


def record_verdict(section: str, finding: str, verdict: str, reason: str) -> None:
    """Record one finding's verdict (one of VERDICTS) with the one-line reason the notebook printed."""
    if verdict not in VERDICTS:
        raise ValueError(f"record_verdict: verdict={verdict!r}; allowed: {list(VERDICTS)}")
    if not finding.isidentifier():
        raise ValueError(f"record_verdict: finding={finding!r} must be a short identifier, e.g. 'desperate_cheating'")
    record(section, **{f"verdict_{finding}": {"verdict": verdict, "reason": reason}})


def _plain(value: Any) -> Any:
    """Turn numpy/torch scalars and containers into JSON-friendly Python values (floats rounded to 4 places)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def read_results() -> dict:
    """build/results.json, or {} when nothing was recorded yet."""
    path = build_dir() / "results.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


# (label, section, key, how to show it, the paper's number) for the side-by-side table.
COMPARISON = [
    ("best core-12 probe accuracy (test)", "03_probing", "core_best_acc", "{:.0%}", "n/a (paper used no probe table)"),
    ("core-12 probe at the a-priori layer", "03_probing", "core_acc_at_layer", "{:.0%}", "n/a"),
    ("bag-of-words baseline, core 12", "03_probing", "core_bow", "{:.0%}", "n/a"),
    ("all-emotion probe at the a-priori layer", "03_probing", "all_acc_at_layer", "{:.0%}", "n/a"),
    ("bag-of-words baseline, all emotions", "03_probing", "all_bow", "{:.0%}", "n/a"),
    ("PC1 share of variance", "04_emotion_vectors", "pc1_variance", "{:.0%}", "26%"),
    ("r(PC1, valence)", "04_emotion_vectors", "r_pc1_valence", "{:+.2f}", "0.81"),
    ("PC2 share of variance", "04_emotion_vectors", "pc2_variance", "{:.0%}", "15%"),
    ("r(PC2, arousal)", "04_emotion_vectors", "r_pc2_arousal", "{:+.2f}", "0.66"),
    ("model vs words-only geometry (RSA r)", "04_emotion_vectors", "rsa_words", "{:+.2f}", "n/a"),
    ("model vs layer-0 geometry (RSA r)", "04_emotion_vectors", "rsa_layer0", "{:+.2f}", "n/a"),
    ("words-only PC1 vs valence, |r|", "04_emotion_vectors", "words_pc1_valence", "{:.2f}", "n/a"),
    ("r(PC1, valence), 12 core emotions", "04_emotion_vectors", "core_r_pc1_valence", "{:+.2f}", "0.81 (45 rated words)"),
    ("emotion words in top-20 lens tokens", "04_emotion_vectors", "lens_emotion_words", "{:.2f}", "on theme"),
    ("... for random directions", "04_emotion_vectors", "lens_random_emotion_words", "{:.2f}", "n/a"),
    ("implicit scenarios: top-1 of 12", "05_conversation", "implicit_top1", "{:.0%}", "strong diagonal"),
    ("dose-response templates tested", "05_conversation", "dose_templates", "{}", "several"),
    ("... of which in the expected direction", "05_conversation", "dose_matches", "{}", "all shown"),
    ("user-end vs assistant-start profile r", "05_conversation", "speakers_profile_r", "{:+.2f}", "0.11"),
    ("... rank p against shuffled pairings (two-sided)", "05_conversation", "speakers_p", "{:.3g}", "n/a"),
    ("implicit top-1: rank p against shuffled labels (two-sided)", "05_conversation", "implicit_top1_p", "{:.3g}", "n/a"),
    ("dose templates beyond 200 random directions, expected sign", "05_conversation", "dose_beyond_random", "{}", "n/a"),
    ("'loving' after sad: rank p among random directions (two-sided)", "05_conversation", "loving_p", "{:.3g}", "n/a"),
    ("'afraid' vs number of pills, Spearman rho", "05_conversation", "afraid_pills_rho", "{:+.2f}", "rises"),
    ("... rank p among random directions (two-sided)", "05_conversation", "afraid_pills_p", "{:.3g}", "n/a"),
    ("12 core, style-shifted test: emotion vectors top-1", "04_emotion_vectors", "style_vectors_style_test", "{:.2f}", "n/a"),
    (
        "12 core, style-shifted test: vectors, story variation removed",
        "04_emotion_vectors",
        "style_story_vectors_style_test",
        "{:.2f}",
        "n/a",
    ),
    ("12 core, style-shifted test: bag-of-words", "04_emotion_vectors", "style_bow_style_test", "{:.2f}", "n/a"),
    ("'He feels' steering diagonal, top-1 of 12 (derivative)", "06_steering", "feels_top1", "{:.0%}", "diagonal"),
    ("'He feels' margin: rank p among label-shuffled vectors", "06_steering", "feels_margin_p", "{:.3g}", "n/a"),
    ("'He feels' margin of the direct path (after the last layer)", "06_steering", "feels_direct_margin", "{:+.3f}", "n/a"),
    ("steered valence of neutral replies vs NRC valence (Spearman)", "06_steering", "valence_spearman", "{:+.2f}", "n/a"),
    ("... rank p among shuffled valences (two-sided)", "06_steering", "valence_p", "{:.3g}", "n/a"),
    ("... shuffles in that null", "06_steering", "valence_null_n", "{}", "n/a"),
    ("... z against that null", "06_steering", "valence_z", "{:+.1f}", "n/a"),
    ("... exact +s/-s changes, 6 core vectors (Spearman)", "06_steering", "valence_core_exact_spearman", "{:+.2f}", "n/a"),
    ("... perplexity of ordinary text at s / unsteered", "06_steering", "valence_perplexity_ratio", "{:.2f}", "n/a"),
    ("'He feels' top-1 at the fluency-safe strength (exact)", "06_steering", "feels_exact_top1", "{:.0%}", "diagonal"),
    ("answer format chosen by the pilot", "07_choices", "answer_format", "{}", "n/a"),
    ("pairs where the order decides the answer", "07_choices", "order_decides", "{:.0%}", "n/a"),
    ("preference vs our 'pleasant' label, r", "07_choices", "label_r", "{:+.2f}", "n/a"),
    ("the measure passes its validity gate", "07_choices", "valid", "{}", "n/a"),
    ("text control: preference for 'lovely' over 'dreadful'", "07_choices", "text_control", "{:+.3f}", "n/a"),
    ("best-predicting emotion's r with preference", "07_choices", "best_reading_r", "{:+.2f}", "blissful 0.71, hostile -0.74"),
    ("rho(valence, reading r) across emotions", "07_choices", "valence_rho", "{:+.2f}", "positive"),
    ("rho(valence, steering derivative) across emotion vectors", "07_choices", "steer_valence_rho", "{:+.2f}", "positive"),
    ("  its permutation p", "07_choices", "steer_valence_p", "{:.3g}", "n/a"),
    ("desperate across failures (mean Spearman rho)", "08_cheating", "failures_rho_desperate", "{:+.2f}", "rises"),
    ("cheat_logodds slope, desperate", "08_cheating", "slope_desperate", "{:+.3f}", "cheating ~5% -> ~70%"),
    ("cheat_logodds slope, calm", "08_cheating", "slope_calm", "{:+.3f}", "cheating ~65% -> ~10%"),
    ("desperate: derivative's rank p among 10,000 random directions", "08_cheating", "p_desperate", "{:.3g}", "n/a"),
    ("calm: derivative's rank p among 10,000 random directions", "08_cheating", "p_calm", "{:.3g}", "n/a"),
    ("derivative vs exact slope, r", "08_cheating", "agreement_r", "{:+.2f}", "n/a"),
    ("context control at the text level (permissive - strict)", "08_cheating", "text_control", "{:+.3f}", "n/a"),
    ("context control as a direction, exact slope (cross-fitted)", "08_cheating", "positive_control_slope", "{:+.3f}", "n/a"),
    ("context control: derivative (cross-fitted, prompt tokens)", "08_cheating", "positive_control_derivative", "{:+.3f}", "n/a"),
    ("context control: derivative's rank p (cross-fitted)", "08_cheating", "positive_control_p", "{:.3g}", "n/a"),
    ("circular upper bound (cheat - honest words): rank p", "08_cheating", "circular_control_p", "{:.3g}", "n/a"),
    ("desperate: rank p in the structure-matched null", "08_cheating", "matched_p_desperate", "{:.3g}", "n/a"),
    # Rows that carry an interval the notebooks record (the report shows every interval).
    ("model's next-token guess of the emotion, top-1 of 12", "01_reading_stories", "next_token_top1", "{:.0%}", "n/a"),
    ("bag-of-words on the text, core 12", "01_reading_stories", "bow_core", "{:.0%}", "n/a"),
    ("bag-of-words on the text, all emotions", "01_reading_stories", "bow_all", "{:.0%}", "n/a"),
    ("probe errors within the same valence", "03_probing", "errors_same_valence", "{:.0%}", "n/a"),
    ("emotion vectors recognise held-out stories, top-1", "04_emotion_vectors", "cosine_top1", "{:.0%}", "n/a"),
    ("k-means clusters vs families (adjusted Rand)", "04_emotion_vectors", "kmeans_ari", "{:.2f}", "interpretable clusters"),
    ("'loving' at assistant start, sad minus neutral user", "05_conversation", "loving_sad_minus_neutral", "{:+.3f}", "rises"),
    ("fluency-safe steering strength", "06_steering", "fluency_safe_strength", "{}", "n/a"),
    ("desperate: derivative of cheat_logodds at 0", "08_cheating", "derivative_desperate", "{:+.3f}", "n/a"),
    ("calm: derivative of cheat_logodds at 0", "08_cheating", "derivative_calm", "{:+.3f}", "n/a"),
    ("r(PC2, arousal), 12 core emotions", "04_emotion_vectors", "core_r_pc2_arousal", "{:+.2f}", "0.66 (45 rated words)"),
    ("valence: r of the best-matching PC", "04_emotion_vectors", "valence_best_pc_r", "{:+.2f}", "0.81 (PC1)"),
    ("arousal: r of the best-matching PC", "04_emotion_vectors", "arousal_best_pc_r", "{:+.2f}", "0.66 (PC2)"),
    ("words-only PC1 vs arousal, |r|", "04_emotion_vectors", "words_pc1_arousal", "{:.2f}", "n/a"),
    ("lens: emotion words, vectors minus random", "04_emotion_vectors", "lens_difference", "{:+.2f}", "n/a"),
    ("probe vs bag-of-words: McNemar p", "03_probing", "mcnemar_probe_vs_words_p", "{:.3g}", "n/a"),
    ("probe with shuffled labels (mean)", "03_probing", "shuffled_null_mean", "{:.0%}", "n/a"),
    ("style-shifted stories: probe", "03_probing", "style_probe_style_test", "{:.0%}", "n/a"),
    ("style-shifted stories: layer-0 probe", "03_probing", "style_layer0_style_test", "{:.0%}", "n/a"),
    ("style-shifted stories: bag-of-words", "03_probing", "style_bow_style_test", "{:.0%}", "n/a"),
    ("situation stories: probe", "03_probing", "situation_probe", "{:.0%}", "n/a"),
    ("situation stories: layer-0 probe", "03_probing", "situation_layer0", "{:.0%}", "n/a"),
    ("situation stories: bag-of-words", "03_probing", "situation_bow", "{:.0%}", "n/a"),
    ("12 core, situation stories: emotion vectors top-1", "04_emotion_vectors", "situation_vectors", "{:.2f}", "n/a"),
    (
        "12 core, situation stories: vectors, story variation removed",
        "04_emotion_vectors",
        "situation_story_vectors",
        "{:.2f}",
        "n/a",
    ),
    ("12 core, situation stories: bag-of-words", "04_emotion_vectors", "situation_bow", "{:.2f}", "n/a"),
    ("new-words stories: probe", "03_probing", "new_words_probe", "{:.0%}", "n/a"),
    ("new-words stories: bag-of-words", "03_probing", "new_words_bow", "{:.0%}", "n/a"),
    ("12 core, new-words stories: emotion vectors top-1", "04_emotion_vectors", "new_words_vectors", "{:.2f}", "n/a"),
    (
        "12 core, new-words stories: vectors, story variation removed",
        "04_emotion_vectors",
        "new_words_story_vectors",
        "{:.2f}",
        "n/a",
    ),
    ("12 core, new-words stories: bag-of-words", "04_emotion_vectors", "new_words_bow", "{:.2f}", "n/a"),
]


# Intervals recorded under a name that is not "<key>_ci".
CI_KEYS = {"positive_control_slope": "positive_control_ci", "loving_sad_minus_neutral": "loving_ci"}


class ReportInputError(ValueError):
    """A results file the report cannot use; the message names the file and the field."""


def _interval(section_values: dict, key: str) -> object:
    """The recorded interval of `key` (its `<key>_ci`, the `_acc` -> `_ci` name, or CI_KEYS), or None."""
    for name in (CI_KEYS.get(key), f"{key}_ci", key.replace("_acc", "_ci") if "_acc" in key else None):
        if name and name in section_values:
            return section_values[name]
    return None


def _shown(results: dict, section: str, key: str, fmt: str, source: str = "results") -> str | None:
    """One recorded value formatted for the report, with its interval; None when not recorded."""
    values = results.get(section, {})
    value = values.get(key)
    if value is None:
        return None
    try:
        if isinstance(value, list):
            return "[" + ", ".join(f"{v:+.3f}" for v in value) + "]"
        shown = fmt.format(value)
    except (TypeError, ValueError) as e:
        raise ReportInputError(f"{source}: field '{section}.{key}' = {value!r} cannot be shown as {fmt!r} ({e})") from e
    ci = _interval(values, key)
    if ci is not None:
        if not (isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci)):
            raise ReportInputError(f"{source}: the interval of '{section}.{key}' must be [low, high], got {ci!r}")
        shown += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return shown


def comparison_rows(results: dict) -> list[tuple[str, str, str]]:
    """(measure, this run, paper) for every comparison whose number this run produced."""
    rows = []
    for label, section, key, fmt, paper in COMPARISON:
        shown = _shown(results, section, key, fmt)
        if shown is not None:
            rows.append((label, shown, paper))
    return rows


# ---------------------------------------------------------------- findings: what the report's rows are


@dataclass(frozen=True)
class Finding:
    """One row of the report: a finding of the paper, the numbers that test it here, and its figure."""

    section: str
    name: str  # its verdict is recorded as `verdict_<name>` with record_verdict(section, name, ...)
    title: str
    paper: str  # what the paper found, in one line
    keys: tuple[str, ...]  # COMPARISON keys shown in the row
    figure: str | None = None  # a figure name passed to plots.save_figure


FINDINGS = [
    Finding("03_probing", "probe_beyond_words", "The emotion of a story is linearly readable from the residual stream",
            "emotion concepts are represented linearly (the paper reads them with vectors, not a probe table)",
            ("core_best_acc", "core_acc_at_layer", "core_bow", "mcnemar_probe_vs_words_p", "shuffled_null_mean",
             "all_acc_at_layer", "all_bow", "errors_same_valence"),
            "03_probe_by_layer_core"),
    Finding("03_probing", "style_transfer", "The probe still reads the emotion in a different voice",
            "not in the paper: a check that the probe follows the situation, not the writing style",
            ("style_probe_style_test", "style_layer0_style_test", "style_bow_style_test")),
    Finding("04_emotion_vectors", "vectors_recognise_stories", "Emotion vectors recognise held-out stories",
            "the mean-difference vectors pick out the emotion of new text",
            ("cosine_top1", "style_vectors_style_test", "style_story_vectors_style_test", "style_bow_style_test")),
    Finding("04_emotion_vectors", "situation_transfer", "Emotion vectors read a situation with no described reaction",
            "not in the paper: stories that tell only what happens (no feeling, face, body or emotional act)",
            ("situation_vectors", "situation_story_vectors", "situation_bow")),
    Finding("04_emotion_vectors", "new_words_transfer", "Emotion vectors read stories without their emotion's usual words",
            "not in the paper: dialogues and messages that avoid every word marking their emotion in the training stories",
            ("new_words_vectors", "new_words_story_vectors", "new_words_bow")),
    Finding("04_emotion_vectors", "kmeans_families", "k-means clusters of the vectors follow emotion families",
            "k-means finds interpretable clusters (10 clusters over 171 emotions)", ("kmeans_ari",), "04_clustermap"),
    Finding("04_emotion_vectors", "pc1_valence", "The first principal component is valence",
            "PC1 explains 26% of the variance and tracks valence (r = 0.81)",
            ("pc1_variance", "r_pc1_valence", "valence_best_pc_r", "core_r_pc1_valence", "words_pc1_valence", "rsa_words",
             "rsa_layer0"),
            "04_pca_valence"),
    Finding("04_emotion_vectors", "pc2_arousal", "The second principal component is arousal",
            "PC2 explains 15% of the variance and tracks arousal (r = 0.66)",
            ("pc2_variance", "r_pc2_arousal", "arousal_best_pc_r", "core_r_pc2_arousal", "words_pc1_arousal"), "04_scree"),
    Finding("04_emotion_vectors", "logit_lens", "Each vector promotes its own emotion's words (logit lens)",
            "each vector's top tokens are emotion words on theme",
            ("lens_emotion_words", "lens_random_emotion_words", "lens_difference")),
    Finding("04_emotion_vectors", "layer_stability", "The geometry is stable across layers",
            "the structure holds across middle-to-late layers", (), "04_layer_stability"),
    Finding("05_conversation", "implicit_scenarios", "Implicit scenarios light up the matching vector",
            "a strong diagonal over 12 emotions at the start of the assistant's turn", ("implicit_top1", "implicit_top1_p"),
            "05_implicit_heatmap"),
    Finding("05_conversation", "dose_response", "Dose-response: the numbers in a message move the vectors",
            "more tylenol -> more 'afraid', less 'calm'; similar curves for other templates",
            ("dose_templates", "dose_matches", "dose_beyond_random"), "05_dose_response"),
    Finding("05_conversation", "speakers", "The user's state and the assistant's state differ",
            "the user-end and assistant-start profiles differ (r = 0.11 across 8 prompts)",
            ("speakers_profile_r", "speakers_p"), "05_speakers_scatter"),
    Finding("05_conversation", "loving_after_sad", "'Loving' rises at the assistant's turn after a sad message",
            "'loving' rises at the start of the reply when users share something hard", ("loving_sad_minus_neutral", "loving_p")),
    Finding("05_conversation", "afraid_pills", "'Afraid' rises with the number of pills taken",
            "as the dose in 'I just took X mg of tylenol' rises, 'afraid' rises", ("afraid_pills_rho", "afraid_pills_p")),
    Finding("06_steering", "feels_diagonal", "Steering changes what the model says a character feels",
            "adding a vector changes the reported feeling ('He feels ...')",
            ("feels_top1", "feels_margin_p", "feels_direct_margin", "feels_exact_top1"), "06_feels_diagonal"),
    Finding("06_steering", "steered_valence", "Steering moves the valence of what the model would say",
            "not measured in this form in the paper: a vector's push tilts ordinary replies towards its own valence",
            ("valence_spearman", "valence_p", "valence_null_n", "valence_z", "valence_core_exact_spearman",
             "valence_perplexity_ratio")),
    Finding("07_choices", "preference_reading", "Emotion readings on an activity predict the preference",
            "blissful r = 0.71, hostile r = -0.74 with the model's preferences",
            ("answer_format", "order_decides", "label_r", "valid", "text_control", "best_reading_r", "valence_rho"),
            "07_reliability"),
    Finding("07_choices", "preference_steering", "Steering an emotion moves the preference",
            "steering positive emotions raises the preference for an option",
            ("steer_valence_rho", "steer_valence_p"), "07_steering"),
    Finding("08_cheating", "failures_rise", "'Desperate' rises with each failed attempt",
            "without steering, the desperate vector's activation grew with each failure", ("failures_rho_desperate",),
            "08_failures"),
    Finding("08_cheating", "desperate_cheating", "Steering 'desperate' raises cheating",
            "cheating about 5% -> about 70% from -0.1 to +0.1",
            ("slope_desperate", "derivative_desperate", "p_desperate", "matched_p_desperate"), "08_cheating_sweep"),
    Finding("08_cheating", "calm_cheating", "Steering 'calm' lowers cheating",
            "cheating about 65% -> about 10% from -0.1 to +0.1", ("slope_calm", "derivative_calm", "p_calm", "agreement_r"),
            "08_cheating_sweep"),
    Finding("08_cheating", "positive_control", "The cheating measure can move (positive control)",
            "not in the paper: a control that shows a null result here is informative",
            ("text_control", "positive_control_derivative", "positive_control_p", "positive_control_slope", "circular_control_p"),
            "08_positive_control"),
]  # fmt: skip

# One line under every figure the notebooks save (a test ties this to the save_figure calls in course_src/).
FIGURE_CAPTIONS = {
    "01_emotions_valence_arousal": "The emotion words people rated, placed by human valence and arousal (NRC VAD), by family.",
    "02_first_token_outlier": "Residual norm per token and layer: the first token's norm dwarfs the rest.",
    "02_norm_by_layer": "Norm of the mean-token vector by layer, for stories and neutral dialogues.",
    "03_probe_by_layer_core": "Probe accuracy by layer on the 12 core emotions, with shuffled labels, bag-of-words and chance.",
    "03_probe_by_layer_all": "Probe accuracy by layer on all emotions, with the same bars.",
    "03_confusion": "Confusions of the core-12 probe at the chosen layer (rows: true emotion; each row sums to 1).",
    "04_clustermap": "Cosine similarity of the emotion vectors, clustered, with our emotion families as row colours.",
    "04_scree": "Scree plot: share of variance per principal component of the emotion vectors.",
    "04_pca_valence": "The vectors on PC1/PC2, and the component that best tracks valence against human ratings.",
    "04_layer_stability": "Correlation of the emotion similarity matrices between layers.",
    "05_implicit_heatmap": "Vector scores at the assistant's turn for implicit scenarios: a diagonal means the right one wins.",
    "05_dose_response": "Each template's emotion score as the number in the message grows.",
    "05_speakers_scatter": "Each message's emotion scores at the user's last token against the assistant's first token.",
    "06_feels_diagonal": "How each steered vector moves log p(emotion word) after 'He feels' (centred): a diagonal = it works.",
    "06_fluency": "Perplexity of ordinary text against steering strength: where fluency breaks.",
    "07_reliability": "The preference measure: split-half reliability, and scores by our 'pleasant' label.",
    "07_steering": "Each emotion vector's effect on the preference among random directions, and against valence.",
    "08_failures": "Emotion scores at the assistant's turn after n failed attempts, before any steering.",
    "08_failures_null": "The rise of desperate and calm with failures, among the rises of random directions.",
    "08_cheating_sweep": "cheat_logodds against strength; each emotion's derivative among random ones; vs exact slope.",
    "08_positive_control": "The context positive control and each emotion's derivative, against random and in-span directions.",
}

PAPER = (
    "Sofroniew, Kauvar, Saunders, Chen et al. (2026), <a href='https://transformer-circuits.pub/2026/emotions/index.html'>"
    "Emotion Concepts and their Function in a Large Language Model</a>, Transformer Circuits Thread (arXiv 2604.07729)"
)
# The bundled weights (course_utils.models.BUNDLED_FILE; a test keeps the two in step).
BUNDLED_WEIGHTS = "SmolLM2-135M-Instruct.Q4_1.gguf"

CSS = """
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d232a;max-width:1180px;margin:2em auto;padding:0 1em}
h1{font-size:1.7em;margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0} th,td{border:1px solid #d0d7de;padding:.3em .6em;vertical-align:top;text-align:left}
th{background:#f3f5f7} td.num{font-family:ui-monospace,monospace;white-space:nowrap}
.banner{background:#fff4d6;border:1px solid #e3b341;padding:.6em 1em;border-radius:6px}
.verdict{display:inline-block;padding:.1em .55em;border-radius:1em;font-weight:600;font-size:.9em;white-space:nowrap}
.v-replicates{background:#d3f5dc;color:#11532b} .v-partly{background:#fff0bf;color:#6b4b00}
.v-not{background:#ffd9d6;color:#82130c} .v-cannot{background:#e4e7eb;color:#3b4550}
.v-none{background:#fff;color:#6a737d;border:1px dashed #9aa5b1}
.finding{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,430px);gap:1.2em;border-top:1px solid #d0d7de;padding:1em 0}
.finding h3{margin:.1em 0 .3em} .paper{color:#57606a;margin:.2em 0} .reason{margin:.2em 0 .6em}
figure{margin:0} figure img{max-width:100%;border:1px solid #e1e4e8} figcaption{font-size:.88em;color:#57606a}
details{margin:1em 0} summary{cursor:pointer;font-weight:600} pre{background:#f6f8fa;padding:1em;overflow-x:auto;font-size:.85em}
.muted{color:#6a737d}
"""


# ---------------------------------------------------------------- runs: one results.json each


@dataclass
class Run:
    """One course run: its recorded numbers, where they came from, and its figures (name -> PNG path)."""

    label: str
    results: dict
    source: str
    figures: dict[str, Path]
    timings: list[dict]


def _check_results(results: object, source: str) -> dict:
    """Refuse a results file whose fields the report cannot use, naming the file and the field."""
    if not isinstance(results, dict):
        raise ReportInputError(f"{source}: expected a JSON object of sections, got {type(results).__name__}")
    for section, values in results.items():
        if not isinstance(values, dict):
            raise ReportInputError(f"{source}: field '{section}' must be an object of recorded values, got {values!r}")
        for key, value in values.items():
            if not key.startswith("verdict_"):
                continue
            ok = isinstance(value, dict) and value.get("verdict") in VERDICTS and isinstance(value.get("reason"), str)
            if not ok:
                raise ReportInputError(
                    f"{source}: field '{section}.{key}' must be {{'verdict': one of {list(VERDICTS)}, "
                    f"'reason': text}}, got {value!r}"
                )
    run = results.get("run", {})
    if "fast" in run and not isinstance(run["fast"], bool):
        raise ReportInputError(f"{source}: field 'run.fast' must be true or false, got {run['fast']!r}")
    for _, section, key, fmt, _ in COMPARISON:  # every number the report shows must format
        _shown(results, section, key, fmt, source)
    return results


def _run_label(results: dict) -> str:
    """'<model>, FAST|full, <date>' from a run's `run` section."""
    run = results.get("run", {})
    mode = "FAST" if run.get("fast") else "full"
    return f"{run.get('model', 'unknown model')}, {mode}, {run.get('date', 'no date')}"


def load_run(path: Path | str, label: str | None = None) -> Run:
    """Read one run's results.json (and the figures/ and timings.json beside it), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(
            f"{path}: no such results file (a run writes it: `make course`, or build/results.json after "
            "`python -m course_utils.run_course`)"
        )
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
    _check_results(results, str(path))
    figures = {p.stem: p for p in sorted((path.parent / "figures").glob("*.png"))}
    timings_file = path.parent / "timings.json"
    try:
        timings = json.loads(timings_file.read_text(encoding="utf-8")) if timings_file.is_file() else []
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{timings_file}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
    fields = {"notebook", "seconds", "status"}
    if not (isinstance(timings, list) and all(isinstance(t, dict) and fields <= set(t) for t in timings)):
        raise ReportInputError(f"{timings_file}: expected a list of {{'notebook', 'seconds', 'status'}} objects")
    return Run(label or _run_label(results), results, str(path), figures, timings)


# ---------------------------------------------------------------- HTML


def _e(text: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def _verdict_badge(entry: dict | None, reason: bool = True) -> str:
    """A coloured verdict label (with its reason below unless reason=False), or 'not recorded'."""
    if not entry:
        return "<span class='verdict v-none'>not recorded</span>"
    css = {"replicates": "v-replicates", "partly replicates": "v-partly", "does not replicate": "v-not"}
    badge = f"<span class='verdict {css.get(entry['verdict'], 'v-cannot')}'>{_e(entry['verdict'])}</span>"
    return badge + (f"<div class='reason'>{_e(entry['reason'])}</div>" if reason and entry.get("reason") else "")


def _image(path: Path, alt: str) -> str:
    """An <img> whose PNG is embedded as a data: URI, so the page works offline and on its own."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img src='data:image/png;base64,{data}' alt='{_e(alt)}'>"


def _all_findings(runs: list[Run]) -> list[Finding]:
    """FINDINGS, plus a row for any verdict a run recorded under a name FINDINGS does not know, in course order."""
    known = {(f.section, f.name) for f in FINDINGS}
    extra = []
    for run in runs:
        for section, values in run.results.items():
            for key in values:
                if key.startswith("verdict_") and (section, key[8:]) not in known:
                    known.add((section, key[8:]))
                    extra.append(Finding(section, key[8:], key[8:].replace("_", " "), "", ()))
    order = {s: i for i, s in enumerate(RESULT_KEYS)}
    return sorted([*FINDINGS, *extra], key=lambda f: order.get(f.section, len(order)))


def _verdict(run: Run, finding: Finding) -> dict | None:
    """The run's recorded verdict for a finding, or None."""
    return run.results.get(finding.section, {}).get(f"verdict_{finding.name}")


def _numbers_table(runs: list[Run], keys: tuple[str, ...], section: str | None = None) -> str:
    """Measure | each run | paper for the COMPARISON rows of `keys` (all rows when keys is empty and section None)."""
    rows = []
    for label, sec, key, fmt, paper in COMPARISON:
        if (keys and (key not in keys or sec != section)) or (not keys and section is not None):
            continue
        shown = [_shown(r.results, sec, key, fmt, r.source) for r in runs]
        if all(s is None for s in shown):
            continue
        cells = "".join(f"<td class='num'>{_e(s) if s is not None else '<span class=muted>-</span>'}</td>" for s in shown)
        rows.append(f"<tr><td>{_e(label)}</td>{cells}<td>{_e(paper)}</td></tr>")
    if not rows:
        return "<p class='muted'>No number for this finding was recorded.</p>"
    heads = "".join(f"<th>{_e(r.label)}</th>" for r in runs)
    return f"<table><tr><th>measure</th>{heads}<th>paper</th></tr>{''.join(rows)}</table>"


def _finding_html(runs: list[Run], finding: Finding, first: dict[str, Finding]) -> str:
    """A finding's block: title, the paper's claim, each run's verdict, its numbers, its figure(s) beside them.

    `first` maps a figure to the finding that shows it first; a later finding that shares it links there.
    """
    verdicts = "".join(
        f"<p><b>{_e(r.label)}:</b> {_verdict_badge(_verdict(r, finding))}</p>"
        if len(runs) > 1
        else _verdict_badge(_verdict(r, finding))
        for r in runs
    )
    text = (
        f"<div><h3 id='f-{_e(finding.section)}-{_e(finding.name)}'>{_e(finding.title)}</h3>"
        f"<p class='muted'>{_e(finding.section)}</p>"
        + (f"<p class='paper'><b>Paper:</b> {_e(finding.paper)}</p>" if finding.paper else "")
        + f"<div>{verdicts}</div>{_numbers_table(runs, finding.keys, finding.section) if finding.keys else ''}</div>"
    )
    figures = []
    owner = first.get(finding.figure, finding) if finding.figure else finding
    if owner is not finding and any(finding.figure in r.figures for r in runs):
        figures.append(
            f"<p class='muted'>Figure: see <a href='#f-{_e(owner.section)}-{_e(owner.name)}'>{_e(owner.title)}</a>.</p>"
        )
    for run in runs if owner is finding else []:
        if finding.figure and finding.figure in run.figures:
            who = f" ({_e(run.label)})" if len(runs) > 1 else ""
            caption = FIGURE_CAPTIONS.get(finding.figure, finding.figure)
            figures.append(
                f"<figure>{_image(run.figures[finding.figure], caption)}<figcaption>{_e(caption)}{who}</figcaption></figure>"
            )
    return f"<section class='finding'>{text}<div>{''.join(figures)}</div></section>"


def verdict_table(runs: list[Run], findings: list[Finding] | None = None, page: str = "") -> str:
    """The verdict column: one line per finding, each run's verdict, linking to its block in `page` (this page)."""
    findings = findings or _all_findings(runs)
    heads = "".join(f"<th>verdict: {_e(r.label)}</th>" for r in runs)
    rows = "".join(
        f"<tr><td><a href='{_e(page)}#f-{_e(f.section)}-{_e(f.name)}'>{_e(f.title)}</a></td>"
        f"<td class='paper'>{_e(f.paper)}</td>"
        + "".join(f"<td>{_verdict_badge(_verdict(r, f), reason=False)}</td>" for r in runs)
        + "</tr>"
        for f in findings
    )
    return f"<table class='verdicts'><tr><th>finding</th><th>the paper</th>{heads}</tr>{rows}</table>"


def _header(runs: list[Run]) -> str:
    """Title, each run's model/mode/date, a FAST warning where it applies, and where the paper's numbers come from."""
    parts = ["<h1>Functional emotions: lab report</h1>"]
    for run in runs:
        info = run.results.get("run", {})
        weights = (
            f" (weights {BUNDLED_WEIGHTS}: 4-bit Q4_1, dequantised on load)"
            if str(info.get("model", "")).startswith("bundled")
            else ""
        )
        mode = "FAST (small subsets)" if info.get("fast") else "full"
        parts.append(
            f"<p><b>Model:</b> {_e(info.get('model', 'unknown'))}{_e(weights)} &middot; <b>Mode:</b> {mode} &middot; "
            f"<b>Date:</b> {_e(info.get('date', 'unknown'))} &middot; <span class='muted'>{_e(run.source)}</span></p>"
        )
        if info.get("fast"):
            who = "" if len(runs) == 1 else f" ({_e(run.label)})"
            parts.append(
                f"<p class='banner'><b>This is a FAST run{who}:</b> its numbers come from small subsets of the corpus "
                "and of the experiments. They show that the pipeline works; they are not comparable with the paper.</p>"
            )
    parts.append(
        "<p>Each finding below has its verdict (decided by the notebook's own rule, recorded with "
        "<code>report.record_verdict</code>), the numbers that test it with their 95% intervals in brackets, the "
        f"paper's number beside ours, and the figure that supports it. Paper: {PAPER}, on a frontier model.</p>"
    )
    return "".join(parts)


def _timings_html(runs: list[Run]) -> str:
    """Each run's notebooks with their time and status."""
    out = []
    for run in runs:
        if run.timings:
            rows = "".join(
                f"<tr><td>{_e(t['notebook'])}</td><td class='num'>{float(t['seconds']):.0f} s</td><td>{_e(t['status'])}</td></tr>"
                for t in run.timings
            )
            out.append(
                f"<p><b>{_e(run.label)}</b></p><table><tr><th>notebook</th><th>time</th><th>status</th></tr>{rows}</table>"
            )
    return "<h2>Notebooks run</h2>" + "".join(out) if out else ""


def render(runs: list[Run]) -> str:
    """The whole report page for one run, or several side by side, as one self-contained HTML string."""
    if not runs:
        raise ValueError("render: runs is empty; give at least one results.json")
    findings = _all_findings(runs)
    first: dict[str, Finding] = {}
    for f in findings:
        if f.figure:
            first.setdefault(f.figure, f)
    used = {f.figure for f in findings}
    other_figs = sorted({name for r in runs for name in r.figures} - used)
    other = "".join(
        f"<figure>{_image(r.figures[name], FIGURE_CAPTIONS.get(name, name))}<figcaption>{_e(FIGURE_CAPTIONS.get(name, name))}"
        f"{f' ({_e(r.label)})' if len(runs) > 1 else ''}</figcaption></figure>"
        for name in other_figs
        for r in runs
        if name in r.figures
    )
    raw = "".join(
        f"<details><summary>Raw numbers: {_e(r.label)} ({_e(r.source)})</summary>"
        f"<pre>{_e(json.dumps(r.results, indent=2))}</pre></details>"
        for r in runs
    )
    body = [
        _header(runs),
        "<h2>Verdicts</h2>",
        verdict_table(runs, findings),
        "<h2>Findings</h2>",
        *(_finding_html(runs, f, first) for f in findings),
        "<h2>All compared measures</h2>",
        _numbers_table(runs, ()),
        "<h2>More figures</h2><div class='more'>" + other + "</div>" if other else "",
        _timings_html(runs),
        "<h2>Raw numbers</h2>" + raw,
    ]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
        f"<title>Functional emotions: lab report</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )


def write_report(timings: list[tuple[str, float, str]]) -> Path:
    """Write build/report.html from the timings, build/results.json and the figures the notebooks saved."""
    (build_dir() / "timings.json").write_text(
        json.dumps([{"notebook": n, "seconds": round(t, 1), "status": s} for n, t, s in timings], indent=1), encoding="utf-8"
    )
    results, path = build_dir() / "results.json", build_dir() / "report.html"
    try:
        run = load_run(results) if results.exists() else Run("this run", {}, str(results), {}, [])
    except ReportInputError as e:  # the course has run: keep its numbers and say what the report cannot read
        print(f"report: {e}", file=sys.stderr)
        path.write_text(
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><style>{CSS}</style></head><body>"
            f"<h1>Functional emotions: lab report</h1><p class='banner'><b>The report could not be built:</b> {_e(e)}</p>"
            f"<pre>{_e(results.read_text(encoding='utf-8'))}</pre></body></html>",
            encoding="utf-8",
        )
        return path
    if not run.timings:
        run.timings = [{"notebook": n, "seconds": t, "status": s} for n, t, s in timings]
    path.write_text(render([run]), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m course_utils.report RESULTS.json [OTHER.json ...] [-o OUT.html]`: one run's report, or runs side by side."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.report",
        description="Write a lab report from one results.json, or from several side by side with the paper.",
    )
    parser.add_argument("results", nargs="+", type=Path, help="results.json files (the figures/ beside each are used)")
    parser.add_argument("-o", "--out", type=Path, help="output (default: build/report_compare.html; one run: beside it)")
    parser.add_argument("--label", action="append", default=[], help="a column name per run, in order (default: model, mode)")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.results):
        parser.error(f"--label: give one per results file ({len(args.results)}), got {len(args.label)}")
    labels = args.label or [None] * len(args.results)
    try:
        runs = [load_run(p, label) for p, label in zip(args.results, labels)]
    except ReportInputError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 1
    if len({r.label for r in runs}) < len(runs):  # two runs of one model, mode and date: tell them apart by file
        for r in runs:
            r.label = f"{r.label} ({r.source})"
    out = args.out or (args.results[0].parent / "report.html" if len(runs) == 1 else build_dir() / "report_compare.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(runs), encoding="utf-8")
    print(f"report: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
