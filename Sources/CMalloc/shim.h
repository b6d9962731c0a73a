#ifndef OTLPD_CMALLOC_SHIM_H
#define OTLPD_CMALLOC_SHIM_H
#include <malloc.h>
#endif
