# Redis from Debian's packages, a stand-in for the official redis image where no registry is
# reachable. Compose runs `redis-server ... --requirepass` itself; data in /data, as upstream.
ARG BASE_IMAGE=agileplus-base:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o redis -g redis -m 0750 /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
