# Two commands do all set-up:  `make run`  serves the default model;  `make test`  runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where torch comes from. Empty: the configured package index (works on any machine that reaches PyPI).
# On a CPU-only box use PyTorch's CPU wheels, about 1/5 the size:
#   make run TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
TORCH_VERSION ?= 2.14.1
TORCHVISION_VERSION ?= 0.29.1
MODEL ?= models/export.pkl
# What `make run` serves: the int8 ONNX conversion of $(MODEL) (no torch in the workers: faster, ~5x leaner),
# written only when its top-1 agrees with fp32 on the check photos and on positives of every class (issue 16).
# `make run SNAKES_MODEL=models/export.onnx` serves fp32; `SNAKES_MODEL=models/export.pkl` the fastai export.
SNAKES_MODEL ?= $(MODEL:.pkl=-int8.onnx)
BENCH_ARGS ?=

.PHONY: run test lint docs model bench clean

run: $(VENV)/.installed $(SNAKES_MODEL)
	SNAKES_MODEL=$(SNAKES_MODEL) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# Measure learn.predict vs our server on both backends, threaded vs sync workers and slow clients;
# writes docs/benchmarks.md (about 30 minutes; BENCH_ARGS=--no-recipes skips training the recipes; the bench
# extra brings its FastAPI peer).
bench: $(VENV)/.installed-bench $(MODEL)
	$(BIN)/snakes-web bench --model $(MODEL) $(BENCH_ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Lint and types, as CI runs them: ruff on the whole repository, mypy --strict on snakes_web/ (both
# configured in pyproject.toml). Either failing fails the target.
lint: $(VENV)/.installed-lint
	$(BIN)/ruff check .
	$(BIN)/mypy

# The documentation site (docs/, mkdocs.yml) into site/, offline-readable; --strict: a broken link, a missing
# page or a stale include fails. The reference pages come from the code: `make reference` rewrites them.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

.PHONY: reference
reference: $(VENV)/.installed
	$(BIN)/python -m snakes_web.tools.reference

model: $(MODEL)

$(MODEL): | $(VENV)/.installed
	$(BIN)/snakes-web build-default-model --output $@

%.onnx: %.pkl snakes_web/model/default_labels.json | $(VENV)/.installed
	$(BIN)/snakes-web export-onnx $< $@

# int8: the classifier head stays fp32; refused (nothing written) below SNAKES_INT8_MIN_AGREEMENT.
%-int8.onnx: %.pkl snakes_web/model/default_labels.json | $(VENV)/.installed
	$(BIN)/snakes-web export-onnx --int8 $< $@

# Every install is held to constraints.txt, the versions CI tested (tests/test_pins.py checks the venv).
PIN := -c constraints.txt

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet $(PIN) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) \
	    torch==$(TORCH_VERSION) torchvision==$(TORCHVISION_VERSION)
	$(BIN)/python -m pip install --quiet $(PIN) -e '.[fastai]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet $(PIN) -e '.[test]'
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet $(PIN) -e '.[docs]'
	touch $@

# The bench's FastAPI peer (fastapi, uvicorn): only the bench and the tests install it, never the server.
$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet $(PIN) -e '.[bench]'
	touch $@

# mypy reads the installed packages' own types (Flask, NumPy, Pillow, SQLAlchemy, torch, FastAPI), so it needs them.
$(VENV)/.installed-lint: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet $(PIN) -e '.[lint,bench]'
	touch $@

# Refresh constraints.txt after changing setup.cfg's requirements (or to take newer releases): uv resolves
# every extra for Python 3.11 on x86-64 Linux, torch held to the versions above; then `make test`.
.PHONY: lock
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv>=0.9'
	printf 'torch==$(TORCH_VERSION)\ntorchvision==$(TORCHVISION_VERSION)\n' > .torch-pins.txt
	$(BIN)/uv pip compile setup.cfg --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	    -c .torch-pins.txt --no-header --quiet -o constraints.body
	{ printf '# The versions CI tested: `make lock` writes this file (uv pip compile setup.cfg, every extra).\n'; \
	  printf '# make, the Dockerfile and Heroku (requirements.txt) install under it; tests/test_pins.py checks.\n'; \
	  cat constraints.body; } > constraints.txt
	rm -f constraints.body .torch-pins.txt

clean:
	rm -rf $(VENV) build *.egg-info

# Fine-tune on your own photos (one sub-folder per class) into $(MODEL) and its .onnx; `make run` then serves it.
#   make train PHOTOS=photos/ TRAIN_ARGS="--epochs 5"
PHOTOS ?= photos
TRAIN_ARGS ?=
.PHONY: train
train: | $(VENV)/.installed
	$(BIN)/snakes-web train $(PHOTOS) --output $(MODEL) --onnx --int8 $(TRAIN_ARGS)

# --- GPU training (issue 16) ---
# Trains and exports on CUDA when torch sees a GPU (`snakes-web train --device cuda`), then checks the
# export loads and predicts on the CPU (.pkl with load_learner(cpu=True), .onnx and its int8). Without a
# GPU it says so and fails: a GPU test that cannot see a GPU has not passed.
.PHONY: test-gpu
test-gpu: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m gpu tests/test_gpu.py $(PYTEST_ARGS)

# --- containers (issue 7) ---
# The container suite: builds the Dockerfile's prod and dev stages with podman, runs them on loopback
# ports, brings the dev service up with podman-compose, and checks Compose, the dev container, Heroku's
# files and hadolint. Needs podman, podman-compose, docker compose and hadolint (here:
# ../shared/container/setup-podman.sh). The builds take torch from TORCH_INDEX_URL, as `make run` does.
PODMAN_BUILD_FLAGS ?= $(shell cat /etc/ctrkit/podman-build-flags 2>/dev/null)

.PHONY: test-container
test-container: $(VENV)/.installed-test
	TORCH_INDEX_URL='$(TORCH_INDEX_URL)' PODMAN_BUILD_FLAGS='$(PODMAN_BUILD_FLAGS)' \
	    $(BIN)/python -m pytest -m container tests/container $(PYTEST_ARGS)
