# Two commands: `make train` (the main job on its embedded default) and `make test` (the suite).
# Both set everything up first (scripts/bootstrap.sh is idempotent).
VENV := .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup train test test-all lint typecheck bench clean

setup:
	@bash scripts/bootstrap.sh

train: setup
	$(VENV)/bin/pirlctl train $(ARGS)

test: setup
	$(PY) -m pytest -q --durations=25 $(PYTEST_ARGS)
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/mypy

test-all: setup
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/ruff format --check src tests scripts bench

typecheck: setup
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench.run_all $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
