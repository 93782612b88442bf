// AVX2 kernel of the script-counting pass: 32 bytes per step, one compare chain per class,
// movemask + popcount. Built with -mavx2 in its own static library; only called when
// avx2_supported(). Must match count_scripts_scalar exactly (classify_test).
#include <immintrin.h>

#include "classify/classify.hpp"

namespace tlb::classify {

namespace {

// Bytes of v in [lo, hi] (unsigned): (v - lo) <= (hi - lo).
inline __m256i in_range(__m256i v, uint8_t lo, uint8_t hi) noexcept {
    const __m256i d = _mm256_sub_epi8(v, _mm256_set1_epi8(static_cast<char>(lo)));
    const __m256i m = _mm256_min_epu8(d, _mm256_set1_epi8(static_cast<char>(hi - lo)));
    return _mm256_cmpeq_epi8(d, m);
}

inline uint64_t pop(__m256i m) noexcept {
    return static_cast<uint64_t>(__builtin_popcount(static_cast<uint32_t>(_mm256_movemask_epi8(m))));
}

}  // namespace

void count_scripts_avx2(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept {
    uint64_t cp = 0, letters = 0, cyr = 0, greek = 0, arabic = 0, cjk = 0, digits = 0, punct = 0;
    uint32_t prev = 0;
    uint64_t best = acc.digit_window;
    size_t i = 0;
    const __m256i minus65 = _mm256_set1_epi8(-65);  // 0xBF
    const __m256i x20 = _mm256_set1_epi8(0x20);
    for (; i + 32 <= n; i += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        // Signed: ASCII is 0..127, continuation 0x80-0xBF is -128..-65, leads 0xC0-0xFF are -64..-1.
        const __m256i not_cont = _mm256_cmpgt_epi8(v, minus65);
        const uint32_t lead_mask = static_cast<uint32_t>(_mm256_movemask_epi8(not_cont)) &
                                   static_cast<uint32_t>(_mm256_movemask_epi8(v));  // non-ASCII leads
        const __m256i alpha = in_range(_mm256_or_si256(v, x20), 'a', 'z');
        const __m256i digit = in_range(v, '0', '9');
        const uint32_t digit_mask = static_cast<uint32_t>(_mm256_movemask_epi8(digit));
        const uint32_t ascii_alnum = static_cast<uint32_t>(_mm256_movemask_epi8(alpha)) | digit_mask;
        const uint32_t block_digits = static_cast<uint32_t>(__builtin_popcount(digit_mask));
        digits += block_digits;
        digit_window_step(block_digits, prev, best);
        // { } ( ) ; =  : '(' ')' are 0x28-0x29, '{' '}' are 0x7B and 0x7D.
        const __m256i pu = _mm256_or_si256(
            _mm256_or_si256(in_range(v, '(', ')'), _mm256_cmpeq_epi8(v, _mm256_set1_epi8(';'))),
            _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('=')),
                            _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('{')),
                                            _mm256_cmpeq_epi8(v, _mm256_set1_epi8('}')))));
        punct += pop(pu);
        cp += pop(not_cont);
        letters += static_cast<uint64_t>(__builtin_popcount(ascii_alnum | lead_mask));
        cyr += pop(in_range(v, 0xD0, 0xD3));
        greek += pop(in_range(v, 0xCE, 0xCF));
        arabic += pop(in_range(v, 0xD8, 0xDB));
        cjk += pop(in_range(v, 0xE3, 0xED));
    }
    add_counts(acc, ScriptCounts{cp, letters, cyr, greek, arabic, cjk, digits, 0, punct, i});
    if (i < n) {  // the short last block
        uint32_t d = 0;
        for (size_t k = i; k < n; ++k) d += (p[k] >= '0' && p[k] <= '9');
        digit_window_step(d, prev, best);
        count_scripts_scalar_flat(p + i, n - i, acc);
    }
    acc.digit_window = best;
}

}  // namespace tlb::classify
