// AVX2 kernel of the script-counting pass: 64 bytes per step as two 32-byte halves, one compare
// chain per class, the two halves' movemasks joined into one 64-bit mask and counted with one
// popcnt. Gate facts: per kind (single-byte items, first bytes, second bytes) a two-shuffle nibble
// test finds the bytes that may be needs= items; only a possible single, or a possible second after
// a possible first, is looked up in the gate table (rare in most text). The token run uses the
// alphanumeric mask the counts need anyway, with the same shift-and steps as the AVX-512 kernel on
// 64-bit masks. Built with -mavx2 in its own static library; only called when avx2_supported().
// Must match count_scripts_scalar exactly (classify_test).
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

inline uint64_t bits(__m256i m) noexcept { return static_cast<uint32_t>(_mm256_movemask_epi8(m)); }

// The 64-bit mask of a byte predicate over both halves.
template <class F>
inline uint64_t mask64(__m256i v0, __m256i v1, F f) noexcept {
    return bits(f(v0)) | bits(f(v1)) << 32;
}

inline uint64_t pop(uint64_t m) noexcept { return static_cast<uint64_t>(__builtin_popcountll(m)); }

}  // namespace

void count_scripts_avx2(const uint8_t* p, size_t n, ScriptCounts& acc, const GateTable* gt) noexcept {
    uint64_t cp = 0, letters = 0, cyr = 0, greek = 0, arabic = 0, cjk = 0, digits = 0, punct = 0;
    uint32_t prev = 0;
    uint64_t best = acc.digit_window;
    uint64_t gates = 0;
    // Token-run masks of the previous step (see count_scripts_avx512), and run hits.
    uint64_t rt = 0, ra1 = 0, ra2 = 0, ra4 = 0, run = 0;
    const bool facts = gt != nullptr;
    const bool runs = facts && gt->runs;
    __m256i lo_nib[3], hi_nib[3];  // kinds: single-byte items, first bytes, second bytes
    for (int k = 0; k < 3; ++k) {
        lo_nib[k] = facts ? _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gt->lo_nib[k])))
                          : _mm256_setzero_si256();
        hi_nib[k] = facts ? _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gt->hi_nib[k])))
                          : _mm256_setzero_si256();
    }
    uint64_t prev_first = 0;  // the previous step's may-be-first mask
    const __m256i minus65 = _mm256_set1_epi8(-65);  // 0xBF
    const __m256i x20 = _mm256_set1_epi8(0x20);
    const __m256i x0f = _mm256_set1_epi8(0x0F);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32));
        // Signed: ASCII is 0..127, continuation 0x80-0xBF is -128..-65, leads 0xC0-0xFF are -64..-1.
        const uint64_t not_cont = mask64(v0, v1, [&](__m256i v) { return _mm256_cmpgt_epi8(v, minus65); });
        const uint64_t lead_mask = not_cont & mask64(v0, v1, [](__m256i v) { return v; });  // non-ASCII leads
        const uint64_t alpha = mask64(v0, v1, [&](__m256i v) { return in_range(_mm256_or_si256(v, x20), 'a', 'z'); });
        const uint64_t digit = mask64(v0, v1, [](__m256i v) { return in_range(v, '0', '9'); });
        const uint64_t ascii_alnum = alpha | digit;
        // Digit window over the two 32-byte blocks (digit_window_step, inline).
        const uint32_t d0 = static_cast<uint32_t>(pop(digit & 0xFFFFFFFFu)), d1 = static_cast<uint32_t>(pop(digit >> 32));
        const uint64_t w1 = static_cast<uint64_t>(prev) + d0, w2 = static_cast<uint64_t>(d0) + d1;
        best = w1 > best ? w1 : best;
        best = w2 > best ? w2 : best;
        prev = d1;
        digits += d0 + d1;
        // { } ( ) ; =  : '(' ')' are 0x28-0x29, '{' '}' are 0x7B and 0x7D.
        punct += pop(mask64(v0, v1, [](__m256i v) {
            return _mm256_or_si256(
                _mm256_or_si256(in_range(v, '(', ')'), _mm256_cmpeq_epi8(v, _mm256_set1_epi8(';'))),
                _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('=')),
                                _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('{')),
                                                _mm256_cmpeq_epi8(v, _mm256_set1_epi8('}')))));
        }));
        cp += pop(not_cont);
        letters += pop(ascii_alnum | lead_mask);
        if (lead_mask) {  // the script ranges are lead bytes: nothing to count in ASCII text
            cyr += pop(mask64(v0, v1, [](__m256i v) { return in_range(v, 0xD0, 0xD3); }));
            greek += pop(mask64(v0, v1, [](__m256i v) { return in_range(v, 0xCE, 0xCF); }));
            arabic += pop(mask64(v0, v1, [](__m256i v) { return in_range(v, 0xD8, 0xDB); }));
            cjk += pop(mask64(v0, v1, [](__m256i v) { return in_range(v, 0xE3, 0xED); }));
        }
        if (facts) {
            auto kind = [&](int k) {  // bit j: byte j may be of kind k
                return mask64(v0, v1, [&](__m256i v) {
                    const __m256i lo = _mm256_and_si256(v, x0f), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), x0f);
                    const __m256i m =
                        _mm256_and_si256(_mm256_shuffle_epi8(lo_nib[k], lo), _mm256_shuffle_epi8(hi_nib[k], hi));
                    return _mm256_xor_si256(_mm256_cmpeq_epi8(m, _mm256_setzero_si256()), _mm256_set1_epi8(-1));
                });
            };
            const uint64_t first = gt->seconds ? kind(1) : 0;
            // Candidates: a possible single, or a possible second after a possible first.
            uint64_t maybe = (gt->singles ? kind(0) : 0) |
                             (gt->seconds ? kind(2) & ((first << 1) | (prev_first >> 63)) : 0);
            prev_first = first;
            while (maybe) {  // rare: look the candidates up exactly
                const size_t at = i + static_cast<size_t>(__builtin_ctzll(maybe));
                maybe &= maybe - 1;
                const uint8_t c = gt->cls[p[at]];
                gates |= c & gt->singles;
                if ((c & gt->seconds) && at > 0)
                    gates |= static_cast<uint8_t>(gt->cls[p[at - 1]] << 1) & c & gt->seconds;
            }
            if (runs) {
                const uint64_t tm = ascii_alnum | mask64(v0, v1, [](__m256i v) {
                                        return _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('_')),
                                                               in_range(v, '-', '.'));
                                    });
                // a_k bit i: the 2, 4, 8, 15 bytes ending at i are token bytes (previous step's bits in).
                const uint64_t a1 = tm & ((tm << 1) | (rt >> 63));
                const uint64_t a2 = a1 & ((a1 << 2) | (ra1 >> 62));
                const uint64_t a4 = a2 & ((a2 << 4) | (ra2 >> 60));
                const uint64_t a8 = a4 & ((a4 << 7) | (ra4 >> 57));
                run |= a8;
                rt = tm;
                ra1 = a1;
                ra2 = a2;
                ra4 = a4;
            }
        }
    }
    add_counts(acc, ScriptCounts{cp, letters, cyr, greek, arabic, cjk, digits, 0, punct, i, 0});
    if (i < n) {  // the rest (< 64 bytes): scalar, in 32-byte blocks for the window
        for (size_t b = i; b < n; b += 32) {
            const size_t e = b + 32 < n ? b + 32 : n;
            uint32_t d = 0;
            for (size_t k = b; k < e; ++k) d += (p[k] >= '0' && p[k] <= '9');
            digit_window_step(d, prev, best);
        }
        count_scripts_scalar_flat(p + i, n - i, acc);
        if (facts) {
            // The scalar facts continue from the byte before the rest: its class, and the token run
            // ending there (at most RUN_GATE_LEN is all that matters).
            uint8_t prev_cls = i > 0 ? gt->cls[p[i - 1]] : 0;
            uint32_t r = 0;
            while (r < RUN_GATE_LEN && r < i && (gt->cls[p[i - 1 - r]] & GT_TOKEN)) ++r;
            gates |= gate_facts_scalar(p + i, n - i, *gt, prev_cls, r);
        }
    }
    acc.digit_window = best;
    if (facts) acc.gates |= gates | (run ? GATE_RUN : 0);
}

}  // namespace tlb::classify
