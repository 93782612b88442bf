// Prefix fingerprint. Blocks of the logical stream [0xFF role text]... are hashed with a chained
// 64-bit hash; block i's hash depends on every byte before it, so equal hashes at index i mean an
// equal prompt prefix of (i+1)*block_bytes bytes (up to 2^-64 collisions). Like vLLM's prefix
// caching (hash of the previous block + this block's tokens) but over bytes, because the appliance
// has no tokens, only text. Spans are decoded JSON strings, so JSON formatting never changes them.
#include <cstring>

#include "tokens/model.hpp"

namespace tlb::tokens {

namespace {

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// Hash of one block (len is a multiple of 8) seeded with the previous block's hash.
uint64_t block_hash(uint64_t seed, const uint8_t* p, size_t len) {
    uint64_t a = seed ^ 0x9E3779B97F4A7C15ULL, b = ~seed * 0xC2B2AE3D27D4EB4FULL;
    for (size_t i = 0; i < len; i += 16) {
        const unsigned __int128 x = (unsigned __int128)(load64(p + i) ^ a) * (load64(p + i + 8) ^ 0xbf58476d1ce4e5b9ULL ^ b);
        a = uint64_t(x) + 0x94d049bb133111ebULL;
        b = uint64_t(x >> 64) ^ (a << 7 | a >> 57);
    }
    return mix64(a ^ mix64(b + len));
}

}  // namespace

size_t prefix_fingerprint(const TextSpan* spans, size_t n_spans, uint64_t* out, size_t max_out,
                          size_t block_bytes) noexcept {
    if (block_bytes < 16 || block_bytes > PREFIX_MAX_BLOCK_BYTES || block_bytes % 16 || !out || max_out == 0)
        return 0;
    alignas(16) uint8_t buf[PREFIX_MAX_BLOCK_BYTES];
    size_t fill = 0, produced = 0;
    uint64_t h = 0x6a09e667f3bcc908ULL;
    auto feed = [&](const uint8_t* p, size_t n) -> bool {
        while (n) {
            const size_t take = n < block_bytes - fill ? n : block_bytes - fill;
            std::memcpy(buf + fill, p, take);
            fill += take;
            p += take;
            n -= take;
            if (fill == block_bytes) {
                h = block_hash(h, buf, block_bytes);
                out[produced++] = h;
                fill = 0;
                if (produced == max_out) return false;
            }
        }
        return true;
    };
    for (size_t i = 0; i < n_spans; ++i) {
        const uint8_t sep[2] = {0xFF, uint8_t(spans[i].role)};
        if (!feed(sep, 2)) return produced;
        if (spans[i].size && !feed(reinterpret_cast<const uint8_t*>(spans[i].data), spans[i].size)) return produced;
    }
    return produced;
}

}  // namespace tlb::tokens
