# syntax=docker/dockerfile:1
# connector-exporter image: wheels and the venv are built in the first stage; the final stage
# is the slim Python base plus that venv, run as a fixed non-root UID.
#   docker build -t connector-exporter --build-arg VERSION=$(git describe --tags) .
# tests/docker/test_dockerfile.py runs this file's COPY and RUN steps in a temporary directory,
# so every command here is exercised by `make test` without a Docker engine.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY exporter/ exporter/
# One wheel per distribution, versions pinned by constraints.txt (the same lock as the tests).
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip wheel --wheel-dir /wheels --constraint constraints.txt .
# A venv without pip: the base image's pip installs into it, offline, from the wheels above.
RUN python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --no-index --no-cache-dir \
      --find-links /wheels /wheels/connector_exporter-*.whl

FROM python:${PYTHON_VERSION}-slim-bookworm
ARG VERSION=dev
ARG REVISION=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="connector-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the health of SaaS integration connectors (Fivetran, Bindbee, Apideck, OpenInt, Versori)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
COPY --from=build /opt/venv /opt/venv
# 65532: the conventional "nonroot" UID/GID (distroless); numeric so that Kubernetes'
# runAsNonRoot can verify it without an /etc/passwd entry.
USER 65532:65532
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONNECTOR_EXPORTER_CONFIG=/etc/connector-exporter/config.yml
# 9841: /metrics and the status page; 9842: vendor webhooks, when the config turns them on
EXPOSE 9841 9842
ENTRYPOINT ["connector-exporter"]
CMD ["run"]
