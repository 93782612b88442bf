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

// Hex digit values for ASCII bytes ('0'-'9', 'a'-'f', 'A'-'F'), 0x80 for every other byte.
struct HexDigits {
    uint8_t t[128] = {};
    constexpr HexDigits() {
        for (int c = 0; c < 128; ++c) t[c] = 0x80;
        for (int c = 0; c < 10; ++c) t['0' + c] = static_cast<uint8_t>(c);
        for (int c = 0; c < 6; ++c) t['a' + c] = t['A' + c] = static_cast<uint8_t>(10 + c);
    }
};
inline constexpr HexDigits HEX_DIGIT{};
struct Iota64 {
    uint8_t t[64] = {};
    constexpr Iota64() {
        for (int i = 0; i < 64; ++i) t[i] = static_cast<uint8_t>(i);
    }
};
inline constexpr Iota64 IOTA64{};

// The escape \uXXXX at s (s[0] is the backslash, s[1] 'u', six bytes inside the string): its code
// point when the four hex digits are valid and it is not a UTF-16 surrogate (U+D800-DFFF: pairs and
// lone halves are left to simdjson, which also reports the errors); else -1.
inline int32_t bmp_escape(const char* s) noexcept {
    uint32_t cp = 0;
    for (int k = 2; k < 6; ++k) {
        const uint8_t c = static_cast<uint8_t>(s[k]);
        const uint8_t d = c < 128 ? HEX_DIGIT.t[c] : 0x80;
        if (d & 0x80) return -1;
        cp = cp << 4 | d;
    }
    return cp >= 0xD800 && cp < 0xE000 ? -1 : static_cast<int32_t>(cp);
}
// UTF-8 of a code point below U+10000 (1-3 bytes, never more than the 6 of its escape).
inline size_t put_utf8(uint32_t cp, uint8_t* d) noexcept {
    if (cp < 0x80) {
        d[0] = static_cast<uint8_t>(cp);
        return 1;
    }
    if (cp < 0x800) {
        d[0] = static_cast<uint8_t>(0xC0 | cp >> 6);
        d[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
        return 2;
    }
    d[0] = static_cast<uint8_t>(0xE0 | cp >> 12);
    d[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
    d[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 3;
}

// Decodes the raw text of a JSON string (between its quotes, n bytes) into dst as far as it can
// on its own: plain runs are copied with Copy, the two-character escapes (\" \\ \/ \b \f \n \r
// \t) and \u escapes of code points outside the surrogate range decoded (clients that escape all
// non-ASCII text, like Python's json.dumps by default, send Cyrillic or Chinese prompts as nothing
// but \u escapes). It stops at a surrogate (\uD83D\uDE00 is one emoji), an incomplete or
// invalid escape, which are left to simdjson. in/out:
// the offsets reached in src and in dst; true when all of src was decoded. Writes nothing past
// dst + n (the decoding is never longer than the raw text); reads like CopyPlainFn.
using DecodeSimpleFn = bool (*)(const char* src, size_t n, uint8_t* dst, size_t& in, size_t& out) noexcept;

#define TLB_DECODE_SIMPLE_BODY(copy)                                              \
    size_t i = copy(src, n, dst), o = i;                                          \
    while (i + 1 < n) {                                                           \
        const uint8_t e = SIMPLE_ESCAPE.t[static_cast<uint8_t>(src[i + 1])];      \
        if (e != 0) {                                                             \
            dst[o++] = e;                                                         \
            i += 2;                                                               \
        } else {                                                                  \
            int32_t cp;                                                           \
            if (src[i + 1] != 'u' || n - i < 6 || (cp = bmp_escape(src + i)) < 0) \
                break;                                                            \
            o += put_utf8(static_cast<uint32_t>(cp), dst + o);                    \
            i += 6;                                                               \
        }                                                                         \
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

namespace detail {
// x's byte j + d at byte j (vpermb reads the low 6 bits of an index: the ends wrap around).
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) inline __m512i shift_bytes(__m512i x, __m512i iota, int d) noexcept {
    return _mm512_maskz_permutexvar_epi8(~uint64_t{0}, _mm512_add_epi8(iota, _mm512_set1_epi8(static_cast<char>(d))), x);
}
}  // namespace detail

// Escapes in whole 64-byte blocks, without a branch per escape (text with many escapes, like
// code with \n and \" every line, otherwise costs a mispredicted branch or two per escape): the
// escaped characters of a block are found with carry-less run arithmetic (as simdjson's stage 1
// finds them: in a run of backslashes, pairs are escapes, and an odd run escapes the byte after
// it), replaced through a 128-byte table (VBMI vpermi2b), and the escape-starting backslashes are
// squeezed out (VBMI2 vpcompressb). Blocks with \u escapes decode all of them at once: hex digit
// values by a second table lookup, each escape's four digits brought to its last byte t with byte
// shifts (vpermb), the one to three UTF-8 bytes computed for every t and written at t-2..t, and
// the escape's other bytes squeezed out with the rest. An escape that runs past the block starts
// the next block; the first surrogate, incomplete or invalid escape ends it, as in the others.
__attribute__((target("avx512f,avx512bw,avx512vbmi,avx512vbmi2,popcnt"), noinline)) inline bool decode_simple_vbmi2(
    const char* src, size_t n, uint8_t* dst, size_t& in, size_t& out) noexcept {
    size_t i = copy_plain_avx512(src, n, dst);
    size_t o = i;
    if (i == n) {
        in = out = n;
        return true;
    }
    // The tables' ASCII halves, as two registers each (vpermi2b indexes them with a byte's low 7 bits).
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
        // Escapes that are not simple (\u, invalid), or whose escaped byte would be past the end
        // (cannot happen in a string stage 1 accepted).
        const uint64_t nonsimple = escaped & ~(simple & live);
        __m512i val = _mm512_mask_blend_epi8(escaped, v, rep);
        uint64_t drop = starts;
        uint64_t problem = nonsimple;
        const uint64_t u_at = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('u'));
        if (nonsimple & u_at) {
            // shift_bytes(x, iota, d): x's byte j + d at byte j (the ends wrap; those bytes are never used:
            // t >= 4, t - 1 <= 62, t - 2 <= 61).
            const __m512i iota = _mm512_loadu_si512(IOTA64.t);
            const __m512i lo4 = _mm512_set1_epi8(0x0F);
            const __m512i nb = _mm512_permutex2var_epi8(_mm512_loadu_si512(HEX_DIGIT.t), v, _mm512_loadu_si512(HEX_DIGIT.t + 64));
            const uint64_t hex = ~_mm512_movepi8_mask(nb) & ~_mm512_movepi8_mask(v) & live;
            // t: the last byte of each \u escape whose four digits are hex and inside the block.
            const uint64_t t = (nonsimple & u_at) << 4 & hex & hex << 1 & hex << 2 & hex << 3;
            const __m512i d4 = _mm512_and_si512(nb, lo4);  // digit at t (values <= 15 everywhere)
            const __m512i d3 = detail::shift_bytes(d4, iota, -1);
            const __m512i d2 = detail::shift_bytes(d4, iota, -2);
            const __m512i d1 = detail::shift_bytes(d4, iota, -3);
            const __m512i zero = _mm512_setzero_si512(), eight = _mm512_set1_epi8(8);
            const uint64_t d1z = _mm512_cmpeq_epi8_mask(d1, zero), d2lo = _mm512_cmplt_epu8_mask(d2, eight);
            const uint64_t good = t & ~(_mm512_cmpeq_epi8_mask(d1, _mm512_set1_epi8(0xD)) & ~d2lo);  // no surrogates
            const uint64_t one = good & d1z & _mm512_cmpeq_epi8_mask(d2, zero) & _mm512_cmplt_epu8_mask(d3, eight);
            const uint64_t two = good & d1z & d2lo & ~one;
            const uint64_t three = good & ~one & ~two;
            // Byte t: cp (one byte) or 0x80 | cp & 0x3F. Byte t-1: 0xC0 | cp >> 6 (two bytes) or
            // 0x80 | (cp >> 6) & 0x3F. Byte t-2: 0xE0 | cp >> 12. (16-bit shifts are byte shifts
            // here: every byte is <= 15.)
            const __m512i lowbits = _mm512_or_si512(_mm512_slli_epi16(_mm512_and_si512(d3, _mm512_set1_epi8(3)), 4), d4);
            const __m512i a = _mm512_mask_blend_epi8(one, _mm512_or_si512(lowbits, _mm512_set1_epi8(char(0x80))),
                                                     _mm512_or_si512(_mm512_slli_epi16(d3, 4), d4));
            const __m512i mid = _mm512_or_si512(_mm512_and_si512(_mm512_slli_epi16(d2, 2), _mm512_set1_epi8(0x3F)),
                                                _mm512_and_si512(_mm512_srli_epi16(d3, 2), _mm512_set1_epi8(3)));
            const __m512i b = _mm512_or_si512(mid, _mm512_mask_blend_epi8(two, _mm512_set1_epi8(char(0x80)),
                                                                          _mm512_set1_epi8(char(0xC0))));
            const __m512i c = _mm512_or_si512(d1, _mm512_set1_epi8(char(0xE0)));
            val = _mm512_mask_blend_epi8(good, val, a);
            val = _mm512_mask_blend_epi8(good >> 1, val, detail::shift_bytes(b, iota, 1));
            val = _mm512_mask_blend_epi8(three >> 2, val, detail::shift_bytes(c, iota, 2));
            drop |= good >> 4 | good >> 3 | (good & ~three) >> 2 | one >> 1;
            problem = nonsimple & ~(good >> 4);
        }
        if (problem) {
            const unsigned p = static_cast<unsigned>(__builtin_ctzll(problem));
            // Bytes before the problem escape's backslash (at p - 1, or the previous block's last
            // byte when p == 0 and the block started escaped).
            const uint64_t before = p == 0 ? 0 : (uint64_t{1} << (p - 1)) - 1;
            const uint64_t keep = ~drop & live & before;
            const __m512i w = _mm512_maskz_compress_epi8(keep, val);
            const unsigned cnt = static_cast<unsigned>(__builtin_popcountll(keep));
            _mm512_mask_storeu_epi8(dst + o, cnt == 64 ? ~uint64_t{0} : (uint64_t{1} << cnt) - 1, w);
            if ((u_at >> p & 1) && p + 4 >= 64) {  // a \u escape running past the block: next block
                o += cnt;
                i += p - 1;
                carry = 0;
                continue;
            }
            in = p == 0 ? i - 1 : i + p - 1;
            out = o + cnt;
            return false;
        }
        const uint64_t keep_all = ~drop & live;
        const __m512i w = _mm512_maskz_compress_epi8(keep_all, val);
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
