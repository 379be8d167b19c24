# The app image plus the pinned Codex CLI (tools/agent-clis/package.json: @openai/codex 0.169.0),
# its native Linux binaries (codex and the code-mode host it starts), which need no Node.js: a
# worker image that offers the codex harness.
# docker/build-local builds it as agileplus-codex:local when `npm ci` in tools/agent-clis made the
# binary; its context is that binary's folder only.
ARG APP_IMAGE=agileplus:local
FROM ${APP_IMAGE}
COPY bin/ /opt/agent-clis/codex/bin/
COPY codex-path/rg /opt/agent-clis/codex/path/rg
ENV AGILEPLUS_CODEX_BIN=/opt/agent-clis/codex/bin/codex \
    PATH=$PATH:/opt/agent-clis/codex/path
