# Two commands on a fresh machine with Python >= 3.11 and make:
#   make demo   creates .venv, installs genvision, trains on the embedded mnist-mini, writes out/demo/index.html
#   make test   installs the dev extras and runs the whole test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	# CompressAI (the learned codec's entropy coder) pins numpy<2 in its metadata but the parts genvision
	# loads run on numpy 2 (tests/test_codec.py checks the bitstream round trip): installed without deps.
	$(PY) -m pip install -q --no-deps compressai==1.2.8
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/genvision demo --out out/demo

test: $(VENV)/.dev-installed
	$(PY) -m pytest -q

clean:
	rm -rf out runs .pytest_cache
