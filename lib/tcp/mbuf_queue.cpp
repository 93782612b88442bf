#include "tcp/mbuf_queue.hpp"

namespace tlb::tcp {

void MbufQueue::append(rte_mbuf* m) {
    // Flatten an incoming chain into our list, one segment at a time; drop empty segments.
    while (m) {
        rte_mbuf* next = m->next;
        m->next = nullptr;
        m->nb_segs = 1;
        m->pkt_len = m->data_len;
        if (m->data_len == 0) {
            rte_pktmbuf_free_seg(m);
        } else {
            if (_tail)
                _tail->next = m;
            else
                _head = m;
            _tail = m;
            _bytes += m->data_len;
            _segs++;
        }
        m = next;
    }
}

void MbufQueue::append_range(rte_mbuf* m, uint32_t off, uint32_t len) {
    // Walk the chain: free segments before `off` and after off+len, trim the edges.
    rte_mbuf* keep_head = nullptr;
    rte_mbuf* keep_tail = nullptr;
    while (m) {
        rte_mbuf* next = m->next;
        m->next = nullptr;
        m->nb_segs = 1;
        uint32_t dl = m->data_len;
        if (off >= dl || len == 0) {
            off -= off >= dl ? dl : off;
            rte_pktmbuf_free_seg(m);
            m = next;
            continue;
        }
        m->data_off = uint16_t(m->data_off + off);
        dl -= off;
        off = 0;
        if (dl > len) dl = len;
        m->data_len = uint16_t(dl);
        m->pkt_len = dl;
        len -= dl;
        if (keep_tail)
            keep_tail->next = m;
        else
            keep_head = m;
        keep_tail = m;
        m = next;
    }
    append(keep_head);
}

void MbufQueue::consume(uint32_t n) {
    while (_head && n) {
        rte_mbuf* m = _head;
        if (n < m->data_len) {
            m->data_off = uint16_t(m->data_off + n);
            m->data_len = uint16_t(m->data_len - n);
            m->pkt_len = m->data_len;
            _bytes -= n;
            return;
        }
        n -= m->data_len;
        _bytes -= m->data_len;
        _head = m->next;
        m->next = nullptr;
        _segs--;
        rte_pktmbuf_free_seg(m);
    }
    if (!_head) {
        _tail = nullptr;
        _bytes = 0;
        _segs = 0;
    }
}

void MbufQueue::clear() { consume(_bytes); }

uint32_t MbufQueue::copy_out(uint32_t off, uint32_t len, uint8_t* dst) const {
    uint32_t done = 0;
    for_each_span(off, len, [&](const uint8_t* p, uint32_t n) {
        __builtin_memcpy(dst + done, p, n);
        done += n;
        return true;
    });
    return done;
}

rte_mbuf* MbufQueue::clone_range(uint32_t off, uint32_t len, rte_mempool* pool) const {
    if (len == 0 || uint64_t(off) + len > _bytes) return nullptr;
    rte_mbuf* head = nullptr;
    rte_mbuf* tail = nullptr;
    uint16_t nsegs = 0;
    uint32_t total = len;
    for (rte_mbuf* m = _head; m && len; m = m->next) {
        uint32_t dl = m->data_len;
        if (off >= dl) {
            off -= dl;
            continue;
        }
        uint32_t n = dl - off < len ? dl - off : len;
        rte_mbuf* mi = rte_pktmbuf_alloc(pool);
        if (!mi) {
            if (head) rte_pktmbuf_free(head);
            return nullptr;
        }
        rte_pktmbuf_attach(mi, m);  // refcount on m's buffer, no copy
        mi->data_off = uint16_t(m->data_off + off);
        mi->data_len = uint16_t(n);
        mi->pkt_len = n;
        mi->next = nullptr;
        mi->nb_segs = 1;
        if (tail)
            tail->next = mi;
        else
            head = mi;
        tail = mi;
        nsegs++;
        len -= n;
        off = 0;
    }
    head->nb_segs = nsegs;
    head->pkt_len = total;
    return head;
}

}  // namespace tlb::tcp
