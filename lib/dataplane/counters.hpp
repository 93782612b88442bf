// Per-worker data-plane counters (HTTP/routing level; TCP-level ones are tcp::Counters). One
// plain struct per worker, single writer; telemetry reads it without locks (aligned uint64
// loads are not torn on x86-64). Every error path of the data plane increments exactly one.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tlb::dataplane {

#define TLB_DP_COUNTERS(X)                                                                      \
    X(rx_packets) X(tx_packets) X(tx_dropped) /* tx ring full: freed */                         \
    X(rx_not_ipv4) X(rx_bad_l3) X(rx_bad_l4) X(rx_not_for_us) X(rx_non_tcp)                     \
    X(arp_answered) X(arp_learned) X(arp_requests_sent) X(icmp_echo_replies)                    \
    X(requests) /* complete requests framed */                                                  \
    X(requests_fast_framed) /* of those, framed without http-parser (docs/http.md) */           \
    X(requests_routed) X(responses_complete) X(responses_local) /* appliance-made */            \
    X(status_2xx) X(status_4xx) X(status_5xx) X(status_other)                                   \
    X(http_errors) /* framing errors: 400/413/431/501/505 */                                    \
    X(openai_errors) /* body extraction errors */                                               \
    X(not_found) X(method_not_allowed) X(unknown_model)                                         \
    X(no_backend) /* 503: the policy found no eligible backend */                               \
    X(retries) /* request re-sent to another backend */                                         \
    X(retry_status) /* 429/503 answered before any byte reached the client */                   \
    X(backend_fail_before_first_byte) X(backend_fail_after_first_byte)                          \
    X(first_byte_timeouts) X(header_timeouts) X(body_timeouts)                                  \
    X(client_aborts) /* client RST/FIN mid-response: backend reset */                           \
    X(buffers_exhausted) /* no request buffer: 503 */                                           \
    X(b2c_out_of_order) /* backend segment past the framing point: dropped (backend resends) */ \
    X(b2c_rebuild_fail) X(response_framing_errors) X(no_mbuf) X(no_neighbour)                   \
    X(usage_seen) /* responses whose usage was extracted */                                   \
    X(backend_held_down) /* connect failures that put a backend on hold-down */                 \
    X(classify_errors) /* Hyperscan scan errors: the request is routed with the tags found */   \
    X(requests_sensitive) /* requests with a policy.sensitive_tags tag (zone-restricted) */    \
    X(understood) /* chat/completions requests through the whole understand step */            \
    X(understand_cycles) /* TSC cycles in it: extraction, classify, estimate, prefix */         \
    X(classify_cycles) /* TSC cycles of those in classify (Hyperscan + script pass) */

struct Counters {
#define TLB_DP_X(name) uint64_t name = 0;
    TLB_DP_COUNTERS(TLB_DP_X)
#undef TLB_DP_X
};
constexpr size_t DP_COUNTER_COUNT = sizeof(Counters) / sizeof(uint64_t);
const char* const* dp_counter_names();

}  // namespace tlb::dataplane
