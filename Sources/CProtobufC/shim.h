#ifndef OTLPD_CPROTOBUFC_SHIM_H
#define OTLPD_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
