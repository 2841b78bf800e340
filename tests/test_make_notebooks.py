"""Help at every step, from one source: graded hints for every exercise, a generated "Solution" dropdown after every
exercise of the learner notebooks (the same code as the solution block in course_src/), and "Our answer" to every
recap question. Fast: no model, no papermill."""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_notebooks  # noqa: E402

SOURCES = sorted((ROOT / "course_src").glob("[0-9][0-9]_*.py"))
STUB = 'raise NotImplementedError("exercise not done yet")'
NUDGE = "<details><summary>Hint 1 ("  # a nudge towards the idea, without code
APPROACH = "<details><summary>Hint 2 ("  # the approach, keyed to one sticking point: "Hint 2 (stuck on ...?)"
SOLUTION_SUMMARY = "<details><summary>Solution</summary>"
ANSWER = "<details><summary>Our answer</summary>"
FENCED = re.compile(r"^(`{3,})python\n(.*?)\n\1$", re.M | re.S)
QUESTION = re.compile(r"^(\d+)\. ")


def source_cells(src: Path) -> list[nbformat.NotebookNode]:
    return jupytext.read(src, fmt="py:percent").cells


def blocks_in(code: str) -> list[str]:
    """The solution blocks of one code cell, read here independently of make_notebooks: lines between the markers."""
    blocks, current = [], None
    for line in code.splitlines():
        if line.strip() == "# BEGIN SOLUTION":
            current = []
        elif line.strip() == "# END SOLUTION":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def exercise_cells(src: Path) -> list[tuple[nbformat.NotebookNode, nbformat.NotebookNode]]:
    """(markdown cell with the '### Exercise' heading, the next code cell holding a solution block) per exercise."""
    cells = source_cells(src)
    out = []
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown" and re.search(r"^### Exercise", cell.source, re.M):
            code = next(c for c in cells[i + 1 :] if c.cell_type == "code" and blocks_in(c.source))
            out.append((cell, code))
    return out


def details(text: str, summary: str) -> list[str]:
    """The bodies of the <details> elements with this exact opening (the summary included)."""
    return re.findall(re.escape(summary) + r"(.*?)</details>", text, re.S)


def plain(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", plain(text)))


# (a) graded hints ------------------------------------------------------------------------------------------------


def test_every_exercise_is_found_once_per_solution_block():
    n_blocks = sum(len(blocks_in(c.source)) for src in SOURCES for c in source_cells(src) if c.cell_type == "code")
    n_exercises = sum(len(exercise_cells(src)) for src in SOURCES)
    assert n_exercises == n_blocks >= 8


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_every_exercise_has_a_nudge_then_an_approach(src):
    for md, _ in exercise_cells(src):
        title = md.source.splitlines()[0]
        assert md.source.count(NUDGE) == 1 and md.source.count(APPROACH) == 1, f"{src.name} {title}: two graded hints"
        assert md.source.index(NUDGE) < md.source.index(APPROACH), f"{src.name} {title}: the nudge comes first"
        nudge, approach = details(md.source, NUDGE)[0], details(md.source, APPROACH)[0]
        assert "<code>" not in nudge, f"{src.name} {title}: the nudge points at the idea, without code"
        assert "<code>" in approach, f"{src.name} {title}: the approach names the API"
        assert len(plain(nudge)) > 80 and len(plain(approach)) > len(plain(nudge)) / 2, f"{src.name} {title}"
        assert "BEGIN SOLUTION" not in md.source


# (b) the generated Solution dropdown ----------------------------------------------------------------------------


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_learner_notebook_has_the_solution_after_each_stub(src):
    expected = [blocks_in(code.source) for _, code in exercise_cells(src)]
    nb = nbformat.read(ROOT / "notebooks" / f"{src.stem}.ipynb", as_version=4)
    stubs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and STUB in c.source]
    assert len(stubs) == len(expected), f"{src.name}: one stub cell per exercise"
    dropdowns = [c for c in nb.cells if SOLUTION_SUMMARY in c.source]
    assert len(dropdowns) == len(stubs), f"{src.name}: one Solution dropdown per exercise, none elsewhere"
    for i, blocks in zip(stubs, expected):
        after = nb.cells[i + 1]
        assert after.cell_type == "markdown" and make_notebooks.DROPDOWN_TAG in after.metadata.get("tags", [])
        assert after.source.startswith(SOLUTION_SUMMARY) and after.source.rstrip().endswith("</details>")
        shown = [m.group(2) for m in FENCED.finditer(after.source)]
        assert shown == blocks, f"{src.name}: the dropdown after cell {i} is not the solution block of course_src"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_solution_notebook_has_no_dropdown(src):
    nb = nbformat.read(ROOT / "solutions" / f"{src.stem}.ipynb", as_version=4)
    assert not [c for c in nb.cells if SOLUTION_SUMMARY in c.source or make_notebooks.DROPDOWN_TAG in c.metadata.get("tags", [])]
    assert not any(STUB in c.source for c in nb.cells)


def test_a_fence_inside_the_solution_cannot_close_the_dropdown():
    code = 'def f():\n    # BEGIN SOLUTION\n    return """```"""\n    # END SOLUTION\n'
    cell = make_notebooks.solution_dropdown(code)
    assert [m.group(2) for m in FENCED.finditer(cell.source)] == ['    return """```"""']
    assert make_notebooks.solution_dropdown("x = 1\n") is None


# (c) "Our answer" to every recap question -----------------------------------------------------------------------


def recap_questions(src: Path) -> list[str]:
    """The text of each numbered question (its answer included) in the notebook's '**Questions' list."""
    cells = [c for c in source_cells(src) if c.cell_type == "markdown" and re.search(r"^\*\*Questions", c.source, re.M)]
    assert len(cells) == 1, f"{src.name}: one markdown cell with the recap questions"
    lines = cells[0].source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("**Questions"))
    items: list[list[str]] = []
    for line in lines[start + 1 :]:
        if QUESTION.match(line):
            items.append([line])
        elif items and (line.startswith("   ") or not line.strip()):
            items[-1].append(line)
        elif items:
            break  # the list ends at the next unindented paragraph (**Next**, **Where to go next**)
    assert [int(QUESTION.match(item[0]).group(1)) for item in items] == list(range(1, len(items) + 1)), src.name
    return ["\n".join(item) for item in items]


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_every_recap_question_has_one_answer(src):
    questions = recap_questions(src)
    assert len(questions) >= 2, src.name
    for q in questions:
        first = q.splitlines()[0]
        assert q.count(ANSWER) == 1, f"{src.name}: exactly one 'Our answer' for {first!r}"
        (answer,) = details(q, ANSWER)
        assert q.index(ANSWER) > q.index("?"), f"{src.name}: the answer comes after the question {first!r}"
        assert 2 <= sentences(answer) <= 5, f"{src.name}: {first!r}: answer in a few sentences ({sentences(answer)})"
        # No numbers of a run (they vary by model): no decimals, no percentages.
        assert not re.search(r"\d\.\d|\d\s?%", plain(answer)), f"{src.name}: {first!r}: the answer quotes a number"
        assert "\n\n" not in answer, "a blank line would end the HTML block inside the list item"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_both_notebooks_carry_the_answers(src):
    n = len(recap_questions(src))
    for folder in ("notebooks", "solutions"):
        nb = nbformat.read(ROOT / folder / f"{src.stem}.ipynb", as_version=4)
        assert sum(c.source.count(ANSWER) for c in nb.cells if c.cell_type == "markdown") == n, f"{folder}/{src.stem}"


# (d) the dropdown follows the source ----------------------------------------------------------------------------


def test_changing_a_solution_changes_its_dropdown(tmp_path):
    src = next(s for s in SOURCES if exercise_cells(s))
    text = src.read_text(encoding="utf-8")
    marker = re.search(r"^( *)# BEGIN SOLUTION\n", text, re.M)
    mutant_line = f"{marker.group(1)}mutated_for_the_test = 42  # not in the real source"
    (tmp_path / src.name).write_text(text[: marker.end()] + mutant_line + "\n" + text[marker.end() :], encoding="utf-8")

    def dropdowns(path: Path) -> list[str]:
        learner, solution = make_notebooks.build(path)
        assert not [c for c in solution.cells if SOLUTION_SUMMARY in c.source]
        return [c.source for c in learner.cells if make_notebooks.DROPDOWN_TAG in c.metadata.get("tags", [])]

    before, after = dropdowns(src), dropdowns(tmp_path / src.name)
    assert len(before) == len(after) >= 1
    assert mutant_line not in before[0] and mutant_line in after[0]
    assert before[1:] == after[1:]  # only the mutated exercise's dropdown changed
    shown = [m.group(2) for m in FENCED.finditer(after[0])]
    assert shown[0].splitlines()[0] == mutant_line
