#!/bin/bash
# The image's HEALTHCHECK: GET otlpd's health_check extension, succeed on 200.
# bash's /dev/tcp does the HTTP request, since the slim runtime image has no
# curl or wget and otlpd has no subcommand that probes the health endpoint
# (`otlpd status` asks the self-telemetry port's /services, not health_check).
#   OTLPD_HEALTH_HOST (127.0.0.1), OTLPD_HEALTH_PORT (13133), OTLPD_HEALTH_PATH (/)
set -u
host=${OTLPD_HEALTH_HOST:-127.0.0.1}
port=${OTLPD_HEALTH_PORT:-13133}
path=${OTLPD_HEALTH_PATH:-/}
if ! exec 3<>"/dev/tcp/$host/$port"; then
  echo "otlpd health check: nothing listens on $host:$port"
  exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' "$path" "$host" "$port" >&3
# "HTTP/1.1 200 OK", then headers, then the Collector-style JSON body.
if ! read -r -t 3 _ status _ <&3; then
  echo "otlpd health check: no answer from $host:$port"
  exit 1
fi
body=$(timeout 2 cat <&3 | tail -n 1)
echo "otlpd health check: $status $body"
[ "$status" = 200 ]
