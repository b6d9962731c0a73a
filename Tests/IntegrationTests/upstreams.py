"""Upstreams for the forwarding tests, built on real servers we did not
write: a grpcio server that counts what arrives and answers as a test
scripts it, an http.server that answers HTTP/1.1, and a TCP relay that
reads the HTTP/2 frames passing through it (to see the wire's gRPC
messages: compressed or not, and how).
"""
from __future__ import annotations

import concurrent.futures
import http.server
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from otlpd_harness import GRPC_PATHS, RESPONSE_TYPES
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

REQUEST_TYPES = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}


@dataclass
class Refusal:
    """How the sink answers one call instead of OK."""
    code: grpc.StatusCode
    message: str = "refused by the test sink"
    retry_delay: float | None = None


@dataclass
class Arrival:
    signal: str
    request: object
    metadata: dict
    time: float
    deadline: float | None
    peer: str


class GrpcSink:
    """A grpcio OTLP server. `script` is a list of answers for the first
    calls (None for OK, a Refusal, or a callable returning either); later
    calls get `default`. Every call is recorded in `calls`; those answered
    OK are in `accepted`."""

    def __init__(self, script: list | None = None, default: Refusal | None = None, partial: tuple[int, str] | None = None,
                 delay: float = 0.0, port: int = 0, host: str = "127.0.0.1"):
        self.script = list(script or [])
        self.default = default
        self.partial = partial
        self.delay = delay
        self.calls: list[Arrival] = []
        self.accepted: list[Arrival] = []
        self.lock = threading.Lock()
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
        handlers = {}
        for signal_name, path in GRPC_PATHS.items():
            service, method = path.lstrip("/").split("/")
            handler = grpc.unary_unary_rpc_method_handler(
                self._handler(signal_name), request_deserializer=REQUEST_TYPES[signal_name].FromString,
                response_serializer=lambda m: m.SerializeToString())
            self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {method: handler})])
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        self.host = host
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def _handler(self, signal_name: str) -> Callable:
        def handle(request, context: grpc.ServicerContext):
            remaining = context.time_remaining()
            arrival = Arrival(signal_name, request, dict(context.invocation_metadata()), time.monotonic(),
                              None if remaining is None else time.monotonic() + remaining, context.peer())
            with self.lock:
                self.calls.append(arrival)
                answer = self.script.pop(0) if self.script else self.default
            if callable(answer):
                answer = answer()
            if self.delay:
                time.sleep(self.delay)
            if isinstance(answer, Refusal):
                status = status_pb2.Status(code=answer.code.value[0], message=answer.message)
                if answer.retry_delay is not None:
                    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
                        seconds=int(answer.retry_delay), nanos=int((answer.retry_delay % 1) * 1e9)))
                    detail = any_pb2.Any()
                    detail.Pack(info)
                    status.details.append(detail)
                context.abort_with_status(_RichStatus(answer.code, answer.message, status))
            with self.lock:
                self.accepted.append(arrival)
            response = RESPONSE_TYPES[signal_name]()
            if self.partial:
                rejected, message = self.partial
                field_name = {"traces": "rejected_spans", "metrics": "rejected_data_points", "logs": "rejected_log_records"}[signal_name]
                setattr(response.partial_success, field_name, rejected)
                response.partial_success.error_message = message
            return response
        return handle

    def span_ids(self) -> list[str]:
        with self.lock:
            return [span.span_id.hex() for arrival in self.accepted if arrival.signal == "traces"
                    for rs in arrival.request.resource_spans for ss in rs.scope_spans for span in ss.spans]

    def stop(self):
        self.server.stop(grace=None)


class _RichStatus(grpc.Status):
    def __init__(self, code, details, status: status_pb2.Status):
        self.code = code
        self.details = details
        self.trailing_metadata = (("grpc-status-details-bin", status.SerializeToString()),)


class HTTP1Server:
    """An HTTP/1.1-only upstream (an OTLP/HTTP port) and what it answers a
    client that opens with the HTTP/2 preface. `kind`:
    - "status-line": "HTTP/1.1 400 Bad Request", as Go's net/http (the
      Collector's OTLP/HTTP receiver) answers a request line it cannot serve;
    - "http.server": Python's http.server, which answers a bare HTML page."""

    def __init__(self, kind: str = "status-line"):
        self.kind = kind
        if kind == "http.server":
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    self.send_response(404)
                    self.end_headers()

                def log_message(self, *args):
                    pass

            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self.port = self.server.server_address[1]
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
        else:
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.port = self.listener.getsockname()[1]
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                   b"Connection: close\r\n\r\n400 Bad Request")
                connection.shutdown(socket.SHUT_WR)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.kind == "http.server":
            self.server.shutdown()
            self.server.server_close()
        else:
            self.listener.close()


@dataclass
class WireMessage:
    """The start of one gRPC message as it crossed the wire."""
    compressed: bool
    length: int
    head: bytes


class WireTap:
    """A TCP relay from a local port to `target`, reading the client's
    HTTP/2 frames as they pass: each DATA frame that starts a gRPC message
    is recorded (its flag, its length, its first bytes)."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.messages: list[WireMessage] = []
        self.bytes_from_client = 0
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, destination: socket.socket, from_client: bool):
        buffer = b""
        started = set()
        preface_seen = False
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                destination.sendall(data)
                if not from_client:
                    continue
                with self.lock:
                    self.bytes_from_client += len(data)
                buffer += data
                if not preface_seen:
                    if len(buffer) < len(self.PREFACE):
                        continue
                    buffer = buffer[len(self.PREFACE):]
                    preface_seen = True
                while len(buffer) >= 9:
                    length = int.from_bytes(buffer[:3], "big")
                    if len(buffer) < 9 + length:
                        break
                    frame_type, stream = buffer[3], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                    payload = buffer[9:9 + length]
                    if frame_type == 0 and stream not in started and len(payload) >= 5:
                        padded = buffer[4] & 0x8
                        body = payload[1:] if padded else payload
                        started.add(stream)
                        flag, size = struct.unpack(">BI", body[:5])
                        with self.lock:
                            self.messages.append(WireMessage(flag == 1, size, bytes(body[5:13])))
                    buffer = buffer[9 + length:]
        except OSError:
            pass
        finally:
            for s in (source, destination):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.stopped = True
        self.listener.close()


def free_port() -> int:
    """A port nothing listens on (for an upstream that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class HTTPAnswer:
    """How the OTLP/HTTP sink answers one request instead of 200."""
    status: int
    message: str = "refused by the test sink"
    retry_after: str | None = None


@dataclass
class HTTPArrival:
    path: str
    headers: dict
    body: bytes          # as sent (maybe compressed)
    request: object      # decoded Export*ServiceRequest, when it decoded
    client: tuple
    time: float


class HTTPSink:
    """Python's http.server speaking OTLP/HTTP (HTTP/1.1 keep-alive):
    records each POST, decodes it (gzip or not, protobuf or JSON), and
    answers 200 or what `script` says for the first requests."""

    def __init__(self, script: list | None = None, partial: tuple[int, str] | None = None, tls: tuple | None = None, port: int = 0):
        import gzip as gzip_module
        from google.protobuf import json_format
        sink = self
        self.script = list(script or [])
        self.partial = partial
        self.arrivals: list[HTTPArrival] = []
        self.accepted: list[HTTPArrival] = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                raw = gzip_module.decompress(body) if self.headers.get("content-encoding") == "gzip" else body
                signal_name = self.path.rsplit("/", 1)[-1]
                request = None
                if signal_name in REQUEST_TYPES:
                    message = REQUEST_TYPES[signal_name]()
                    try:
                        if self.headers.get("content-type") == "application/json":
                            json_format.Parse(raw, message)
                        else:
                            message.ParseFromString(raw)
                        request = message
                    except Exception:
                        pass
                arrival = HTTPArrival(self.path, {k.lower(): v for k, v in self.headers.items()}, body, request,
                                      self.client_address, time.monotonic())
                with sink.lock:
                    sink.arrivals.append(arrival)
                    answer = sink.script.pop(0) if sink.script else None
                if isinstance(answer, HTTPAnswer):
                    payload = status_pb2.Status(code=3 if answer.status == 400 else 14, message=answer.message).SerializeToString()
                    self.send_response(answer.status)
                    self.send_header("content-type", "application/x-protobuf")
                    if answer.retry_after:
                        self.send_header("retry-after", answer.retry_after)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                with sink.lock:
                    sink.accepted.append(arrival)
                response = RESPONSE_TYPES.get(signal_name, RESPONSE_TYPES["traces"])()
                if sink.partial:
                    field_name = {"traces": "rejected_spans", "metrics": "rejected_data_points",
                                  "logs": "rejected_log_records"}.get(signal_name, "rejected_spans")
                    setattr(response.partial_success, field_name, sink.partial[0])
                    response.partial_success.error_message = sink.partial[1]
                payload = response.SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.scheme = "http"
        if tls:
            # HTTPS that offers no ALPN: an HTTP/1.1-only upstream.
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://localhost:{self.port}" if self.scheme == "https" else f"http://127.0.0.1:{self.port}"

    def span_ids(self) -> list[str]:
        with self.lock:
            return [span.span_id.hex() for arrival in self.accepted if arrival.request is not None and arrival.path.endswith("traces")
                    for rs in arrival.request.resource_spans for ss in rs.scope_spans for span in ss.spans]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
