// Per-worker TCP counters: one plain struct of uint64 per worker (single writer, read by
// telemetry without locks; torn reads of a uint64 do not happen on x86-64). Every drop and error
// path increments exactly one of these; counter_names() gives stable names.
//
// Who increments what (so the data plane does not count twice):
//   lib/tcp itself: seg_*, rst_*, rx_* (input / Reassembly), backend_connect, backend_pool_empty,
//     backend_port_exhausted, flow_insert_fail (BackendPool::open), backend_connected and
//     backend_connect_fail (input_syn_sent).
//   the caller (it decides what happens): syn_rcvd, cookie_*, tx_*, splice_*, client_pool_empty,
//     backend_connect_timeout, backend_closed_*, backend_idle_expired, backend_reset_sent,
//     client_*, timer_fired, and flow_insert_fail for client flows.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tlb::tcp {

#define TLB_TCP_COUNTERS(X)                                                                   \
    /* handshake (SYN cookies) */                                                              \
    X(syn_rcvd)               /* SYNs to the VIP answered with a cookie SYN-ACK */            \
    X(cookie_ok)              /* final ACKs with a valid cookie: connection created */        \
    X(cookie_bad)             /* ACKs for no flow whose cookie failed: RST sent */            \
    X(cookie_flow_full)       /* valid cookie but flow table/pool full: RST sent */           \
    /* segment acceptance */                                                                   \
    X(seg_out_of_window)      /* unacceptable seq: dropped, ACK sent */                        \
    X(seg_ack_unsent)         /* ACK for data never sent: dropped, ACK sent */                 \
    X(seg_old_ack)            /* ACK older than snd_una: ACK field ignored */                 \
    X(seg_syn_in_window)      /* SYN on an established flow: challenge ACK (RFC 5961) */      \
    X(rst_rcvd)               /* valid RSTs */                                                 \
    X(rst_challenged)         /* in-window but not exact RST: challenge ACK (RFC 5961) */     \
    X(rst_out_of_window)      /* RST outside the window: ignored */                           \
    /* reassembly */                                                                           \
    X(rx_in_order)            /* segments delivered straight in order */                      \
    X(rx_ooo_held)            /* out-of-order segments held */                                 \
    X(rx_ooo_overflow)        /* out-of-order segment dropped: hold bound reached */          \
    X(rx_duplicate)           /* entirely old / already-held data */                          \
    X(rx_beyond_window)       /* bytes trimmed beyond the advertised window */                 \
    X(rx_data_after_fin)      /* data after the peer's FIN */                                  \
    /* sender */                                                                               \
    X(tx_segments)            /* data segments built (first transmissions) */                 \
    X(tx_retransmits)         /* segments retransmitted (RTO or fast retransmit) */           \
    X(tx_rto)                 /* retransmission timeouts */                                    \
    X(tx_fast_retransmit)     /* fast retransmits (3 duplicate ACKs) */                       \
    X(tx_zero_window_probe)   /* zero-window probes */                                         \
    X(tx_give_up)             /* connections abandoned after max retransmissions */           \
    X(tx_no_mbuf)             /* could not allocate header/clone mbufs */                      \
    /* splice */                                                                               \
    X(splice_b2c)             /* backend segments forwarded to the client in place */          \
    X(splice_b2c_rebuilt)     /* backend segments rebuilt (header insertion or MSS split) */  \
    X(splice_c2b_ack)         /* client ACKs translated to the backend */                     \
    X(splice_no_binding)      /* backend data with no client bound: RST to backend */         \
    /* flow table / pools */                                                                   \
    X(flow_insert_fail)       /* flow table full */                                            \
    X(client_pool_empty)      /* no free client connection object */                          \
    X(backend_pool_empty)     /* no free backend connection object */                         \
    X(backend_port_exhausted) /* no free local port in the worker's range */                  \
    /* backend connections */                                                                  \
    X(backend_connect)        /* active opens */                                               \
    X(backend_connected)      /* SYN-ACKs accepted */                                          \
    X(backend_connect_fail)   /* RST/ICMP/refused during connect */                           \
    X(backend_connect_timeout)/* connect timeouts */                                           \
    X(backend_closed_fin)     /* pool connections closed by the backend's FIN */              \
    X(backend_closed_rst)     /* pool connections reset by the backend */                     \
    X(backend_idle_expired)   /* idle pool connections closed by keep-alive timeout */        \
    X(backend_reset_sent)     /* RSTs we sent to backends (client abort, shrink, error) */    \
    /* client connections */                                                                   \
    X(client_closed_fin)      /* client connections closed gracefully */                       \
    X(client_closed_rst)      /* client connections reset by the client */                     \
    X(client_reset_sent)      /* RSTs we sent to clients */                                    \
    X(client_idle_timeout)    /* keep-alive idle timeouts */                                   \
    X(client_header_timeout)  /* slowloris: header not complete in time */                     \
    X(client_body_timeout)    /* slowloris: body not complete in time */                       \
    X(timer_fired)            /* timers fired (all kinds) */

struct Counters {
#define TLB_TCP_X(name) uint64_t name = 0;
    TLB_TCP_COUNTERS(TLB_TCP_X)
#undef TLB_TCP_X
};

constexpr size_t COUNTER_COUNT = sizeof(Counters) / sizeof(uint64_t);
// Stable snake_case names in struct order: counter_names()[i] names ((uint64_t*)&c)[i].
const char* const* counter_names();

}  // namespace tlb::tcp
