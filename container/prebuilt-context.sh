#!/bin/bash
# Makes a build context for the Dockerfile's `prebuilt` path from an otlpd
# binary built on this machine (`make build`), for machines that cannot pull
# the Swift image:
#
#   container/prebuilt-context.sh /tmp/otlpd-ctx [.build/release/otlpd]
#   podman build --format docker -f Dockerfile --build-arg OTLPD_ARTIFACTS=prebuilt \
#     [--build-arg RUNTIME_IMAGE=localbase:bookworm] -t otlpd /tmp/otlpd-ctx
#
# The context holds prebuilt/otlpd (stripped), prebuilt/swift/*.so (the Swift
# runtime libraries the binary loads, as ldd resolves them here) and the
# files the runtime stage copies (config/otlpd-container.yaml,
# container/healthcheck.sh). The binary must come from the same Debian
# release as RUNTIME_IMAGE (bookworm: libssl3, libisal2, libnghttp2-14...).
set -euo pipefail
out=${1:?usage: $0 OUTDIR [BINARY]}
repo=$(cd "$(dirname "$0")/.." && pwd)
binary=${2:-$repo/.build/release/otlpd}

mkdir -p "$out/prebuilt/swift" "$out/config" "$out/container"
rm -f "$out"/prebuilt/swift/*.so
install -m 0755 "$binary" "$out/prebuilt/otlpd"
if command -v strip >/dev/null; then strip "$out/prebuilt/otlpd"; fi

deps=$(ldd "$out/prebuilt/otlpd")
if grep -F 'not found' <<<"$deps"; then
  echo "$0: $binary needs libraries this machine lacks" >&2
  exit 1
fi
# Whatever toolchain built it (/opt/swift/usr/lib/swift/linux here,
# /usr/lib/swift/linux in the Swift image): every Swift runtime library it loads.
awk '$3 ~ "/swift/linux/" { print $3 }' <<<"$deps" | while read -r lib; do
  cp -L "$lib" "$out/prebuilt/swift/"
done

cp "$repo/config/otlpd-container.yaml" "$out/config/"
cp "$repo/container/healthcheck.sh" "$out/container/"
echo "$out: prebuilt/otlpd and $(ls "$out/prebuilt/swift" | wc -l) Swift runtime libraries"
