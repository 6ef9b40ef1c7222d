/*
 * Three Moss nodes in one process, relayed and then direct, through the
 * C ABI: events 3 (supernode promoted), 7 (a relayed peer moved to a direct
 * path) and 4 (supernode revoked) reach the event callbacks, in that order.
 *
 * Build (after `cargo build -p moss-ffi`):
 *   cc -std=c11 -Wall -Wextra -I ffi/include ffi/examples/c/relay_events.c \
 *      -L target/debug -lmoss -o relay_events
 *
 * It needs the direct UDP path between A and B cut from outside while S
 * reaches both, and healed once the program says so. As root, in a network
 * namespace of its own (ports S A B, default 41001 41002 41003):
 *   unshare -n sh -c 'ip link set lo up &&
 *     nft add table inet cut &&
 *     nft add chain inet cut input "{ type filter hook input priority 0; }" &&
 *     nft add rule inet cut input udp sport 41002 udp dport 41003 drop &&
 *     nft add rule inet cut input udp sport 41003 udp dport 41002 drop &&
 *     LD_LIBRARY_PATH=target/debug exec ./relay_events 41001 41002 41003'
 * and, when it prints "RELAYED", from another shell:
 *   nsenter -t <pid of relay_events> -n nft delete table inet cut
 * (`ffi/tests/c_relay_events.rs` does exactly this.)
 *
 * S, with `supernode_min_uptime_sec` 1, is the supernode: A and B dial it,
 * and once it is up that long and dialled by strangers it promotes itself
 * (event 3 at S). A then dials B directly: the dial times out (the path is
 * cut), and a dial nobody answered makes A ask a supernode both are
 * connected to, S, for a relay session to the peer at that address. S
 * relays; A's and B's mesh info show each other `relayed` through S, and
 * a message on "chat" goes each way. The program prints RELAYED and waits.
 * The ends probe each other's direct address every 2 s; once the cut is
 * removed a probe gets through, the session moves to the direct path
 * without the peer leaving, and event 7 (its detail: the peer, the relay
 * path it left, the direct address) reaches the event callback of A or B,
 * or both; a message goes each way again, direct. Then A and B stop: S,
 * left without a peer, steps down (event 4, its detail names the failed
 * condition). The TCP carrier is off, so that the direct path is the UDP
 * one the cut drops. Exits 0 if S was promoted, A was relayed to B, both
 * messages arrived both ways with the right sender ids, event 7 came only
 * after RELAYED and named the right peers, A's path to B became direct, no
 * event 2 between A and B came while both ran, and S revoked after event
 * 7; 1 on any failure or after a bounded wait.
 * MOSS_BACKEND=<auto|uring|mmsg|portable> picks the I/O backend.
 */
#define _POSIX_C_SOURCE 200809L
#include "moss.h"
#include "example_common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S, A, B, NODES };

static const char *const names[NODES] = {"S", "A", "B"};
static MossHandle nodes[NODES];
static char keys[NODES][65];
static int ports[NODES] = {41001, 41002, 41003};

/* Events of all nodes are numbered in the order they reach a callback. */
static atomic_int seq;
/* Sequence number of the first event 3 at S, 7 at A or B, 4 at S (0: none). */
static atomic_int promoted_at;
static atomic_int migrated_at;
static atomic_int revoked_at;
/* Set just before RELAYED is printed: an event 7 before it is an error. */
static atomic_int healing;
static atomic_int early_migrations;
/* Event 7 whose detail does not name the peer, the relay or the address. */
static atomic_int bad_migrations;
/* Set once A and B are being stopped. */
static atomic_int stopping;
/* Event 2 between A and B while both ran. */
static atomic_int ends_left;
/* got[n][phase]: end n received the other end's message of `phase`
 * (0: "relayed", sent through S; 1: "direct", sent after event 7). */
static const char *const phases[2] = {"relayed", "direct"};
static atomic_int got[NODES][2];

/* 1 if `json` contains `"<field>":"<prefix>` (a string field starting with
 * `prefix`), else 0. */
static int has_field(const char *json, const char *field, const char *prefix) {
  char want[160];
  snprintf(want, sizeof want, "\"%s\":\"%s", field, prefix);
  return strstr(json, want) != NULL;
}

/* Event 7 at end `me` (A or B): the detail names the other end, the relay
 * path through S it left, and the other end's direct address. */
static int migration_ok(int me, const char *detail) {
  int peer = me == A ? B : A;
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d\"", ports[peer]);
  char relay[80];
  snprintf(relay, sizeof relay, "relay:%s", keys[S]);
  return has_field(detail, "peer_id", keys[peer]) && has_field(detail, "from", relay) &&
         has_field(detail, "addr", addr);
}

/* Records the first occurrence of an event in `slot`. */
static void first(atomic_int *slot, int n) {
  int none = 0;
  atomic_compare_exchange_strong(slot, &none, n);
}

static void on_event(int me, int32_t event_type, const char *detail_json) {
  int n = atomic_fetch_add(&seq, 1) + 1;
  if (me == S && event_type == 3) {
    first(&promoted_at, n);
  }
  if (me == S && event_type == 4 && strstr(detail_json, "\"reason\"") != NULL) {
    first(&revoked_at, n);
  }
  if (me != S && event_type == 7) {
    if (!atomic_load(&healing)) {
      atomic_fetch_add(&early_migrations, 1);
    } else if (!migration_ok(me, detail_json)) {
      atomic_fetch_add(&bad_migrations, 1);
    } else {
      first(&migrated_at, n);
    }
  }
  if (me != S && event_type == 2 && !atomic_load(&stopping) &&
      has_field(detail_json, "peer_id", keys[me == A ? B : A])) {
    atomic_fetch_add(&ends_left, 1);
  }
  printf("%s: event %d (%s) %s\n", names[me], (int)event_type, event_name(event_type),
         detail_json);
}

/* The callbacks take no handle: one function per node names the node. */
static void on_event_s(int32_t t, const char *d) { on_event(S, t, d); }
static void on_event_a(int32_t t, const char *d) { on_event(A, t, d); }
static void on_event_b(int32_t t, const char *d) { on_event(B, t, d); }

/* A message at end `me` (A or B): notes a phase's message from the other. */
static void on_message(int me, const char *channel, const uint8_t *sender_id,
                       const uint8_t *data, uint32_t len) {
  char from[65];
  to_hex(sender_id, from);
  if (strcmp(channel, "chat") != 0 || strcmp(from, keys[me == A ? B : A]) != 0) {
    return;
  }
  for (int ph = 0; ph < 2; ph++) {
    if (len == strlen(phases[ph]) && memcmp(data, phases[ph], len) == 0) {
      atomic_store(&got[me][ph], 1);
    }
  }
}

static void on_message_a(const char *c, const uint8_t *s, const uint8_t *d, uint32_t l) {
  on_message(A, c, s, d, l);
}
static void on_message_b(const char *c, const uint8_t *s, const uint8_t *d, uint32_t l) {
  on_message(B, c, s, d, l);
}

/* A and B publish the message of `phase` on "chat" until each has the
 * other's (subscriptions travel asynchronously; bounded: 100 rounds,
 * 100 ms apart). 1 when both arrived. */
static int exchange(int phase) {
  const char *msg = phases[phase];
  for (int i = 0; i < 100 && !(atomic_load(&got[A][phase]) && atomic_load(&got[B][phase]));
       i++) {
    for (int n = A; n <= B; n++) {
      if (atomic_load(&got[n == A ? B : A][phase])) {
        continue;
      }
      int rc = Moss_Publish(nodes[n], "chat", (const uint8_t *)msg, (uint32_t)strlen(msg));
      if (rc != MOSS_OK && rc != MOSS_ERR_NO_PEERS) {
        fprintf(stderr, "Moss_Publish(%s) = %d: %s\n", names[n], rc, Moss_LastError());
        return 0;
      }
    }
    sleep_ms(100);
  }
  int ok = atomic_load(&got[A][phase]) && atomic_load(&got[B][phase]);
  printf("\"%s\" delivered both ways: %d\n", msg, ok);
  return ok;
}

/* Node `n`'s mesh info (Moss-owned: release with Moss_Free), or NULL. */
static char *mesh_info(int n) {
  char *info = Moss_GetMeshInfo(nodes[n]);
  if (info == NULL) {
    fprintf(stderr, "Moss_GetMeshInfo(%s): %s\n", names[n], Moss_LastError());
  }
  return info;
}

/* 1 if node `n`'s mesh info contains `want` and `also` (unless NULL) and
 * does not contain `unwanted` (unless NULL). */
static int info_matches(int n, const char *want, const char *also, const char *unwanted) {
  char *info = mesh_info(n);
  if (info == NULL) {
    return 0;
  }
  int r = strstr(info, want) != NULL && (also == NULL || strstr(info, also) != NULL) &&
          (unwanted == NULL || strstr(info, unwanted) == NULL);
  Moss_Free(info);
  return r;
}

/* 1 if end `n`'s mesh info lists a peer reached through S (`relay:<S>`
 * among the peers, `relayed` among the paths). */
static int relayed(int n) {
  char relay[80];
  snprintf(relay, sizeof relay, "\"relay:%s", keys[S]);
  return info_matches(n, relay, "\"relayed\"", NULL);
}

/* 1 if A's mesh info lists B at its direct address and no relayed peer. */
static int a_direct_to_b(void) {
  char addr[32];
  snprintf(addr, sizeof addr, "\"127.0.0.1:%d\"", ports[B]);
  return info_matches(A, addr, NULL, "\"relayed\"");
}

/* 1 if S's mesh info says supernode_ready, else 0. */
static int supernode_ready(void) {
  return info_matches(S, "\"supernode_ready\":true", NULL, NULL);
}

static void print_info(int n) {
  char *info = mesh_info(n);
  if (info != NULL) {
    printf("%s mesh info: %s\n", names[n], info);
    Moss_Free(info);
  }
}

static int connect_to(int from, int to) {
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ports[to]);
  int rc = Moss_Connect(nodes[from], addr);
  printf("%s: Moss_Connect(%s) = %d%s%s\n", names[from], addr, rc, rc == MOSS_OK ? "" : ": ",
         rc == MOSS_OK ? "" : Moss_LastError());
  return rc;
}

/* Polls `cond` every 100 ms for at most `ms`; its last value. */
static int wait_for(int (*cond)(void), long ms) {
  for (long t = 0; t < ms; t += 100) {
    if (cond()) {
      return 1;
    }
    sleep_ms(100);
  }
  return cond();
}

static int promoted(void) { return atomic_load(&promoted_at) != 0 && supernode_ready(); }
static int both_relayed(void) { return relayed(A) && relayed(B); }
static int migrated(void) { return atomic_load(&migrated_at) != 0 && a_direct_to_b(); }
static int revoked(void) { return atomic_load(&revoked_at) != 0; }

static int parse_ports(int argc, char **argv) {
  if (argc != 1 && argc != 4) {
    fprintf(stderr, "usage: %s [port_S port_A port_B]\n", argv[0]);
    return -1;
  }
  for (int i = 1; i < argc; i++) {
    char *end = NULL;
    long p = strtol(argv[i], &end, 10);
    if (end == argv[i] || *end != '\0' || p < 1 || p > 65535) {
      fprintf(stderr, "bad port: %s\n", argv[i]);
      return -1;
    }
    ports[i - 1] = (int)p;
  }
  return 0;
}

static int start_nodes(void) {
  const char *backend = getenv("MOSS_BACKEND");
  void (*const callbacks[NODES])(int32_t, const char *) = {on_event_s, on_event_a, on_event_b};
  for (int n = 0; n < NODES; n++) {
    /* Only S may become a supernode within the run (A and B keep the
     * default minimum uptime, 300 s). */
    char config[400];
    snprintf(config, sizeof config,
             "{\"listen_port\":%d,\"trackers\":[],\"lan_discovery_enabled\":false,"
             "\"dht_enabled\":false,\"transport\":{\"tcp_enabled\":false},"
             "\"nat\":{\"supernode_min_uptime_sec\":%d},\"engine\":{\"backend\":\"%s\"}}",
             ports[n], n == S ? 1 : 300, backend != NULL ? backend : "auto");
    nodes[n] = Moss_Init("c-relay-events", NULL, config);
    if (nodes[n] <= 0) {
      fprintf(stderr, "Moss_Init(%s): %s\n", names[n], Moss_LastError());
      return -1;
    }
    char *k = Moss_GetPublicKey(nodes[n]);
    if (k == NULL || strlen(k) != 64) {
      fprintf(stderr, "Moss_GetPublicKey(%s): %s\n", names[n], Moss_LastError());
      Moss_Free(k);
      return -1;
    }
    memcpy(keys[n], k, 65);
    Moss_Free(k);
    printf("%s: %s on port %d\n", names[n], keys[n], ports[n]);
    Moss_SetEventCallback(nodes[n], callbacks[n]);
    if (n != S) {
      Moss_SetCallback(nodes[n], n == A ? on_message_a : on_message_b);
      if (Moss_Subscribe(nodes[n], "chat") != MOSS_OK) {
        fprintf(stderr, "Moss_Subscribe(%s): %s\n", names[n], Moss_LastError());
        return -1;
      }
    }
    if (Moss_Start(nodes[n]) != MOSS_OK) {
      fprintf(stderr, "Moss_Start(%s): %s\n", names[n], Moss_LastError());
      return -1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  /* Line-buffered even into a pipe: a harness reads RELAYED as it comes. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (parse_ports(argc, argv) != 0) {
    return 1;
  }
  printf("%s\n", Moss_Version());
  if (start_nodes() != 0) {
    return 1;
  }
  if (connect_to(A, S) != MOSS_OK || connect_to(B, S) != MOSS_OK) {
    return 1;
  }
  /* S re-evaluates the supernode rule every second (bounded: 15 s). */
  int ok = wait_for(promoted, 15000);
  printf("S promoted: %d\n", ok);

  /* A dials B, whose direct path is cut: the dial fails and A asks S for
   * a relay. S's announcement may reach A after the first failed dial, so
   * A dials again, at most 4 times (each dial waits up to 5 s, then up to
   * 8 s for the relayed session at both ends). */
  int dials = 0;
  int relayed_ok = 0;
  while (ok && !relayed_ok && dials < 4) {
    dials++;
    if (connect_to(A, B) == MOSS_OK && !relayed(A)) {
      fprintf(stderr, "A reached B directly: the direct path is not cut\n");
      ok = 0;
      break;
    }
    relayed_ok = wait_for(both_relayed, 8000);
  }
  print_info(A);
  print_info(B);
  ok = ok && relayed_ok && exchange(0);

  if (ok) {
    atomic_store(&healing, 1);
    printf("RELAYED: A and B reach each other through S; heal the direct path now\n");
    /* The ends probe the direct path every 2 s (bounded: 30 s). */
    ok = wait_for(migrated, 30000);
    print_info(A);
    ok = ok && exchange(1);
  }

  /* A and B leave: S has no peer, so no standing, and steps down. */
  atomic_store(&stopping, 1);
  for (int n = A; n <= B; n++) {
    if (Moss_Stop(nodes[n]) != MOSS_OK) {
      fprintf(stderr, "Moss_Stop(%s): %s\n", names[n], Moss_LastError());
      ok = 0;
    }
  }
  int revoked_ok = wait_for(revoked, 10000);
  if (Moss_Stop(nodes[S]) != MOSS_OK) {
    fprintf(stderr, "Moss_Stop(S): %s\n", Moss_LastError());
    ok = 0;
  }

  int p = atomic_load(&promoted_at);
  int m = atomic_load(&migrated_at);
  int r = atomic_load(&revoked_at);
  ok = ok && revoked_ok && p > 0 && m > p && r > m && atomic_load(&early_migrations) == 0 &&
       atomic_load(&bad_migrations) == 0 && atomic_load(&ends_left) == 0;
  printf("event 3 at S: #%d, relayed after %d dial(s): %d, event 7: #%d (early: %d, bad "
         "detail: %d), event 4 at S: #%d, A and B left each other: %d\n",
         p, dials, relayed_ok, m, atomic_load(&early_migrations), atomic_load(&bad_migrations), r,
         atomic_load(&ends_left));
  printf(ok ? "OK\n" : "FAILED\n");
  return ok ? 0 : 1;
}
