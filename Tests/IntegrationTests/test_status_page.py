"""The live status page at GET / of the self-telemetry address: served from
the binary under a Content-Security-Policy that allows only this address,
its script and style beside it, the JSON it reads (/services) with the
process's own health, and its live feed (/events, Server-Sent Events) over
HTTP/1.1 and HTTP/2 with its cap. The page in a real browser is
test_status_page_browser.py."""
import json
import subprocess
import time

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


def read_events(url: str, seconds: float, *extra: str) -> tuple[list[dict], str]:
    """The `status` events curl receives in `seconds`, and the raw stream."""
    run = subprocess.run(["curl", "-sN", "--max-time", str(seconds), *extra, url], capture_output=True)
    text = run.stdout.decode()
    events = [json.loads(block.split("data: ", 1)[1]) for block in text.split("\n\n") if "event: status\ndata: " in block]
    return events, text


def test_the_live_feed_over_both_http_versions_and_its_cap(otlpd, tmp_path):
    config = base_config(tmp_path)
    config["service"]["telemetry"]["metrics"]["max_feed_clients"] = 2
    daemon = otlpd.start(config)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, trace_request("checkout", 3))
    url = daemon.telemetry_url("/events")
    head = curl("-i", "--max-time", "1.5", "-N", url, workdir=tmp_path)
    assert head.header("content-type") == "text/event-stream" and head.header("transfer-encoding") == "chunked"
    for version in ([], ["--http2-prior-knowledge"]):
        events, text = read_events(url, 2.6, *version)
        assert text.startswith("retry: 1000\nevent: status\ndata: {"), text[:80]
        # The first at once, then one a second.
        assert 3 <= len(events) <= 4, (version, len(events))
        assert [s["name"] for s in events[-1]["services"]] == ["checkout"] and events[-1]["services"][0]["spans"] == 3
        assert set(events[-1]) >= {"services", "exporters", "pipelines", "otlpd", "refusals"}

    # Two hold the feed; a third is refused with 503, a reason, and a log line naming it.
    holders = [subprocess.Popen(["curl", "-sN", url], stdout=subprocess.DEVNULL) for _ in range(2)]
    try:
        wait_until(lambda: json.loads(curl(daemon.telemetry_url("/services"), workdir=tmp_path).body)["otlpd"]["feedClients"] == 2,
                   5, "two feed clients")
        third = curl("-i", url, workdir=tmp_path)
        assert third.statuses == [503] and third.header("retry-after") == "10"
        assert b"max_feed_clients" in third.body and b"poll /services" in third.body
        refused = daemon.logs_matching("status feed refused")
        assert len(refused) == 1 and refused[0].fields["client"].startswith("127.0.0.1:") and "2 clients already" in refused[0].fields["reason"]
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    # Their places are given back when they go.
    wait_until(lambda: json.loads(curl(daemon.telemetry_url("/services"), workdir=tmp_path).body)["otlpd"]["feedClients"] == 0,
               5, "the feed clients gone")
    events, _ = read_events(url, 1.2)
    assert events, "a place again"
    # A stop ends the open feeds at once.
    holder = subprocess.Popen(["curl", "-sN", url], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    started = time.monotonic()
    assert daemon.stop() == 0 and time.monotonic() - started < 3
    assert holder.wait(timeout=3) == 0, "the stream ended cleanly (the last chunk sent)"
