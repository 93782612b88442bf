// A byte stream kept in mbufs, without copying: the request bytes received from a client (each
// payload mbuf trimmed to its payload and linked in order) and the appliance's own responses.
//
// Zero-copy decision: request payload mbufs received from the client are kept as they are (no
// copy into a flat buffer) and transmitted to the backend as indirect mbufs attached to them
// (rte_pktmbuf_attach — a refcount, no copy) behind a fresh header mbuf; the same holds for every
// retransmission. The queue therefore owns one reference per mbuf; a clone in a NIC's tx ring
// holds another, so freeing the queue while a clone is in flight is safe. HTTP parsing reads the
// bytes in place (for_each_span) or copies a range out (copy_out) when a consumer needs them flat.
// Ports must accept multi-segment tx (RTE_ETH_TX_OFFLOAD_MULTI_SEGS; af_packet, tap, memif and
// physical NICs do); the data plane falls back to copying (build_data_segment with clone_pool =
// nullptr) where they do not.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

namespace tlb::tcp {

class MbufQueue {
public:
    MbufQueue() = default;
    MbufQueue(const MbufQueue&) = delete;
    MbufQueue& operator=(const MbufQueue&) = delete;

    // Append a single-segment or chained mbuf whose data (all segments) is payload. Ownership
    // passes to the queue. Empty mbufs are freed.
    void append(rte_mbuf* m);
    // Append the bytes [off, off+len) of `m` (trims m in place, takes ownership).
    void append_range(rte_mbuf* m, uint32_t off, uint32_t len);
    // Drop n bytes from the front (fully consumed mbufs are freed).
    void consume(uint32_t n);
    // Free everything.
    void clear();

    uint32_t bytes() const { return _bytes; }
    uint32_t segments() const { return _segs; }
    bool empty() const { return _bytes == 0; }
    rte_mbuf* head() const { return _head; }

    // Copy [off, off+len) into dst; returns bytes copied (less when the queue is shorter).
    uint32_t copy_out(uint32_t off, uint32_t len, uint8_t* dst) const;
    // Visit the contiguous spans of [off, off+len): f(const uint8_t*, uint32_t). Stops early when
    // f returns false.
    template <class F>
    void for_each_span(uint32_t off, uint32_t len, F&& f) const {
        for (rte_mbuf* m = _head; m && len; m = m->next) {
            uint32_t dl = m->data_len;
            if (off >= dl) {
                off -= dl;
                continue;
            }
            uint32_t n = dl - off < len ? dl - off : len;
            if (!f(rte_pktmbuf_mtod_offset(m, const uint8_t*, off), n)) return;
            len -= n;
            off = 0;
        }
    }
    // A chain of indirect mbufs (from `pool`) referencing [off, off+len), or nullptr when the
    // range is out of the queue or the pool is empty (nothing leaked).
    rte_mbuf* clone_range(uint32_t off, uint32_t len, rte_mempool* pool) const;

private:
    rte_mbuf* _head = nullptr;  // segments linked through ->next
    rte_mbuf* _tail = nullptr;
    uint32_t _bytes = 0;
    uint32_t _segs = 0;
};

}  // namespace tlb::tcp
