// Splice: forward a backend's response segments to the client and the client's ACKs back to the
// backend, rewriting addresses, ports, sequence/ack numbers and windows (DPVS FullNAT seq-adjust,
// generalised to L7 delayed binding with per-request rebinding).
//
// One binding = (client connection, current backend connection) for one response. The client
// connection's sequence space continues across requests while backends change, so the delta is
// per binding:  client_seq = backend_seq + delta,  delta = client snd_nxt - backend rcv_nxt at
// bind time. Optionally a few bytes (the `x-tokenlb-backend: name\r\n` header line) are inserted
// before backend byte `ins_at`: every backend byte at or after it shifts by ins_len more, client
// ACKs inside the inserted range map to ins_at, and any backend segment containing ins_at —
// including the backend's retransmissions of it — is rebuilt with the inserted bytes.
//
// Fields rewritten backend -> client:
//   addresses/ports  backend:port -> VIP:80, our local addr:port -> client addr:port
//   seq              mapped through the binding
//   ack              the appliance's rcv_nxt on the client leg (we ACK the client's request bytes
//                    ourselves; the backend's ACK is about the backend leg and is consumed there)
//   window           the appliance's client-leg receive window (same reason)
//   checksums        RFC 1624 incremental (the payload is not re-summed)
// Client -> backend (pure ACKs):
//   seq              our snd_nxt on the backend leg
//   ack              mapped back through the binding
//   window           rescaled: (field << client's shift) >> the shift we announced to the backend,
//                    rounded down (never advertises more than the client has), saturating at 65535
//
// MSS: the client-leg MSS comes from the cookie table and may be smaller than the backend leg's;
// segments that would exceed it are split (rebuild path, a copy — rare: the backend leg's MSS is
// announced as tcp.backend_mss, 1460 by default, and most clients accept 1460). The rebuild path
// copies the payload into fresh mbufs (one copy per rebuilt segment); the fast path rewrites in
// place.
//
// Options: neither SACK nor timestamps are negotiated on either leg (see syncookie.hpp), so
// backend segments carry no options that need translation; any option bytes present are passed
// through unchanged.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "net/net.hpp"
#include "tcp/flow_table.hpp"
#include "tcp/seq.hpp"

namespace tlb::tcp {

struct SpliceBinding {
    static constexpr uint32_t MAX_INSERT = 96;
    FlowKey client;               // remote = client, local = VIP
    FlowKey backend;              // remote = backend, local = our address and port
    uint32_t delta = 0;           // client_seq = backend_seq + delta (before the insertion point)
    uint32_t resp_start_b = 0;    // backend seq of the response's first byte
    uint32_t ins_at_b = 0;        // insertion point (backend seq), when ins_len > 0
    uint32_t ins_len = 0;
    uint8_t ins[MAX_INSERT] = {};
    uint8_t client_wscale = 0;    // shift of the client's window fields (0 if not negotiated)
    uint8_t backend_our_wscale = 0; // shift we announced to the backend (0 if not negotiated)
    uint16_t client_mss = 536;    // the client's MSS (from the cookie)
    bool forward_fin = false;     // pass the backend's FIN to the client (response framed by close)
    bool end_known = false;       // resp_end_b is valid (set by response framing)
    uint32_t resp_end_b = 0;      // backend seq after the response's last byte
    uint32_t client_max_b = 0;    // highest backend seq the client has acknowledged (mapped back)
    uint32_t sent_max_c = 0;      // highest client seq forwarded + 1

    // Bind at client snd_nxt (client leg) and backend rcv_nxt (backend leg).
    void bind(const FlowKey& client_key, const FlowKey& backend_key, uint32_t client_snd_nxt,
              uint32_t backend_rcv_nxt, uint8_t client_ws, uint8_t backend_ws, uint16_t mss) {
        client = client_key;
        backend = backend_key;
        delta = client_snd_nxt - backend_rcv_nxt;
        resp_start_b = backend_rcv_nxt;
        client_max_b = backend_rcv_nxt;
        sent_max_c = client_snd_nxt;
        client_wscale = client_ws;
        backend_our_wscale = backend_ws;
        client_mss = mss;
        ins_len = 0;
        forward_fin = false;
        end_known = false;
    }
    // Insert `len` bytes before backend byte `at_b` (e.g. right after the status line). false if
    // too long. Call before the segment containing at_b is forwarded.
    bool set_insert(uint32_t at_b, const uint8_t* bytes, uint32_t len);

    uint32_t map_seq(uint32_t bseq) const {
        return bseq + delta + ((ins_len && seq_gt(bseq, ins_at_b)) ? ins_len : 0);
    }
    uint32_t map_ack(uint32_t cack) const {
        if (ins_len) {
            uint32_t p = ins_at_b + delta;
            if (seq_geq(cack, p + ins_len)) return cack - delta - ins_len;
            if (seq_gt(cack, p)) return ins_at_b;
        }
        return cack - delta;
    }
    // The window field to announce on the backend leg while bound: the client's current window
    // (bytes, as the client-leg sender saw it) in the backend leg's scale, so the backend never
    // sends more than the client can take.
    uint16_t backend_window(uint32_t client_wnd_bytes) const {
        uint64_t f = uint64_t(client_wnd_bytes) >> backend_our_wscale;
        return f > 0xffff ? 0xffff : uint16_t(f);
    }
    // Client seq just after the response (valid when end_known): the next binding starts here.
    uint32_t client_end() const { return map_seq(resp_end_b); }
    // The response is complete and the client has acknowledged all of it: unbind.
    bool done() const { return end_known && seq_geq(client_max_b, resp_end_b); }
    // Does a backend segment [seq, seq+len) need the rebuild path (insertion inside, or larger
    // than the client's MSS)?
    bool needs_rebuild(uint32_t bseq, uint32_t len) const {
        if (len > client_mss) return true;
        return ins_len && len && seq_leq(bseq, ins_at_b) && seq_gt(bseq + len, ins_at_b);
    }
};

// Window field translation between scales, rounding down, saturating.
inline uint16_t rescale_window(uint16_t field, uint8_t from_shift, uint8_t to_shift) {
    uint64_t bytes = uint64_t(field) << from_shift;
    uint64_t f = bytes >> to_shift;
    return f > 0xffff ? 0xffff : uint16_t(f);
}

// Fast path, in place: rewrite a backend segment (frame = Ethernet + IPv4 + TCP as parsed by
// net::parse_ipv4/parse_tcp) for the client. `ack` = client-leg rcv_nxt, `win` = the window field
// for the client (already scaled down). Strips FIN unless b.forward_fin. MACs are the caller's
// (set them with the neighbour entry). Checksums are updated incrementally; the IP TTL is reset.
// Updates b.sent_max_c. The caller checks !b.needs_rebuild() first. Afterwards the caller's
// Ipv4Info/TcpInfo describe the frame as it was (addresses, ports, seq); parse again if needed. Returns false (frame
// untouched) when nothing is left to forward (no payload and the FIN is not forwarded).
bool splice_b2c_in_place(uint8_t* frame, const net::Ipv4Info& ip, const net::TcpInfo& th,
                         SpliceBinding& b, uint32_t ack, uint16_t win);

// Rebuild path: build the client-bound segment(s) for backend segment (frame, ip, th) into
// fresh mbufs from `mp` (payload copied, insertion applied, split at b.client_mss). Ethernet
// header copied from the input (caller sets MACs). Returns the number of mbufs in out[] (0 on
// allocation failure, nothing leaked), at most max_out; the input mbuf is not freed.
int splice_b2c_rebuild(const uint8_t* frame, const net::Ipv4Info& ip, const net::TcpInfo& th,
                       SpliceBinding& b, uint32_t ack, uint16_t win, rte_mempool* mp,
                       rte_mbuf** out, int max_out);

// Translate a client ACK's values for the backend leg. Updates b.client_max_b.
inline void splice_c2b_values(SpliceBinding& b, uint32_t client_ack, uint16_t client_win,
                              uint32_t* ack_b, uint16_t* win_b) {
    *ack_b = b.map_ack(client_ack);
    if (seq_gt(*ack_b, b.client_max_b)) b.client_max_b = *ack_b;
    *win_b = rescale_window(client_win, b.client_wscale, b.backend_our_wscale);
}

// In place: turn a client segment without payload (pure ACK / window update) into the ACK for
// the backend: addresses/ports to the backend leg, seq = `seq_b` (our snd_nxt on the backend
// leg), ack and window translated, FIN/PSH cleared (a client FIN is handled by the caller),
// checksums incremental. Updates b.client_max_b. Returns false (frame untouched) when the
// segment carries payload (the caller consumes it and sends a fresh ACK built from
// splice_c2b_values instead).
bool splice_c2b_ack_in_place(uint8_t* frame, const net::Ipv4Info& ip, const net::TcpInfo& th,
                             SpliceBinding& b, uint32_t seq_b);

}  // namespace tlb::tcp
