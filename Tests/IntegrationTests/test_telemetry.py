"""Self-telemetry through the real binary: the otelcol_* counters at
/metrics equal what was sent, /services and `otlpd status` show each
service, duplicate spans are counted and warned about once, and the
health_check extension answers as the Collector's does."""
import json
import re
import socket

import grpc
import requests

from otlpd_harness import (base_config, grpc_export, logs_request, metrics_request, run_otlpd, to_yaml, trace_request,
                           wait_until)

METRIC_LINE = re.compile(r'^([a-z_]+)(?:\{([^}]*)\})? (\S+)$')


def scrape(daemon) -> dict:
    """{(name, frozenset(labels)): value} of every sample at /metrics."""
    text = requests.get(daemon.telemetry_url("/metrics"), timeout=5).text
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(tuple(part.split("=", 1)) for part in re.findall(r'[a-z_]+="[^"]*"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def value(samples, name, **labels) -> float:
    wanted = {(k, f'"{v}"') for k, v in labels.items()}
    found = [v for (n, l), v in samples.items() if n == name and wanted <= set(l)]
    assert found, f"no sample {name} {labels}; have: {sorted({n for n, _ in samples})}"
    return sum(found)


def post(daemon, signal_name, request):
    response = requests.post(daemon.http_url(f"/v1/{signal_name}"), data=request.SerializeToString(),
                             headers={"content-type": "application/x-protobuf"}, timeout=10)
    assert response.status_code == 200, response.text
    return response


def test_metrics_count_what_was_sent(otlpd, tmp_path):
    config = base_config(tmp_path, processors={"batch": {"timeout": "50ms", "send_batch_size": 1000}})
    d = otlpd.start(config)
    channel = grpc.insecure_channel(f"127.0.0.1:{d.grpc_port}")
    for _ in range(3):
        grpc_export(channel, trace_request("checkout", 4))
    post(d, "traces", trace_request("billing", 5))
    post(d, "metrics", metrics_request("checkout"))      # 3 data points
    post(d, "logs", logs_request("checkout", 6))
    bad = requests.post(d.http_url(), data=b"\xff\xff", headers={"content-type": "application/x-protobuf"}, timeout=10)
    assert bad.status_code == 400

    def settled():
        samples = scrape(d)
        return value(samples, "otelcol_exporter_sent_spans_total", exporter="file") == 17 and samples
    samples = wait_until(settled, 10, "17 spans counted as sent")
    assert value(samples, "otelcol_receiver_accepted_spans_total", receiver="otlp", transport="grpc") == 12
    assert value(samples, "otelcol_receiver_accepted_spans_total", receiver="otlp", transport="http") == 5
    assert value(samples, "otelcol_receiver_accepted_metric_points_total", receiver="otlp") == 3
    assert value(samples, "otelcol_receiver_accepted_log_records_total", receiver="otlp") == 6
    assert value(samples, "otelcol_receiver_refused_spans_total", receiver="otlp") == 0
    assert value(samples, "otelcol_exporter_sent_metric_points_total", exporter="file") == 3
    assert value(samples, "otelcol_exporter_sent_log_records_total", exporter="file") == 6
    assert value(samples, "otelcol_exporter_send_failed_spans_total", exporter="file") == 0
    assert value(samples, "otelcol_processor_incoming_items_total", processor="batch", otel_signal="traces") == 17
    assert value(samples, "otelcol_processor_outgoing_items_total", processor="batch", otel_signal="traces") == 17
    # The batch processor's send-size histogram saw every span.
    assert value(samples, "otelcol_processor_batch_batch_send_size_sum", processor="batch") == 17 + 3 + 6
    # Every series carries the process's resource, as the Collector's own metrics do.
    version = run_otlpd(d.binary, "version").stdout.split()[1]
    for _, labels in samples:
        labels = dict(labels)
        assert labels.get("service_name") == '"otlpd"' and labels.get("service_version") == f'"{version}"', labels
        assert re.fullmatch(r'"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"',
                            labels.get("service_instance_id", "")), labels


def test_readers_form_serves_on_its_port(otlpd, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = base_config(tmp_path)
    config["service"]["telemetry"] = {"metrics": {"readers": [
        {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": port}}}}]}}
    d = otlpd.start(config)
    assert d.telemetry_port == port
    post(d, "traces", trace_request("checkout", 2))
    samples = wait_until(lambda: (s := scrape(d)) and value(s, "otelcol_receiver_accepted_spans_total") == 2 and s, 10, "2 spans")
    assert value(samples, "otelcol_receiver_accepted_spans_total", transport="http") == 2


def test_services_and_status_after_two_services_and_a_duplicate(otlpd, otlpd_binary, tmp_path):
    d = otlpd.start(base_config(tmp_path))
    channel = grpc.insecure_channel(f"127.0.0.1:{d.grpc_port}")
    checkout = trace_request("checkout", 4)
    for rs in checkout.resource_spans:
        rs.resource.attributes.add(key="telemetry.sdk.language", value={"string_value": "python"})
        rs.resource.attributes.add(key="telemetry.sdk.version", value={"string_value": "1.45.2"})
        rs.resource.attributes.add(key="service.instance.id", value={"string_value": "pod-a"})
    grpc_export(channel, checkout)
    grpc_export(channel, checkout)          # the same spans again: an SDK initialised twice
    post(d, "traces", trace_request("billing", 3))
    post(d, "logs", logs_request("billing", 2))
    # billing on the gRPC port over HTTP/1.1: a mix-up that still gets in.
    mixed = requests.post(f"http://127.0.0.1:{d.grpc_port}/v1/metrics", data=metrics_request("billing").SerializeToString(),
                          headers={"content-type": "application/x-protobuf"}, timeout=10)
    assert mixed.status_code == 200

    services = requests.get(d.telemetry_url("/services"), timeout=5).json()
    by_name = {s["name"]: s for s in services["services"]}
    assert set(by_name) == {"checkout", "billing"}
    checkout_view, billing_view = by_name["checkout"], by_name["billing"]
    assert checkout_view["spans"] == 8 and checkout_view["duplicateSpans"] == 4
    assert checkout_view["sdk"] == {"language": "python", "version": "1.45.2"}
    assert checkout_view["protocols"] == ["grpc"] and checkout_view["instances"] == 1 and checkout_view["errors"] == 0
    assert billing_view["spans"] == 3 and billing_view["logRecords"] == 2 and billing_view["metricPoints"] == 3
    assert billing_view["duplicateSpans"] == 0
    assert billing_view["protocols"] == ["http/protobuf"] and billing_view["wrongPort"] is True
    assert checkout_view["lastSeen"].endswith("Z")

    # One warning for the duplicates, naming the service.
    warnings = d.wait_for_log("sent spans again", service="checkout")
    assert len(warnings) == 1

    status = run_otlpd(otlpd_binary, "status", "--endpoint", f"127.0.0.1:{d.telemetry_port}")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split()[:4] == ["SERVICE", "SPANS", "POINTS", "LOGS"]
    checkout_line = [line for line in lines if line.startswith("checkout")]
    assert len(checkout_line) == 1
    assert checkout_line[0].split()[:4] == ["checkout", "8", "0", "0"]
    assert "python 1.45.2" in checkout_line[0] and checkout_line[0].split()[-2:] == ["4", "0"]
    billing_line = [line for line in lines if line.startswith("billing")][0]
    assert "(wrong port)" in billing_line
    # Columns line up: every row's second column starts at the same offset.
    offsets = {line.index(line.split()[1], len(line.split()[0])) for line in lines}
    assert len(offsets) == 1

    as_json = run_otlpd(otlpd_binary, "status", "--json", "--endpoint", f"127.0.0.1:{d.telemetry_port}")
    assert json.loads(as_json.stdout)["services"]

    # Given the daemon's config instead, status asks the address that config names.
    config = base_config(tmp_path)
    config["service"]["telemetry"]["metrics"]["address"] = f"127.0.0.1:{d.telemetry_port}"
    config_path = tmp_path / "running.yaml"
    config_path.write_text(to_yaml(config) + "\n")
    from_config = run_otlpd(otlpd_binary, "status", "--config", str(config_path))
    assert from_config.returncode == 0, from_config.stderr
    assert [line.split()[:4] for line in from_config.stdout.splitlines()] == [line.split()[:4] for line in lines]


def test_errors_returned_to_a_service_are_counted(otlpd, tmp_path):
    # Every write to /dev/full fails with "no space": a retryable error the client sees as 503.
    config = base_config(tmp_path, exporters={"file": {"path": "/dev/full", "rotation": {"max_megabytes": 0}}}, signals=["traces"])
    d = otlpd.start(config)
    body = trace_request("checkout", 2).SerializeToString()
    # The client retries the refused request as it should: the retry is not a duplicating SDK.
    for _ in range(2):
        response = requests.post(d.http_url(), data=body, headers={"content-type": "application/x-protobuf"}, timeout=10)
        assert response.status_code == 503
        assert response.headers.get("retry-after")
    services = {s["name"]: s for s in requests.get(d.telemetry_url("/services"), timeout=5).json()["services"]}
    assert services["checkout"]["errors"] == 2
    assert services["checkout"]["duplicateSpans"] == 0, "spans of a refused request are not remembered"
    assert d.logs_matching("initialised twice") == [] and d.logs_matching("duplicate") == []
    samples = scrape(d)
    assert value(samples, "otelcol_receiver_refused_spans_total", transport="http") == 4
    assert value(samples, "otelcol_exporter_send_failed_spans_total", exporter="file") == 4


def test_status_without_a_daemon_says_where_it_looked(otlpd_binary):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_otlpd(otlpd_binary, "status", "--endpoint", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr


def test_health_check_answers_like_the_collector(otlpd, tmp_path):
    config = base_config(tmp_path)
    config["extensions"] = {"health_check": {"endpoint": "127.0.0.1:0", "path": "/health"}}
    config["service"]["extensions"] = ["health_check"]
    d = otlpd.start(config)
    line = d.wait_for_log("health check listening")[0]
    url = f"http://{line.fields['endpoint']}/health"
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Server available"
    assert body["upSince"].endswith("Z") and body["uptime"].endswith("s")
    assert requests.get(url.replace("/health", "/other"), timeout=5).status_code == 404
