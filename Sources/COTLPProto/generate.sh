#!/usr/bin/env bash
# Regenerates the protobuf-c code of COTLPProto from proto/.
#   generate.sh          rewrite the committed files in place
#   generate.sh --check  regenerate into a scratch folder and fail if the
#                        committed files differ (what `make test` runs)
# Headers go under include/ (protoc-c's files include each other by proto
# path), C files beside it under the same relative path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v protoc-c >/dev/null || { echo "protoc-c not found: apt-get install -y protobuf-c-compiler" >&2; exit 2; }

generate() {
  local out=$1 tmp
  tmp=$(mktemp -d)
  (cd "$here/proto" && find . -name '*.proto' | sort | sed 's|^\./||' | xargs protoc-c --proto_path=. --c_out="$tmp")
  mkdir -p "$out/include" "$out/generated"
  (cd "$tmp" && find . -name '*.pb-c.h' | while read -r f; do mkdir -p "$out/include/$(dirname "$f")"; mv "$f" "$out/include/$f"; done)
  (cd "$tmp" && find . -name '*.pb-c.c' | while read -r f; do mkdir -p "$out/generated/$(dirname "$f")"; mv "$f" "$out/generated/$f"; done)
  # sed reads to the end: head would close the pipe early and, under pipefail,
  # a second version line written after that fails the script with SIGPIPE.
  protoc-c --version | sed -n 1p > "$out/generated/protoc-c-version.txt"
  # SwiftPM takes no umbrella header beside subfolders: list every header.
  { echo 'module COTLPProto {'
    echo '  header "otlp_descriptors.h"'
    (cd "$out/include" && find . -name '*.pb-c.h' | LC_ALL=C sort | sed 's|^\./|  header "|; s|$|"|')
    echo '  export *'
    echo '}'
  } > "$out/include/module.modulemap"
  rm -rf "$tmp"
}

if [ "${1:-}" = "--check" ]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  generate "$scratch"
  status=0
  for dir in include/opentelemetry include/google include/module.modulemap generated; do
    if ! diff -r "$scratch/$dir" "$here/$dir" >/dev/null 2>&1; then
      echo "stale: Sources/COTLPProto/$dir differs from what protoc-c generates from proto/:" >&2
      diff -r "$scratch/$dir" "$here/$dir" | head -20 >&2 || true
      status=1
    fi
  done
  [ $status -eq 0 ] && echo "generated protobuf-c code is current"
  exit $status
fi

rm -rf "$here/include/opentelemetry" "$here/include/google" "$here/generated"
generate "$here"
echo "regenerated Sources/COTLPProto/{include,generated}"
