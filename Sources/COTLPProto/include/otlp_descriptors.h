// Accessors for the generated descriptors. Swift must never take the address
// of a protobuf-c descriptor itself (a release build may hand protobuf-c a
// stack copy), so it asks C for the address instead.
#ifndef OTLP_DESCRIPTORS_H
#define OTLP_DESCRIPTORS_H

#include <protobuf-c/protobuf-c.h>

const ProtobufCMessageDescriptor *otlp_export_trace_request_descriptor(void);
const ProtobufCMessageDescriptor *otlp_export_metrics_request_descriptor(void);
const ProtobufCMessageDescriptor *otlp_export_logs_request_descriptor(void);
const ProtobufCMessageDescriptor *otlp_export_trace_response_descriptor(void);
const ProtobufCMessageDescriptor *otlp_export_metrics_response_descriptor(void);
const ProtobufCMessageDescriptor *otlp_export_logs_response_descriptor(void);
const ProtobufCMessageDescriptor *otlp_rpc_status_descriptor(void);
const ProtobufCMessageDescriptor *otlp_rpc_retry_info_descriptor(void);

#endif
