# Bastion: the locked environment on a slim Python, run as a user without privileges.
#   docker build -t bastion .
#   docker run -p 8000:8000 -e BASTION_SECRET_KEY=$(openssl rand -hex 32) bastion
# compose.yaml runs it with PostgreSQL, Redis, MLflow, Prometheus and Grafana.

FROM python:3.11-slim-bookworm AS build
# gcc compiles the privacy detectors with mypyc (hatch_build.py) while the wheel builds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.10
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# Dependencies first (cached while only the sources change), then the project itself.
COPY pyproject.toml uv.lock README.md hatch_build.py ./
RUN uv sync --locked --no-dev --no-install-project
COPY src ./src
RUN uv sync --locked --no-dev --no-editable

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 bastion \
    && useradd --system --uid 10001 --gid bastion --home-dir /var/lib/bastion --create-home bastion
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    BASTION_HOME=/var/lib/bastion \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/bastion
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
ENTRYPOINT ["bastion"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
