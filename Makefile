# Two entry points from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench-acquisition clean

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

clean:
	rm -rf $(VENV) live-restore-demo.ome.zarr live-restore-demo.ome.png
