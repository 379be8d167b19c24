# PostgreSQL 15 from Debian's packages, a stand-in for the official postgres image where no
# registry is reachable (docker/build-local builds it, docker/compose.local.yaml selects it).
# Same contract as the official image: POSTGRES_USER/PASSWORD/DB create the database on the
# first start, data in the volume at /var/lib/postgresql, pg_isready for the health check.
ARG BASE_IMAGE=agileplus-base:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN mkdir -p /etc/postgresql-common \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
    && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
