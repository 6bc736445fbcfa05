# syntax=docker/dockerfile:1
# Build: docker build -t samverkan .
# Run:   see compose.yaml (PostgreSQL 15 + a one-shot migration + the API).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# A C compiler and OpenSSL's headers for the chain check's native part (hatch_build.py);
# the runtime image has OpenSSL's library already (Python's own ssl and hashlib use it).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
ENV SAMVERKAN_NATIVE=require
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md alembic.ini hatch_build.py ./
COPY app ./app
COPY migrations ./migrations
COPY policies ./policies
# A wheel install: migrations and policies travel inside the package
# (app/_migrations, app/_policies).
RUN pip install --upgrade pip && pip install .

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 samverkan \
    && useradd --system --uid 10001 --gid samverkan --home-dir /srv/samverkan \
       --create-home --shell /usr/sbin/nologin samverkan
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SAMVERKAN_ENV=prod
USER samverkan
WORKDIR /srv/samverkan
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["samverkan", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
