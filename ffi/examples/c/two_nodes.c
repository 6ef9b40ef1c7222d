/*
 * Two Moss nodes in one process, talking over loopback through the C ABI.
 *
 * Build (after `cargo build -p moss-ffi`, which writes libmoss.so into the
 * target dir, e.g. target/debug):
 *   cc -std=c11 -Wall -Wextra -I ffi/include ffi/examples/c/two_nodes.c \
 *      -L target/debug -lmoss -o two_nodes
 *   LD_LIBRARY_PATH=target/debug ./two_nodes
 *
 * Node A starts, node B dials A on 127.0.0.1:<A's port from
 * Moss_GetMeshInfo>. A publishes "hello" on "chat"; B's message callback
 * answers "pong" with Moss_Publish from inside the callback (re-entrant
 * call). A, dialled by a stranger and up for `supernode_min_uptime_sec`
 * (1 s here), promotes itself to supernode: event 3 reaches the event
 * callback and `supernode_ready` turns true in its mesh info. Then B stops:
 * A, left without a peer, no longer has the standing a supernode needs and
 * revokes its status: event 4 (its detail names the failed condition), and
 * `supernode_ready` turns false. The event callback prints every event with
 * its name; event 7 (a relayed peer moved to a direct path) needs a pair
 * whose direct path failed and later works, which two nodes dialling each
 * other on one loopback never are: `relay_events.c` shows it, with a
 * supernode and a direct path cut and healed from outside (nftables in a
 * network namespace of its own). Exits 0 once both messages arrived with
 * the right sender ids, A was promoted and then revoked, 1 on any failure
 * or after a bounded wait. MOSS_BACKEND=<auto|uring|mmsg|portable> picks
 * the I/O backend.
 */
#define _POSIX_C_SOURCE 200809L
#include "moss.h"
#include "example_common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static MossHandle node_a;
static MossHandle node_b;
static char key_a[65];
static char key_b[65];
static atomic_int a_got_pong;
static atomic_int b_got_hello;
static atomic_int b_reply_code = 1;
static atomic_int peers_joined;
static atomic_int promoted;
static atomic_int revoked;

static int copy_key(MossHandle h, char out[65]) {
  char *k = Moss_GetPublicKey(h);
  if (k == NULL || strlen(k) != 64) {
    fprintf(stderr, "Moss_GetPublicKey: %s\n", Moss_LastError());
    Moss_Free(k);
    return -1;
  }
  memcpy(out, k, 65);
  Moss_Free(k);
  return 0;
}

static void on_message_a(const char *channel, const uint8_t *sender_id,
                         const uint8_t *data, uint32_t len) {
  char from[65];
  to_hex(sender_id, from);
  if (strcmp(channel, "chat") == 0 && len == 4 && memcmp(data, "pong", 4) == 0 &&
      strcmp(from, key_b) == 0) {
    atomic_store(&a_got_pong, 1);
  }
}

static void on_message_b(const char *channel, const uint8_t *sender_id,
                         const uint8_t *data, uint32_t len) {
  char from[65];
  to_hex(sender_id, from);
  if (strcmp(channel, "chat") == 0 && len == 5 && memcmp(data, "hello", 5) == 0 &&
      strcmp(from, key_a) == 0) {
    atomic_store(&b_got_hello, 1);
    /* Re-entrant: publish from inside the message callback. */
    int rc = Moss_Publish(node_b, "chat", (const uint8_t *)"pong", 4);
    atomic_store(&b_reply_code, rc);
  }
}

static void on_event(int32_t event_type, const char *detail_json) {
  if (event_type == 1) {
    atomic_fetch_add(&peers_joined, 1);
  }
  if (event_type == 3) {
    atomic_fetch_add(&promoted, 1);
  }
  if (event_type == 4 && strstr(detail_json, "\"reason\"") != NULL) {
    atomic_fetch_add(&revoked, 1);
  }
  printf("event %d (%s) %s\n", (int)event_type, event_name(event_type), detail_json);
}

/* 1 if the mesh info says supernode_ready, 0 if not, -1 on error. */
static int supernode_ready(MossHandle h) {
  char *info = Moss_GetMeshInfo(h);
  if (info == NULL) {
    fprintf(stderr, "Moss_GetMeshInfo: %s\n", Moss_LastError());
    return -1;
  }
  int ready = strstr(info, "\"supernode_ready\":true") != NULL;
  Moss_Free(info);
  return ready;
}

static int listen_port(MossHandle h) {
  char *info = Moss_GetMeshInfo(h);
  if (info == NULL) {
    fprintf(stderr, "Moss_GetMeshInfo: %s\n", Moss_LastError());
    return -1;
  }
  int port = -1;
  const char *p = strstr(info, "\"listen_port\":");
  if (p != NULL) {
    port = atoi(p + strlen("\"listen_port\":"));
  }
  printf("mesh info: %s\n", info);
  Moss_Free(info);
  return port;
}

int main(void) {
  printf("%s\n", Moss_Version());
  const char *backend = getenv("MOSS_BACKEND");
  char config[320];
  snprintf(config, sizeof config,
           "{\"trackers\":[],\"lan_discovery_enabled\":false,\"dht_enabled\":false,"
           "\"nat\":{\"supernode_min_uptime_sec\":1},"
           "\"engine\":{\"backend\":\"%s\"}}",
           backend != NULL ? backend : "auto");

  node_a = Moss_Init("c-two-nodes", NULL, config);
  node_b = Moss_Init("c-two-nodes", NULL, config);
  if (node_a <= 0 || node_b <= 0) {
    fprintf(stderr, "Moss_Init: %s\n", Moss_LastError());
    return 1;
  }
  if (copy_key(node_a, key_a) != 0 || copy_key(node_b, key_b) != 0) {
    return 1;
  }
  Moss_SetCallback(node_a, on_message_a);
  Moss_SetCallback(node_b, on_message_b);
  Moss_SetEventCallback(node_a, on_event);
  Moss_SetEventCallback(node_b, on_event);
  if (Moss_Subscribe(node_a, "chat") != MOSS_OK || Moss_Subscribe(node_b, "chat") != MOSS_OK) {
    fprintf(stderr, "Moss_Subscribe: %s\n", Moss_LastError());
    return 1;
  }
  if (Moss_Start(node_a) != MOSS_OK || Moss_Start(node_b) != MOSS_OK) {
    fprintf(stderr, "Moss_Start: %s\n", Moss_LastError());
    return 1;
  }
  int port = listen_port(node_a);
  if (port <= 0) {
    return 1;
  }
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  int rc = Moss_Connect(node_b, addr);
  if (rc != MOSS_OK) {
    fprintf(stderr, "Moss_Connect(%s) = %d: %s\n", addr, rc, Moss_LastError());
    return 1;
  }

  /* Subscriptions travel to the peer asynchronously: publish until B has
   * seen one (bounded: 100 tries, 100 ms apart). */
  for (int i = 0; i < 100 && !atomic_load(&b_got_hello); i++) {
    rc = Moss_Publish(node_a, "chat", (const uint8_t *)"hello", 5);
    if (rc != MOSS_OK && rc != MOSS_ERR_NO_PEERS) {
      fprintf(stderr, "Moss_Publish = %d: %s\n", rc, Moss_LastError());
      return 1;
    }
    sleep_ms(100);
  }
  for (int i = 0; i < 100 && !atomic_load(&a_got_pong); i++) {
    sleep_ms(50);
  }
  /* A re-evaluates the supernode rule every second (bounded: 10 s). */
  for (int i = 0; i < 100 && !atomic_load(&promoted); i++) {
    sleep_ms(100);
  }
  int ready = supernode_ready(node_a);

  /* B leaves: A has no peer, so no standing, and steps down (bounded: 10 s). */
  int ok = 1;
  if (Moss_Stop(node_b) != MOSS_OK) {
    fprintf(stderr, "Moss_Stop(B): %s\n", Moss_LastError());
    ok = 0;
  }
  for (int i = 0; i < 100 && !atomic_load(&revoked); i++) {
    sleep_ms(100);
  }
  int ready_after = supernode_ready(node_a);

  char *stats = Moss_GetNetworkStats(node_a);
  char *nat = Moss_GetNATType(node_a);
  printf("network stats: %s, nat type: %s\n", stats ? stats : "(null)", nat ? nat : "(null)");
  Moss_Free(stats);
  Moss_Free(nat);
  Moss_Free(NULL);

  ok = ok && atomic_load(&b_got_hello) && atomic_load(&a_got_pong) &&
       atomic_load(&b_reply_code) == MOSS_OK && atomic_load(&peers_joined) >= 2 &&
       atomic_load(&promoted) >= 1 && ready == 1 && atomic_load(&revoked) >= 1 && ready_after == 0;
  if (Moss_Stop(node_a) != MOSS_OK) {
    fprintf(stderr, "Moss_Stop: %s\n", Moss_LastError());
    ok = 0;
  }
  if (Moss_Stop(node_a) != MOSS_ERR_INVALID_HANDLE) {
    fprintf(stderr, "second Moss_Stop did not return MOSS_ERR_INVALID_HANDLE\n");
    ok = 0;
  }
  printf("hello delivered: %d, pong delivered: %d, reply code: %d, peer joins: %d, "
         "supernode promoted: %d, supernode_ready: %d, revoked: %d, supernode_ready after: %d\n",
         atomic_load(&b_got_hello), atomic_load(&a_got_pong), atomic_load(&b_reply_code),
         atomic_load(&peers_joined), atomic_load(&promoted), ready, atomic_load(&revoked),
         ready_after);
  printf(ok ? "OK\n" : "FAILED\n");
  return ok ? 0 : 1;
}
