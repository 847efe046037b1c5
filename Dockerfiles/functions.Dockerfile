# The function image: one image for the six functions; each Knative Service picks its handler with
# the env FUNCTION (knative/services/*.yaml). Build from the repository root:
#
#   make image                         # docker or podman, whichever is there
#   docker build -f Dockerfiles/functions.Dockerfile -t knuser-functions:0.1.0 .
#
# BASE_IMAGE defaults to the official slim Python. Machines that reach no container registry
# build on a Debian base made locally (tools/podman.sh base); both stages use the same base so the
# venv copied from the builder finds the same interpreter at the same path.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim

FROM ${BASE_IMAGE} AS builder
# Only what functions/ imports: the local runtime's dependencies (kubernetes, aiohttp,
# kafka-python, …) stay out of the image. Versions come from pyproject.toml.
# Tracing (functions/tracing.py, leantrace/): loaded only when OTEL_TRACES_EXPORTER names an exporter.
ARG FUNCTION_DEPS="cloudevents flask gunicorn boto3 pyyaml jsonschema fastjsonschema urllib3 opentelemetry-api opentelemetry-sdk opentelemetry-exporter-otlp-proto-http orjson"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml Dockerfiles/requirements.py ./
RUN python3 -m venv /opt/venv \
 && python3 requirements.py pyproject.toml ${FUNCTION_DEPS} > requirements.txt \
 && /opt/venv/bin/pip install --requirement requirements.txt
# README.md* matches nothing until the README exists; pyproject.toml names it as the readme.
COPY README.md* ./
COPY functions ./functions
COPY leantrace ./leantrace
# The project itself, without its dependencies (they are above), as a regular install so that
# the package data (catalog.yaml, openapi.yaml) and compiled .pyc files land in the venv. pip,
# setuptools and wheel are build tools: they leave the venv before it is copied.
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${BASE_IMAGE}
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin knuser
COPY --from=builder /opt/venv /opt/venv
# /tmp is the one place Knative's runtime contract guarantees writable; SQLite (STORE=sqlite, the
# local default) keeps its files there. On a cluster the Services use STORE=dynamodb (deploy/).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/tmp/knuser \
    PORT=8080
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# Exec form: gunicorn is PID 1 and receives Knative's SIGTERM itself (the same effect as
# `exec gunicorn …` in a shell), shutting down within graceful_timeout. It binds
# 0.0.0.0:$PORT (functions/gunicorn_conf.py), as a container must; GUNICORN_CMD_ARGS overrides.
CMD ["gunicorn", "-c", "python:functions.gunicorn_conf", "functions.wsgi:create_app()"]
