# syntax=docker/dockerfile:1
#
# roomcast edge node image.
#
#   docker build -t roomcast-node .
#   docker run --rm -p 8080:8080 roomcast-node        # embedded NATS, demo at /
#
# Build: static binaries (CGO_ENABLED=0) of ./cmd/node and ./cmd/mint.
# Run:   distroless "static" as the nonroot user (uid/gid 65532): no shell, no
#        package manager. Health: GET /healthz (alive) and /readyz (ready);
#        orchestrators probe those over HTTP, so the image needs no curl.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# Dependencies first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w -X main.version=${VERSION}" -o /out/roomcast-node ./cmd/node && \
    go build -ldflags="-s -w -X main.version=${VERSION}" -o /out/roomcast-mint ./cmd/mint && \
    mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/roomcast-node /roomcast-node
COPY --from=build /out/roomcast-mint /roomcast-mint
# Embedded-NATS mode keeps JetStream here (--data-dir); unused with --nats.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV ROOMCAST_DATA_DIR=/data
# 8080: HTTP, WebSockets, /healthz, /readyz, /metrics (--listen).
# 7946: memberlist gossip, TCP and UDP (--gossip-bind).
EXPOSE 8080/tcp 7946/tcp 7946/udp
ENTRYPOINT ["/roomcast-node"]
