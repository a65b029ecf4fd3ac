# syntax=docker/dockerfile:1
#
# Toolplane: one image, both services. The planner checks tool code in sandbox hosts at registration,
# so it needs isolated-vm, the queue, metrics and tracing just as the worker does: one image holds one
# copy of those dependencies, builds once, and gives compose and Kubernetes one tag to pin. Pick the
# service with the command:
#
#   docker run toolplane node --no-node-snapshot services/planner/dist/main.js   (the default)
#   docker run toolplane node --no-node-snapshot services/worker/dist/main.js
#
# Build: `make image` (scripts/image.sh), or `docker build -t toolplane:dev .`. Builds behind a
# TLS-inspecting proxy pass its CA bundle as the secret `npm_ca` (the registry is reached twice:
# pnpm itself, and the dependencies).
#
# Node, isolated-vm and the base image are pinned together: isolated-vm 7 needs Node 24, and the
# worker starts its sandbox hosts with `process.execPath --no-node-snapshot
# /app/packages/sandbox/dist/host/host-main.js`, so the layout under /app is the workspace's.
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
ENV CI=true \
    TURBO_TELEMETRY_DISABLED=1 \
    TURBO_NO_UPDATE_NOTIFIER=1 \
    DO_NOT_TRACK=1
# pnpm at the version package.json pins; this layer changes only with it.
COPY package.json ./
RUN --mount=type=secret,id=npm_ca \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm install --global --no-audit --no-fund --loglevel=error \
      "pnpm@$(node -p 'require("./package.json").packageManager.split("@")[1]')"
COPY . .
# Only what the two services need (and the root's turbo). The store is a cache mount: a second build
# downloads only what the lockfile added, and none of it lands in a layer.
RUN --mount=type=cache,id=toolplane-pnpm-store,target=/pnpm/store \
    --mount=type=secret,id=npm_ca \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    pnpm install --frozen-lockfile --store-dir /pnpm/store --reporter=append-only \
      --filter toolplane --filter "@toolplane/planner..." --filter "@toolplane/worker..."
# turbo's cache is a cache mount too: packages whose inputs did not change are restored, not compiled.
RUN --mount=type=cache,id=toolplane-turbo,target=/turbo-cache \
    pnpm exec turbo run build --cache-dir=/turbo-cache --output-logs=errors-only \
      --filter "@toolplane/planner..." --filter "@toolplane/worker..."
# /out: the workspace again with only the two services and the packages they use (manifest and dist,
# no sources, no type declarations), then a production install into it: no dev dependencies, no
# compilers (isolated-vm loads its prebuilt binary).
RUN --mount=type=cache,id=toolplane-pnpm-store,target=/pnpm/store \
    pnpm --filter "@toolplane/planner..." --filter "@toolplane/worker..." list --depth -1 --json \
    | node -e ' \
        const fs = require("node:fs"), path = require("node:path"); \
        for (const p of JSON.parse(fs.readFileSync(0, "utf8"))) { \
          const to = path.join("/out", path.relative(process.cwd(), p.path)); \
          fs.mkdirSync(to, { recursive: true }); \
          fs.cpSync(path.join(p.path, "package.json"), path.join(to, "package.json")); \
          fs.cpSync(path.join(p.path, "dist"), path.join(to, "dist"), { recursive: true, \
            filter: (f) => !/\.d\.ts(\.map)?$|\.tsbuildinfo$/.test(f) }); \
        }' \
    && cp package.json pnpm-lock.yaml pnpm-workspace.yaml /out/ \
    && pnpm --dir /out install --prod --frozen-lockfile --offline --store-dir /pnpm/store --reporter=append-only \
    && test -f /out/packages/sandbox/dist/host/host-main.js

FROM ${NODE_IMAGE}
# tini is PID 1: it hands SIGTERM to node (which then drains) and reaps orphans. It signals node only,
# not its process group: the worker's sandbox hosts must outlive the SIGTERM until their calls finish.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Owned by root, run as 1000: the service cannot change its own code. The one writable directory is
# .data, where the planner keeps its embedded history (SQLite) when HISTORY_URL is unset; mount a
# volume there (compose and Kubernetes do), or point HISTORY_URL at Postgres.
COPY --from=build /out /app
RUN install -d -o 1000 -g 1000 -m 0750 /app/.data
ENV NODE_ENV=production
# Numeric, so Kubernetes' runAsNonRoot can check it (user `node` of the base image).
USER 1000:1000
EXPOSE 8080 9464
# Asks /healthz of whichever service this container runs: the planner on PORT (8080) or the worker on
# WORKER_METRICS_PORT (9464); the other port is closed. /healthz fails while the event loop is blocked
# or lagged more than 1 s within the last 2 s.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const ports = [process.env.PORT || 8080, process.env.WORKER_METRICS_PORT || 9464]; Promise.any(ports.map((p) => fetch(`http://127.0.0.1:${p}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => { if (!r.ok) throw new Error(String(r.status)); }))).then(() => process.exit(0), () => process.exit(1));"]
# Last, so that a new revision or date never invalidates a cached layer above.
ARG NODE_IMAGE
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="toolplane" \
      org.opencontainers.image.description="Toolplane planner (HTTP API) and worker (sandboxed tool runs); pick one with the command" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--no-node-snapshot", "services/planner/dist/main.js"]
