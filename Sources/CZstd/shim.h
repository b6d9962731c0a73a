#ifndef OTLPD_CZSTD_SHIM_H
#define OTLPD_CZSTD_SHIM_H
#include <zstd.h>
#endif
