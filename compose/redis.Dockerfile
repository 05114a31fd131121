# A Redis image for machines with no registry (CI): Debian's redis-server on the local base.
# docker-compose.yml uses the official `redis` image; compose/local-images.yml swaps in this
# one. Both have `redis-server`, `redis-cli`, a `redis` user and a writable /data.
ARG BASE_IMAGE=localhost/debian:bookworm-py
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
CMD ["redis-server"]
