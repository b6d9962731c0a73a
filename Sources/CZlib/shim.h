#ifndef OTLPD_CZLIB_SHIM_H
#define OTLPD_CZLIB_SHIM_H
#include <zlib.h>

// zlib's init functions are macros that pass the library version and struct
// size: Swift cannot import them, so they become functions here.
static inline int otlpd_inflate_init(z_stream *stream, int window_bits) {
  return inflateInit2(stream, window_bits);
}
static inline int otlpd_deflate_init(z_stream *stream, int level, int window_bits) {
  return deflateInit2(stream, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY);
}
#endif
