"""Hostile clients, each run from its own process against the real binary
while the OpenTelemetry SDK's OTLP/gRPC exporter keeps exporting beside it:
compression bombs (gzip, zstd), HTTP/2 floods (SETTINGS, PING,
WINDOW_UPDATE, CONTINUATION, an HPACK header bomb, more streams than
allowed), slow bodies over HTTP/1.1 and HTTP/2, and clients that never read
their answers. In every case the SDK's p99 stays within 2x of the quiet
baseline, otlpd's RSS stays bounded, the hostile connection is cut off or
shed with a log line, and no file descriptor is left behind.

Slow-header clients, idle connections, max_connections and the rapid-reset
flood are in test_limits.py."""
import gzip
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from otlpd_harness import base_config, trace_request, wait_until
from test_limits import answer_times, fd_count, refusals, within_twice

HERE = os.path.dirname(os.path.abspath(__file__))
GRPC_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def header_block(headers, encoder=None) -> bytes:
    import hpack
    return (encoder or hpack.Encoder()).encode(headers)


def grpc_headers(encoding: str | None = None):
    headers = [(":method", "POST"), (":scheme", "http"), (":authority", "otlpd"), (":path", GRPC_PATH),
               ("content-type", "application/grpc"), ("te", "trailers")]
    return headers + ([("grpc-encoding", encoding)] if encoding else [])


def grpc_message(body: bytes, compressed: bool = False) -> bytes:
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


# -- the attacks, each run as `python test_hostile_clients.py ATTACK HOST PORT SECONDS` --------------

def attack(name: str, port: int, seconds: float) -> str:
    """Runs one attack for up to `seconds`; returns what happened to its connection."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    deadline = time.monotonic() + seconds
    sent = 0
    try:
        if name == "settings":
            sock.sendall(PREFACE + frame(4, 0, 0, b""))
            while time.monotonic() < deadline:
                sock.sendall(frame(4, 0, 0, struct.pack(">HI", 3, 100)) * 100)
                sent += 100
        elif name == "ping":
            sock.sendall(PREFACE + frame(4, 0, 0, b""))
            while time.monotonic() < deadline:
                sock.sendall(frame(6, 0, 0, b"attacker") * 100)
                sent += 100
        elif name == "window-update":
            sock.sendall(PREFACE + frame(4, 0, 0, b""))
            while time.monotonic() < deadline:
                sock.sendall(frame(8, 0, 0, struct.pack(">I", 1)) * 100)
                sent += 100
        elif name == "continuation":
            sock.sendall(PREFACE + frame(4, 0, 0, b"") + frame(1, 0, 1, header_block(grpc_headers())))
            while time.monotonic() < deadline:
                sock.sendall(frame(9, 0, 1, b"\x40\x01a\x01b") * 100)
                sent += 100
        elif name == "hpack-bomb":
            # One 4,000-byte header put in the dynamic table, then referenced 16,000 times: 64 MB once decoded.
            literal = b"\x40\x05x-big\x7f\x81\x1f" + b"v" * 4000
            block = header_block(grpc_headers()) + literal + b"\xbe" * 12000
            sock.sendall(PREFACE + frame(4, 0, 0, b"") + frame(1, 4, 1, block[:16384]))
            sent = 1
        elif name == "streams":
            # Streams opened and left without a body, far past the concurrent-stream limit.
            import hpack
            encoder = hpack.Encoder()
            sock.sendall(PREFACE + frame(4, 0, 0, b""))
            for stream in range(1, 4001, 2):
                sock.sendall(frame(1, 4, stream, header_block(grpc_headers(), encoder)))
                sent += 1
        elif name == "slow-body-http1":
            body = trace_request("slow", 1).SerializeToString()
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: otlpd\r\nContent-Type: application/x-protobuf\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
            sent = 1
        elif name == "slow-body-http2":
            body = grpc_message(trace_request("slow", 1).SerializeToString())
            sock.sendall(PREFACE + frame(4, 0, 0, b"") + frame(1, 4, 1, header_block(grpc_headers())) + frame(0, 0, 1, body[:8]))
            sent = 1
        elif name == "no-read-http1":
            body = trace_request("no-read", 1).SerializeToString()
            request = (b"POST /v1/traces HTTP/1.1\r\nHost: otlpd\r\nContent-Type: application/x-protobuf\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body)) + body
            sock.settimeout(1)
            while time.monotonic() < deadline:
                sock.sendall(request * 100)
                sent += 100
        elif name == "no-read-http2":
            # Requests with the flow-control windows assumed given back (they are, unread), answers never read.
            import hpack
            encoder = hpack.Encoder()
            message = grpc_message(trace_request("no-read", 1).SerializeToString())
            sock.sendall(PREFACE + frame(4, 0, 0, b"") + frame(8, 0, 0, struct.pack(">I", 2 ** 31 - 1 - 65535)))
            sock.settimeout(1)
            stream = 1
            while time.monotonic() < deadline:
                chunk = b""
                for _ in range(50):
                    chunk += frame(1, 4, stream, header_block(grpc_headers(), encoder)) + frame(0, 1, stream, message)
                    stream += 2
                sock.sendall(chunk)
                sent += 50
        else:
            raise SystemExit(f"unknown attack {name}")
        # Wait for the server to cut the connection, or for the time to run out.
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        while True:
            if not sock.recv(65536) and name not in ("no-read-http1", "no-read-http2"):
                return f"closed by otlpd after {sent} sent"
            if name.startswith("no-read"):
                time.sleep(max(0.0, deadline - time.monotonic()))
                return f"open, unread, after {sent} sent"
    except (socket.timeout, TimeoutError):
        return f"open after {sent} sent"
    except (ConnectionResetError, BrokenPipeError):
        return f"reset by otlpd after {sent} sent"
    finally:
        sock.close()


# -- the harness ------------------------------------------------------------------------------------

def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def under_attack(daemon, name: str, port: int, seconds: float = 4.0, rss_growth_mib: float = 40, measure_after: float = 0.5) -> str:
    """The SDK's answer times before and during the attack (from `measure_after` seconds into it), RSS and fds
    around it; returns the attack's outcome."""
    pid = daemon.proc.pid
    baseline = answer_times(daemon.grpc_target)
    fds, rss = fd_count(pid), rss_mib(pid)
    attacker = subprocess.Popen([sys.executable, __file__, name, str(port), str(seconds)], stdout=subprocess.PIPE, text=True)
    time.sleep(measure_after)
    loaded = answer_times(daemon.grpc_target)
    peak = rss_mib(pid)
    outcome, _ = attacker.communicate(timeout=seconds + 30)
    assert attacker.returncode == 0, outcome
    print(f"{name}: {outcome.strip()}; RSS {rss:.0f} -> {peak:.0f} MiB")
    within_twice(baseline, loaded)
    assert peak - rss < rss_growth_mib, f"RSS grew from {rss:.0f} to {peak:.0f} MiB under {name}"
    # Every descriptor of the attack is given back (the SDK's own connection was open before).
    wait_until(lambda: fd_count(pid) <= fds, 15, f"fds back to {fds} after {name} (now {fd_count(pid)})")
    return outcome.strip()


@pytest.fixture
def daemon(otlpd, tmp_path):
    # read_header_timeout (from the http section, for HTTP/1.1 on either port and HTTP/2's request bodies) short, to be quick.
    config = base_config(tmp_path, exporters={"nop": {}}, http={"read_header_timeout": "2s"})
    return otlpd.start(config)


@pytest.mark.parametrize("name,reason", [
    ("settings", "Flooding was detected"),
    ("ping", "Flooding was detected"),
    ("continuation", "Too many CONTINUATION frames"),
    ("window-update", "WINDOW_UPDATE and other empty frames within a second (a flood)"),
])
def test_http2_floods_are_cut_off_with_a_line(daemon, name, reason):
    outcome = under_attack(daemon, name, daemon.grpc_port)
    assert "after" in outcome and not outcome.startswith("open"), outcome
    lines = wait_until(lambda: refusals(daemon, reason), 5, f"a refusal line saying {reason!r}")
    assert len(lines) == 1 and lines[0].fields["client"].startswith("127.0.0.1:")
    assert daemon.stop() == 0


def test_an_hpack_header_bomb_is_refused_without_decoding_it_all(daemon):
    under_attack(daemon, "hpack-bomb", daemon.grpc_port, seconds=2)
    wait_until(lambda: daemon.logs_matching("refused"), 5, "the bomb's refusal line")
    assert daemon.stop() == 0


def test_streams_past_the_limit_are_refused_and_the_stalled_ones_reset(daemon):
    outcome = under_attack(daemon, "streams", daemon.grpc_port, seconds=4)
    # The streams left without a body are reset after read_header_timeout (2 s here), a line per check that reset any
    # (streams opened over time reach the timeout at different checks).
    lines = wait_until(lambda: refusals(daemon, "sent no more of the request body"), 5, "the stalled streams' line")
    assert 1 <= len(lines) <= 10 and all("reset (CANCEL)" in line.fields["reason"] for line in lines), [line.raw for line in lines]
    assert "open" in outcome or "closed" in outcome, outcome
    assert daemon.stop() == 0


@pytest.mark.parametrize("name,port", [("slow-body-http1", "http"), ("slow-body-http2", "grpc")])
def test_a_slow_body_is_cut_off_after_read_header_timeout(daemon, name, port):
    started = time.monotonic()
    outcome = under_attack(daemon, name, daemon.http_port if port == "http" else daemon.grpc_port, seconds=6)
    line = wait_until(lambda: refusals(daemon, "sent no more of"), 5, "the slow body's line")
    assert len(line) == 1 and "2.0 seconds" in line[0].fields["reason"], line[0].raw
    if port == "http":
        assert outcome.startswith(("closed", "reset")) and time.monotonic() - started < 10, outcome
    assert daemon.stop() == 0


def test_many_refusals_at_once_give_twenty_lines_and_a_count(daemon):
    # 100 slow bodies cut off together: 20 lines a second at most, then one line with the count of the rest,
    # even though no refusal follows to carry it.
    body = trace_request("slow", 1).SerializeToString()
    sockets = []
    for _ in range(100):
        sock = socket.create_connection(("127.0.0.1", daemon.http_port))
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: otlpd\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        sockets.append(sock)
    summary = wait_until(lambda: daemon.logs_matching("not logged one by one"), 8, "the count of the lines held back")
    lines = refusals(daemon, "sent no more of its request body")
    assert len(lines) == 20 and len(summary) == 1 and int(summary[0].fields["count"]) == 80, (len(lines), summary[0].raw)
    for sock in sockets:
        sock.close()
    assert daemon.stop() == 0


@pytest.mark.parametrize("name,port", [("no-read-http1", "http"), ("no-read-http2", "grpc")])
def test_a_client_that_never_reads_stops_being_read(daemon, name, port):
    # It first sends as fast as any busy client until the socket buffers both ways are full (over HTTP/2, a
    # quarter of a million small requests in about three seconds: a load, not an attack); from then on it costs
    # nothing, and that is when the SDK is timed.
    outcome = under_attack(daemon, name, daemon.http_port if port == "http" else daemon.grpc_port, seconds=12, rss_growth_mib=30,
                           measure_after=7)
    sent = int(outcome.split("after ")[1].split()[0])
    # Once its answers fill the socket, otlpd stops reading it: the client cannot send for ever.
    assert sent < 1_000_000 and outcome.startswith("open"), outcome
    assert daemon.stop() == 0


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_a_compression_bomb_is_refused_past_the_limit(otlpd, tmp_path, coding):
    # test_http_errors.py checks the answer; this checks that no more than the limit is ever inflated.
    daemon = otlpd.start(base_config(tmp_path, exporters={"nop": {}}, http={"max_request_body_size": "4MiB"}))
    pid = daemon.proc.pid
    rss = rss_mib(pid)
    zeros = b"\0" * (256 << 20)  # 256 MiB, 64 times the 4 MiB limit (after decompression)
    if coding == "gzip":
        bomb = gzip.compress(zeros, compresslevel=9)
    else:
        bomb = subprocess.run(["zstd", "-19", "-c"], input=zeros, capture_output=True, check=True).stdout
    del zeros
    answer = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/x-protobuf",
                             "-H", f"Content-Encoding: {coding}", "--data-binary", "@-", daemon.http_url()],
                            input=bomb, capture_output=True)
    assert answer.stdout == b"413", answer
    assert rss_mib(pid) - rss < 24, f"no more than the limit was inflated: RSS {rss:.0f} -> {rss_mib(pid):.0f} MiB"
    line = wait_until(lambda: daemon.logs_matching("request refused"), 5, "the bomb's refusal line")
    assert "after decompression" in line[0].fields["reason"]
    assert daemon.stop() == 0


if __name__ == "__main__":
    print(attack(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
