#!/usr/bin/env python3
"""Browsers holding otlpd's status page open, for the benchmark's status-page scenario (see bench/README.md).

Opens N HTTP/1.1 connections to `GET /events` on otlpd's self-telemetry address and reads every
Server-Sent Event they carry (chunked transfer decoded, events parsed as the EventSource spec does:
`event:`, `data:`, `retry:` fields, a blank line ends an event). Each `data:` must be one JSON object;
its `otlpd.feedClients` (the feed's subscribers when the event was made) is kept.

  taskset -c 1 python bench/feed_clients.py --port P --clients 16 --seconds 60

One thread, one selector: no client can fall behind the others for want of a thread. When every
client has its first event it prints `attached <monotonic time>` on stdout; it then reads until
--seconds have passed or it gets SIGTERM / SIGINT, and prints one JSON line:

  {"attached": t, "stopped": t, "clients": [{"status": 200, "events": n, "invalid": k,
    "times": [...], "feedClients": [...], "bytes": b, "error": null}, ...]}

`times` are time.monotonic() (CLOCK_MONOTONIC, the same clock in every process) at which each event
was complete, so the caller can count the events of its own measured window. Exit status 0 when every
client connected and got 200 with text/event-stream, 1 otherwise (the summary is printed either way),
2 for a usage error.
"""
import argparse
import json
import selectors
import signal
import socket
import sys
import time


class FeedClient:
    """One subscriber: an HTTP/1.1 response head, then chunks, then SSE events."""

    def __init__(self, host, port, path):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
                          "Cache-Control: no-cache\r\n\r\n".encode())
        self.sock.setblocking(False)
        self.raw = b""           # bytes not yet decoded (head, or chunk framing)
        self.text = b""          # the decoded body not yet split into events
        self.head_done = False
        self.chunked = False
        self.chunk_left = None   # bytes left of the current chunk's data, None between chunks
        self.crlf_left = 0       # bytes left of the CRLF that ends the current chunk
        self.status = None
        self.events = 0
        self.invalid = 0
        self.times = []
        self.feed_clients = []
        self.bytes = 0
        self.error = None
        self.closed = False

    def feed(self, data, now):
        self.bytes += len(data)
        self.raw += data
        if not self.head_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.raw = self.raw[:end].decode("latin-1"), self.raw[end + 4:]
            lines = head.split("\r\n")
            parts = lines[0].split(" ", 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.head_done = True
            if self.status != 200:
                self.error = f"HTTP {self.status}: {self.raw[:200]!r}"
                return self.close()
            if not headers.get("content-type", "").startswith("text/event-stream"):
                self.error = f"content-type {headers.get('content-type')!r}, not text/event-stream"
                return self.close()
            self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if self.chunked:
            while True:
                if self.chunk_left is None:   # between chunks: the size line
                    end = self.raw.find(b"\r\n")
                    if end < 0:
                        break
                    size = int(self.raw[:end].split(b";")[0], 16)
                    self.raw = self.raw[end + 2:]
                    if size == 0:   # the last chunk: otlpd ended the feed
                        self.error = "otlpd ended the feed (last chunk)"
                        return self.close()
                    self.chunk_left, self.crlf_left = size, 2
                if self.chunk_left:
                    take = self.raw[:self.chunk_left]
                    self.raw = self.raw[len(take):]
                    self.chunk_left -= len(take)
                    self.text += take
                    if self.chunk_left:
                        break
                skip = min(self.crlf_left, len(self.raw))   # the CRLF after the chunk's data
                self.raw = self.raw[skip:]
                self.crlf_left -= skip
                if self.crlf_left:
                    break
                self.chunk_left = None
        else:
            self.text, self.raw = self.text + self.raw, b""
        self.parse_events(now)

    def parse_events(self, now):
        self.text = self.text.replace(b"\r\n", b"\n")
        while True:
            end = self.text.find(b"\n\n")
            if end < 0:
                return
            block, self.text = self.text[:end].decode("utf-8", "replace"), self.text[end + 2:]
            kind, data = "message", []
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    kind = value
                elif name == "data":
                    data.append(value)
            if not data:
                continue   # a block with no data (retry: alone, say) dispatches nothing
            self.events += 1
            self.times.append(now)
            try:
                status = json.loads("\n".join(data))
                if kind != "status":
                    raise ValueError(f"event type {kind!r}")
                self.feed_clients.append(status["otlpd"]["feedClients"])
            except (ValueError, KeyError, TypeError):
                self.invalid += 1

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def summary(self):
        return {"status": self.status, "events": self.events, "invalid": self.invalid,
                "times": [round(t, 3) for t in self.times], "feedClients": self.feed_clients,
                "bytes": self.bytes, "error": self.error}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="otlpd's self-telemetry port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", default="/events")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, required=True, help="read for at most this long (SIGTERM ends it sooner)")
    parser.add_argument("--attach-timeout", type=float, default=10, help="seconds for every client to get its first event")
    args = parser.parse_args()
    if args.clients < 1:
        parser.error("--clients must be at least 1")

    stop = False

    def on_signal(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.monotonic()
    deadline = started + args.seconds
    selector = selectors.DefaultSelector()
    clients = []
    for _ in range(args.clients):
        try:
            client = FeedClient(args.host, args.port, args.path)
        except OSError as error:
            for client in clients:
                client.close()
            print(json.dumps({"attached": None, "stopped": time.monotonic(), "clients": [c.summary() for c in clients],
                              "error": f"client {len(clients) + 1} could not connect: {error}"}), flush=True)
            return 1
        clients.append(client)
        selector.register(client.sock, selectors.EVENT_READ, client)
    attached = None
    while not stop:
        now = time.monotonic()
        if now >= deadline:
            break
        if attached is None and now - started > args.attach_timeout:
            break   # reported below: some client never got its first event
        for key, _ in selector.select(timeout=min(0.2, deadline - now)):
            client = key.data
            try:
                data = client.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as error:
                data, client.error = b"", f"recv: {error}"
            now = time.monotonic()
            if not data:
                client.error = client.error or "otlpd closed the connection"
                client.close()
            else:
                client.feed(data, now)
            if client.closed:
                selector.unregister(key.fileobj)
        if attached is None and any(c.error for c in clients):
            break   # one could not subscribe (a 503 when the feed is full, say): the caller gives up at once
        if attached is None and all(c.events for c in clients):
            attached = time.monotonic()
            print(f"attached {attached:.3f}", flush=True)
        if all(c.closed for c in clients):
            break
    stopped = time.monotonic()
    for client in clients:
        client.close()
    print(json.dumps({"attached": attached, "stopped": stopped, "clients": [c.summary() for c in clients]}), flush=True)
    ok = attached is not None and all(c.error is None for c in clients)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
