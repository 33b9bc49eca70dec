# One image with every binary (gsl-gateway, gsl-adapter, carrier-sim, gslctl); the command picks the service.
# Build: docker build -t gsl:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir /out && cp target/release/gsl-gateway target/release/gsl-adapter target/release/carrier-sim target/release/gslctl /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home gsl
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
# Read-only root filesystem friendly: nothing is written outside mounted volumes.
ENTRYPOINT ["/usr/local/bin/gsl-gateway"]
