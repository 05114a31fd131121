# A threads worker on free-threaded CPython (no GIL), pool threads-ft: claim 1's counter-experiment (docs/freethreaded.md).
#
# The interpreter is built here by the same script, from the same Debian source package and with the
# same configure flags as `make freethreaded` on a machine (tools/freethreaded.sh): no registry and
# no python-build-standalone download is needed, only Debian's archive and PyPI. Needs BuildKit (the
# CA bundle is a build secret, never a layer):
#
#   docker buildx build -f compose/freethreaded.Dockerfile \
#       --build-arg BASE_IMAGE=localhost/debian:bookworm-py --build-arg DEBIAN_MIRROR="$(bash tools/debian-mirror.sh)" \
#       --secret id=host_ca,src=/etc/ssl/certs/ca-certificates.crt -t celery-concurrency-lab-ft .
#
# Only the worker's own dependencies ([project] dependencies of pyproject.toml) are installed: Flower,
# gevent, eventlet and matplotlib are not needed by a threads worker, and every C extension in the venv
# must run without the GIL (the last step refuses to build an image in which one turns it back on).
# The context is compose/freethreaded.Dockerfile.dockerignore: the packages, pyproject.toml, and the
# two scripts the build runs.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
# Empty: the base image's own apt sources name the mirror (tools/debian-mirror.sh reads them).
ARG DEBIAN_MIRROR=
ARG FT_PYTHON=3.13
ENV LAB_CACHE_DIR=/opt \
    FT_PYTHON=${FT_PYTHON} \
    DEBIAN_MIRROR=${DEBIAN_MIRROR}
COPY tools/freethreaded.sh tools/debian-mirror.sh /src/tools/
# Build dependencies from the base's apt sources, the source tarball through a private apt config,
# then configure --disable-gil --prefix=/opt/cpython-<v>t --without-ensurepip, make -j2, install.
RUN bash /src/tools/freethreaded.sh interpreter \
    && rm -rf /opt/apt-* /opt/src /opt/*.build.log /var/lib/apt/lists/*
# The image needs the interpreter, not its test suite or static library (about 290 MB).
RUN rm -rf /opt/cpython-${FT_PYTHON}t/lib/python${FT_PYTHON}t/test \
           /opt/cpython-${FT_PYTHON}t/lib/libpython${FT_PYTHON}t.a \
           /opt/cpython-${FT_PYTHON}t/lib/python${FT_PYTHON}t/config-${FT_PYTHON}t-*/libpython${FT_PYTHON}t.a

COPY . /src
# PyPI is reached through a TLS proxy on the lab's machines: its CA comes in as the optional secret
# `host_ca` (as for the main Dockerfile) for this step only (not in any layer); without it pip uses its own bundle.
RUN --mount=type=secret,id=host_ca,required=false \
    if [ -s /run/secrets/host_ca ]; then export PIP_CERT=/run/secrets/host_ca; fi \
    && bash /src/tools/freethreaded.sh venv /opt/lab --no-editable

FROM ${BASE_IMAGE}
ARG FT_PYTHON=3.13
ENV LAB_CACHE_DIR=/opt \
    FT_PYTHON=${FT_PYTHON} \
    VIRTUAL_ENV=/opt/lab \
    PATH=/opt/lab/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The shared libraries the interpreter links to, installed only if the base lacks them.
RUN --mount=type=bind,from=build,source=/src/tools,target=/src/tools \
    bash /src/tools/freethreaded.sh runtime-deps && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/cpython-${FT_PYTHON}t /opt/cpython-${FT_PYTHON}t
COPY --from=build /opt/lab /opt/lab

# Not root: a task that misbehaves cannot touch the image or the host's files.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/lab --shell /usr/sbin/nologin lab
USER lab
WORKDIR /home/lab

# Refuse an image in which the GIL is on: a free-threaded build, its stdlib modules load, and importing
# what the worker imports leaves the GIL off (PYTHON_GIL unset, so nothing forces it).
RUN --mount=type=bind,from=build,source=/src/tools,target=/src/tools \
    bash /src/tools/freethreaded.sh check --venv /opt/lab && lab --help >/dev/null

CMD ["lab", "worker", "threads-ft"]
