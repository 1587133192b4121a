# Argos image: gatekeeper and panel share one image; the compose file picks the entry point.
# Native modules (sqlite3; @node-rs/argon2 ships prebuilt binaries) build in the first stage; the runtime runs as a non-root user
# with a read-only root filesystem (the data directory is the only writable volume).
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY services/gatekeeper/package.json services/gatekeeper/
COPY services/panel/package.json services/panel/
COPY tests/package.json tests/
RUN npm ci --omit=dev --workspace @argos/shared --workspace @argos/gatekeeper --workspace @argos/panel --include-workspace-root=false
COPY shared shared
COPY services services

FROM node:20-bookworm-slim
ENV NODE_ENV=production ARGOS_DATA_DIR=/data
WORKDIR /app
COPY --from=build --chown=root:root /app /app
RUN mkdir -p /data && chown node:node /data && chmod 0700 /data
USER node
VOLUME ["/data"]
# Overridden per service in docker-compose.yml.
CMD ["node", "--import", "tsx", "services/panel/src/main.ts"]
