// Request buffers: flat, contiguous memory for one client's request bytes while they are framed
// (http), extracted (simdjson needs contiguous input with padding) and sent to a backend.
//
// Decision: requests are copied once out of the received mbufs into a flat buffer, and sent to
// the backend from it (copied again into fresh header+payload mbufs per segment). Keeping the
// client's mbufs instead (zero-copy) was rejected: a 1 MiB body pins ~700 mbufs until its
// response completes, so 64 such requests exhaust a 16k-mbuf pool, while the copy costs a
// memcpy at tens of GB/s. Buffers come in three tiers (small/medium/large) so a keep-alive
// connection of short chat requests never holds megabytes; a request upgrades to a larger tier
// once its Content-Length (or its chunked body) needs it. All memory is allocated at start-up and
// is virtual until touched; get/put never allocate.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace tlb::dataplane {

struct Buf {
    uint8_t* data = nullptr;
    uint32_t cap = 0;   // usable bytes; PADDING more are readable after them
    uint8_t tier = 0;
    Buf* next = nullptr;
};

class BufPool {
public:
    static constexpr uint32_t PADDING = 64;  // simdjson reads up to 64 bytes past the end
    static constexpr int TIERS = 3;
    struct Tier {
        uint32_t size = 0;
        uint32_t count = 0;
    };
    explicit BufPool(const Tier (&tiers)[TIERS]) {
        for (int t = 0; t < TIERS; t++) {
            _tier[t] = tiers[t];
            size_t stride = size_t(tiers[t].size) + PADDING;
            _mem[t].reset(new uint8_t[stride * tiers[t].count]);  // untouched: lazily backed
            _bufs[t].reset(new Buf[tiers[t].count]);
            for (uint32_t i = 0; i < tiers[t].count; i++) {
                Buf* b = &_bufs[t][i];
                b->data = _mem[t].get() + stride * i;
                b->cap = tiers[t].size;
                b->tier = uint8_t(t);
                b->next = _free[t];
                _free[t] = b;
            }
            _avail[t] = tiers[t].count;
        }
    }
    // Smallest tier buffer with cap >= need, falling back to larger tiers; nullptr if none.
    Buf* get(uint32_t need) {
        for (int t = 0; t < TIERS; t++) {
            if (_tier[t].size < need || !_free[t]) continue;
            Buf* b = _free[t];
            _free[t] = b->next;
            b->next = nullptr;
            _avail[t]--;
            return b;
        }
        return nullptr;
    }
    void put(Buf* b) {
        if (!b) return;
        b->next = _free[b->tier];
        _free[b->tier] = b;
        _avail[b->tier]++;
    }
    uint32_t max_size() const { return _tier[TIERS - 1].size; }
    uint32_t available(int t) const { return _avail[t]; }
    uint32_t in_use() const {
        uint32_t n = 0;
        for (int t = 0; t < TIERS; t++) n += _tier[t].count - _avail[t];
        return n;
    }

private:
    Tier _tier[TIERS];
    std::unique_ptr<uint8_t[]> _mem[TIERS];
    std::unique_ptr<Buf[]> _bufs[TIERS];
    Buf* _free[TIERS] = {};
    uint32_t _avail[TIERS] = {};
};

}  // namespace tlb::dataplane
