"""The command line and the config: validate, --set, several --config,
environment expansion, print-config, components, version, the embedded
default config."""
import re
import signal
import subprocess
from pathlib import Path

import grpc
import pytest

from otlpd_harness import (READY_LINE, base_config, grpc_export, logs_request, metrics_request, port_is_free,
                           read_jsonl, records, request_span_ids, run_otlpd, span_ids_in, to_yaml, trace_request,
                           wait_until)

ERROR_LINE = re.compile(r"^  (?P<file>[^:\n]+):(?P<line>\d+): (?P<path>[^:\n]+): (?P<message>.+)$", re.M)


def line_of(text: str, needle: str) -> int:
    """1-based number of the (first) line of `text` containing `needle`."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in config")


def errors_of(stderr: str) -> list[dict]:
    return [m.groupdict() for m in ERROR_LINE.finditer(stderr)]


GOOD = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: localhost:0
processors:
  batch:
    timeout: 50ms
exporters:
  file:
    path: {dir}/out.jsonl
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file]
"""


def test_validate_good_config(otlpd_binary, tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD.format(dir=tmp_path))
    result = run_otlpd(otlpd_binary, "validate", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "config is valid" in result.stdout + result.stderr


# (name, text replaced in GOOD, replacement, key path, line needle, words the message holds)
BAD = [
    ("unknown-exporter-type", "  file:\n    path: {dir}/out.jsonl\n",
     "  file:\n    path: {dir}/out.jsonl\n  kafka:\n    brokers: [a]\n", "exporters.kafka", "  kafka:", ["kafka"]),
    ("unknown-receiver-type", "receivers:\n", "receivers:\n  zipkin: {{}}\n", "receivers.zipkin", "zipkin", ["zipkin"]),
    ("unknown-processor-type", "processors:\n", "processors:\n  sampler: {{}}\n", "processors.sampler", "sampler", ["sampler"]),
    ("unknown-key", "        endpoint: 127.0.0.1:0\n", "        endpoint: 127.0.0.1:0\n        max_recv_msg_size: 4\n",
     "receivers.otlp.protocols.grpc.max_recv_msg_size", "max_recv_msg_size:", ["max_recv_msg_size"]),
    ("unknown-top-level-key", "service:\n", "servce:\n  x: 1\nservice:\n", "servce", "servce", ["servce"]),
    ("undefined-exporter-in-pipeline", "      exporters: [file]", "      exporters: [file, missing]",
     "service.pipelines.traces.exporters[1]", "exporters: [file, missing]", ["missing"]),
    ("undefined-processor-in-pipeline", "      processors: [batch]", "      processors: [batch/2]",
     "service.pipelines.traces.processors[0]", "processors: [batch/2]", ["batch/2"]),
    ("bad-duration", "    timeout: 50ms", "    timeout: 50 parsecs", "processors.batch.timeout", "timeout:", ["50 parsecs"]),
    ("bad-size", "        endpoint: localhost:0\n", "        endpoint: localhost:0\n        max_request_body_size: 12QB\n",
     "receivers.otlp.protocols.http.max_request_body_size", "max_request_body_size", ["12QB"]),
    ("unreadable-tls-file", "        endpoint: 127.0.0.1:0\n",
     "        endpoint: 127.0.0.1:0\n        tls:\n          cert_file: {dir}/no-such-cert.pem\n          key_file: {dir}/no-such-key.pem\n",
     "receivers.otlp.protocols.grpc.tls.cert_file", "cert_file:", ["no-such-cert.pem"]),
]


@pytest.mark.parametrize("name,old,new,key_path,needle,words", BAD, ids=[b[0] for b in BAD])
def test_validate_reports_file_line_key_and_reason(otlpd_binary, tmp_path, name, old, new, key_path, needle, words):
    good = GOOD.format(dir=tmp_path)
    old, new = old.format(dir=tmp_path), new.format(dir=tmp_path)
    assert old in good
    text = good.replace(old, new, 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = run_otlpd(otlpd_binary, "validate", "--config", str(path))
    assert result.returncode == 1, f"exit 1 for {name}, got {result.returncode}\n{result.stdout}{result.stderr}"
    errors = errors_of(result.stderr)
    assert errors, f"errors printed as '  FILE:LINE: key.path: message':\n{result.stderr}"
    mine = [e for e in errors if e["path"] == key_path]
    assert mine, f"an error for key path {key_path}:\n{result.stderr}"
    error = mine[0]
    assert Path(error["file"]).name == "bad.yaml", error
    assert int(error["line"]) == line_of(text, needle), f"line {error['line']}, the key is on line {line_of(text, needle)}"
    for word in words:
        assert word in error["message"], f"the message says what is wrong ({word!r}): {error['message']!r}"
    # The same config is refused at start, with the same message, and nothing listens.
    run = subprocess.run([otlpd_binary, "--config", str(path)], capture_output=True, text=True, timeout=20)
    assert run.returncode == 1, f"run refuses the bad config: {run.returncode}\n{run.stderr}"
    assert any(e["path"] == key_path for e in errors_of(run.stderr)), run.stderr
    assert READY_LINE not in run.stderr


def test_several_errors_reported_at_once(otlpd_binary, tmp_path):
    text = GOOD.format(dir=tmp_path)
    text = text.replace("    timeout: 50ms", "    timeout: soon")
    text = text.replace("        endpoint: 127.0.0.1:0\n", "        endpoint: 127.0.0.1:0\n        bogus: 1\n")
    text = text.replace("      exporters: [file]", "      exporters: [file, nowhere]")
    text = text.replace("  file:\n", "  kafka: {}\n  file:\n")
    path = tmp_path / "many.yaml"
    path.write_text(text)
    result = run_otlpd(otlpd_binary, "validate", "--config", str(path))
    assert result.returncode == 1
    paths = {e["path"] for e in errors_of(result.stderr)}
    expected = {"processors.batch.timeout", "receivers.otlp.protocols.grpc.bogus",
                "service.pipelines.traces.exporters[1]", "exporters.kafka"}
    assert expected <= paths, f"every error at once; missing {expected - paths}:\n{result.stderr}"


def test_validate_unreadable_and_unparsable_files(otlpd_binary, tmp_path):
    missing = run_otlpd(otlpd_binary, "validate", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "nope.yaml" in missing.stderr, missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("receivers: [\n")
    result = run_otlpd(otlpd_binary, "validate", "--config", str(broken))
    assert result.returncode == 1 and "broken.yaml" in result.stderr, result.stderr


def test_tls_file_that_is_not_a_certificate(otlpd_binary, tmp_path):
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    (tmp_path / "key.pem").write_text("not a key\n")
    text = GOOD.format(dir=tmp_path).replace(
        "        endpoint: localhost:0\n",
        f"        endpoint: localhost:0\n        tls:\n          cert_file: {tmp_path}/cert.pem\n          key_file: {tmp_path}/key.pem\n")
    path = tmp_path / "tls.yaml"
    path.write_text(text)
    result = run_otlpd(otlpd_binary, "validate", "--config", str(path))
    assert result.returncode == 1
    assert any(e["path"].startswith("receivers.otlp.protocols.http.tls") for e in errors_of(result.stderr)), result.stderr


def test_set_overrides_a_key(otlpd, tmp_path):
    config = base_config(tmp_path, exporters={"file": {"path": str(tmp_path / "configured.jsonl")}}, signals=["traces"])
    daemon = otlpd.start(config, args=["--set", f"exporters.file.path={tmp_path}/overridden.jsonl",
                                       "--set", "service.telemetry.logs.level=debug"])
    request = trace_request("set", 2)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
    assert not (tmp_path / "configured.jsonl").exists(), "--set replaced the path"
    assert span_ids_in(read_jsonl(tmp_path / "overridden.jsonl")) == request_span_ids(request)
    assert daemon.stop() == 0
    printed = run_otlpd(otlpd.binary, "print-config", *daemon.args[:2],
                        "--set", "service.telemetry.logs.level=debug", "--set", "processors.batch.timeout=1s")
    assert printed.returncode == 0, printed.stderr
    assert re.search(r"level: \"?debug\"?", printed.stdout), printed.stdout
    assert re.search(r"batch:\s*\n\s+timeout: \"?1s\"?", printed.stdout), f"--set can add keys:\n{printed.stdout}"


def test_several_configs_merge(otlpd, tmp_path):
    first = base_config(tmp_path, exporters={"file": {"path": str(tmp_path / "merged.jsonl")},
                                             "debug": {"verbosity": "basic"}},
                        http={"cors": {"allowed_origins": ["http://a.example", "http://b.example"]}},
                        pipeline_exporters=["file"], signals=["traces"])
    second = {"exporters": {"debug": {"verbosity": "normal"}},
              "receivers": {"otlp": {"protocols": {"http": {"cors": {"allowed_origins": ["http://c.example"]}}}}},
              "service": {"pipelines": {"traces": {"exporters": ["debug", "file"]}}}}
    third = {"service": {"pipelines": {"traces": {"exporters": ["debug"]}}}}
    paths = [otlpd.write_config(c, f"merge-{i}.yaml") for i, c in enumerate((first, second, third))]
    args = [a for p in paths for a in ("--config", str(p))]
    printed = run_otlpd(otlpd.binary, "print-config", *args)
    assert printed.returncode == 0, printed.stderr
    out = printed.stdout
    assert "merged.jsonl" in out, "maps merge: the file exporter of the first file is kept"
    assert re.search(r"verbosity: \"?normal\"?", out) and "basic" not in out, "later wins"
    assert "c.example" in out and "a.example" not in out and "b.example" not in out, "lists replace"
    pipeline = out[out.index("pipelines:"):]
    assert re.search(r"exporters:\s*(\[\s*\"?debug\"?\s*\]|\n\s*- \"?debug\"?\s*$)", pipeline, re.M) and "file" not in pipeline, \
        f"the last list wins whole:\n{pipeline}"
    # And the daemon runs what print-config shows.
    daemon = otlpd.start(configs=paths)
    request = trace_request("merge", 2)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
    wait_until(lambda: len(daemon.stdout().splitlines()) >= 2, 5, "2 debug lines at normal verbosity")
    assert all(f"span={i}" in daemon.stdout() for i in request_span_ids(request))
    assert not (tmp_path / "merged.jsonl").exists(), "the file exporter is not in the pipeline any more"


ENV_CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:GRPC_ENDPOINT}
      http:
        endpoint: ${HTTP_ENDPOINT}
processors:
  batch:
    timeout: ${env:BATCH_TIMEOUT:-75ms}
exporters:
  file:
    path: ${env:OUT_DIR}/env.jsonl
  debug:
    verbosity: ${env:VERBOSITY:-detailed}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file, debug]
"""


def test_environment_expansion(otlpd, tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text(ENV_CONFIG)
    env = {"GRPC_ENDPOINT": "127.0.0.1:0", "HTTP_ENDPOINT": "localhost:0", "OUT_DIR": str(tmp_path / "data"),
           "VERBOSITY": "basic"}
    (tmp_path / "data").mkdir()
    printed = run_otlpd(otlpd.binary, "print-config", "--config", str(path), env=env)
    assert printed.returncode == 0, printed.stderr
    out = printed.stdout
    assert "${" not in out, f"every reference expanded:\n{out}"
    assert f"{tmp_path}/data/env.jsonl" in out, "${env:NAME}"
    assert "localhost:0" in out, "${NAME}"
    assert re.search(r"timeout: \"?75ms\"?", out), "${env:NAME:-default} with NAME unset takes the default"
    assert re.search(r"verbosity: \"?basic\"?", out), "${env:NAME:-default} with NAME set takes NAME"
    daemon = otlpd.start(path, env=env)
    request = trace_request("env", 2)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
    assert span_ids_in(read_jsonl(tmp_path / "data" / "env.jsonl")) == request_span_ids(request)
    wait_until(lambda: "2 spans" in daemon.stdout(), 5, "a basic debug line")


def test_print_config_redacts_secrets(otlpd_binary, tmp_path):
    """The SPEC's own example: a bearer token in bearertokenauth, referenced by the receiver."""
    text = f"""\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        auth:
          authenticator: bearertokenauth
exporters:
  file:
    path: {tmp_path}/out.jsonl
extensions:
  bearertokenauth:
    token: s3cr3t-t0ken-value
service:
  extensions: [bearertokenauth]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"""
    path = tmp_path / "secret.yaml"
    path.write_text(text)
    result = run_otlpd(otlpd_binary, "print-config", "--config", str(path))
    assert "s3cr3t-t0ken-value" not in result.stdout + result.stderr, "the secret is never printed"
    assert result.returncode == 0, f"print-config of the SPEC's bearertokenauth example: {result.stderr}"
    assert re.search(r"token: \"?\[REDACTED\]\"?", result.stdout), result.stdout


def test_print_config_redacts_secret_from_environment(otlpd_binary, tmp_path):
    """A secret expanded from the environment is redacted too, wherever print-config shows it."""
    path = tmp_path / "secret-env.yaml"
    path.write_text(GOOD.format(dir=tmp_path).replace(
        "service:\n", "extensions:\n  bearertokenauth:\n    token: ${env:OTLPD_TOKEN}\nservice:\n  extensions: [bearertokenauth]\n"))
    result = run_otlpd(otlpd_binary, "print-config", "--config", str(path), env={"OTLPD_TOKEN": "env-s3cr3t"})
    assert "env-s3cr3t" not in result.stdout + result.stderr, "the secret is never printed"


def test_components(otlpd_binary):
    result = run_otlpd(otlpd_binary, "components")
    assert result.returncode == 0
    sections = {}
    for line in result.stdout.splitlines():
        kind, _, names = line.partition(":")
        sections[kind.strip()] = {n.strip() for n in names.split(",") if n.strip()}
    assert "otlp" in sections.get("receivers", set()), result.stdout
    assert "batch" in sections.get("processors", set()), result.stdout
    assert {"debug", "file", "nop"} <= sections.get("exporters", set()), result.stdout


def test_version(otlpd_binary):
    result = run_otlpd(otlpd_binary, "version")
    assert result.returncode == 0
    assert re.match(r"^otlpd \d+\.\d+\.\d+", result.stdout), result.stdout
    flag = run_otlpd(otlpd_binary, "--version")
    assert flag.returncode == 0 and re.search(r"\d+\.\d+\.\d+", flag.stdout)


def test_nop_exporter_accepts_and_drops(otlpd, tmp_path):
    daemon = otlpd.start(base_config(tmp_path, exporters={"nop": {}}))
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, trace_request("nop", 3))
    assert daemon.stop() == 0


def test_port_zero_for_both_protocols_on_one_host(otlpd, tmp_path):
    """`127.0.0.1:0` for both protocols: the OS picks two different ports; they are not 'the same endpoint'."""
    config = base_config(tmp_path, grpc={"endpoint": "127.0.0.1:0"}, http={"endpoint": "127.0.0.1:0"})
    daemon = otlpd.start(config)
    assert daemon.grpc_port and daemon.http_port and daemon.grpc_port != daemon.http_port


def test_embedded_default_config(otlpd_binary, tmp_path):
    """No --config: OTLP/gRPC on localhost:4317, OTLP/HTTP on localhost:4318, debug at normal on stdout,
    files under ./otlpd-data/."""
    if not (port_is_free(4317) and port_is_free(4318)):
        pytest.skip("ports 4317/4318 are in use on this machine")
    from otlpd_harness import Otlpd
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    daemon = Otlpd(otlpd_binary, tmp_path, [], cwd=cwd, name="default").start()
    try:
        assert (daemon.grpc_port, daemon.http_port) == (4317, 4318), daemon.stderr()
        traces = trace_request("default-config", 2)
        with grpc.insecure_channel("127.0.0.1:4317") as channel:
            grpc_export(channel, traces)
            grpc_export(channel, metrics_request("default-config"), "metrics")
        import urllib.request
        body = logs_request("default-config", 2).SerializeToString()
        with urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:4318/v1/logs", data=body, method="POST",
                                                           headers={"content-type": "application/x-protobuf"}), timeout=5) as r:
            assert r.status == 200
        data = cwd / "otlpd-data"
        assert span_ids_in(read_jsonl(data / "otlpd.traces.jsonl")) == request_span_ids(traces)
        assert len(records(read_jsonl(data / "otlpd.metrics.jsonl"), "metrics")) == 3
        assert len(records(read_jsonl(data / "otlpd.logs.jsonl"), "logs")) == 2
        wait_until(lambda: len([l for l in daemon.stdout().splitlines() if "default-config" in l]) >= 7, 5,
                   "debug lines for 2 spans, 3 metric points and 2 log records")
    finally:
        code = daemon.stop(signal.SIGTERM)
    assert code == 0
