// Connection control block and segment processing shared by both legs, plus the client- and
// backend-side connection objects. The per-connection state machine is documented in
// docs/tcp.md; in short (RFC 9293 states, without LISTEN/SYN_RCVD thanks to SYN cookies):
//
//   client leg:  (cookie ACK) -> ESTABLISHED -> CLOSE_WAIT (client FIN) -> LAST_ACK -> CLOSED
//                              \-> FIN_WAIT_1 (our close) -> FIN_WAIT_2 / CLOSING -> TIME_WAIT*
//   backend leg: SYN_SENT -> ESTABLISHED -> (backend FIN or error: RST, CLOSED)
//   any state:   valid RST -> CLOSED
//   * TIME_WAIT is not held: the flow is freed at once (input() reports closed). A late
//     retransmitted FIN then meets no flow and gets the bad-cookie RST, which the peer (already
//     closed) ignores. Backend connections are closed with RST for the same reason (no TIME_WAIT
//     on worker-owned ports, immediate port reuse).
//
// On top of the TCP state each object carries an L7 phase (ClientPhase / BackendPhase) that the
// data plane drives; lib/tcp only defines them so both sides agree.
#pragma once

#include <cstdint>

#include "net/net.hpp"
#include "tcp/counters.hpp"
#include "tcp/flow_table.hpp"
#include "tcp/mbuf_queue.hpp"
#include "tcp/reassembly.hpp"
#include "tcp/sender.hpp"
#include "tcp/seq.hpp"
#include "tcp/splice.hpp"
#include "tcp/syncookie.hpp"
#include "tcp/timer_wheel.hpp"

namespace tlb::tcp {

enum class TcpState : uint8_t {
    CLOSED = 0,
    SYN_SENT,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    CLOSING,
    TIME_WAIT,
    CLOSE_WAIT,
    LAST_ACK,
};
const char* state_name(TcpState s);

// Timer kinds (Timer::kind); Timer::owner is the flow handle.
enum TimerKind : uint8_t {
    TIMER_RTO = 1,         // retransmission / persist (both legs)
    TIMER_CONNECT,         // backend connect timeout
    TIMER_BACKEND_IDLE,    // pooled backend connection idle keep-alive
    TIMER_CLIENT_IDLE,     // client keep-alive idle (no request in progress)
    TIMER_HEADER,          // request header deadline (slowloris)
    TIMER_BODY,            // request body deadline (slowloris)
    TIMER_FIRST_BYTE,      // backend response first-byte deadline
};

struct TcpConfig {
    uint8_t our_wscale = 7;          // announced on both legs: 128-byte granularity, 8 MiB max
    uint16_t client_mss_cap = 1460;  // largest MSS we send to clients
    uint16_t backend_mss = 1460;     // MSS announced to backends (their segments to us)
    uint32_t rcv_wnd_max = 256 * 1024;  // receive-buffer ceiling per connection (request bytes)
    uint32_t ooo_limit = 16;         // limits.max_ooo_segments
    SenderConfig sender;
};

struct TcpCb {
    FlowKey key;
    TcpState state = TcpState::CLOSED;
    uint32_t iss = 0;        // our initial sequence number (SYN retransmission)
    uint8_t snd_wscale = 0;  // shift of the window fields we send (0 when not negotiated)
    uint8_t rcv_wscale = 0;  // shift of the peer's window fields
    uint32_t rcv_wnd_max = 0;
    uint32_t rcv_adv = 0;    // right edge (seq) last advertised: it never moves left
    Reassembly rx;
    SendState tx;

    // Receive window in bytes given `buffered` bytes held but not yet consumed by the application.
    uint32_t rcv_window(uint32_t buffered) const {
        return buffered >= rcv_wnd_max ? 0 : rcv_wnd_max - buffered;
    }
    // The window in force: never less than what was advertised (RFC 9293 §3.8.6.2.2).
    uint32_t effective_window(uint32_t buffered) const {
        uint32_t w = rcv_window(buffered);
        uint32_t edge = rx.rcv_nxt() + w;
        return seq_lt(edge, rcv_adv) ? rcv_adv - rx.rcv_nxt() : w;
    }
    // The 16-bit field to send (rounded down to the scale); records the advertised edge.
    uint16_t advertise(uint32_t buffered) {
        uint32_t f = effective_window(buffered) >> snd_wscale;
        if (f > 0xffff) f = 0xffff;
        uint32_t edge = rx.rcv_nxt() + (f << snd_wscale);
        if (seq_gt(edge, rcv_adv)) rcv_adv = edge;
        return uint16_t(f);
    }
};

// Passive open from a valid cookie ACK (th = the ACK). Sets ESTABLISHED.
void open_from_cookie(TcpCb& cb, const FlowKey& key, const net::TcpInfo& th,
                      const CookieOptions& co, const TcpConfig& cfg);
// Active open: SYN_SENT with our ISS. Returns the MSS we announce (cfg.backend_mss).
void open_active(TcpCb& cb, const FlowKey& key, uint32_t iss, const TcpConfig& cfg);
// SYN-ACK on a SYN_SENT connection. 1: established (send ACK); 0: ignore (stale, not ours);
// -1: refused (RST with a valid ack) -> CLOSED; -2: unacceptable ACK (send RST, RFC 9293 §3.10.7.3).
int input_syn_sent(TcpCb& cb, const net::TcpInfo& th, const net::TcpOptions& opts,
                   const TcpConfig& cfg, Counters& c);

struct InputResult {
    uint32_t acked = 0;        // bytes of ours newly acknowledged
    uint32_t delivered = 0;    // in-order payload bytes delivered (take_data mode)
    bool ack_now = false;      // send an ACK now (dup/out-of-order/FIN/challenge)
    bool data = false;         // payload present and acceptable (splice mode: caller forwards it)
    bool fin = false;          // the peer's FIN was accepted (in order) by this segment
    bool rst = false;          // valid RST: the connection is CLOSED, free it
    bool closed = false;       // reached CLOSED / TIME_WAIT by a normal close: free it
    bool fast_retransmit = false;
    bool drop = false;         // nothing else to do with the segment (counted)
};

// Process an established-family segment. `buffered` = bytes received and not yet consumed (for
// the window). take_data: payload goes through reassembly (deliver/drop get the handle `h` with
// payload offset `off`); otherwise (backend leg while splicing) the payload is left to the
// caller (result.data) and only ACK/FIN/RST are processed here.
template <class Deliver, class Drop>
InputResult input(TcpCb& cb, const net::TcpInfo& th, void* h, uint32_t off, uint32_t buffered,
                  uint64_t now_us, Counters& c, bool take_data, Deliver&& deliver, Drop&& drop);

// Begin our close: queue a FIN after the queued data (ESTABLISHED -> FIN_WAIT_1,
// CLOSE_WAIT -> LAST_ACK).
void close(TcpCb& cb);

// Header-only segment spec toward the peer of `cb` (MACs left zero: the data plane sets them):
// seq = snd_nxt (or `seq` when given), ack = rcv_nxt, window from `buffered`.
void fill_spec(TcpCb& cb, uint8_t flags, uint32_t buffered, net::TcpSegmentSpec& s);
// RST answering a segment that belongs to no connection / has a bad cookie (RFC 9293 §3.10.7.1):
// with ACK: seq = SEG.ACK; without: seq 0, ACK = SEG.SEQ + SEG.LEN (+SYN/FIN).
void fill_rst_reply(const net::Ipv4Info& ip, const net::TcpInfo& th, net::TcpSegmentSpec& s);
// Cookie SYN-ACK for a SYN (options MSS + window scale when the client sent one).
// `opt_buf` must have 40 bytes and outlive the spec.
void fill_syn_ack(const net::Ipv4Info& ip, const net::TcpInfo& th, uint32_t cookie,
                  const CookieOptions& co, const TcpConfig& cfg, uint8_t* opt_buf,
                  net::TcpSegmentSpec& s);
// SYN for an active open (MSS cfg.backend_mss + window scale). `opt_buf` 40 bytes.
void fill_syn(const TcpCb& cb, const TcpConfig& cfg, uint8_t* opt_buf, net::TcpSegmentSpec& s);

// Data segment from the sender: a header mbuf `hdr` (empty, from a direct pool) gets Ethernet +
// IPv4 + TCP; the payload [seg.seq, seg.seq+seg.len) of `q` (queue offset = seq - base_seq) is
// attached as indirect clones from `clone_pool` (zero-copy) or, when clone_pool is null, copied
// into `hdr`'s tailroom. Software checksums (the chain is summed piece by piece, odd offsets swapped).
// Returns 0, or -1 (allocation failure / no room: hdr unchanged and still the caller's).
int build_data_segment(rte_mbuf* hdr, TcpCb& cb, const SendState::Segment& seg,
                       const MbufQueue& q, uint32_t base_seq, uint32_t buffered,
                       rte_mempool* clone_pool, const net::MacAddr& src_mac,
                       const net::MacAddr& dst_mac);

// ---------------------------------------------------------------------------------------------
// Connection objects.

enum class ClientPhase : uint8_t {
    IDLE,            // keep-alive, waiting for a request (TIMER_CLIENT_IDLE)
    HEADERS,         // receiving request headers (TIMER_HEADER)
    BODY,            // receiving the body (TIMER_BODY)
    DISPATCH,        // request complete: routing / waiting for a backend connection / sending
    RESPONSE,        // response spliced from the bound backend (TIMER_FIRST_BYTE until 1st byte)
    LOCAL_RESPONSE,  // the appliance's own response being sent by the client-leg sender
    CLOSING,         // our FIN queued or RST sent
};

struct ClientConn {
    TcpCb cb;
    ClientPhase phase = ClientPhase::IDLE;
    CookieOptions opts;
    MbufQueue request;       // in-order request bytes not yet consumed
    MbufQueue out;           // the appliance's own response bytes (client-leg sender source)
    uint32_t out_base = 0;   // seq of out's first byte
    SpliceBinding bind;
    uint32_t backend = HANDLE_INVALID;  // bound backend connection handle
    bool first_byte_sent = false;       // a response byte of the current request reached the wire
    Timer rto;
    Timer deadline;
    uint32_t user = 0;       // free for the data plane
};

enum class BackendPhase : uint8_t {
    FREE,        // in the object pool
    CONNECTING,  // SYN sent (TIMER_CONNECT)
    IDLE,        // established, in the pool's idle list (TIMER_BACKEND_IDLE)
    BUSY,        // bound to a client request
};

struct BackendConn {
    TcpCb cb;
    BackendPhase phase = BackendPhase::FREE;
    uint16_t backend_id = 0;
    uint32_t client = HANDLE_INVALID;   // bound client connection handle
    const MbufQueue* src = nullptr;     // request bytes being sent (owned by the client conn)
    uint32_t src_base = 0;              // backend-leg seq of src's first byte
    Timer rto;
    Timer deadline;
    BackendConn* idle_next = nullptr;   // pool idle list
    BackendConn* idle_prev = nullptr;
    uint32_t user = 0;
};

}  // namespace tlb::tcp

#include "tcp/conn_input.hpp"
