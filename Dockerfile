# otlpd container image.
#
#   docker build -t otlpd .                  (or: podman build --format docker -t otlpd .)
#   docker run -p 4317:4317 -p 4318:4318 -p 13133:13133 -v otlpd-data:/var/lib/otlpd otlpd
#
# Stages:
#   build     `swift build -c release` in the Swift image; leaves the stripped
#             binary at /out/otlpd and the Swift runtime libraries it loads
#             (ldd's list, nothing more) in /out/swift/.
#   prebuilt  the same /out layout, read from the build context: for a binary
#             built outside Docker (no Swift image needed). Make that context
#             with container/prebuilt-context.sh, then
#               docker build --build-arg OTLPD_ARTIFACTS=prebuilt -f Dockerfile CONTEXT
#   artifacts the stage named by OTLPD_ARTIFACTS (build, by default).
#   runtime   the image: RUNTIME_IMAGE plus Debian's runtime libraries, /out,
#             the config, a non-root user. The last stage, so the default target.
# Builders skip the stage that OTLPD_ARTIFACTS does not name (BuildKit; podman
# and buildah with their default --skip-unused-stages), so the prebuilt path
# never pulls SWIFT_IMAGE.
#
# The HEALTHCHECK needs the Docker image format: `podman build --format docker`
# (podman's default OCI format drops it with a warning).

# The toolchain otlpd is developed with; Package.swift needs tools 6.1 or newer.
# Both images must be the same Debian release (bookworm): the binary links
# Debian's libssl3, libisal2, libnghttp2-14, libprotobuf-c1...
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG OTLPD_ARTIFACTS=build

FROM ${SWIFT_IMAGE} AS build
# The -dev packages of the C libraries Package.swift's system library targets
# name (pkg-config finds them). The protobuf-c code is committed, so no protoc-c.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libnghttp2-dev libprotobuf-c-dev libpcre2-dev libssl-dev \
      libzstd-dev zlib1g-dev libisal-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: this layer stays cached while only Sources/ changes.
COPY Package.* ./
RUN swift package resolve
# Tests/ too: SwiftPM wants every target's directory, test targets included.
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product otlpd \
 && mkdir -p /out/swift \
 && install -m 0755 .build/release/otlpd /out/otlpd \
 && strip /out/otlpd \
 && ldd /out/otlpd | awk '$3 ~ "/swift/linux/" { print $3 }' | xargs -r cp -L -t /out/swift/ \
 && ls /out/swift/libswiftCore.so

FROM scratch AS prebuilt
COPY prebuilt/ /out/
# Lets a test prune this stage's leftover images: podman image prune --filter label=otlpd.stage=prebuilt
LABEL otlpd.stage=prebuilt

FROM ${OTLPD_ARTIFACTS} AS artifacts

FROM ${RUNTIME_IMAGE} AS runtime
# Debian's shared libraries the binary links (`ldd otlpd`, less the Swift
# runtime below), and CA certificates for TLS to an upstream (otlp_grpc /
# otlp_http exporters). The integration test builds a fallback root from this
# same list, so keep it on this one line.
ARG RUNTIME_PACKAGES="ca-certificates libgcc-s1 libisal2 libnghttp2-14 libpcre2-8-0 libprotobuf-c1 libssl3 libstdc++6 libzstd1 zlib1g"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
# The Swift runtime (libswiftCore, Foundation, dispatch, ICU data...), where
# the Swift image keeps it. The binary's RUNPATH names its toolchain's lib
# directory (/usr/lib/swift/linux from the Swift image, /opt/swift/... for a
# host toolchain); the ld.so.conf.d entry finds the libraries either way, for
# every process (no LD_LIBRARY_PATH to lose).
COPY --from=artifacts /out/swift/ /usr/lib/swift/linux/
RUN echo /usr/lib/swift/linux > /etc/ld.so.conf.d/swift.conf && ldconfig
COPY --from=artifacts /out/otlpd /usr/bin/otlpd
COPY config/otlpd-container.yaml /etc/otlpd/otlpd.yaml
COPY container/healthcheck.sh /usr/local/bin/otlpd-healthcheck
# Fail the build, not the first start, on a missing library or a bad config.
RUN if ldd /usr/bin/otlpd | grep -F 'not found'; then exit 1; fi \
 && otlpd version \
 && otlpd validate --config /etc/otlpd/otlpd.yaml
# A fixed uid (10001), so volumes and Kubernetes' runAsUser/fsGroup can name it.
RUN groupadd --gid 10001 otlpd \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/otlpd --no-create-home \
      --shell /usr/sbin/nologin otlpd \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/otlpd
USER 10001:10001
WORKDIR /var/lib/otlpd
# The file exporter's output (otlpd.traces.jsonl, .metrics, .logs).
VOLUME /var/lib/otlpd
# OTLP/gRPC, OTLP/HTTP, health_check, self-telemetry (/metrics, /services).
EXPOSE 4317 4318 13133 8888
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/otlpd-healthcheck"]
# SIGTERM drains (stop accepting, flush batches and files) within
# service.shutdown_timeout (8s in this config, under docker stop's 10 s), exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["otlpd"]
CMD ["--config", "/etc/otlpd/otlpd.yaml"]

LABEL org.opencontainers.image.title="otlpd" \
      org.opencontainers.image.description="OTLP collector daemon (OTLP/gRPC :4317, OTLP/HTTP :4318)"
