# One image for the workers, Flower and the producer (see docker-compose.yml, docs/compose.md).
# The base is an argument so a machine without a registry can build on a local image
# (compose/local-images.yml does that with compose/base-image.sh's debootstrap base).
#
# PyPI behind a TLS-intercepting proxy: pass its CA bundle as the OPTIONAL build secret
# `host_ca` (compose/local-images.yml; `docker build --secret id=host_ca,src=BUNDLE`).
# A secret mount exists only while its RUN runs: it is never in a layer, the image keeps
# Debian's own bundle. Without the secret (plain internet) pip uses that bundle as usual.
# `RUN --mount` needs BuildKit (Compose v2, `docker build` on Docker >= 18.09) or podman.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/lab \
    PATH=/opt/lab/bin:$PATH

# Dependencies first, exactly as pinned in pyproject.toml, so code changes reuse this layer.
COPY pyproject.toml /tmp/build/
RUN --mount=type=secret,id=host_ca \
    if [ -s /run/secrets/host_ca ]; then export PIP_CERT=/run/secrets/host_ca; fi \
    && python3 -m venv /opt/lab \
    && python -c "import tomllib, pathlib; p = tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']; deps = p['dependencies'] + p['optional-dependencies']['full']; pathlib.Path('/tmp/build/requirements.txt').write_text(chr(10).join(deps))" \
    && pip install --quiet -r /tmp/build/requirements.txt

# Then the project itself: .dockerignore lets only pyproject.toml and the packages in.
COPY . /tmp/build
RUN --mount=type=secret,id=host_ca \
    if [ -s /run/secrets/host_ca ]; then export PIP_CERT=/run/secrets/host_ca; fi \
    && pip install --quiet --no-deps /tmp/build && rm -rf /tmp/build

# Not root: a task that misbehaves cannot touch the image or the host's files.
# BuildKit leaves the secret's empty mount point behind: remove it, nothing is in it.
RUN rmdir /run/secrets 2>/dev/null; useradd --uid 10001 --user-group --create-home --home-dir /home/lab --shell /usr/sbin/nologin lab
USER lab
WORKDIR /home/lab

# Smoke test: the image is unusable if Celery or the app cannot be imported.
RUN celery --version && python -c "import tasks.celery_app" && lab --help >/dev/null && producer --help >/dev/null

CMD ["lab", "--help"]
