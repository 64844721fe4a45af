# syntax=docker/dockerfile:1
# modelbus: one image for the API and every worker role; the command picks the part (deploy/entrypoint.py):
#   docker run ... modelbus:1.0.0 api                                    the API alone (port 8000)
#   docker run ... modelbus:1.0.0 worker --roles serving                 prediction workers
#   docker run ... modelbus:1.0.0 worker --roles training projector archive ingest analyser
#   docker run ... modelbus:1.0.0 init                                   topics, indexes, bootstrap key; exits
# Needs a real Kafka and MongoDB (MODELBUS_KAFKA_BOOTSTRAP, MODELBUS_MONGODB_URL): the embedded Tansu broker and
# SecantusDB daemons (the `embedded` extra) are not in the image. Build (needs a Docker engine):
#   docker build -t modelbus:1.0.0 .
# Checked without an engine by tests/unit/test_packaging.py (torch pin, no embedded extra, non-root user,
# health check path, every COPY source present and not excluded by .dockerignore).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, pinned exactly as in pyproject.toml, from the CPU wheel index: the default index would pull
# several GB of CUDA packages. pip then sees torch==2.13.0 satisfied and leaves it alone.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY ml ./ml
COPY producers ./producers
COPY consumers ./consumers
COPY api ./api
COPY infra ./infra
COPY bootstrap ./bootstrap
# no `embedded` extra (no Tansu, no SecantusDB); EXTRAS=wandb adds Weights & Biases logging
ARG EXTRAS=""
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && python -c "import api.app, consumers.runtime, bootstrap.stack"

FROM ${PYTHON_IMAGE} AS runtime
# LightGBM's wheel links the system OpenMP runtime (torch and scikit-learn bring their own)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 modelbus \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin modelbus
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY deploy/entrypoint.py /app/deploy/entrypoint.py
# everything the processes write goes under /tmp (stack.json, training scratch), so the root file system can
# be read-only (the Kubernetes manifests mount an emptyDir there)
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MODELBUS_HOST=0.0.0.0 \
    MODELBUS_PORT=8000 \
    MODELBUS_DATA_DIR=/tmp/modelbus \
    MODELBUS_LOG_JSON=true
USER 10001:10001
EXPOSE 8000
# the API's health route: 200 when Kafka and MongoDB answer, 503 otherwise. Worker containers have no HTTP
# server and override it (deploy/compose.yaml, deploy/k8s/).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/entrypoint.py", "probe", "http", "/api/v1/health"]
ENTRYPOINT ["python", "/app/deploy/entrypoint.py"]
CMD ["api"]
