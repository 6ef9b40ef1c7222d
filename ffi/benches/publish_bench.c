/*
 * Benchmark (not a test): Moss_Publish call latency and callback delivery
 * rate between two nodes on loopback, through the C ABI.
 *
 *   bash ffi/benches/run.sh            # release build + run, prints figures
 *
 * Phase 1 (call latency): 100 rounds of 1000 Moss_Publish calls (64-byte
 * payload), each call timed with clock_gettime(CLOCK_MONOTONIC); between
 * rounds the publisher waits until the receiver's callback has seen the
 * round, so the engine's queue never fills and every timed call is a real
 * hand-off (no MOSS_ERR_OUT_OF_MEMORY fast-fail). Reports median, p90, p99,
 * p99.9 and max, and the timer's own overhead.
 *
 * Phase 2 (sustained delivery rate): publish 200000 messages keeping at
 * most 4096 in flight (published, not yet seen by the receiver's callback);
 * rate = delivered / (time of last delivery - time of first publish).
 *
 * Phase 3 (burst): publish 200000 messages as fast as the engine accepts
 * them (retrying on MOSS_ERR_OUT_OF_MEMORY back-pressure); report how many
 * reached the callback and how many the bounded queues dropped (event 100).
 *
 * MOSS_BACKEND=<auto|uring|mmsg|portable> picks the engine backend.
 */
#define _POSIX_C_SOURCE 200809L
#include "moss.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_ullong delivered;
static atomic_ullong last_delivery_ns;

static unsigned long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static void on_message(const char *channel, const uint8_t *sender, const uint8_t *data,
                       uint32_t len) {
  (void)channel;
  (void)sender;
  (void)data;
  (void)len;
  atomic_fetch_add(&delivered, 1);
  atomic_store(&last_delivery_ns, now_ns());
}

static atomic_ullong overflow_dropped;

static void on_event(int32_t event_type, const char *detail) {
  if (event_type == 100) {
    const char *p = strstr(detail, "\"dropped\":");
    if (p) atomic_fetch_add(&overflow_dropped, strtoull(p + 10, NULL, 10));
  }
}

static int cmp_u64(const void *a, const void *b) {
  unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
  return x < y ? -1 : x > y;
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
  nanosleep(&ts, NULL);
}

static int wait_delivered(unsigned long long target, long timeout_ms) {
  for (long i = 0; i < timeout_ms * 10; i++) {
    if (atomic_load(&delivered) >= target) return 1;
    sleep_us(100);
  }
  return 0;
}

int main(void) {
  const char *backend = getenv("MOSS_BACKEND");
  char cfg[512];
  snprintf(cfg, sizeof cfg,
           "{\"trackers\":[],\"lan_discovery_enabled\":false,\"dht_enabled\":false,"
           "\"security\":{\"rate_limit_burst\":1000000000,\"rate_limit_sustained\":1000000000},"
           "\"engine\":{\"backend\":\"%s\"}}",
           backend ? backend : "auto");
  MossHandle a = Moss_Init("bench", NULL, cfg), b = Moss_Init("bench", NULL, cfg);
  if (a <= 0 || b <= 0) {
    fprintf(stderr, "init: %s\n", Moss_LastError());
    return 1;
  }
  Moss_SetCallback(b, on_message);
  Moss_SetEventCallback(b, on_event);
  Moss_Subscribe(a, "bench");
  Moss_Subscribe(b, "bench");
  if (Moss_Start(a) || Moss_Start(b)) {
    fprintf(stderr, "start: %s\n", Moss_LastError());
    return 1;
  }
  char *info = Moss_GetMeshInfo(a);
  const char *p = info ? strstr(info, "\"listen_port\":") : NULL;
  int port = p ? atoi(p + 14) : 0;
  const char *bk = info ? strstr(info, "\"backend\":\"") : NULL;
  char backend_name[32] = "?";
  if (bk) sscanf(bk + 11, "%31[^\"]", backend_name);
  Moss_Free(info);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  if (Moss_Connect(b, addr) != MOSS_OK) {
    fprintf(stderr, "connect: %s\n", Moss_LastError());
    return 1;
  }
  uint8_t payload[64];
  memset(payload, 0xab, sizeof payload);
  /* Warm up until the subscription is known on both sides. */
  for (int i = 0; i < 200 && atomic_load(&delivered) == 0; i++) {
    Moss_Publish(a, "bench", payload, sizeof payload);
    sleep_us(20000);
  }
  if (atomic_load(&delivered) == 0) {
    fprintf(stderr, "no delivery during warm-up\n");
    return 1;
  }

  /* Timer overhead. */
  enum { ROUNDS = 100, PER_ROUND = 1000, N = ROUNDS * PER_ROUND };
  static unsigned long long lat[N];
  unsigned long long t_over = 0;
  for (int i = 0; i < 100000; i++) {
    unsigned long long t0 = now_ns();
    unsigned long long t1 = now_ns();
    t_over += t1 - t0;
  }
  double timer_ns = (double)t_over / 100000.0;

  /* Phase 1: call latency, unsaturated. */
  int n = 0, not_ok = 0;
  for (int r = 0; r < ROUNDS; r++) {
    unsigned long long base = atomic_load(&delivered);
    for (int i = 0; i < PER_ROUND; i++) {
      unsigned long long t0 = now_ns();
      int rc = Moss_Publish(a, "bench", payload, sizeof payload);
      unsigned long long t1 = now_ns();
      if (rc == MOSS_OK) lat[n++] = t1 - t0;
      else not_ok++;
    }
    wait_delivered(base + PER_ROUND, 2000);
  }
  qsort(lat, (size_t)n, sizeof lat[0], cmp_u64);
  printf("backend: %s\n", backend_name);
  printf("publish call latency (64 B, %d timed calls, %d not OK): median %llu ns, p90 %llu ns, "
         "p99 %llu ns, p99.9 %llu ns, max %llu ns (timer overhead ~%.0f ns, not subtracted)\n",
         n, not_ok, lat[n / 2], lat[n * 90 / 100], lat[n * 99 / 100], lat[n * 999 / 1000],
         lat[n - 1], timer_ns);

  /* Phase 2: sustained delivery rate with a bounded window of messages in
   * flight (published but not yet seen by the callback). */
  const unsigned long long M = 200000, WINDOW = 4096;
  sleep_us(200000);
  unsigned long long base = atomic_load(&delivered);
  unsigned long long sent = 0, busy = 0;
  unsigned long long t_start = now_ns();
  unsigned long long deadline = t_start + 60ull * 1000000000ull;
  /* Messages lost on the way would hold the window shut forever: when no
   * delivery arrives for one second, the ones in flight count as lost. */
  unsigned long long lost = 0, last_progress = t_start, last_seen = base;
  while (sent < M && now_ns() < deadline) {
    unsigned long long seen = atomic_load(&delivered);
    if (seen != last_seen) {
      last_seen = seen;
      last_progress = now_ns();
    }
    if (sent - (seen - base) - lost >= WINDOW) {
      if (now_ns() - last_progress > 1000000000ull) {
        lost = sent - (seen - base);
        last_progress = now_ns();
      }
      sched_yield();
      continue;
    }
    int rc = Moss_Publish(a, "bench", payload, sizeof payload);
    if (rc == MOSS_OK) sent++;
    else if (rc == MOSS_ERR_OUT_OF_MEMORY) { busy++; sched_yield(); }
    else { fprintf(stderr, "publish %d: %s\n", rc, Moss_LastError()); return 1; }
  }
  unsigned long long wait_end = now_ns() + 2000000000ull;
  while (atomic_load(&delivered) - base < sent && now_ns() < wait_end) sched_yield();
  unsigned long long got = atomic_load(&delivered) - base;
  double secs = (double)(atomic_load(&last_delivery_ns) - t_start) / 1e9;
  printf("sustained delivery (window %llu): %llu of %llu messages (64 B) reached the callback in "
         "%.3f s = %.0f msg/s, %llu back-pressure retries, %llu written off as lost after a 1 s "
         "stall\n",
         WINDOW, got, sent, secs, (double)got / secs, busy, lost);

  /* Phase 3: unpaced burst; what does not fit the bounded queues is dropped
   * and reported as event 100. */
  sleep_us(500000);
  base = atomic_load(&delivered);
  unsigned long long ov0 = atomic_load(&overflow_dropped);
  sent = 0;
  busy = 0;
  t_start = now_ns();
  while (sent < M) {
    int rc = Moss_Publish(a, "bench", payload, sizeof payload);
    if (rc == MOSS_OK) sent++;
    else if (rc == MOSS_ERR_OUT_OF_MEMORY) { busy++; sched_yield(); }
    else { fprintf(stderr, "publish %d: %s\n", rc, Moss_LastError()); return 1; }
  }
  unsigned long long t_sent = now_ns();
  /* The receiving engine works through its backlog (it verifies every
   * message's signature) and hands messages over in large batches; wait
   * until each one was delivered or reported dropped (bounded: 60 s). */
  unsigned long long t_done = 0;
  for (int i = 0; i < 600; i++) {
    unsigned long long d = atomic_load(&delivered) - base;
    unsigned long long dr = atomic_load(&overflow_dropped) - ov0;
    if (d + dr >= sent) { t_done = now_ns(); break; }
    sleep_us(100000);
  }
  got = atomic_load(&delivered) - base;
  printf("burst: %llu publishes accepted in %.3f s (%.0f calls/s, %llu back-pressure retries); "
         "%llu delivered to the callback, %llu reported dropped (event 100), all accounted for "
         "after %.3f s%s\n",
         sent, (double)(t_sent - t_start) / 1e9, (double)sent / ((double)(t_sent - t_start) / 1e9),
         busy, got, atomic_load(&overflow_dropped) - ov0,
         t_done ? (double)(t_done - t_start) / 1e9 : 60.0, t_done ? "" : " (NOT all: gave up)");
  Moss_Stop(a);
  Moss_Stop(b);
  return 0;
}
