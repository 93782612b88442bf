// Sender state: what to (re)transmit and when, for the two byte streams the appliance sends
// itself — request bytes toward a backend, and the appliance's own responses toward a client.
// Spliced response bytes are NOT sent by this sender (the backend's TCP owns them).
//
// Pure sequence/time logic (no bytes, no mbufs), so it is unit-tested directly; the bytes live in
// an MbufQueue and segments are built by build_data_segment() (zero-copy clones, see
// mbuf_queue.hpp).
//
// - RTO per RFC 6298: SRTT/RTTVAR from one timed segment at a time (Karn: never a retransmitted
//   one), RTO = SRTT + max(G, 4*RTTVAR) clamped to [rto_min, rto_max], doubled on each timeout
//   (exponential backoff), recomputed from the next valid sample. Initial RTO 1 s (RFC 6298 §2.1)
//   unless configured lower for a LAN backend leg.
// - Retransmission on timeout is go-back-N from snd_una (the receivers here — backend kernels and
//   client kernels — keep out-of-order data, so most of what is resent is already buffered and
//   ACKed at once). Fast retransmit of the first unacked segment on 3 duplicate ACKs
//   (RFC 5681 §3.2) without SACK (not negotiated, see docs/tcp.md).
// - Congestion window: RFC 5681 slow start from IW = 10 MSS (RFC 6928) and congestion avoidance;
//   on RTO cwnd = 1 MSS, ssthresh = max(flight/2, 2 MSS); on fast retransmit ssthresh = cwnd =
//   max(flight/2, 2 MSS) (no NewReno inflation; request bodies are short-lived flows).
// - The peer's receive window is always respected: nothing beyond snd_una + peer_wnd is sent
//   except a one-byte zero-window probe (RFC 9293 §3.8.6.1) when the window is zero and the
//   retransmission timer fires (the timer doubles as the persist timer).
#pragma once

#include <cstdint>

#include "tcp/seq.hpp"

namespace tlb::tcp {

struct SenderConfig {
    uint32_t rto_initial_us = 1000000;
    uint32_t rto_min_us = 200000;   // Linux's TCP_RTO_MIN; RFC 6298 says 1 s, too slow for LANs
    uint32_t rto_max_us = 60000000;
    uint32_t max_retries = 8;       // consecutive timeouts before giving up
    uint32_t initial_cwnd_segments = 10;
};

class SendState {
public:
    struct Segment {
        uint32_t seq = 0;
        uint32_t len = 0;      // payload bytes
        bool fin = false;
        bool retransmit = false;
    };
    struct AckResult {
        uint32_t acked = 0;          // newly acknowledged bytes (excluding FIN)
        bool fin_acked = false;      // our FIN is acknowledged (now)
        bool duplicate = false;      // duplicate ACK (nothing new, same window, data in flight)
        bool fast_retransmit = false;// third duplicate: next() returns the first unacked segment
        bool window_opened = false;  // the peer's window grew (data may be sendable now)
        bool invalid = false;        // acks data never sent: drop the segment, send an ACK
        bool old = false;            // older than snd_una: ignore the ACK field
    };

    // iss: our initial sequence number; data starts at iss + 1 (the SYN is acknowledged: the
    // handshake is handled by open_from_cookie / input_syn_sent). peer_wnd in bytes.
    void reset(uint32_t iss, uint16_t mss, uint32_t peer_wnd, const SenderConfig& cfg);
    // Restart an idle stream at `seq` (nothing queued or in flight), keeping RTT estimates:
    // the client leg after a spliced response (the backend sent those bytes, not us).
    void resync(uint32_t seq);

    // Queue n more bytes / the FIN after the queued bytes.
    void push(uint32_t n) { _end += n; }
    void push_fin() { _fin_queued = true; }

    // Next segment allowed now by the peer window and cwnd, or false. Advances snd_nxt. Call in a
    // loop until false; arm the RTO timer (timer_deadline) afterwards.
    bool next(Segment* out);

    // Process SEG.ACK with the peer's window in bytes (already scaled) at time now_us.
    AckResult on_ack(uint32_t ack, uint32_t wnd_bytes, uint64_t now_us);

    // The retransmission (or persist) timer fired. Returns false when max_retries is exceeded:
    // the caller gives up on the connection.
    bool on_timeout();

    // Record the first transmission time of a segment (starts an RTT sample when none runs).
    void on_sent(const Segment& s, uint64_t now_us);

    // Timer management: true when the RTO timer must be armed (data or FIN in flight, or a zero
    // window with data waiting), at deadline = last_send_or_ack + rto.
    bool timer_needed() const;
    uint32_t rto_us() const { return _rto_us; }

    uint32_t una() const { return _una; }
    uint32_t nxt() const { return _nxt; }
    uint32_t end() const { return _end; }  // seq after the last queued byte
    uint32_t in_flight() const { return _nxt - _una; }
    uint32_t unsent() const { return _end - _nxt; }
    uint32_t peer_wnd() const { return _peer_wnd; }
    uint32_t cwnd() const { return _cwnd; }
    uint32_t srtt_us() const { return _srtt_us; }
    uint32_t retries() const { return _retries; }
    uint16_t mss() const { return _mss; }
    bool fin_sent() const { return _fin_sent; }
    bool fin_acked() const { return _fin_acked; }
    bool all_acked() const { return _fin_queued ? _fin_acked : _una == _end; }
    // Where byte stream offset 0 of the queued data sits (iss + 1): maps seq -> queue offset.
    uint32_t data_base() const { return _base; }

private:
    void rtt_sample(uint32_t rtt_us);

    uint32_t _base = 0;  // seq of queue offset 0
    uint32_t _una = 0, _nxt = 0, _end = 0, _max_sent = 0;
    uint32_t _peer_wnd = 0;
    uint32_t _cwnd = 0, _ssthresh = 0xffffffffu;
    uint32_t _srtt_us = 0, _rttvar_us = 0, _rto_us = 0;
    uint32_t _rtt_seq = 0;
    uint64_t _rtt_start = 0;
    uint32_t _retries = 0;
    uint16_t _mss = 536;
    uint8_t _dupacks = 0;
    bool _rtt_running = false;
    bool _fin_queued = false, _fin_sent = false, _fin_acked = false;
    bool _probe = false;        // send one byte past a zero window
    bool _fast_rtx = false;     // next() returns the first unacked segment
    SenderConfig _cfg;
};

}  // namespace tlb::tcp
