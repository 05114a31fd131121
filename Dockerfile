# One image for the workers, Flower and the producer (see docker-compose.yml, docs/compose.md).
# The base is an argument so a machine without a registry can build on a local image:
#   podman build --build-arg BASE_IMAGE=localhost/debian:bookworm-py -t celery-concurrency-lab .
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
RUN python3 -m venv /opt/lab \
    && python -c "import tomllib, pathlib; p = tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']; deps = p['dependencies'] + p['optional-dependencies']['full']; pathlib.Path('/tmp/build/requirements.txt').write_text(chr(10).join(deps))" \
    && pip install --quiet -r /tmp/build/requirements.txt

# Then the project itself: .dockerignore lets only pyproject.toml and the packages in.
COPY . /tmp/build
RUN pip install --quiet --no-deps /tmp/build && rm -rf /tmp/build

# Not root: a task that misbehaves cannot touch the image or the host's files.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/lab --shell /usr/sbin/nologin lab
USER lab
WORKDIR /home/lab

# Smoke test: the image is unusable if Celery or the app cannot be imported.
RUN celery --version && python -c "import tasks.celery_app" && lab --help >/dev/null && producer --help >/dev/null

CMD ["lab", "--help"]
