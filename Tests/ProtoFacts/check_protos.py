#!/usr/bin/env python3
"""Checks otlpd's own .proto files against the protocol's facts as the PyPI
opentelemetry-proto package carries them: every message, field name,
number, type, repeatedness, message/enum type and oneof, and every enum
value. otlpd's files are proto2 (for presence) where upstream is proto3:
labels are compared as repeated or not, and proto3's synthetic oneofs
(optional fields) are ignored. Extra fields upstream (a newer protocol)
are reported too, so an upgrade is a visible decision.

Run: python check_protos.py  (exit 0 when they agree)
"""
import os
import sys
import tempfile

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "Sources", "COTLPProto", "proto")
CHECKED_FILES = [
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/trace/v1/trace.proto",
    "opentelemetry/proto/metrics/v1/metrics.proto",
    "opentelemetry/proto/logs/v1/logs.proto",
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
    "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
]


def ours():
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "set.pb")
        args = ["protoc", f"--proto_path={PROTO_ROOT}", f"--descriptor_set_out={out}", "--include_imports"] + CHECKED_FILES
        if protoc.main(args) != 0:
            sys.exit("protoc could not read otlpd's .proto files")
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    return {f.name: f for f in fds.file}


def upstream():
    result = {}
    for module in (trace_service_pb2, metrics_service_pb2, logs_service_pb2):
        pending = [module.DESCRIPTOR]
        while pending:
            file = pending.pop()
            if file.name in result:
                continue
            proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(proto)
            result[file.name] = proto
            pending.extend(file.dependencies)
    return result


def messages(file):
    def walk(prefix, items):
        for message in items:
            name = f"{prefix}.{message.name}"
            yield name, message
            yield from walk(name, message.nested_type)
    yield from walk(file.package, file.message_type)


def enums(file):
    def walk(prefix, message_items, enum_items):
        for enum in enum_items:
            yield f"{prefix}.{enum.name}", enum
        for message in message_items:
            yield from walk(f"{prefix}.{message.name}", message.nested_type, message.enum_type)
    yield from walk(file.package, file.message_type, file.enum_type)


def field_facts(message):
    real_oneofs = {i: o.name for i, o in enumerate(message.oneof_decl) if not o.name.startswith("_")}
    facts = {}
    for field in message.field:
        oneof = real_oneofs.get(field.oneof_index) if field.HasField("oneof_index") else None
        facts[field.number] = (
            field.name,
            descriptor_pb2.FieldDescriptorProto.Type.Name(field.type),
            field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
            field.type_name,
            oneof,
        )
    return facts


def main():
    mine, theirs = ours(), upstream()
    problems = []
    for name in CHECKED_FILES:
        if name not in theirs:
            problems.append(f"{name}: not in the PyPI package")
            continue
        our_messages = dict(messages(mine[name]))
        for full_name, message in messages(theirs[name]):
            if full_name not in our_messages:
                problems.append(f"{full_name}: message missing")
                continue
            our_fields, their_fields = field_facts(our_messages[full_name]), field_facts(message)
            for number in sorted(set(our_fields) | set(their_fields)):
                if our_fields.get(number) != their_fields.get(number):
                    problems.append(f"{full_name} field {number}: ours {our_fields.get(number)} upstream {their_fields.get(number)}")
        for full_name in our_messages:
            if full_name not in dict(messages(theirs[name])):
                problems.append(f"{full_name}: message not upstream")
        our_enums = {n: [(v.name, v.number) for v in e.value] for n, e in enums(mine[name])}
        for full_name, enum in enums(theirs[name]):
            values = [(v.name, v.number) for v in enum.value]
            if our_enums.get(full_name) != values:
                problems.append(f"{full_name}: enum ours {our_enums.get(full_name)} upstream {values}")
        for service in theirs[name].service:
            ours_services = {s.name: [(m.name, m.input_type, m.output_type) for m in s.method] for s in mine[name].service}
            theirs_methods = [(m.name, m.input_type, m.output_type) for m in service.method]
            if ours_services.get(service.name) != theirs_methods:
                problems.append(f"{name} service {service.name}: ours {ours_services.get(service.name)} upstream {theirs_methods}")
    if problems:
        print("otlpd's .proto files differ from the protocol's facts (PyPI opentelemetry-proto):")
        for problem in problems:
            print("  " + problem)
        sys.exit(1)
    print(f"otlpd's .proto files match opentelemetry-proto ({len(CHECKED_FILES)} files)")


if __name__ == "__main__":
    main()
