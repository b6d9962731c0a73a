#ifndef OTLPD_CPCRE2_SHIM_H
#define OTLPD_CPCRE2_SHIM_H
// The 8-bit library: Swift calls the *_8 names, since the unsuffixed ones are macros.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

// PCRE2_UNSET is a cast macro, which Swift does not import.
static inline PCRE2_SIZE otlpd_pcre2_unset(void) { return PCRE2_UNSET; }
#endif
