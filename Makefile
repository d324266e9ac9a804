# Two entry points from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench-acquisition peers clean

# CAREamics (the N2V2 peer of `live-restore bench real`) pins an older torch/torchvision pair,
# so it gets its own environment; see live_restore/experiments/peers.py.
PEERS_VENV ?= .venv-peers

$(BIN)/live-restore: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: $(BIN)/live-restore
	$(BIN)/live-restore demo --overwrite

test: $(BIN)/live-restore
	$(BIN)/ruff check src tests demos
	$(BIN)/python -m pytest -q

bench-acquisition: $(BIN)/live-restore
	$(BIN)/live-restore bench acquisition --json bench_acquisition.json

peers: $(PEERS_VENV)/bin/careamics-installed

$(PEERS_VENV)/bin/careamics-installed:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q careamics==0.3.5
	touch $@

clean:
	rm -rf $(VENV) live-restore-demo.ome.zarr live-restore-demo.ome.png
