// Decoding prompt text out of a JSON body (internal to lib/openai).
//
// decode_simple() decodes the raw text of a JSON string straight into the caller's scratch buffer:
// copy_plain() copies the run up to the next backslash in one vector pass (a string without one
// is its own decoding), the two-character escapes are decoded in between, and a \u escape (or an
// invalid one) is where it stops and hands the rest to simdjson's unescaper. It never writes past
// the raw text's length, so it needs no more scratch room than the text itself. The kernel is
// chosen once, when the extractor is initialised: AVX-512BW, AVX2, or SSE2 (every x86-64 CPU has
// it), with memchr + memcpy as the portable reference; the unit tests compare every kernel the
// CPU supports with the reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tlb::openai::text {

// Copies src[0, k) to dst, where k is the offset of the first backslash in src[0, n), or n if
// there is none, and returns k. Never writes at or past dst + n (bytes of [k, n) may be written);
// reads up to 63 bytes past src + n, which the caller guarantees are readable (in a JSON body they
// are inside the document's SIMDJSON_PADDING: src + n is the closing quote).
using CopyPlainFn = size_t (*)(const char* src, size_t n, uint8_t* dst) noexcept;

inline size_t copy_plain_scalar(const char* src, size_t n, uint8_t* dst) noexcept {
    const void* bs = std::memchr(src, '\\', n);
    const size_t k = bs ? static_cast<size_t>(static_cast<const char*>(bs) - src) : n;
    std::memcpy(dst, src, k);
    return k;
}

#if defined(__x86_64__)
namespace detail {
inline unsigned bs_mask16(const char* p, uint8_t* d, bool store) noexcept {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if (store) _mm_storeu_si128(reinterpret_cast<__m128i*>(d), v);
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
}
// Fewer than 16 bytes: find the backslash in one look, copy exactly.
inline size_t copy_short(const char* src, size_t n, uint8_t* dst) noexcept {
    const unsigned m = bs_mask16(src, nullptr, false) & ((1u << n) - 1);
    const size_t k = m ? static_cast<size_t>(__builtin_ctz(m)) : n;
    std::memcpy(dst, src, k);
    return k;
}
}  // namespace detail

inline size_t copy_plain_sse2(const char* src, size_t n, uint8_t* dst) noexcept {
    if (n < 16) return detail::copy_short(src, n, dst);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        if (const unsigned m = detail::bs_mask16(src + i, dst + i, true)) return i + static_cast<size_t>(__builtin_ctz(m));
    if (i == n) return n;
    // The last 16 bytes, overlapping what is done (those bytes hold no backslash).
    const unsigned m = detail::bs_mask16(src + n - 16, dst + n - 16, true);
    return m ? n - 16 + static_cast<size_t>(__builtin_ctz(m)) : n;
}

namespace detail {
__attribute__((target("avx2"))) inline uint32_t bs_mask32(const char* p, uint8_t* d) noexcept {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), v);
    return static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\'))));
}
}  // namespace detail

__attribute__((target("avx2"))) inline size_t copy_plain_avx2(const char* src, size_t n, uint8_t* dst) noexcept {
    if (n < 32) return copy_plain_sse2(src, n, dst);
    const __m256i bs = _mm256_set1_epi8('\\');
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {  // two blocks per test
        const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
        const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 32));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), v0);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 32), v1);
        const __m256i c = _mm256_or_si256(_mm256_cmpeq_epi8(v0, bs), _mm256_cmpeq_epi8(v1, bs));
        if (!_mm256_testz_si256(c, c)) {
            const uint64_t m = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v0, bs))) |
                               static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v1, bs)))) << 32;
            return i + static_cast<size_t>(__builtin_ctzll(m));
        }
    }
    if (i + 32 <= n) {
        if (const uint32_t m = detail::bs_mask32(src + i, dst + i)) return i + static_cast<size_t>(__builtin_ctz(m));
        i += 32;
    }
    if (i == n) return n;
    const uint32_t m = detail::bs_mask32(src + n - 32, dst + n - 32);  // the last 32 bytes, overlapping what is done
    return m ? n - 32 + static_cast<size_t>(__builtin_ctz(m)) : n;
}

__attribute__((target("avx512f,avx512bw"))) inline size_t copy_plain_avx512(const char* src, size_t n, uint8_t* dst) noexcept {
    const __m512i bs = _mm512_set1_epi8('\\');
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512i v = _mm512_loadu_si512(src + i);
        _mm512_storeu_si512(dst + i, v);
        if (const uint64_t m = _mm512_cmpeq_epi8_mask(v, bs)) return i + static_cast<size_t>(__builtin_ctzll(m));
    }
    if (i == n) return n;
    // The tail: a masked store writes exactly up to dst + n.
    const __mmask64 keep = (uint64_t{1} << (n - i)) - 1;
    const __m512i v = _mm512_loadu_si512(src + i);
    _mm512_mask_storeu_epi8(dst + i, keep, v);
    const uint64_t m = _mm512_cmpeq_epi8_mask(v, bs) & keep;
    return m ? i + static_cast<size_t>(__builtin_ctzll(m)) : n;
}
#endif

// The two-character JSON escapes and what they decode to (simdjson's escape_map); 0 for \u and
// for anything invalid.
struct SimpleEscapes {
    uint8_t t[256] = {};
    constexpr SimpleEscapes() {
        auto at = [this](char c) -> uint8_t& { return t[static_cast<uint8_t>(c)]; };
        at('"') = '"'; at('\\') = '\\'; at('/') = '/'; at('b') = '\b'; at('f') = '\f';
        at('n') = '\n'; at('r') = '\r'; at('t') = '\t';
    }
};
inline constexpr SimpleEscapes SIMPLE_ESCAPE{};

// Decodes the raw text of a JSON string (between its quotes, n bytes) into dst as far as it can
// on its own: plain runs are copied with Copy, the two-character escapes (\" \\ \/ \b \f \n \r
// \t) decoded. It stops at a \u escape or an invalid one, which are left to simdjson. in/out:
// the offsets reached in src and in dst; true when all of src was decoded. Writes nothing past
// dst + n (the decoding is never longer than the raw text); reads like CopyPlainFn.
using DecodeSimpleFn = bool (*)(const char* src, size_t n, uint8_t* dst, size_t& in, size_t& out) noexcept;

#define TLB_DECODE_SIMPLE_BODY(copy)                                              \
    size_t i = copy(src, n, dst), o = i;                                          \
    while (i + 1 < n) {                                                           \
        const uint8_t e = SIMPLE_ESCAPE.t[static_cast<uint8_t>(src[i + 1])];      \
        if (e == 0) break;                                                        \
        dst[o++] = e;                                                             \
        i += 2;                                                                   \
        const size_t k = copy(src + i, n - i, dst + o);                           \
        i += k;                                                                   \
        o += k;                                                                   \
    }                                                                             \
    in = i;                                                                       \
    out = o;                                                                      \
    return i >= n;

// (noinline: they are only ever called through the pointer pick_decode_simple() returns.)
__attribute__((noinline)) inline bool decode_simple_scalar(const char* src, size_t n, uint8_t* dst, size_t& in, size_t& out) noexcept {
    TLB_DECODE_SIMPLE_BODY(copy_plain_scalar)
}
#if defined(__x86_64__)
__attribute__((noinline)) inline bool decode_simple_sse2(const char* src, size_t n, uint8_t* dst, size_t& in, size_t& out) noexcept {
    TLB_DECODE_SIMPLE_BODY(copy_plain_sse2)
}
__attribute__((target("avx2"), noinline)) inline bool decode_simple_avx2(const char* src, size_t n, uint8_t* dst, size_t& in,
                                                               size_t& out) noexcept {
    TLB_DECODE_SIMPLE_BODY(copy_plain_avx2)
}
__attribute__((target("avx512f,avx512bw"), noinline)) inline bool decode_simple_avx512(const char* src, size_t n, uint8_t* dst,
                                                                             size_t& in, size_t& out) noexcept {
    TLB_DECODE_SIMPLE_BODY(copy_plain_avx512)
}

// Escapes in whole 64-byte blocks, without a branch per escape (text with many escapes, like
// code with \n and \" every line, otherwise costs a mispredicted branch or two per escape): the
// escaped characters of a block are found with carry-less run arithmetic (as simdjson's stage 1
// finds them: in a run of backslashes, pairs are escapes, and an odd run escapes the byte after
// it), replaced through a 128-byte table (VBMI vpermi2b), and the escape-starting backslashes are
// squeezed out (VBMI2 vpcompressb). The first \u or invalid escape ends it, as in the others.
__attribute__((target("avx512f,avx512bw,avx512vbmi,avx512vbmi2,popcnt"), noinline)) inline bool decode_simple_vbmi2(
    const char* src, size_t n, uint8_t* dst, size_t& in, size_t& out) noexcept {
    size_t i = copy_plain_avx512(src, n, dst);
    size_t o = i;
    if (i == n) {
        in = out = n;
        return true;
    }
    // The table's ASCII half, as two registers (vpermi2b indexes them with a byte's low 7 bits).
    const __m512i tlo = _mm512_loadu_si512(SIMPLE_ESCAPE.t), thi = _mm512_loadu_si512(SIMPLE_ESCAPE.t + 64);
    const __m512i bs = _mm512_set1_epi8('\\');
    constexpr uint64_t EVEN = 0x5555555555555555ull;
    uint64_t carry = 0;  // the block's first byte is escaped by the previous block's last byte
    while (i < n) {
        const size_t r = n - i;
        const uint64_t live = r >= 64 ? ~uint64_t{0} : (uint64_t{1} << r) - 1;
        const __m512i v = _mm512_loadu_si512(src + i);
        uint64_t back = _mm512_cmpeq_epi8_mask(v, bs) & live;
        uint64_t follows = back << 1;
        if (__builtin_expect(carry != 0, 0)) {
            // Rare: a branch rather than arithmetic, so that blocks do not wait for each other.
            back &= ~uint64_t{1};
            follows = back << 1 | 1;
        } else if (back == 0) {  // a plain block (long runs between escapes stay cheap)
            _mm512_mask_storeu_epi8(dst + o, live, v);
            o += r >= 64 ? 64 : r;
            i += 64;
            continue;
        }
        // Escaped bytes of the block (simdjson's find_escaped_branchless).
        const uint64_t odd_starts = back & ~EVEN & ~follows;
        uint64_t seq_even;
        const bool carry_out = __builtin_add_overflow(odd_starts, back, &seq_even);
        const uint64_t escaped = (EVEN ^ (seq_even << 1)) & follows;
        const uint64_t starts = back & ~escaped;  // the backslashes that start an escape
        const __m512i rep = _mm512_permutex2var_epi8(tlo, v, thi);
        const uint64_t simple = _mm512_test_epi8_mask(rep, rep) & ~_mm512_movepi8_mask(v);
        // An escape that is not simple (\u, invalid), or one whose escaped byte would be past the
        // end (cannot happen in a string stage 1 accepted): stop at its backslash.
        const uint64_t stop = escaped & ~(simple & live);
        const uint64_t keep_all = ~starts & live;
        if (stop) {
            const unsigned p = static_cast<unsigned>(__builtin_ctzll(stop));
            // Bytes before the stopping escape's backslash (at p - 1, or the previous block's last
            // byte when p == 0 and the block started escaped).
            const uint64_t before = p == 0 ? 0 : (uint64_t{1} << (p - 1)) - 1;
            const uint64_t keep = keep_all & before;
            const __m512i w = _mm512_maskz_compress_epi8(keep, _mm512_mask_blend_epi8(escaped, v, rep));
            const unsigned cnt = static_cast<unsigned>(__builtin_popcountll(keep));
            _mm512_mask_storeu_epi8(dst + o, cnt == 64 ? ~uint64_t{0} : (uint64_t{1} << cnt) - 1, w);
            in = p == 0 ? i - 1 : i + p - 1;
            out = o + cnt;
            return false;
        }
        const __m512i w = _mm512_maskz_compress_epi8(keep_all, _mm512_mask_blend_epi8(escaped, v, rep));
        const unsigned cnt = static_cast<unsigned>(__builtin_popcountll(keep_all));
        _mm512_mask_storeu_epi8(dst + o, cnt == 64 ? ~uint64_t{0} : (uint64_t{1} << cnt) - 1, w);
        o += cnt;
        carry = carry_out ? 1 : 0;
        i += 64;
    }
    if (carry) {  // a backslash as the last byte escapes the closing quote: cannot happen either
        in = n - 1;
        out = o;
        return false;
    }
    in = n;
    out = o;
    return true;
}
#endif
#undef TLB_DECODE_SIMPLE_BODY

// Chosen once, when the extractor is initialised (control plane).
inline DecodeSimpleFn pick_decode_simple() noexcept {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx512vbmi") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("popcnt"))
        return decode_simple_vbmi2;
    if (__builtin_cpu_supports("avx512bw")) return decode_simple_avx512;
    if (__builtin_cpu_supports("avx2")) return decode_simple_avx2;
    return decode_simple_sse2;
#else
    return decode_simple_scalar;
#endif
}

}  // namespace tlb::openai::text
