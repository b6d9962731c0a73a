#ifndef OTLPD_CLIBCRYPTO_SHIM_H
#define OTLPD_CLIBCRYPTO_SHIM_H
#include <openssl/sha.h>
#endif
