#ifndef OTLPD_CISAL_SHIM_H
#define OTLPD_CISAL_SHIM_H
#include <isa-l/igzip_lib.h>
#include <isa-l/crc.h>

/// ISA-L's recommended work buffer for level 1 (a macro Swift cannot import).
static inline unsigned otlpd_isal_level1_buffer_size(void) { return ISAL_DEF_LVL1_DEFAULT; }
#endif
