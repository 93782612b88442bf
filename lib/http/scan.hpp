// Byte scanning for the request header-block scanner (internal to lib/http).
//
// find_ctl() is the only per-byte work on a header line: it finds the line's CR, and at the same
// time any byte that must not appear there (LF alone, other control characters, DEL). On x86-64
// it uses SSE2, which every x86-64 CPU has (no run-time check needed); elsewhere the scalar
// loop. The unit tests compare the two on random lines.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tlb::http::scan {

// Control characters of a header section: 0x00-0x1F except HTAB, and DEL. CR and LF count too.
inline bool is_ctl(uint8_t c) noexcept { return (c < 0x20 && c != '\t') || c == 0x7f; }

// Offset of the first byte in b[from, end) that is_ctl(), or end if there is none.
inline size_t find_ctl_scalar(const uint8_t* b, size_t from, size_t end) noexcept {
    for (size_t i = from; i < end; ++i)
        if (is_ctl(b[i])) return i;
    return end;
}

#if defined(__SSE2__)
namespace detail {
inline unsigned ctl_mask16(const uint8_t* p) noexcept {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i k1f = _mm_set1_epi8(0x1f);
    const __m128i low = _mm_cmpeq_epi8(_mm_max_epu8(v, k1f), k1f);  // v <= 0x1f
    const __m128i tab = _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'));
    const __m128i del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(tab, low), del)));
}
}  // namespace detail

// Same result as find_ctl_scalar. Reads only b[0, end): a range shorter than 16 bytes is read
// as the 16 bytes ending at `end` (bytes before `from` masked off) when the buffer has them.
inline size_t find_ctl_sse2(const uint8_t* b, size_t from, size_t end) noexcept {
    if (end - from < 16) {
        if (end < 16) return find_ctl_scalar(b, from, end);
        const unsigned m = detail::ctl_mask16(b + end - 16) >> (16 - (end - from));
        return m ? from + static_cast<size_t>(__builtin_ctz(m)) : end;
    }
    size_t i = from;
    for (; i + 16 <= end; i += 16) {
        const unsigned m = detail::ctl_mask16(b + i);
        if (m) return i + static_cast<size_t>(__builtin_ctz(m));
    }
    if (i == end) return end;
    // Last partial block: the 16 bytes ending at `end`; the ones before i are known clean.
    const unsigned m = detail::ctl_mask16(b + end - 16);
    return m ? end - 16 + static_cast<size_t>(__builtin_ctz(m)) : end;
}
#endif

inline size_t find_ctl(const uint8_t* b, size_t from, size_t end) noexcept {
#if defined(__SSE2__)
    return find_ctl_sse2(b, from, end);
#else
    return find_ctl_scalar(b, from, end);
#endif
}

}  // namespace tlb::http::scan
