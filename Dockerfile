# Multi-stage build of the three binaries; the runtime image holds them, libpq and curl only.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin groups-server --bin groups-gateway --bin groupsctl \
 && mkdir -p /out \
 && cp target/release/groups-server target/release/groups-gateway target/release/groupsctl /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin groups
COPY --from=build /out/groups-server /out/groups-gateway /out/groupsctl /usr/local/bin/
USER 10001:10001
ENV GROUPS_LOG_FORMAT=json
EXPOSE 8080 50051
CMD ["groups-gateway"]
