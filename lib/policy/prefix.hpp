// Prefix directory: which backends recently received which prompt prefixes (for the prefix-cache
// bonus of token_aware). One directory per worker, not in the shared scoreboard.
//
// Why per worker: recording happens on every routed request (up to MAX_PREFIX_POINTS inserts);
// in shared memory that would be a multi-writer hash table needing atomic RMW or locks on the
// hot path. Connections are pinned to a worker (RSS / flow ownership), and the requests that
// share a prefix most (turns of one conversation, one app's system prompt) mostly come over the
// same connections, so a worker-local view sees most of the affinity that matters. A request
// whose prefix was last sent by another worker simply gets no bonus (it is routed by load).
// This is also what Envoy's and HAProxy's hash-based affinity do: local state, no coordination.
//
// Prefix points: a request carries up to MAX_PREFIX_POINTS cumulative hashes of its leading
// prompt, at block counts from prefix_point_blocks() (geometric, ratio ~1.5, plus the last full
// block), each with the token count it covers. A match at a point means "these first N tokens
// were sent to backend b"; the longest match is found by binary search (points are recorded
// together, so presence is monotone in the point index).
//
// Eviction model: a backend's KV cache keeps a prefix until roughly its KV capacity in newer
// tokens has been written (LRU). Each backend has a token clock (uncached prompt + expected output
// tokens routed there by this worker); an entry is trusted while clock - entry clock is below
// EVICT_FRACTION x the backend's kv_capacity_tokens (from its profile).
#pragma once

#include <cstdint>
#include <memory>

#include "scoreboard/view.hpp"

namespace tlb::policy {

constexpr uint32_t MAX_PREFIX_POINTS = 16;
constexpr uint32_t PREFIX_MATCH_MAX = 2;  // backends remembered per prefix point
constexpr float EVICT_FRACTION = 0.7f;
constexpr float UNKNOWN_KV_CAPACITY = 200000.0f;

// Block counts (ascending) at which a prompt of n_blocks full blocks gets prefix points:
// 4, 6, 9, 13, 20, 30, ... (x1.5) below n_blocks, then n_blocks itself. Returns the count.
uint32_t prefix_point_blocks(uint32_t n_blocks, uint32_t out[MAX_PREFIX_POINTS]);

struct PrefixMatch {
    uint32_t n = 0;                          // backends matched (0..PREFIX_MATCH_MAX)
    int32_t backend[PREFIX_MATCH_MAX] = {-1, -1};
    uint32_t tokens[PREFIX_MATCH_MAX] = {};  // matched leading tokens on that backend
};

class PrefixDirectory {
public:
    // capacity: entries, rounded up to a power of two. Allocates once (start-up).
    explicit PrefixDirectory(uint32_t capacity = 1u << 16);

    // Record that the request with these points was routed to `backend`, then advance the
    // backend's token clock by `tokens_written` (uncached prompt + expected output).
    void record(const uint64_t* hashes, const uint32_t* tokens, uint32_t n, uint32_t backend,
                uint32_t tokens_written);
    // Longest recorded prefix of these points, per backend still trusted to hold it.
    PrefixMatch lookup(const uint64_t* hashes, const uint32_t* tokens, uint32_t n,
                       const scoreboard::View& v) const;
    uint64_t clock(uint32_t backend) const { return _clock[backend]; }
    uint64_t inserts() const { return _inserts; }

private:
    struct Entry {
        uint64_t hash;  // 0 = empty
        uint32_t tokens;
        uint8_t backend[PREFIX_MATCH_MAX];
        uint8_t used;   // backends valid in this entry
        uint8_t pad;
        uint64_t clock[PREFIX_MATCH_MAX];
    };
    static_assert(sizeof(Entry) == 32);
    static constexpr uint32_t PROBE = 8;

    const Entry* find(uint64_t h) const;
    bool trusted(const Entry& e, uint32_t i, const scoreboard::View& v) const;

    std::unique_ptr<Entry[]> _table;
    uint32_t _mask = 0;
    uint64_t _inserts = 0;
    uint64_t _clock[scoreboard::MAX_BACKENDS] = {};
};

}  // namespace tlb::policy
