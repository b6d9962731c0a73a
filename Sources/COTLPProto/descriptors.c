#include "otlp_descriptors.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "google/rpc/error_details.pb-c.h"

const ProtobufCMessageDescriptor *otlp_export_trace_request_descriptor(void) {
  return &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
}
const ProtobufCMessageDescriptor *otlp_export_metrics_request_descriptor(void) {
  return &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor;
}
const ProtobufCMessageDescriptor *otlp_export_logs_request_descriptor(void) {
  return &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor;
}
const ProtobufCMessageDescriptor *otlp_export_trace_response_descriptor(void) {
  return &opentelemetry__proto__collector__trace__v1__export_trace_service_response__descriptor;
}
const ProtobufCMessageDescriptor *otlp_export_metrics_response_descriptor(void) {
  return &opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__descriptor;
}
const ProtobufCMessageDescriptor *otlp_export_logs_response_descriptor(void) {
  return &opentelemetry__proto__collector__logs__v1__export_logs_service_response__descriptor;
}
const ProtobufCMessageDescriptor *otlp_rpc_status_descriptor(void) {
  return &google__rpc__status__descriptor;
}
const ProtobufCMessageDescriptor *otlp_rpc_retry_info_descriptor(void) {
  return &google__rpc__retry_info__descriptor;
}
