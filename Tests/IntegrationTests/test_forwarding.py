"""The otlp_grpc exporter: forwarding to a second otlpd and to grpcio
sinks that answer as each test scripts them. What a client is told must
match what reached the upstream: success only for data the upstream
confirmed, a retryable error otherwise, a permanent refusal passed back."""
import json
import signal
import subprocess
import threading
import time

import grpc
import pytest

from otlpd_harness import (base_config, curl, grpc_export, read_jsonl, request_span_ids, rpc_status_details, run_otlpd, span_ids_in,
                           to_otlp_json, trace_request, wait_until)
from upstreams import GrpcSink, HTTP1Server, Refusal, WireTap, free_port


def forwarder_config(tmp_path, endpoint, *, batch=None, exporter=None, signals=("traces",), **kwargs):
    """otlp receiver -> [batch] -> otlp_grpc at `endpoint` (plain text)."""
    settings = {"endpoint": endpoint, "tls": {"insecure": True}}
    settings.update(exporter or {})
    return base_config(tmp_path, processors={"batch": batch or {}}, exporters={"otlp_grpc": settings}, signals=signals, **kwargs)


def upstream_config(tmp_path, name="upstream"):
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    return base_config(directory, signals=("traces",)), directory / "out.jsonl"


def test_forwards_to_a_second_otlpd_and_answers_once_it_confirmed(otlpd, tmp_path):
    config, upstream_file = upstream_config(tmp_path)
    upstream = otlpd.start(config, workdir=upstream_file.parent)
    forwarder = otlpd.start(forwarder_config(tmp_path, upstream.grpc_target))
    sent = []
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        for index in range(5):
            request = trace_request(f"svc-{index}", 4)
            grpc_export(channel, request)
            sent += request_span_ids(request)
            # Answered means confirmed upstream: the upstream wrote it before its answer.
            assert set(request_span_ids(request)) <= set(span_ids_in(read_jsonl(upstream_file))), "in the upstream's file when the client hears OK"
    request = trace_request("over-http", 3)
    result = curl("-H", "Content-Type: application/x-protobuf", forwarder.http_url(), data=request.SerializeToString(), workdir=tmp_path)
    assert result.statuses == [200], result.verbose
    sent += request_span_ids(request)
    assert sorted(span_ids_in(read_jsonl(upstream_file))) == sorted(sent), "every span once"
    assert forwarder.logs_matching("does not confirm") == []


def test_upstream_down_then_up(otlpd, tmp_path):
    port = free_port()
    forwarder = otlpd.start(forwarder_config(tmp_path, f"127.0.0.1:{port}", exporter={"retry_on_failure": {"initial_interval": "200ms"}}))
    request = trace_request("down", 2)
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            grpc_export(channel, request, timeout=2)
        elapsed = time.monotonic() - started
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, f"{info.value.code()}: {info.value.details()}"
        assert "did not confirm" in info.value.details() and "connection refused" in info.value.details()
        status = rpc_status_details(info.value)
        assert status is not None and status.details, "RetryInfo tells the SDK when to retry"
        # Retried (the first retry waits at least 100 ms) inside the client's 2 s deadline, and answered before it.
        assert 0.1 < elapsed < 2.0, elapsed
        assert forwarder.logs_matching("does not confirm"), "the failing upstream was logged"
    result = curl("-H", "Content-Type: application/x-protobuf", forwarder.http_url(), data=request.SerializeToString(), workdir=tmp_path)
    assert result.statuses == [503] and "retry-after:" in result.headers.lower(), result.headers
    line = forwarder.wait_for_log("does not confirm")
    assert len(line) == 1, "logged once while it stays down"
    assert line[0].fields["upstream"] == f"127.0.0.1:{port}" and line[0].fields["component"] == "exporter/otlp_grpc"

    sink = GrpcSink(port=port)
    try:
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, request, timeout=5)
        assert sink.span_ids() == request_span_ids(request), "only the confirmed attempt is acknowledged"
        forwarder.wait_for_log("confirms again")
    finally:
        sink.stop()


def test_unavailable_with_retry_info_is_retried_after_the_delay_asked(otlpd, tmp_path):
    sink = GrpcSink(script=[Refusal(grpc.StatusCode.UNAVAILABLE, "busy", retry_delay=0.5), None])
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, sink.endpoint, exporter={"retry_on_failure": {"initial_interval": "50ms"}}))
        request = trace_request("retried", 3)
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, request, timeout=10)
        assert len(sink.calls) == 2, "one refusal, one retry"
        gap = sink.calls[1].time - sink.calls[0].time
        assert gap >= 0.5, f"waited at least the RetryInfo delay, not the 50 ms backoff: {gap:.3f}s"
        assert sink.span_ids() == request_span_ids(request)
    finally:
        sink.stop()


def test_invalid_argument_is_passed_back_and_not_retried(otlpd, tmp_path):
    sink = GrpcSink(default=Refusal(grpc.StatusCode.INVALID_ARGUMENT, "span 7 has no name"))
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, sink.endpoint, exporter={"retry_on_failure": {"initial_interval": "10ms"}}))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                grpc_export(channel, trace_request("bad", 1))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "span 7 has no name" in info.value.details()
        request = trace_request("bad", 1)
        result = curl("-H", "Content-Type: application/x-protobuf", forwarder.http_url(), data=request.SerializeToString(), workdir=tmp_path)
        assert result.statuses == [400], result.verbose
        time.sleep(0.2)
        assert len(sink.calls) == 2, "each refused once, never retried"
        lines = forwarder.logs_matching("refused a batch")
        assert len(lines) == 2 and lines[0].level == "error", [l.raw for l in lines]
        assert lines[0].fields["status"] == "INVALID_ARGUMENT" and "span 7 has no name" in lines[0].fields["reason"]
        assert lines[0].fields["upstream"] == sink.endpoint
    finally:
        sink.stop()


def test_resource_exhausted_is_retried_only_with_retry_info(otlpd, tmp_path):
    sink = GrpcSink(script=[Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", retry_delay=0.1), None,
                            Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota gone")])
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, sink.endpoint, exporter={"retry_on_failure": {"initial_interval": "10ms"}}))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, trace_request("a", 1))
            assert len(sink.calls) == 2
            with pytest.raises(grpc.RpcError) as info:
                grpc_export(channel, trace_request("b", 1))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "quota gone" in info.value.details()
        assert len(sink.calls) == 3
    finally:
        sink.stop()


def test_partial_success_is_logged_with_the_upstreams_message(otlpd, tmp_path):
    sink = GrpcSink(partial=(2, "2 spans too old"))
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, sink.endpoint))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            response = grpc_export(channel, trace_request("partly", 5))
        # Passed back to the client: its request was the whole batch.
        assert response.partial_success.rejected_spans == 2, response
        assert "2 spans too old" in response.partial_success.error_message and sink.endpoint in response.partial_success.error_message
        request = trace_request("partly-http", 3)
        result = curl("-H", "Content-Type: application/json", forwarder.http_url(), data=json.dumps(to_otlp_json(request)).encode(),
                      workdir=tmp_path)
        assert result.statuses == [200], result.verbose
        partial = json.loads(result.body)["partialSuccess"]
        assert partial["rejectedSpans"] == "2" and "2 spans too old" in partial["errorMessage"], partial
        line = forwarder.wait_for_log("rejected part of a batch")
        assert line[0].fields["rejected"] == "2" and line[0].fields["reason"] == "2 spans too old", line[0].raw
        assert len(sink.calls) == 2, "a partial success is not retried"
    finally:
        sink.stop()


@pytest.mark.parametrize("compression,magic", [("gzip", b"\x1f\x8b"), ("zstd", b"\x28\xb5\x2f\xfd"), ("none", None)])
def test_compression_on_the_wire(otlpd, tmp_path, compression, magic):
    # grpcio takes gzip but not zstd: zstd goes to a second otlpd.
    sink = GrpcSink() if compression != "zstd" else None
    upstream_file = None
    if sink is None:
        config, upstream_file = upstream_config(tmp_path)
        upstream = otlpd.start(config, workdir=upstream_file.parent)
    tap = WireTap(sink.port if sink else upstream.grpc_port)
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, tap.endpoint, exporter={"compression": compression}))
        request = trace_request("squeezed", 50, attribute_size=200)
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, request)
        arrived = sink.span_ids() if sink else span_ids_in(read_jsonl(upstream_file))
        assert sorted(arrived) == sorted(request_span_ids(request)), "the upstream decoded it"
        assert len(tap.messages) == 1, tap.messages
        message = tap.messages[0]
        if magic is None:
            assert not message.compressed and message.length == request.ByteSize()
        else:
            assert message.compressed and message.head.startswith(magic), message
            assert message.length < request.ByteSize() / 2
    finally:
        tap.stop()
        if sink:
            sink.stop()


def test_default_compression_is_gzip(otlpd, tmp_path):
    sink = GrpcSink()
    tap = WireTap(sink.port)
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, tap.endpoint))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, trace_request("default", 20))
        assert tap.messages and tap.messages[0].compressed and tap.messages[0].head.startswith(b"\x1f\x8b")
    finally:
        tap.stop()
        sink.stop()


def test_send_batch_max_size_bounds_every_forwarded_request(otlpd, tmp_path):
    sink = GrpcSink()
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, sink.endpoint, batch={"send_batch_max_size": 100, "send_batch_size": 100}))
        request = trace_request("big", 350)
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, request)
        sizes = [sum(len(ss.spans) for rs in a.request.resource_spans for ss in rs.scope_spans) for a in sink.accepted]
        assert sorted(sizes) == [50, 100, 100, 100], sizes
        assert sorted(sink.span_ids()) == sorted(request_span_ids(request))
    finally:
        sink.stop()


def test_grpc_timeout_is_sent_and_user_agent_names_otlpd(otlpd, tmp_path):
    sink = GrpcSink()
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, sink.endpoint, exporter={"headers": {"x-tenant": "acme"}}))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            started = time.monotonic()
            grpc_export(channel, trace_request("t", 1), timeout=3)
        arrival = sink.calls[0]
        assert arrival.deadline is not None and arrival.deadline - started < 3.0, "the client's deadline travels upstream"
        assert arrival.metadata.get("x-tenant") == "acme"
        assert arrival.metadata.get("user-agent", "").startswith("otlpd/"), arrival.metadata
    finally:
        sink.stop()


@pytest.mark.parametrize("kind,found", [("status-line", "answered HTTP/1.x"), ("http.server", "something other than HTTP/2")])
def test_grpc_exporter_aimed_at_an_http1_port_says_so(otlpd, tmp_path, kind, found):
    server = HTTP1Server(kind)
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, server.endpoint))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as info:
                    grpc_export(channel, trace_request("wrong-port", 1), timeout=2)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        lines = forwarder.wait_for_log("OTLP/HTTP port")
        assert len(lines) == 1, "one line per endpoint"
        assert lines[0].level == "error" and "otlp_http" in lines[0].message and server.endpoint in lines[0].message, lines[0].raw
        assert found in lines[0].message, lines[0].raw
    finally:
        server.stop()


def test_validate_warns_of_an_otlp_grpc_endpoint_on_4318(otlpd_binary, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "receivers: {otlp: {protocols: {grpc: {endpoint: 127.0.0.1:0}}}}\n"
        "exporters: {otlp: {endpoint: gateway:4318, tls: {insecure: true}}}\n"
        "service: {pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}}\n")
    result = run_otlpd(otlpd_binary, "validate", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "exporters.otlp:" in result.stderr and ":4318" in result.stderr and "4317" in result.stderr, result.stderr


def test_sigterm_with_the_upstream_down_acknowledges_nothing(otlpd, tmp_path):
    port = free_port()
    forwarder = otlpd.start(forwarder_config(tmp_path, f"127.0.0.1:{port}", shutdown_timeout="3s",
                                             exporter={"retry_on_failure": {"initial_interval": "100ms", "max_interval": "200ms"}}))
    outcomes = []

    def send():
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            try:
                grpc_export(channel, trace_request("stopping", 1), timeout=30)
                outcomes.append("OK")
            except grpc.RpcError as error:
                outcomes.append(error.code())

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    forwarder.wait_for_log("does not confirm")
    started = time.monotonic()
    assert forwarder.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 3.5
    for thread in threads:
        thread.join(10)
    assert outcomes == [grpc.StatusCode.UNAVAILABLE] * 3, outcomes


def test_otlp_is_the_same_exporter_as_otlp_grpc(otlpd, tmp_path):
    sink = GrpcSink()
    try:
        config = base_config(tmp_path, exporters={"otlp/gateway": {"endpoint": sink.endpoint, "tls": {"insecure": True}}},
                             signals=("traces", "metrics", "logs"))
        forwarder = otlpd.start(config)
        from otlpd_harness import logs_request, metrics_request
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, trace_request("all", 2))
            grpc_export(channel, metrics_request("all"), "metrics")
            grpc_export(channel, logs_request("all", 2), "logs")
        assert sorted(a.signal for a in sink.accepted) == ["logs", "metrics", "traces"]
    finally:
        sink.stop()


def test_self_telemetry_counts_sent_failed_full_queue_and_retries(otlpd, tmp_path):
    from test_telemetry import scrape, value
    sink = GrpcSink(script=[Refusal(grpc.StatusCode.UNAVAILABLE, "once", retry_delay=0.05)], delay=0.5)
    try:
        config = base_config(tmp_path, signals=("traces",), exporters={"otlp_grpc": {
            "endpoint": sink.endpoint, "tls": {"insecure": True}, "retry_on_failure": {"initial_interval": "10ms"},
            "sending_queue": {"queue_size": 2, "num_consumers": 1}}})
        forwarder = otlpd.start(config)
        samples = scrape(forwarder)
        assert value(samples, "otelcol_exporter_queue_capacity", exporter="otlp_grpc", data_type="traces") == 2
        outcomes = []

        def send(count):
            with grpc.insecure_channel(forwarder.grpc_target) as channel:
                try:
                    grpc_export(channel, trace_request("q", count), timeout=10)
                    outcomes.append(("OK", count))
                except grpc.RpcError as error:
                    outcomes.append((error.code(), count))

        threads = [threading.Thread(target=send, args=(count,)) for count in (1, 2, 3, 4)]
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        wait_until(lambda: value(scrape(forwarder), "otelcol_exporter_queue_size", exporter="otlp_grpc") == 2, 5, "a full queue")
        for thread in threads:
            thread.join(15)
        refused = sorted(count for code, count in outcomes if code == grpc.StatusCode.UNAVAILABLE)
        sent = sorted(count for code, count in outcomes if code == "OK")
        assert len(refused) == 2 and len(sent) == 2, outcomes
        samples = scrape(forwarder)
        assert value(samples, "otelcol_exporter_sent_spans_total", exporter="otlp_grpc") == sum(sent)
        assert value(samples, "otelcol_exporter_enqueue_failed_spans_total", exporter="otlp_grpc") == sum(refused)
        assert value(samples, "otelcol_exporter_send_failed_spans_total", exporter="otlp_grpc") == 0
        assert value(samples, "otlpd_exporter_send_retries_total", exporter="otlp_grpc", data_type="traces") == 1
        assert value(samples, "otelcol_exporter_queue_size", exporter="otlp_grpc", data_type="traces") == 0
    finally:
        sink.stop()


def reload_with(otlpd, daemon, path, config):
    before = len(daemon.logs_matching("reloaded"))
    otlpd.write_config(config, path.name, path.parent)
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: len(daemon.logs_matching("reloaded")) > before, 15, f"'reloaded' after SIGHUP in:\n{daemon.stderr()}")


def reload_during_a_call(otlpd, path, sink, new_config):
    """Starts otlpd with the config at `path`, reloads it to `new_config` while a call waits at the
    (slow) sink, then sends one more; returns the order in which the two calls were answered."""
    forwarder = otlpd.start(configs=[path])
    outcome = []

    def send(name):
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, trace_request(name, 1), timeout=10)
            outcome.append(name)

    in_flight = threading.Thread(target=send, args=("during",))
    in_flight.start()
    wait_until(lambda: sink.calls, 5, "the call at the sink")
    reload_with(otlpd, forwarder, path, new_config)
    in_flight.join(10)
    send("after")
    return outcome


def test_reload_keeps_an_unchanged_exporter_and_its_connection(otlpd, tmp_path):
    sink = GrpcSink(delay=0.5)
    try:
        exporter = {"endpoint": sink.endpoint, "tls": {"insecure": True}}
        first = base_config(tmp_path, signals=("traces",), exporters={"otlp_grpc": exporter})
        second = base_config(tmp_path, signals=("traces",), processors={"batch": {}}, exporters={"otlp_grpc": exporter})
        path = otlpd.write_config(first, "reload.yaml", tmp_path)
        assert reload_during_a_call(otlpd, path, sink, second) == ["during", "after"]
        peers = {arrival.peer for arrival in sink.calls}
        assert len(peers) == 1, f"one connection across the reload: {peers}"
    finally:
        sink.stop()


def test_reload_replaces_a_changed_exporter_after_what_it_has_in_flight(otlpd, tmp_path):
    sink = GrpcSink(delay=0.5)
    try:
        def config(tenant):
            return base_config(tmp_path, signals=("traces",), exporters={
                "otlp_grpc": {"endpoint": sink.endpoint, "tls": {"insecure": True}, "headers": {"x-tenant": tenant}}})

        path = otlpd.write_config(config("old"), "reload.yaml", tmp_path)
        assert reload_during_a_call(otlpd, path, sink, config("new")) == ["during", "after"], \
            "the call under way finished on the old exporter"
        assert [a.metadata.get("x-tenant") for a in sink.accepted] == ["old", "new"]
        assert len({a.peer for a in sink.calls}) == 2, "the new exporter has its own connection"
    finally:
        sink.stop()


@pytest.fixture
def two_address_name():
    """A name that resolves to 127.0.0.1 and 127.0.0.2 (as a headless Service's does to its pods),
    written to /etc/hosts for the test and removed after; a callable drops the second address."""
    name = "otlpd-round-robin.test"
    original = open("/etc/hosts").read()

    def write(addresses):
        with open("/etc/hosts", "w") as hosts:
            hosts.write(original.rstrip("\n") + "\n" + "".join(f"{a} {name}\n" for a in addresses))

    write(["127.0.0.1", "127.0.0.2"])
    try:
        yield name, write
    finally:
        with open("/etc/hosts", "w") as hosts:
            hosts.write(original)


def test_round_robin_over_every_address_of_a_name(otlpd, tmp_path, two_address_name):
    name, write_hosts = two_address_name
    first = GrpcSink()
    second = GrpcSink(port=first.port, host="127.0.0.2")
    try:
        forwarder = otlpd.start(base_config(tmp_path, signals=("traces",), exporters={"otlp_grpc": {
            "endpoint": f"dns:///{name}:{first.port}", "tls": {"insecure": True},
            "retry_on_failure": {"initial_interval": "10ms"}}}))
        sent = []
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            for index in range(10):
                request = trace_request(f"rr-{index}", 1)
                grpc_export(channel, request)
                sent += request_span_ids(request)
        assert len(first.accepted) == 5 and len(second.accepted) == 5, (len(first.accepted), len(second.accepted))
        assert all(a.metadata.get(":authority", f"{name}:{first.port}") for a in first.calls)
        # A replica goes away: after a failed call the name is looked up again, and calls go to the one left.
        write_hosts(["127.0.0.1"])
        second.stop()
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            for index in range(6):
                request = trace_request(f"after-{index}", 1)
                grpc_export(channel, request, timeout=5)
                sent += request_span_ids(request)
        assert sorted(first.span_ids() + second.span_ids()) == sorted(sent), "every span arrived"
        assert len(first.accepted) == 11, "after the lookup, every call went to the address left"
    finally:
        first.stop()
        second.stop()


def test_pick_first_uses_one_address(otlpd, tmp_path, two_address_name):
    name, _ = two_address_name
    first = GrpcSink()
    second = GrpcSink(port=first.port, host="127.0.0.2")
    try:
        forwarder = otlpd.start(base_config(tmp_path, signals=("traces",), exporters={"otlp_grpc": {
            "endpoint": f"{name}:{first.port}", "tls": {"insecure": True}, "balancer_name": "pick_first"}}))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            for index in range(4):
                grpc_export(channel, trace_request(f"pf-{index}", 1))
        assert (len(first.accepted), len(second.accepted)) == (4, 0)
    finally:
        first.stop()
        second.stop()


def test_status_shows_each_forwarding_exporter(otlpd, otlpd_binary, tmp_path):
    import json
    port = free_port()
    forwarder = otlpd.start(forwarder_config(tmp_path, f"127.0.0.1:{port}", exporter={"retry_on_failure": {"initial_interval": "100ms"}}))
    status_argv = ("status", "--endpoint", f"127.0.0.1:{forwarder.telemetry_port}")
    outcome = []

    def send():
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            try:
                grpc_export(channel, trace_request("waiting", 3), timeout=4)
                outcome.append("OK")
            except grpc.RpcError as error:
                outcome.append(error.code())

    waiting = threading.Thread(target=send)
    waiting.start()
    forwarder.wait_for_log("does not confirm")
    text = run_otlpd(otlpd_binary, *status_argv).stdout
    line = [l for l in text.splitlines() if l.startswith("otlp_grpc")]
    assert len(line) == 1, text
    assert f"127.0.0.1:{port}" in line[0] and "retrying" in line[0] and "1 req" in line[0] and "connection refused" in line[0], line[0]
    waiting.join(10)
    assert outcome == [grpc.StatusCode.UNAVAILABLE]
    exporters = json.loads(run_otlpd(otlpd_binary, *status_argv, "--json").stdout)["exporters"]
    assert exporters[0]["state"] == "down" and exporters[0]["failed"] == 3 and exporters[0]["queue"]["requests"] == 0, exporters

    sink = GrpcSink(port=port)
    try:
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, trace_request("arrived", 2), timeout=5)
        exporters = json.loads(run_otlpd(otlpd_binary, *status_argv, "--json").stdout)["exporters"]
        assert exporters[0]["state"] == "connected" and exporters[0]["sent"] == 2, exporters
        assert "connection refused" in exporters[0]["lastError"], "the last error stays shown after recovery"
    finally:
        sink.stop()


def rotel_binary():
    import importlib.util
    import os
    spec = importlib.util.find_spec("rotel")
    assert spec and spec.submodule_search_locations, "the rotel wheel (requirements.txt) is not installed"
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, "rotel-agent")
        if os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("rotel-agent not found in the rotel wheel")


@pytest.mark.parametrize("exporter", ["otlp_grpc", "otlp_http"])
def test_forwards_into_rotel(otlpd, tmp_path, exporter):
    """rotel, a collector we did not write, as the upstream: it takes what otlpd forwards over either
    protocol and passes it on to a grpcio sink, where every span is counted."""
    sink = GrpcSink()
    grpc_port, http_port = free_port(), free_port()
    rotel = subprocess.Popen(
        [rotel_binary(), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}", "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
         "--exporter", "otlp", "--otlp-exporter-endpoint", f"http://{sink.endpoint}", "--otlp-exporter-protocol", "grpc",
         "--pid-file", str(tmp_path / "rotel.pid"), "--log-file", str(tmp_path / "rotel.log")],
        stdout=open(tmp_path / "rotel.stdout", "wb"), stderr=subprocess.STDOUT)
    try:
        import socket as socket_module

        def listening():
            with socket_module.socket() as probe:
                return probe.connect_ex(("127.0.0.1", grpc_port if exporter == "otlp_grpc" else http_port)) == 0
        wait_until(listening, 10, "rotel listening")
        settings = ({"endpoint": f"127.0.0.1:{grpc_port}", "tls": {"insecure": True}} if exporter == "otlp_grpc"
                    else {"endpoint": f"http://127.0.0.1:{http_port}"})
        forwarder = otlpd.start(base_config(tmp_path, processors={"batch": {}}, signals=("traces",), exporters={exporter: settings}))
        sent = []
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            for index in range(5):
                request = trace_request(f"to-rotel-{index}", 4)
                grpc_export(channel, request)
                sent += request_span_ids(request)
        wait_until(lambda: sorted(sink.span_ids()) == sorted(sent), 10, f"all {len(sent)} spans through rotel at the sink")
        assert forwarder.logs_matching("does not confirm") == []
    finally:
        rotel.terminate()
        rotel.wait(10)
        sink.stop()
