# cropmeta: `make demo` sets everything up and makes a map; `make test` runs the tests.
# Both create the virtual environment (.venv) on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test clean-venv bench

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	# learn2learn 0.2.0: source-only, its shipped C files fail on 3.11 (upstream issue 413).
	# build_ext re-cythonizes them; --no-deps keeps gsutil/qpth (numpy<2) out.
	$(BIN)/pip install -q --no-deps --no-build-isolation --config-settings=--build-option=build_ext learn2learn==0.2.0
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import learn2learn, rasterio, cropmeta; print('cropmeta', cropmeta.__version__, 'installed')"
	touch $(STAMP)

demo: venv
	$(BIN)/cropmeta doctor
	$(BIN)/cropmeta demo

test: venv
	$(BIN)/python -m pytest -q -n 2 tests

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
