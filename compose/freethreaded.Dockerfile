# A threads worker on free-threaded CPython (3.14t, no GIL): claim 1's counter-experiment.
#
# UNTESTED in this lab: our machines reach no container registry and no python-build-standalone
# download, which this image needs (`uv python install 3.14t`). It is here so a machine that has
# them can run `docker compose --profile freethreaded up -d --build` and compare square on
# threads with and without the GIL. No official python:3.14t image exists (docker-library/python#1082).
#
# Only what a worker imports is installed: gevent, eventlet and matplotlib are left out because
# they are not needed by a threads worker and may not build on a free-threaded interpreter yet.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${UV_IMAGE} AS uv
FROM ${BASE_IMAGE}

COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    VIRTUAL_ENV=/opt/lab \
    PATH=/opt/lab/bin:$PATH \
    PYTHON_GIL=0 \
    PYTHONUNBUFFERED=1

COPY pyproject.toml /tmp/build/
RUN uv python install 3.14t \
    && uv venv --python 3.14t /opt/lab \
    && /opt/lab/bin/python -c "import tomllib, pathlib; wanted = ('celery', 'kombu', 'redis', 'click', 'rich', 'psutil', 'requests'); deps = tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']['dependencies']; pathlib.Path('/tmp/build/requirements.txt').write_text(chr(10).join(d for d in deps if d.split('[')[0].split('=')[0] in wanted))" \
    && uv pip install --python /opt/lab/bin/python -r /tmp/build/requirements.txt

COPY . /tmp/build
RUN uv pip install --python /opt/lab/bin/python --no-deps /tmp/build && rm -rf /tmp/build

RUN useradd --uid 10001 --user-group --create-home --home-dir /home/lab --shell /usr/sbin/nologin lab
USER lab
WORKDIR /home/lab

# Refuse to build an image that silently runs with the GIL.
RUN python -c "import sys; assert not sys._is_gil_enabled(), 'the GIL is on'" && python -c "import tasks.celery_app"

CMD ["lab", "worker", "threads"]
