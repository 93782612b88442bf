// Prefix fingerprint. Blocks of the logical stream [0xFF role text]... are hashed with a chained
// 64-bit hash; block i's hash depends on every byte before it, so equal hashes at index i mean an
// equal prompt prefix of (i+1)*block_bytes bytes (accidental collisions ~2^-32 per block pair:
// NH is almost-universal, not cryptographic; a crafted collision only changes which backend a
// request prefers). Like vLLM's prefix
// caching (hash of the previous block + this block's tokens) but over bytes, because the appliance
// has no tokens, only text. Spans are decoded JSON strings, so JSON formatting never changes them.
#include <immintrin.h>

#include <cstring>

#include "tokens/model.hpp"

namespace tlb::tokens {

namespace {

// Key words for NH, one per 4 bytes of a block (fixed, from splitmix64).
struct NhKey {
    uint32_t k[PREFIX_MAX_BLOCK_BYTES / 4 + 2];
};
constexpr NhKey make_nh_key() {
    NhKey t{};
    uint64_t x = 0x243F6A8885A308D3ULL;
    for (auto& w : t.k) {
        x += 0x9E3779B97F4A7C15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        w = uint32_t(z ^ (z >> 31));
    }
    return t;
}
alignas(64) constexpr NhKey NH = make_nh_key();

// Hash of one block (len is a multiple of 16), independent of the blocks before it: NH (the sum
// of (lo + k) * (hi + k') over the block's 64-bit words, 32 x 32 -> 64-bit products, keys by
// position) in eight lanes (word w goes to lane w % 8), the lanes combined with odd multipliers
// and mixed. SSE2 pmuludq, two words per instruction: ~4x the previous 64 x 64 -> 128-bit
// multiply-fold lanes, whose serial fold dominated short blocks. The block-to-block chain is one
// mix. Pure integer arithmetic on little-endian loads: the same value on every run and machine.
uint64_t block_hash_sse2(const uint8_t* p, size_t len) {
    // acc[j] holds lanes 2j and 2j + 1. Per 16 bytes: (lo + k, hi + k') for both words in one
    // vector, pmuludq multiplies each word's two halves.
    __m128i acc[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
    auto nh16 = [&](size_t i, int j) {
        const __m128i t = _mm_add_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)),
                                        _mm_load_si128(reinterpret_cast<const __m128i*>(NH.k + (i >> 2))));
        acc[j] = _mm_add_epi64(acc[j], _mm_mul_epu32(t, _mm_srli_epi64(t, 32)));
    };
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        nh16(i, 0);
        nh16(i + 16, 1);
        nh16(i + 32, 2);
        nh16(i + 48, 3);
    }
    for (int j = 0; i < len; i += 16, ++j) nh16(i, j);  // 16-, 32- or 48-byte tail
    alignas(16) uint64_t lanes[8];
    for (int j = 0; j < 4; ++j) _mm_store_si128(reinterpret_cast<__m128i*>(lanes + 2 * j), acc[j]);
    constexpr uint64_t C[8] = {0x9E3779B97F4A7C15ULL, 0xC2B2AE3D27D4EB4FULL, 0x165667B19E3779F9ULL,
                               0xD6E8FEB86659FD93ULL, 0xA0761D6478BD642FULL, 0xE7037ED1A0B428DBULL,
                               0x8EBC6AF09C88C6E3ULL, 0x589965CC75374CC3ULL};
    uint64_t h = uint64_t(len) * 0xBF58476D1CE4E5B9ULL;
    for (size_t l = 0; l < 8; ++l) h += (lanes[l] ^ (lanes[l] >> 29)) * C[l];
    return mix64(h);
}

// The same lanes with AVX-512: one 64-byte group per vpmuludq (lane l = word l of the group, as
// acc[l / 2] above; a 16/32/48-byte tail masked to zero), the lane combination with vpmullq.
// GCC 12 reports its own AVX-512 intrinsic headers (_mm512_undefined operands) as uninitialised.
#pragma GCC diagnostic push
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
__attribute__((target("avx512f,avx512dq"))) uint64_t block_hash_avx512(const uint8_t* p, size_t len) {
    __m512i acc = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        const __m512i t = _mm512_add_epi32(_mm512_loadu_si512(p + i), _mm512_loadu_si512(NH.k + (i >> 2)));
        acc = _mm512_add_epi64(acc, _mm512_mul_epu32(t, _mm512_srli_epi64(t, 32)));
    }
    if (i < len) {
        const __mmask16 m = __mmask16((1u << ((len - i) >> 2)) - 1);
        const __m512i t = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, p + i), _mm512_maskz_loadu_epi32(m, NH.k + (i >> 2)));
        acc = _mm512_add_epi64(acc, _mm512_mul_epu32(t, _mm512_srli_epi64(t, 32)));
    }
    const __m512i c = _mm512_setr_epi64(int64_t(0x9E3779B97F4A7C15ULL), int64_t(0xC2B2AE3D27D4EB4FULL),
                                        int64_t(0x165667B19E3779F9ULL), int64_t(0xD6E8FEB86659FD93ULL),
                                        int64_t(0xA0761D6478BD642FULL), int64_t(0xE7037ED1A0B428DBULL),
                                        int64_t(0x8EBC6AF09C88C6E3ULL), int64_t(0x589965CC75374CC3ULL));
    const __m512i x = _mm512_mullo_epi64(_mm512_xor_si512(acc, _mm512_srli_epi64(acc, 29)), c);
    return mix64(uint64_t(len) * 0xBF58476D1CE4E5B9ULL + hsum_epi64(x));
}
#pragma GCC diagnostic pop

bool avx512_hash() noexcept {
    static const bool ok = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    }();
    return ok;
}

inline uint64_t block_hash(const uint8_t* p, size_t len) {
    return avx512_hash() ? block_hash_avx512(p, len) : block_hash_sse2(p, len);
}

}  // namespace

uint64_t prefix_block_hash(const uint8_t* p, size_t len, bool simd) noexcept {
    return simd && avx512_hash() ? block_hash_avx512(p, len) : block_hash_sse2(p, len);
}

size_t prefix_fingerprint(const TextSpan* spans, size_t n_spans, uint64_t* out, size_t max_out,
                          size_t block_bytes) noexcept {
    if (block_bytes < 16 || block_bytes > PREFIX_MAX_BLOCK_BYTES || block_bytes % 16 || !out || max_out == 0)
        return 0;
    alignas(16) uint8_t buf[PREFIX_MAX_BLOCK_BYTES];
    size_t fill = 0, produced = 0;
    uint64_t h = 0x6a09e667f3bcc908ULL;  // h_i = mix(h_{i-1} ^ H(block_i))
    auto feed = [&](const uint8_t* p, size_t n) -> bool {
        while (n) {
            if (fill == 0 && n >= block_bytes) {  // a whole block in place: no copy
                h = mix64(h ^ block_hash(p, block_bytes));
                out[produced++] = h;
                p += block_bytes;
                n -= block_bytes;
                if (produced == max_out) return false;
                continue;
            }
            const size_t take = n < block_bytes - fill ? n : block_bytes - fill;
            std::memcpy(buf + fill, p, take);
            fill += take;
            p += take;
            n -= take;
            if (fill == block_bytes) {
                h = mix64(h ^ block_hash(buf, block_bytes));
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
