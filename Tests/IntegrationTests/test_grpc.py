"""grpcio, used directly: responses, status codes, status details and
compression on the OTLP/gRPC port."""
import concurrent.futures

import grpc
import pytest

from otlpd_harness import (GRPC_PATHS, RESPONSE_TYPES, base_config, curl, grpc_export, grpc_frame, grpc_raw_call, gzip_bytes,
                           logs_request,
                           metrics_request, read_jsonl, records, request_span_ids, rpc_status_details, span_ids_in,
                           trace_request)


@pytest.fixture
def daemon(otlpd, tmp_path):
    return otlpd.start(base_config(tmp_path, grpc={"max_recv_msg_size_mib": 1}))


def refusals(daemon, path=None):
    lines = daemon.logs_matching("request refused", protocol="grpc")
    return [line for line in lines if path is None or line.fields.get("path") == path]


def test_export_each_signal_returns_its_response(daemon, tmp_path):
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        traces = trace_request("grpc-direct", 4)
        response, call = grpc_export(channel, traces, "traces", with_call=True)
        assert isinstance(response, RESPONSE_TYPES["traces"])
        assert call.code() == grpc.StatusCode.OK
        assert response.partial_success.rejected_spans == 0 and not response.partial_success.error_message
        response = grpc_export(channel, metrics_request("grpc-direct"), "metrics")
        assert isinstance(response, RESPONSE_TYPES["metrics"])
        assert response.partial_success.rejected_data_points == 0
        response = grpc_export(channel, logs_request("grpc-direct", 3), "logs")
        assert isinstance(response, RESPONSE_TYPES["logs"])
        assert response.partial_success.rejected_log_records == 0
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))) == sorted(request_span_ids(traces))
    assert len(records(read_jsonl(tmp_path / "out.metrics.jsonl"), "metrics")) == 3
    assert len(records(read_jsonl(tmp_path / "out.logs.jsonl"), "logs")) == 3
    assert refusals(daemon) == [], "no request was refused"


def test_malformed_protobuf_is_invalid_argument(daemon, tmp_path):
    garbage = b"\x0a\xff\xff\xff\xff\x0f\x01"  # field 1, length far past the end
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            grpc_raw_call(channel, GRPC_PATHS["traces"], garbage)
        error = info.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"got {error.code()}: {error.details()}"
        assert error.details(), "a message says what is wrong"
        status = rpc_status_details(error)
        assert status is not None, f"grpc-status-details-bin trailer holds a google.rpc.Status: {error.trailing_metadata()}"
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        # The channel still works afterwards.
        grpc_export(channel, trace_request("after-garbage", 1))
    lines = daemon.wait_for_log("request refused", protocol="grpc")
    assert len(lines) == 1, f"one log line per refusal: {[l.raw for l in lines]}"
    assert lines[0].fields["client"].startswith("127.0.0.1:") and lines[0].fields.get("reason"), lines[0].raw
    assert lines[0].fields.get("path") == GRPC_PATHS["traces"]
    assert len(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))) == 1


def test_message_over_max_recv_msg_size_is_resource_exhausted(daemon, tmp_path):
    big = trace_request("big", 20, attribute_size=64 * 1024)  # ~1.3 MB > 1 MiB
    small = trace_request("small", 10, attribute_size=64 * 1024)  # ~0.65 MB < 1 MiB
    assert big.ByteSize() > (1 << 20) > small.ByteSize()
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            grpc_export(channel, big)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"got {info.value.code()}: {info.value.details()}"
        status = rpc_status_details(info.value)
        assert status is not None and status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        grpc_export(channel, small)
    ids = set(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl")))
    assert ids == set(request_span_ids(small)), "only the request under the limit is kept"
    lines = daemon.wait_for_log("request refused", protocol="grpc")
    assert len(lines) == 1 and "max_recv_msg_size_mib" in lines[0].fields.get("reason", ""), [l.raw for l in lines]


def test_unknown_method_is_unimplemented(daemon):
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        for path in ("/opentelemetry.proto.collector.trace.v1.TraceService/Nope", "/my.Service/Export"):
            with pytest.raises(grpc.RpcError) as info:
                grpc_raw_call(channel, path, trace_request().SerializeToString())
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED, f"{path}: got {info.value.code()}"
    lines = daemon.wait_for_log("request refused", path="/my.Service/Export")
    assert len(refusals(daemon)) == 2, "one line per refusal"


@pytest.mark.parametrize("signal_name", ["traces", "metrics", "logs"])
def test_gzip_compressed_calls(daemon, tmp_path, signal_name):
    request = {"traces": trace_request("gz", 5), "metrics": metrics_request("gz"), "logs": logs_request("gz", 5)}[signal_name]
    with grpc.insecure_channel(daemon.grpc_target, compression=grpc.Compression.Gzip) as channel:
        response, call = grpc_export(channel, request, signal_name, compression=grpc.Compression.Gzip, with_call=True)
    assert call.code() == grpc.StatusCode.OK and isinstance(response, RESPONSE_TYPES[signal_name])
    lines = read_jsonl(tmp_path / f"out.{signal_name}.jsonl")
    expected = {"traces": 5, "metrics": 3, "logs": 5}[signal_name]
    assert len(records(lines, signal_name)) == expected


def test_gzip_bomb_is_resource_exhausted(daemon, tmp_path):
    """Small on the wire, over max_recv_msg_size_mib once decompressed."""
    big = trace_request("bomb", 40, attribute_size=64 * 1024)  # ~2.6 MB, compresses to a few KB
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            grpc_export(channel, big, compression=grpc.Compression.Gzip)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"got {info.value.code()}: {info.value.details()}"
    assert read_jsonl(tmp_path / "out.traces.jsonl") == []


def test_concurrent_calls_on_one_channel(daemon, tmp_path):
    requests = [trace_request(f"svc-{i % 3}", 3) for i in range(40)]
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda r: grpc_export(channel, r), requests))
    assert all(isinstance(r, RESPONSE_TYPES["traces"]) for r in responses)
    sent = sorted(i for r in requests for i in request_span_ids(r))
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))) == sent


def test_signal_without_a_pipeline_is_unimplemented(otlpd, tmp_path):
    """Only a traces pipeline: logs sent to the receiver are refused, named, and nothing is written."""
    daemon = otlpd.start(base_config(tmp_path, signals=["traces"]))
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            grpc_export(channel, logs_request("no-logs-pipeline", 2), "logs")
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED, f"got {info.value.code()}: {info.value.details()}"
        assert "logs" in info.value.details(), info.value.details()
        grpc_export(channel, trace_request("has-a-pipeline", 1))
    assert len(refusals(daemon, GRPC_PATHS["logs"])) == 1
    assert len(span_ids_in(read_jsonl(tmp_path / "out.jsonl"))) == 1


@pytest.mark.parametrize("case", ["unknown-encoding", "flag-without-encoding", "reserved-flag"])
def test_bad_grpc_framing_and_encoding_with_curl(daemon, tmp_path, tools, case):
    """What grpcio never sends, sent by hand over h2c: each refused with its gRPC status in
    the trailers-only answer and a log line; the daemon keeps serving."""
    message = trace_request("framing", 1).SerializeToString()
    headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    if case == "unknown-encoding":
        frame, expected = grpc_frame(message, compressed=True), "12"  # UNIMPLEMENTED
        headers += ["-H", "grpc-encoding: snappy"]
    elif case == "flag-without-encoding":
        frame, expected = grpc_frame(gzip_bytes(message), compressed=True), "3"  # INVALID_ARGUMENT
    else:
        frame, expected = b"\x02" + grpc_frame(message)[1:], "3"
    result = curl("--http2-prior-knowledge", *headers, daemon.http_url(GRPC_PATHS["traces"], port=daemon.grpc_port),
                  data=frame, workdir=tmp_path)
    assert result.statuses == [200], result.verbose[-2000:]
    assert result.header("grpc-status") == expected, result.headers
    assert result.header("grpc-message"), "a message says what is wrong"
    assert len(refusals(daemon, GRPC_PATHS["traces"])) == 1
    assert read_jsonl(tmp_path / "out.traces.jsonl") == []
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, trace_request("after", 1))
