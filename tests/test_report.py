"""The report's one list of result keys is tied to what the notebooks record, and to the comparison table."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

from course_utils import report

ROOT = Path(__file__).resolve().parents[1]


def recorded() -> dict[str, set[str]]:
    """Every (section, key) that a literal `record(...)` call in course_src/ writes, read from the source."""
    found: dict[str, set[str]] = {}
    for src in sorted((ROOT / "course_src").glob("[0-9][0-9]_*.py")):
        for node in ast.walk(ast.parse(src.read_text(encoding="utf-8"), filename=str(src))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "record":
                section = node.args[0]
                assert isinstance(section, ast.Constant), f"{src.name}:{node.lineno}: record's section must be a literal"
                found.setdefault(section.value, set()).update(k.arg for k in node.keywords if k.arg)
    return found


def test_every_recorded_key_is_listed_and_every_listed_key_is_recorded():
    found = recorded()
    assert set(found) == set(report.RESULT_KEYS) - {"run"}
    for section, keys in found.items():
        listed = report.RESULT_KEYS[section]
        for key in keys:
            assert any(fnmatch.fnmatchcase(key, p) for p in listed), f"{section}.{key} is recorded but not listed"
        for pattern in listed:
            if "*" not in pattern:  # patterns stand for keys built at run time (e.g. slope_<emotion>)
                assert pattern in keys, f"{section}.{pattern} is listed but no notebook records it"


def test_every_comparison_row_names_a_listed_key():
    for label, section, key, _, _ in report.COMPARISON:
        assert section in report.RESULT_KEYS, label
        assert any(fnmatch.fnmatchcase(key, p) for p in report.RESULT_KEYS[section]), f"{label}: {section}.{key}"


def test_record_refuses_unknown_sections_and_keys(tmp_build):
    with pytest.raises(ValueError, match="unknown section '99_nope'"):
        report.record("99_nope", x=1)
    with pytest.raises(ValueError, match="unknown key 'r_pc9' .* allowed"):
        report.record("04_emotion_vectors", r_pc9=0.1)
    report.record("08_cheating", slope_desperate=0.1)  # a pattern key
    assert report.read_results()["08_cheating"]["slope_desperate"] == 0.1


def test_record_verdict_takes_only_the_four_verdicts(tmp_build):
    report.record_verdict("08_cheating", "desperate_cheating", "does not replicate", "p = 0.68 among 10,000 random")
    assert report.read_results()["08_cheating"]["verdict_desperate_cheating"]["verdict"] == "does not replicate"
    with pytest.raises(ValueError, match="allowed: \\['replicates'"):
        report.record_verdict("08_cheating", "x", "maybe", "")
    with pytest.raises(ValueError, match="short identifier"):
        report.record_verdict("08_cheating", "two words", "replicates", "")


def test_a_fast_report_says_so(tmp_build):
    report.record("run", model="m", fast=True, date="2026-12-01")
    text = report.write_report([]).read_text()
    assert "This is a FAST run" in text and "not comparable with the paper" in text and "2026-12-01" in text
    report.record("run", fast=False)
    assert "This is a FAST run" not in report.write_report([]).read_text()
