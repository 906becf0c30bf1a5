VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0

.PHONY: install lint test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build first: a bare torch requirement would pull several GB of CUDA packages.
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[test,radiomics,hdf5,explain,dicomseg,tensorboard,onnx]"
	touch $@

lint: install
	$(PY) -m ruff check universalclassifier tests benchmarks
	$(PY) -m mypy universalclassifier

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile

demo: install
	$(PY) -m universalclassifier.demo --output demo_output

bench: install
	$(PY) benchmarks/bench_preprocess.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_predict.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache demo_output
