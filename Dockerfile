# normserve: build stage (dev dependencies, TypeScript compile, server bundle), then a slim runtime stage with
# production dependencies, the compiled code and the bundled model repository.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) needs src/, copied below; no dependency needs its
# install scripts for tsc.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY tools/build.mjs ./tools/
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS runtime
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no `prepare` build here (dist/ comes from the build stage, and typescript is a
# devDependency); no production dependency has install scripts.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY dashboard ./dashboard
# The gRPC service definition, loaded at start-up (src/grpc/proto.ts).
COPY proto ./proto
# The model repository: recalibration publishes new versions here, so the runtime user owns it.
# Mount a volume at /models to keep versions across containers (see README, Deploy).
COPY --chown=1000:1000 models /models
ENV HOST=0.0.0.0 \
    PORT=8080 \
    GRPC_PORT=8081 \
    MODEL_REPOSITORY=/models
# The image's `node` user, by number so Kubernetes' runAsNonRoot can check it.
USER 1000:1000
# HTTP (REST, OpenAPI, metrics) and gRPC (Open Inference Protocol).
EXPOSE 8080 8081
# No curl in the image: node's fetch checks liveness. 15 s per answer, as the Kubernetes liveness
# probe, and unhealthy after 3 failures in a row (a minute at least; Docker waits the interval
# after each check ends, so up to 1 min 45 s when they time out): a process busy with large
# batches accepts a new connection late (/healthz p99 up to 6.3 s with WORKERS=2,
# docs/probes-and-termination.md).
HEALTHCHECK --interval=20s --timeout=15s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself (graceful shutdown). The server's esbuild
# bundle (tools/build.mjs), as `npm start` runs it: one file per process kind to load; stack
# traces through its source maps name src/ files.
CMD ["node", "--enable-source-maps", "dist/bundle/server.js"]
