# syntax=docker/dockerfile:1.7
# Vigie container image: a wheel-only install of the project on a slim Python base,
# running as a numeric non-root user and compatible with a read-only root filesystem.
#
# The base is pinned to an exact patch release. Release pipelines should also pin the
# digest they reviewed, e.g.
#   docker buildx imagetools inspect python:3.11.16-slim-bookworm
#   docker build --build-arg PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:<digest> .
#
# tests/deploy/test_dockerfile.py runs the RUN steps below that mention pip/venv in a
# temporary venv, so keep each of them a plain command chain (no shell variables).
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm

# ---- stage 1: wheels of the project and of every dependency --------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
# .dockerignore is an allowlist: only pyproject.toml, requirements.lock, README/LICENSE and
# src/ arrive here. Dependencies come from the lock, every file checked against its hash
# (`make lock` regenerates it); the project's own wheel is built without resolving anything.
COPY . .
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements.lock \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- stage 2: runtime -----------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vigie" \
      org.opencontainers.image.description="Data-minimization reverse proxy for patient-management HTTP APIs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.16-slim-bookworm"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIGIE_BUILD_REVISION=${REVISION} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/vigie/bin:${PATH}

# The pinned version must equal pyproject.toml's (a test checks it), so the image can only
# contain the wheel that stage 1 just built. The wheels are bind-mounted from the build stage, so they never become a layer here.
# The venv is created without pip: nothing in the runtime image can install packages.
# Bytecode is compiled at install time (pip's default), because the root filesystem is
# read-only at run time and PYTHONDONTWRITEBYTECODE stops any later attempt.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/vigie \
    && pip --python /opt/vigie/bin/python install --no-cache-dir --no-index --find-links /wheels vigie==0.1.0 \
    && vigie --help > /dev/null

RUN groupadd --system --gid 10001 vigie \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin vigie

WORKDIR /etc/vigie
USER 10001:10001

# 8080: proxy listener; 9090: admin listener (/healthz, /readyz, /metrics, /quarantine).
EXPOSE 8080 9090

# For plain Docker / Compose. Kubernetes ignores HEALTHCHECK and uses the chart's probes.
# Stdlib only: the image has no curl. Assumes the default admin port 9090.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=2).status != 200)"]

ENTRYPOINT ["vigie"]
CMD ["serve", "--config", "/etc/vigie/vigie.yaml"]
