# One entry point for people and CI. `make demo` and `make test` work on a fresh machine:
# they create .venv, install the CPU build of PyTorch (never the multi-GB CUDA one) and the package.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup setup-dev test-data test demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev test-data

# Real videos that no one here made, for the decoding tests (Debian's opencv-doc), and Debian's
# chromium for the headless test of the search page.
test-data:
	bash scripts/install_test_videos.sh
	bash scripts/install_test_browser.sh

test: setup-dev
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/videomamba demo

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
