# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pytest-xdist workers for the test suite: the suite is mostly XLA compilation, which one process
# keeps 1.2 of 2 cores busy with; a second worker fills the machine.
TEST_WORKERS ?= 2

.PHONY: demo test test-slow bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "jaxaug needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# A learned augmentation (OnlineAugment's A-STN) beside the plain baseline and the baseline with
# twice the epochs, then the three test accuracies and workdirs/demo/generated.png. A second
# `make demo` reuses the finished runs.
demo: $(STAMP)
	$(PY) demo.py

# The 15 slowest tests are printed every run, so that a test that grows shows in every CI log.
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) workdirs .pytest_cache
