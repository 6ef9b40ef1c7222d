/*
 * Helpers the C examples share: a sleep in milliseconds, a peer id in hex
 * and the names of the C ABI event ids. Include it after defining _POSIX_C_SOURCE 200809L
 * (for nanosleep).
 */
#ifndef MOSS_EXAMPLE_COMMON_H
#define MOSS_EXAMPLE_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Sleeps `ms` milliseconds. */
static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Writes the 32-byte peer id `id` as 64 hex digits and a NUL. */
static inline void to_hex(const uint8_t *id, char out[65]) {
  for (int i = 0; i < 32; i++) {
    snprintf(out + 2 * i, 3, "%02x", id[i]);
  }
}

/* The C ABI event ids (MOSS.md, "C ABI"), 100 = host queue overflow. */
static inline const char *event_name(int32_t event_type) {
  switch (event_type) {
  case 1:
    return "peer joined";
  case 2:
    return "peer left";
  case 3:
    return "supernode promoted";
  case 4:
    return "supernode revoked";
  case 5:
    return "tracker announce";
  case 6:
    return "tracker failure";
  case 7:
    return "relay migrated to a direct path";
  case 100:
    return "host queue overflow";
  default:
    return "unknown";
  }
}

#endif
