#include "policy/prefix.hpp"

#include <algorithm>

namespace tlb::policy {

uint32_t prefix_point_blocks(uint32_t n_blocks, uint32_t out[MAX_PREFIX_POINTS]) {
    uint32_t n = 0;
    if (n_blocks == 0) return 0;
    double b = 4;
    while (n + 1 < MAX_PREFIX_POINTS && static_cast<uint32_t>(b) < n_blocks) {
        uint32_t v = static_cast<uint32_t>(b);
        if (n == 0 || v > out[n - 1]) out[n++] = v;
        b *= 1.5;
    }
    out[n++] = n_blocks;
    return n;
}

PrefixDirectory::PrefixDirectory(uint32_t capacity) {
    uint32_t c = 64;
    while (c < capacity) c <<= 1;
    _table.reset(new Entry[c]());
    _mask = c - 1;
}

const PrefixDirectory::Entry* PrefixDirectory::find(uint64_t h) const {
    if (h == 0) return nullptr;
    uint32_t i = static_cast<uint32_t>(h ^ (h >> 29)) & _mask;
    for (uint32_t k = 0; k < PROBE; ++k) {
        const Entry& e = _table[(i + k) & _mask];
        if (e.hash == h) return &e;
        if (e.hash == 0) return nullptr;
    }
    return nullptr;
}

bool PrefixDirectory::trusted(const Entry& e, uint32_t i, const scoreboard::View& v) const {
    uint32_t b = e.backend[i];
    if (b >= v.n) return false;
    float cap = v.b[b].kv_capacity_tokens > 0 ? v.b[b].kv_capacity_tokens : UNKNOWN_KV_CAPACITY;
    return static_cast<float>(_clock[b] - e.clock[i]) < EVICT_FRACTION * cap;
}

void PrefixDirectory::record(const uint64_t* hashes, const uint32_t* tokens, uint32_t n,
                             uint32_t backend, uint32_t tokens_written) {
    if (backend >= scoreboard::MAX_BACKENDS) return;
    // The request's own tokens do not age its own prefix: stamp after advancing the clock.
    _clock[backend] += tokens_written;
    uint64_t now = _clock[backend];
    for (uint32_t p = 0; p < n; ++p) {
        uint64_t h = hashes[p];
        if (h == 0) continue;
        uint32_t start = static_cast<uint32_t>(h ^ (h >> 29)) & _mask;
        Entry* slot = nullptr;
        Entry* empty = nullptr;
        for (uint32_t k = 0; k < PROBE; ++k) {
            Entry& e = _table[(start + k) & _mask];
            if (e.hash == h) { slot = &e; break; }
            if (e.hash == 0) { empty = &e; break; }
        }
        if (!slot) {
            // New entry; when the probe window is full, overwrite its first slot (cheap random
            // replacement: hot prefixes get re-recorded on their next request anyway).
            slot = empty ? empty : &_table[start];
            *slot = Entry{};
            slot->hash = h;
            slot->tokens = tokens[p];
            ++_inserts;
        }
        // Refresh this backend, or take the slot of the stalest backend remembered.
        uint32_t idx = PREFIX_MATCH_MAX;
        for (uint32_t i = 0; i < slot->used; ++i)
            if (slot->backend[i] == backend) idx = i;
        if (idx == PREFIX_MATCH_MAX) {
            if (slot->used < PREFIX_MATCH_MAX) {
                idx = slot->used++;
            } else {
                uint64_t worst_age = 0;
                idx = 0;
                for (uint32_t i = 0; i < slot->used; ++i) {
                    uint64_t age = _clock[slot->backend[i]] - slot->clock[i];
                    if (age >= worst_age) { worst_age = age; idx = i; }
                }
            }
            slot->backend[idx] = static_cast<uint8_t>(backend);
        }
        slot->clock[idx] = now;
    }
}

PrefixMatch PrefixDirectory::lookup(const uint64_t* hashes, const uint32_t* tokens, uint32_t n,
                                    const scoreboard::View& v) const {
    PrefixMatch m;
    // Binary search for the longest point that is present (presence is monotone: points of one
    // request are recorded together).
    int lo = 0, hi = static_cast<int>(n) - 1, best = -1;
    const Entry* best_e = nullptr;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const Entry* e = find(hashes[mid]);
        if (e) { best = mid; best_e = e; lo = mid + 1; }
        else hi = mid - 1;
    }
    if (best < 0) return m;
    for (uint32_t i = 0; i < best_e->used; ++i) {
        if (!trusted(*best_e, i, v)) continue;
        m.backend[m.n] = best_e->backend[i];
        m.tokens[m.n] = std::min(best_e->tokens, tokens[best]);
        ++m.n;
    }
    return m;
}

}  // namespace tlb::policy
