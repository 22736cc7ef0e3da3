# A playout region node. Built by docker-compose.yml (one container per region):
#   docker build -t playout .
#   docker run --rm -p 7101:7101 -e PLAYOUT_INGEST_TOKEN=… -e PLAYOUT_PEER_TOKEN=… -e PLAYOUT_ADMIN_TOKEN=… \
#     playout node dist/cli/main.js start --region /app/regions/docker/eu-fra.yaml
FROM node:20-bookworm-slim AS build
WORKDIR /app
# `npm ci` runs the `prepare` script (the TypeScript build), so the sources come first.
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY regions ./regions
# The store lives on a volume; the node runs unprivileged.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
USER node
EXPOSE 7101 7102 7103
CMD ["node", "dist/cli/main.js", "start", "--region", "/app/regions/docker/eu-fra.yaml"]
