// In-order receive with a bounded out-of-order hold (the client leg's request bytes).
//
// The reassembler knows sequence ranges and opaque handles (in the data plane: the rte_mbuf that
// carries the payload, with the payload's offset in it); it never touches bytes, so it is tested
// without EAL. Every handle given to receive() ends up exactly once in deliver(h, off, len) — the
// bytes [off, off+len) of that handle are the next in-order bytes, ownership passes to the
// callee — or in drop(h), or stays held until a later receive()/clear() releases it.
//
// Policy: segments that start beyond rcv_nxt are held (sorted by seq) up to `limit` segments
// (config limits.max_ooo_segments, at most MAX_OOO); more are dropped and counted — the peer
// retransmits them. Data beyond the advertised window is trimmed (RFC 9293 §3.10.7.4). Overlaps
// are resolved on delivery by trimming the front of later segments (first copy wins, as Linux).
#pragma once

#include <cstdint>

#include "tcp/counters.hpp"
#include "tcp/seq.hpp"

namespace tlb::tcp {

class Reassembly {
public:
    static constexpr uint32_t MAX_OOO = 16;
    struct Held {
        uint32_t seq;
        uint32_t len;
        void* h;
        uint32_t off;
    };
    struct Result {
        uint32_t delivered = 0;  // in-order bytes delivered by this call
        bool ack_now = false;    // out-of-order, duplicate or window-trimmed: ACK immediately
    };

    void reset(uint32_t rcv_nxt, uint32_t limit) {
        _rcv_nxt = rcv_nxt;
        _n = 0;
        _limit = limit > MAX_OOO ? MAX_OOO : limit;
    }
    uint32_t rcv_nxt() const { return _rcv_nxt; }
    // Backend leg while splicing: the client's ACKs (mapped back) say what has been received.
    void set_rcv_nxt(uint32_t v) { _rcv_nxt = v; }
    // The peer's FIN occupies one sequence number once all data before it arrived.
    void advance_fin() { _rcv_nxt++; }
    uint32_t held_segments() const { return _n; }
    uint32_t held_bytes() const {
        uint32_t b = 0;
        for (uint32_t i = 0; i < _n; i++) b += _held[i].len;
        return b;
    }

    // `wnd` is the receive window currently advertised (bytes from rcv_nxt).
    template <class Deliver, class Drop>
    Result receive(uint32_t seq, uint32_t len, void* h, uint32_t off, uint32_t wnd, Counters& c,
                   Deliver&& deliver, Drop&& drop);

    // Release every held handle through drop().
    template <class Drop>
    void clear(Drop&& drop) {
        for (uint32_t i = 0; i < _n; i++) drop(_held[i].h);
        _n = 0;
    }

private:
    uint32_t _rcv_nxt = 0;
    uint32_t _n = 0;
    uint32_t _limit = MAX_OOO;
    Held _held[MAX_OOO];
};

template <class Deliver, class Drop>
Reassembly::Result Reassembly::receive(uint32_t seq, uint32_t len, void* h, uint32_t off,
                                       uint32_t wnd, Counters& c, Deliver&& deliver, Drop&& drop) {
    Result r;
    // Trim the tail beyond the window.
    uint32_t wnd_end = _rcv_nxt + wnd;
    if (len > 0 && seq_gt(seq + len, wnd_end)) {
        if (seq_geq(seq, wnd_end)) {
            c.rx_beyond_window++;
            drop(h);
            r.ack_now = true;
            return r;
        }
        len = wnd_end - seq;
        c.rx_beyond_window++;
        r.ack_now = true;
    }
    // Entirely old: a duplicate.
    if (len == 0 || seq_leq(seq + len, _rcv_nxt)) {
        if (len != 0) c.rx_duplicate++;
        drop(h);
        r.ack_now = len != 0;
        return r;
    }
    if (seq_gt(seq, _rcv_nxt)) {
        // Out of order: hold if not already covered.
        uint32_t pos = 0;
        while (pos < _n && seq_lt(_held[pos].seq, seq)) pos++;
        for (uint32_t i = 0; i < _n; i++) {
            const Held& o = _held[i];
            if (seq_leq(o.seq, seq) && seq_geq(o.seq + o.len, seq + len)) {
                c.rx_duplicate++;
                drop(h);
                r.ack_now = true;
                return r;
            }
        }
        // Held segments entirely inside the new one are superseded.
        uint32_t w = 0;
        for (uint32_t i = 0; i < _n; i++) {
            const Held& o = _held[i];
            if (seq_geq(o.seq, seq) && seq_leq(o.seq + o.len, seq + len)) {
                c.rx_duplicate++;
                drop(o.h);
                if (i < pos) pos--;
            } else {
                _held[w++] = o;
            }
        }
        _n = w;
        if (_n >= _limit) {
            c.rx_ooo_overflow++;
            drop(h);
            r.ack_now = true;
            return r;
        }
        for (uint32_t i = _n; i > pos; i--) _held[i] = _held[i - 1];
        _held[pos] = Held{seq, len, h, off};
        _n++;
        c.rx_ooo_held++;
        r.ack_now = true;  // duplicate ACK tells the peer what is missing
        return r;
    }
    // In order (possibly overlapping already-received bytes at the front).
    uint32_t skip = _rcv_nxt - seq;
    deliver(h, off + skip, len - skip);
    _rcv_nxt += len - skip;
    r.delivered += len - skip;
    c.rx_in_order++;
    // Pull held segments that are now in order.
    uint32_t i = 0;
    while (i < _n && seq_leq(_held[i].seq, _rcv_nxt)) {
        Held& o = _held[i++];
        if (seq_leq(o.seq + o.len, _rcv_nxt)) {
            c.rx_duplicate++;
            drop(o.h);
            continue;
        }
        uint32_t s = _rcv_nxt - o.seq;
        deliver(o.h, o.off + s, o.len - s);
        _rcv_nxt += o.len - s;
        r.delivered += o.len - s;
        r.ack_now = true;  // a hole was filled: ACK at once (RFC 5681 §4.2)
    }
    if (i > 0) {
        for (uint32_t j = i; j < _n; j++) _held[j - i] = _held[j];
        _n -= i;
    }
    return r;
}

}  // namespace tlb::tcp
