"""The course report: numbers the notebooks measure go to build/results.json (`record`), and the main job
turns them into build/report.html beside the paper's numbers (`write_report`).

`RESULT_KEYS` is the one list of what a notebook may record: `record` refuses any other section or key,
and a test ties it to the `record(...)` calls in course_src/ and to the comparison table.
"""

from __future__ import annotations

import fnmatch
import html
import json
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
        "all_acc_at_layer",
        "all_best_acc",
        "all_bow",
        "all_ci_at_layer",
        "style_*",
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
        "style_*",
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
    ("r(PC1, valence), 12 core emotions", "04_emotion_vectors", "core_r_pc1_valence", "{:+.2f}", "0.81 (171 words)"),
    ("emotion words in top-20 lens tokens", "04_emotion_vectors", "lens_emotion_words", "{:.2f}", "on theme"),
    ("... for random directions", "04_emotion_vectors", "lens_random_emotion_words", "{:.2f}", "n/a"),
    ("implicit scenarios: top-1 of 12", "05_conversation", "implicit_top1", "{:.0%}", "strong diagonal"),
    ("dose-response templates tested", "05_conversation", "dose_templates", "{}", "several"),
    ("... of which in the expected direction", "05_conversation", "dose_matches", "{}", "all shown"),
    ("user-end vs assistant-start profile r", "05_conversation", "speakers_profile_r", "{:+.2f}", "0.11"),
    ("12 core, style-shifted test: emotion vectors top-1", "04_emotion_vectors", "style_vectors_style_test", "{:.2f}", "n/a"),
    ("12 core, style-shifted test: bag-of-words", "04_emotion_vectors", "style_bow_style_test", "{:.2f}", "n/a"),
    ("'He feels' steering diagonal, top-1 of 12 (derivative)", "06_steering", "feels_top1", "{:.0%}", "diagonal"),
    ("'He feels' margin: rank p among label-shuffled vectors", "06_steering", "feels_margin_p", "{:.3g}", "n/a"),
    ("'He feels' margin of the direct path (after the last layer)", "06_steering", "feels_direct_margin", "{:+.3f}", "n/a"),
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
    ("positive control (cheat - honest) slope, test half", "08_cheating", "positive_control_slope", "{:+.3f}", "n/a"),
    ("positive control: derivative's rank p, test half", "08_cheating", "positive_control_p", "{:.3g}", "n/a"),
    ("desperate: rank p in the structure-matched null", "08_cheating", "matched_p_desperate", "{:.3g}", "n/a"),
]


def comparison_rows(results: dict) -> list[tuple[str, str, str]]:
    """(measure, this run, paper) for every comparison whose number this run produced."""
    rows = []
    for label, section, key, fmt, paper in COMPARISON:
        value = results.get(section, {}).get(key)
        if value is None:
            continue
        if isinstance(value, list):
            shown = "[" + ", ".join(f"{v:+.3f}" for v in value) + "]"
        else:
            shown = fmt.format(value)
        ci = results.get(section, {}).get(f"{key}_ci") or results.get(section, {}).get(key.replace("_acc", "_ci"))
        if isinstance(ci, list) and len(ci) == 2 and not isinstance(value, list):
            shown += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        rows.append((label, shown, paper))
    return rows


def write_report(timings: list[tuple[str, float, str]]) -> Path:
    """Write build/report.html from the timings, build/results.json and the figures the notebooks saved."""
    (build_dir() / "timings.json").write_text(
        json.dumps([{"notebook": n, "seconds": round(t, 1), "status": s} for n, t, s in timings], indent=1), encoding="utf-8"
    )
    results = read_results()
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{t:.0f} s</td><td>{html.escape(s)}</td></tr>" for n, t, s in timings)
    run = results.get("run", {})
    mode = "FAST (small subsets)" if run.get("fast") else "full"
    parts = [
        "<h1>Functional emotions: course run</h1>",
        f"<p><b>Model:</b> {html.escape(str(run.get('model', 'unknown')))} &middot; <b>Mode:</b> {mode} &middot; "
        f"<b>Date:</b> {html.escape(str(run.get('date', 'unknown')))}</p>",
    ]
    if run.get("fast"):
        parts.append(
            "<p><b>This is a FAST run:</b> its numbers come from small subsets of the corpus and of the "
            "experiments. They show that the pipeline works; they are not comparable with the paper.</p>"
        )
    parts += [
        "<p>Every number below was measured by the notebooks in this run (build/results.json); "
        "the paper's numbers are from Sofroniew et al. (2026) on a frontier model.</p>",
        f"<h2>Notebooks</h2><table border=1><tr><th>notebook</th><th>time</th><th>status</th></tr>{rows}</table>",
    ]
    table = comparison_rows(results)
    if table:
        body = "".join(
            f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>" for a, b, c in table
        )
        parts.append(
            f"<h2>This run vs the paper</h2><table border=1><tr><th>measure</th><th>this run</th>"
            f"<th>paper</th></tr>{body}</table>"
        )
    if results:
        parts.append("<h2>All recorded numbers</h2><pre>" + html.escape(json.dumps(results, indent=2)) + "</pre>")
    for fig in sorted((build_dir() / "figures").glob("*.png")):
        parts.append(f"<h3>{html.escape(fig.stem)}</h3><img src='figures/{fig.name}' width=700>")
    path = build_dir() / "report.html"
    path.write_text("<html><body>" + "".join(parts) + "</body></html>", encoding="utf-8")
    return path
