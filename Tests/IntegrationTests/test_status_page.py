"""The live status page at GET / of the self-telemetry address: served from
the binary under a Content-Security-Policy that allows only this address,
its script and style beside it, and the feed it polls (/services) with the
process's own health. (The page in a real browser comes with issue 13's
browser test.)"""
import json

import grpc

from otlpd_harness import base_config, curl, grpc_export, trace_request, wait_until


def test_the_page_its_parts_and_its_feed(otlpd, tmp_path):
    daemon = otlpd.start(base_config(tmp_path))
    page = curl("-i", daemon.telemetry_url("/"), workdir=tmp_path)
    assert page.statuses == [200], page.verbose
    policy = page.header("content-security-policy")
    assert policy and "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert page.header("content-type").startswith("text/html")
    html = page.body.decode()
    assert '<script src="/status.js"' in html and '<link rel="stylesheet" href="/status.css">' in html
    assert "http://" not in html and "https://" not in html, "nothing from elsewhere"
    script = curl(daemon.telemetry_url("/status.js"), workdir=tmp_path)
    assert script.statuses == [200] and script.header("content-type").startswith("text/javascript")
    text = script.body.decode()
    assert "innerHTML" not in text and "textContent" in text, "names from clients go in as text"
    assert curl(daemon.telemetry_url("/status.css"), workdir=tmp_path).statuses == [200]

    hostile = "<script>alert(1)</script>"
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, trace_request(hostile, 2))
    refused = curl("-H", "Content-Type: application/x-protobuf", daemon.http_url(), data=b"\xff\xff not protobuf", workdir=tmp_path)
    assert refused.statuses == [400]
    feed = json.loads(curl(daemon.telemetry_url("/services"), workdir=tmp_path).body)
    assert [s["name"] for s in feed["services"]] == [hostile] and feed["services"][0]["spans"] == 2
    service = feed["services"][0]
    assert len(service["history"]) == 60 and sum(service["history"]) == 2 and service["perSecond"]["spans"] > 0
    refusal = feed["refusals"][0]
    assert refusal["status"] == "400" and refusal["protocol"] == "http" and refusal["client"].startswith("127.0.0.1:")
    assert "not a valid ExportTraceServiceRequest" in refusal["reason"], refusal
    process = feed["otlpd"]
    assert process["version"] and process["uptimeSeconds"] >= 0 and process["rssBytes"] > 0 and process["heldBytes"] >= 0
    from otlpd_harness import run_otlpd
    status = run_otlpd(otlpd.binary, "status", "--endpoint", f"127.0.0.1:{daemon.telemetry_port}")
    assert status.returncode == 0 and f"live: http://127.0.0.1:{daemon.telemetry_port}/" in status.stderr, status.stderr
    assert "live:" not in status.stdout, "stdout stays one service per line"
    assert daemon.stop() == 0


def test_status_watch_redraws_every_second(otlpd, tmp_path):
    import subprocess
    daemon = otlpd.start(base_config(tmp_path))
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, trace_request("watched", 1))
    proc = subprocess.Popen([otlpd.binary, "status", "--watch", "--endpoint", f"127.0.0.1:{daemon.telemetry_port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=2.6)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, _ = proc.communicate()
    frames = out.decode().split("\x1b[H\x1b[2J")[1:]
    assert len(frames) >= 2 and all("watched" in frame for frame in frames), out[-500:]
    assert daemon.stop() == 0


def test_health_names_the_config_and_the_last_reload(otlpd, tmp_path):
    import signal
    config = base_config(tmp_path)
    path = otlpd.write_config(config, "health.yaml", tmp_path)
    daemon = otlpd.start(path)
    process = json.loads(curl(daemon.telemetry_url("/services"), workdir=tmp_path).body)["otlpd"]
    assert process["config"] == str(path) and process["lastReload"] is None and process["memoryLimitBytes"] is None
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded", timeout=10)
    process = json.loads(curl(daemon.telemetry_url("/services"), workdir=tmp_path).body)["otlpd"]
    assert process["lastReload"]["result"] == "reloaded" and process["lastReload"]["time"].endswith("Z")
    path.write_text("receivers: [broken\n")
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_for_log("the running config stays", timeout=10)
    process = json.loads(curl(daemon.telemetry_url("/services"), workdir=tmp_path).body)["otlpd"]
    assert process["lastReload"]["result"].startswith("the config is invalid; the running config stays")
    assert daemon.stop() == 0
