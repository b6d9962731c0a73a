"""The file exporter's options: proto format, gzip / zstd compression,
rotation, group_by, and appending across restarts."""
import datetime
import re
import subprocess

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otlpd_harness import (assert_one_resource_per_line, base_config, grpc_export, logs_request, metrics_request,
                           parse_jsonl, read_jsonl, read_length_prefixed, records, request_span_ids, service_of,
                           span_ids_in, trace_request)

MIB = 1 << 20


def traces_config(tmp_path, **file_options):
    file_options.setdefault("path", str(tmp_path / "out.jsonl"))
    return base_config(tmp_path, exporters={"file": file_options}, signals=["traces"])


def send(daemon, requests, signal_name="traces"):
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        for request in requests:
            grpc_export(channel, request, signal_name)


def test_format_proto_is_length_prefixed_requests(otlpd, tmp_path):
    daemon = otlpd.start(traces_config(tmp_path, format="proto", path=str(tmp_path / "out.pb")))
    requests = [trace_request("proto-a", 3), trace_request(resources=[("proto-b", 2), ("proto-c", 1)])]
    send(daemon, requests)
    messages = read_length_prefixed((tmp_path / "out.pb").read_bytes(), trace_service_pb2.ExportTraceServiceRequest)
    assert messages, "at least one record"
    spans = [s.span_id.hex() for m in messages for rs in m.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(spans) == sorted(i for r in requests for i in request_span_ids(r))
    by_id = {s.span_id: (rs, s) for m in messages for rs in m.resource_spans for ss in rs.scope_spans for s in ss.spans}
    for request in requests:
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    written_rs, written = by_id[span.span_id]
                    assert written == span, "the span's bytes decode to exactly what was sent"
                    assert written_rs.resource == rs.resource
    assert daemon.stop() == 0


def test_format_proto_for_every_signal(otlpd, tmp_path):
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    daemon = otlpd.start(base_config(tmp_path, exporters={"file": {"path": str(tmp_path / "all.pb"), "format": "proto"}}))
    send(daemon, [trace_request("p", 2)])
    send(daemon, [metrics_request("p")], "metrics")
    send(daemon, [logs_request("p", 3)], "logs")
    logs = read_length_prefixed((tmp_path / "all.logs.pb").read_bytes(), logs_service_pb2.ExportLogsServiceRequest)
    metrics = read_length_prefixed((tmp_path / "all.metrics.pb").read_bytes(), metrics_service_pb2.ExportMetricsServiceRequest)
    traces = read_length_prefixed((tmp_path / "all.traces.pb").read_bytes(), trace_service_pb2.ExportTraceServiceRequest)
    assert sum(len(ss.spans) for m in traces for rs in m.resource_spans for ss in rs.scope_spans) == 2
    assert sum(len(sm.metrics) for m in metrics for rm in m.resource_metrics for sm in rm.scope_metrics) == 3
    assert sum(len(sl.log_records) for m in logs for rl in m.resource_logs for sl in rl.scope_logs) == 3


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_files_readable_at_any_time(otlpd, tmp_path, compression, tools):
    path = tmp_path / f"out.jsonl.{'gz' if compression == 'gzip' else 'zst'}"
    daemon = otlpd.start(traces_config(tmp_path, compression=compression, path=str(path)))
    reader = ["zcat"] if compression == "gzip" else ["zstd", "-dc"]
    sent = []
    for round_ in range(4):
        request = trace_request("checkout" if round_ % 2 == 0 else "payments", 3)
        send(daemon, [request])
        sent += request_span_ids(request)
        # While otlpd runs and right after the answer: the whole file decompresses.
        proc = subprocess.run([*reader, str(path)], capture_output=True)
        assert proc.returncode == 0, f"{reader[0]} failed on the live file after {round_ + 1} requests: {proc.stderr!r}"
        lines = parse_jsonl(proc.stdout, str(path))
        assert_one_resource_per_line(lines, "traces", path.name)
        assert span_ids_in(lines) == sent
    pipeline = subprocess.run(f"{' '.join(reader)} {path} | grep -c checkout", shell=True, capture_output=True, text=True)
    assert pipeline.stdout.strip() == "2", f"zcat | grep finds the 2 checkout lines: {pipeline.stdout!r}"
    assert daemon.stop() == 0
    proc = subprocess.run([*reader, str(path)], capture_output=True)
    assert proc.returncode == 0 and span_ids_in(parse_jsonl(proc.stdout)) == sent


BACKUP = re.compile(r"^out-(\d{4})-(\d\d)-(\d\d)T(\d\d)-(\d\d)-(\d\d)\.(\d{3})\.jsonl$")


def backup_time(path):
    return datetime.datetime(*[int(g) for g in BACKUP.match(path.name).groups()[:6]])


def file_set(tmp_path):
    current = tmp_path / "out.jsonl"
    backups = sorted(p for p in tmp_path.iterdir() if p.name.startswith("out-"))
    return current, backups


def spans_kept(tmp_path):
    current, backups = file_set(tmp_path)
    ids = []
    for path in [*backups, current]:  # oldest first
        ids += span_ids_in(read_jsonl(path))
    return ids


def test_rotation_keeps_all_data_when_nothing_is_pruned(otlpd, tmp_path):
    daemon = otlpd.start(traces_config(tmp_path, rotation={"max_megabytes": 1, "max_backups": 2}))
    sent = []
    for _ in range(36):  # ~60 KB each, ~2.2 MB in all: the current file and two backups
        request = trace_request("rotate", 3, attribute_size=20_000)
        send(daemon, [request])
        sent += request_span_ids(request)
    current, backups = file_set(tmp_path)
    assert len(backups) == 2, f"2 backups after ~2.2 MB with 1 MB files: {[b.name for b in backups]}"
    for backup in backups:
        assert BACKUP.match(backup.name), f"backup named like out-YYYY-MM-DDTHH-MM-SS.mmm.jsonl: {backup.name}"
        assert abs(backup_time(backup) - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)) \
            < datetime.timedelta(minutes=2), f"{backup.name}: the time of rotation, in UTC (localtime: false)"
    for path in [*backups, current]:
        assert path.stat().st_size <= MIB, f"{path.name} is {path.stat().st_size} bytes, over max_megabytes 1"
        assert_one_resource_per_line(read_jsonl(path), "traces", path.name)
    assert spans_kept(tmp_path) == sent, "every span, in order, across the backups and the current file"
    assert daemon.stop() == 0


def test_rotation_never_keeps_more_than_max_backups(otlpd, tmp_path):
    daemon = otlpd.start(traces_config(tmp_path, rotation={"max_megabytes": 1, "max_backups": 2}))
    sent = []
    most_backups = 0
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        for _ in range(90):  # ~5.4 MB
            request = trace_request("rotate", 3, attribute_size=20_000)
            grpc_export(channel, request)
            sent += request_span_ids(request)
            most_backups = max(most_backups, len(file_set(tmp_path)[1]))
    current, backups = file_set(tmp_path)
    assert most_backups <= 2, f"at most max_backups=2 backups at any time, saw {most_backups}"
    assert len(backups) == 2, [b.name for b in backups]
    for backup in backups:
        assert BACKUP.match(backup.name), backup.name
        assert backup.stat().st_size <= MIB
    kept = spans_kept(tmp_path)
    assert kept and kept == sent[-len(kept):], "what is kept is the newest data, in order, with no gap"
    assert len(kept) * 20_000 > 2 * 0.9 * MIB, f"about 3 files' worth kept, got {len(kept)} spans"
    assert set(request_span_ids(request)) <= set(span_ids_in(read_jsonl(current))), "the last request is in the current file"


def test_rotation_localtime(otlpd, tmp_path):
    """localtime: true names backups in the local time zone (TZ=Etc/GMT-5 is UTC+5)."""
    daemon = otlpd.start(traces_config(tmp_path, rotation={"max_megabytes": 1, "max_backups": 2, "localtime": True}),
                         env={"TZ": "Etc/GMT-5"})
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        for _ in range(20):  # ~1.2 MB: one rotation
            grpc_export(channel, trace_request("rotate", 3, attribute_size=20_000))
    current, backups = file_set(tmp_path)
    assert len(backups) == 1, [b.name for b in backups]
    local_now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(hours=5)
    assert abs(backup_time(backups[0]) - local_now) < datetime.timedelta(minutes=2), \
        f"{backups[0].name}: local time (UTC+5), expected about {local_now:%Y-%m-%dT%H-%M-%S}"


def test_group_by_service_name(otlpd, tmp_path):
    pattern = tmp_path / "svc-*.jsonl"
    daemon = otlpd.start(traces_config(tmp_path, path=str(pattern), group_by={"enabled": True}))
    request = trace_request(resources=[("checkout", 2), ("payments", 3), (None, 1), ("checkout", 1)])
    send(daemon, [request, trace_request("payments", 2)])
    files = sorted(p.name for p in tmp_path.glob("svc-*.jsonl"))
    assert files == ["svc-checkout.jsonl", "svc-payments.jsonl", "svc-unknown.jsonl"], files
    counts = {}
    for name in files:
        lines = read_jsonl(tmp_path / name)
        assert_one_resource_per_line(lines, "traces", name)
        expected_service = name[4:-6]
        for line in lines:
            service = service_of(line["resourceSpans"][0])
            assert (service or "unknown") == expected_service, f"{name} holds a resource of {service}"
        counts[expected_service] = len(records(lines, "traces"))
    assert counts == {"checkout": 3, "payments": 5, "unknown": 1}


def test_group_by_other_attribute_and_path_safety(otlpd, tmp_path):
    """group_by on another resource attribute; a value with path separators must not write outside the
    exporter's directory."""
    out_dir = tmp_path / "data"
    out_dir.mkdir()
    daemon = otlpd.start(traces_config(tmp_path, path=str(out_dir / "ns-*.jsonl"),
                                       group_by={"enabled": True, "resource_attribute": "k8s.namespace.name"}))
    request = trace_request("svc", 2)
    request.resource_spans[0].resource.attributes.add(key="k8s.namespace.name").value.string_value = "shop"
    evil = trace_request("svc", 1)
    evil.resource_spans[0].resource.attributes.add(key="k8s.namespace.name").value.string_value = "../../escaped"
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
        try:
            grpc_export(channel, evil)
        except grpc.RpcError:
            pass  # refusing it is fine; writing outside the directory is not
    assert (out_dir / "ns-shop.jsonl").exists(), sorted(p.name for p in out_dir.iterdir())
    outside = [p for p in tmp_path.rglob("*escaped*") if out_dir not in p.parents]
    assert not outside, f"group_by wrote outside {out_dir}: {outside}"


def test_appends_across_restarts(otlpd, tmp_path):
    path = tmp_path / "out.jsonl"
    existing = b'{"resourceSpans":[]}\n'
    path.write_bytes(existing)
    config = traces_config(tmp_path)
    first = otlpd.start(config)
    request_a = trace_request("restart", 2)
    send(first, [request_a])
    assert first.stop() == 0
    after_first = path.read_bytes()
    assert after_first.startswith(existing), "the file is appended to, never truncated"
    second = otlpd.start(config)
    request_b = trace_request("restart", 3)
    send(second, [request_b])
    assert second.stop() == 0
    content = path.read_bytes()
    assert content.startswith(after_first), "the first run's lines are still there, unchanged"
    assert span_ids_in(read_jsonl(path)) == request_span_ids(request_a) + request_span_ids(request_b)


def test_named_pipelines_share_a_receiver_and_fan_out(otlpd, tmp_path):
    """traces/plain and traces/tagged both take every request of the one receiver; each
    exporter of a pipeline gets all of it, and the tagging pipeline's edit does not leak
    into the other pipeline's output."""
    config = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"attributes/tag": {"actions": [{"key": "pipeline", "value": "tagged", "action": "insert"}]}},
        "exporters": {
            "file/plain": {"path": str(tmp_path / "plain.jsonl")},
            "file/copy": {"path": str(tmp_path / "copy.jsonl"), "format": "proto"},
            "file/tagged": {"path": str(tmp_path / "tagged.jsonl")},
        },
        "service": {
            "pipelines": {
                "traces/plain": {"receivers": ["otlp"], "exporters": ["file/plain", "file/copy"]},
                "traces/tagged": {"receivers": ["otlp"], "processors": ["attributes/tag"], "exporters": ["file/tagged"]},
            },
            "telemetry": {"metrics": {"address": "127.0.0.1:0"}},
        },
    }
    daemon = otlpd.start(config)
    requests = [trace_request("fan-a", 3), trace_request("fan-b", 2)]
    send(daemon, requests)
    expected = sorted(i for r in requests for i in request_span_ids(r))
    plain = read_jsonl(tmp_path / "plain.jsonl")
    tagged = read_jsonl(tmp_path / "tagged.jsonl")
    copies = read_length_prefixed((tmp_path / "copy.jsonl").read_bytes(), trace_service_pb2.ExportTraceServiceRequest)
    assert sorted(span_ids_in(plain)) == expected
    assert sorted(span_ids_in(tagged)) == expected
    assert sorted(s.span_id.hex() for m in copies for rs in m.resource_spans for ss in rs.scope_spans
                  for s in ss.spans) == expected
    for _, _, span in records(plain, "traces"):
        assert all(a["key"] != "pipeline" for a in span.get("attributes", [])), span
    for _, _, span in records(tagged, "traces"):
        assert {"key": "pipeline", "value": {"stringValue": "tagged"}} in span["attributes"], span
    assert daemon.stop() == 0
