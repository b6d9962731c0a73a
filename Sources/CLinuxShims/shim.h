#ifndef OTLPD_CLINUXSHIMS_SHIM_H
#define OTLPD_CLINUXSHIMS_SHIM_H
// glibc calls Swift's Glibc module does not expose: mallopt (malloc.h) and
// the affinity mask (_GNU_SOURCE, with CPU_COUNT a macro).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <sched.h>

/// CPUs in this process's affinity mask, or -1.
static inline int otlpd_affinity_cpu_count(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
  return CPU_COUNT(&set);
}
#endif
