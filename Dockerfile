# syntax=docker/dockerfile:1
# The /imagine bot: one image for every role (docker-compose.yml picks the command).
#
#   docker build -t imagine-bot:cpu .                                  CPU torch (bot machines, tries)
#   docker build -t imagine-bot:cuda --build-arg VARIANT=cuda .        CUDA torch on an nvidia/cuda base
#
#   docker run --rm -v imagine-data:/data --env-file .env imagine-bot:cpu imagine "a cat in a hat" --out /data/grid.png
#   docker run -d  -v imagine-data:/data --env-file .env imagine-bot:cpu                 (imagine serve)
#   docker run -d --gpus all -v imagine-models:/data --env-file .env imagine-bot:cuda python -m generator.serve
#
# The install is scripts/bootstrap.sh, the very line CI and the README use; only the torch build differs,
# through TORCH_INDEX_URL. CUDA_VERSION and TORCH_CUDA must name the same CUDA release (tests/ship checks):
# the base image's NVIDIA_REQUIRE_CUDA then refuses a host driver too old for the torch inside.
# /data is the volume: the SQLite file (one-machine setups), the converted checkpoints and the hub cache.

ARG VARIANT=cpu
ARG UBUNTU=24.04
ARG CUDA_VERSION=13.0.1

# --- the operating system of each variant: Python 3.12 from Ubuntu, nothing else ---------------------------
FROM ubuntu:${UBUNTU} AS os-cpu
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM nvidia/cuda:${CUDA_VERSION}-base-ubuntu${UBUNTU} AS os-cuda
ARG TORCH_CUDA=cu130
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_CUDA} \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM os-${VARIANT} AS os
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# --- build: the project's own install script into /app/.venv ----------------------------------------------
FROM os AS build
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY scripts/bootstrap.sh scripts/bootstrap.sh
COPY jobs jobs
COPY generator generator
COPY bot bot
COPY migrations migrations
# Byte-compiled here: the runtime's code is read-only, and a bot process should start in well under a second.
RUN --mount=type=cache,target=/root/.cache/pip \
    PYTHON=python3 scripts/bootstrap.sh \
    && .venv/bin/python -m compileall -q jobs generator bot migrations

# --- runtime: the venv and the code, read-only, run as an unprivileged user ---------------------------------
FROM os AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="imagine-bot" \
      org.opencontainers.image.description="Self-hosted /imagine bot for Discord and Slack (DALL-E mini in PyTorch)" \
      org.opencontainers.image.variant="${VARIANT}"
RUN groupadd --system --gid 10001 imagine \
    && useradd --system --uid 10001 --gid imagine --home-dir /data --shell /usr/sbin/nologin imagine \
    && mkdir -p /data && chown imagine:imagine /data
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    IMAGINE_DATA_DIR=/data \
    HF_HOME=/data/huggingface \
    IMAGINE_DASHBOARD_HOST=0.0.0.0 \
    IMAGINE_GENERATOR_METRICS_HOST=0.0.0.0
VOLUME ["/data"]
USER imagine
# 8080: dashboard (IMAGINE_DASHBOARD_PORT); 9100: generator /metrics + /healthz (IMAGINE_GENERATOR_METRICS_PORT)
EXPOSE 8080 9100
# Asks the /healthz this container serves (dashboard, generator metrics port); the model may take minutes
# to download and convert on a first start.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
    CMD ["python", "-m", "jobs.healthcheck"]
ENTRYPOINT ["tini", "--"]
CMD ["imagine", "serve"]
