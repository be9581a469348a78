# syntax=docker/dockerfile:1
#
# The one build definition behind every service image (why it looks like this:
# infra/docker/README.md). It defines two base stages, each built once and shared:
#
#   builder  Python + uv. Its ONBUILD triggers install `llmops-$SERVICE`, its workspace
#            dependencies and nothing else into /app/.venv.
#   runtime  Python + a non-root user + the /healthz health check. Its ONBUILD triggers
#            copy that virtual environment in from the stage named `build`.
#
# A services/<name>/Dockerfile pins `ARG SERVICE=<name>` before its first FROM, then
# starts `FROM llmops-builder AS build` and `FROM llmops-runtime`; the triggers below
# run inside those stages. Build context: the repository root.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
RUN --mount=type=cache,target=/root/.cache/pip pip install "uv==${UV_VERSION}"
# Bytecode compiled at build time (faster start, read-only code); copies, not hard links,
# out of the cache mount; the image's own interpreter, never a downloaded one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

ONBUILD ARG SERVICE
ONBUILD RUN test -n "${SERVICE}" || { echo "build arg SERVICE is required" >&2; exit 1; }
# Layer 1, third-party dependencies: rebuilt only when uv.lock or a pyproject.toml changes.
ONBUILD COPY --parents pyproject.toml uv.lock libs/*/pyproject.toml services/*/pyproject.toml ./
ONBUILD RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "llmops-${SERVICE}"
# Layer 2, the workspace packages themselves, installed as wheels (not editable) so the
# runtime image needs the virtual environment only, never the source tree.
ONBUILD RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,target=/src,readwrite \
    uv sync --frozen --no-dev --no-editable --package "llmops-${SERVICE}"


FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/app/.venv/bin:$PATH
RUN groupadd --system --gid 10001 llmops \
    && useradd --system --uid 10001 --gid llmops --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin llmops \
    && install -d -o 10001 -g 10001 /var/lib/llmops /var/lib/llmops/blobs /var/lib/llmops/models /var/lib/llmops/spool
# ^ volume mount points owned by the service user (a new named volume takes this owner)
COPY --chmod=0755 infra/docker/healthcheck.py /usr/local/bin/llmops-healthcheck
WORKDIR /app
# Numeric, so orchestrators can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --start-interval=2s --retries=3 \
    CMD ["python", "/usr/local/bin/llmops-healthcheck"]

ONBUILD ARG SERVICE
# Owned by root: the service user can run the code but not change it.
ONBUILD COPY --from=build /app/.venv /app/.venv
ONBUILD ENV LLMOPS_SERVICE=${SERVICE}
ONBUILD LABEL org.opencontainers.image.title="llmops-${SERVICE}"
