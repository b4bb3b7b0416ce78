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
# What `make run` serves: the ONNX conversion of $(MODEL) (no torch in the workers: faster, ~5x leaner).
# `make run SNAKES_MODEL=models/export.pkl` serves the fastai export itself; so does any other .pkl.
SNAKES_MODEL ?= $(MODEL:.pkl=.onnx)
BENCH_ARGS ?=

.PHONY: run test model bench clean

run: $(VENV)/.installed $(SNAKES_MODEL)
	SNAKES_MODEL=$(SNAKES_MODEL) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# Measure learn.predict vs our server on both backends, threaded vs sync workers and slow clients;
# writes docs/benchmarks.md (about 5 minutes).
bench: $(VENV)/.installed $(MODEL)
	$(BIN)/snakes-web bench --model $(MODEL) $(BENCH_ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

model: $(MODEL)

$(MODEL): | $(VENV)/.installed
	$(BIN)/snakes-web build-default-model --output $@

%.onnx: %.pkl | $(VENV)/.installed
	$(BIN)/snakes-web export-onnx $< $@

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) \
	    torch==$(TORCH_VERSION) torchvision==$(TORCHVISION_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[fastai]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info

# Fine-tune on your own photos (one sub-folder per class) into $(MODEL) and its .onnx; `make run` then serves it.
#   make train PHOTOS=photos/ TRAIN_ARGS="--epochs 5"
PHOTOS ?= photos
TRAIN_ARGS ?=
.PHONY: train
train: | $(VENV)/.installed
	$(BIN)/snakes-web train $(PHOTOS) --output $(MODEL) --onnx $(TRAIN_ARGS)

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
