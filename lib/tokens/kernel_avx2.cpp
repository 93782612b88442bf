// AVX2 kernel (built with -mavx2; called only when the CPU has it). Same definition as
// kernel_scalar.cpp, two 32-byte halves per 64-byte step: byte classes by unsigned range
// compares (min_epu8 == x), continuation propagation with vperm2i128 + vpalignr shifts (simdjson's
// prev<N>), boundary logic on 64-bit masks.
#include <immintrin.h>

#include "tokens/model.hpp"

namespace tlb::tokens {

namespace {

inline __m256i in_range(__m256i v, uint8_t lo, uint8_t hi) {
    const __m256i x = _mm256_sub_epi8(v, _mm256_set1_epi8(char(lo)));
    return _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(char(hi - lo))), x);
}
inline __m256i eq(__m256i v, uint8_t b) { return _mm256_cmpeq_epi8(v, _mm256_set1_epi8(char(b))); }
inline __m256i put(__m256i c, __m256i m, uint8_t cls) {
    return _mm256_blendv_epi8(c, _mm256_set1_epi8(char(cls)), m);
}

inline __m256i classes(__m256i v) {
    const __m256i tab = eq(v, 0x09);
    const __m256i ctrl = _mm256_andnot_si256(
        tab, _mm256_or_si256(_mm256_or_si256(in_range(v, 0x00, 0x1F), eq(v, 0x7f)),
                             _mm256_or_si256(in_range(v, 0xC0, 0xC1), in_range(v, 0xF5, 0xFF))));
    const __m256i sp = eq(v, 0x20);
    const __m256i digit = in_range(v, '0', '9');
    const __m256i alpha = in_range(_mm256_or_si256(v, _mm256_set1_epi8(0x20)), 'a', 'z');
    const __m256i ascii_print = in_range(v, 0x21, 0x7E);
    const __m256i punct = _mm256_or_si256(
        _mm256_or_si256(_mm256_andnot_si256(_mm256_or_si256(digit, alpha), ascii_print), tab),
        _mm256_or_si256(_mm256_or_si256(eq(v, 0xC2), eq(v, 0xE2)),
                        _mm256_or_si256(eq(v, 0xEF), in_range(v, 0xF0, 0xF4))));
    const __m256i latin = _mm256_or_si256(alpha, in_range(v, 0xC3, 0xCB));
    __m256i c = _mm256_set1_epi8(BC_OTHER);
    c = put(c, ctrl, BC_CTRL);
    c = put(c, sp, BC_SP);
    c = put(c, digit, BC_DIGIT);
    c = put(c, latin, BC_LATIN);
    c = put(c, punct, BC_PUNCT);
    c = put(c, in_range(v, 0x80, 0xBF), BC_CONT);
    c = put(c, in_range(v, 0xCE, 0xCF), BC_GREEK);
    c = put(c, in_range(v, 0xD0, 0xD4), BC_CYR);
    c = put(c, in_range(v, 0xE3, 0xE9), BC_HAN);
    return c;
}

template <int N>
inline __m256i prev_n(__m256i cur, __m256i prev) {
    return _mm256_alignr_epi8(cur, _mm256_permute2x128_si256(prev, cur, 0x21), 16 - N);
}

inline uint32_t bits(__m256i m) { return uint32_t(_mm256_movemask_epi8(m)); }
inline uint64_t bits64(__m256i lo, __m256i hi) { return uint64_t(bits(lo)) | (uint64_t(bits(hi)) << 32); }

}  // namespace

void classify_avx2(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts) {
    alignas(32) uint8_t init[32];
    std::memset(init, 0xFF, sizeof init);
    init[31] = st.r1;
    __m256i prev_r = _mm256_load_si256(reinterpret_cast<const __m256i*>(init));
    init[31] = st.c1_1;
    init[30] = st.c1_2;
    __m256i prev_c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(init));
    init[30] = 0xFF;
    init[31] = st.c2_1;
    __m256i prev_c2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(init));
    uint64_t attach_carry = st.attach1 ? 1 : 0;
    const bool next_attaches = next >= 0 && attaches_space(BYTE_CLASS[uint8_t(next)]);
    const __m256i cont_v = _mm256_set1_epi8(BC_CONT);

    for (size_t off = 0; off < n; off += 64) {
        const size_t len = n - off < 64 ? n - off : 64;
        __m256i v0, v1;
        if (len == 64) {
            v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + off));
            v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + off + 32));
        } else {
            alignas(32) uint8_t buf[64];
            std::memset(buf, 0, sizeof buf);
            std::memcpy(buf, p + off, len);
            v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
            v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf + 32));
        }
        const __m256i r0 = classes(v0), r1 = classes(v1);
        const __m256i c1_0 = _mm256_blendv_epi8(r0, prev_n<1>(r0, prev_r), _mm256_cmpeq_epi8(r0, cont_v));
        const __m256i c1_1 = _mm256_blendv_epi8(r1, prev_n<1>(r1, r0), _mm256_cmpeq_epi8(r1, cont_v));
        const __m256i c2_0 = _mm256_blendv_epi8(c1_0, prev_n<2>(c1_0, prev_c1), _mm256_cmpeq_epi8(c1_0, cont_v));
        const __m256i c2_1 = _mm256_blendv_epi8(c1_1, prev_n<2>(c1_1, c1_0), _mm256_cmpeq_epi8(c1_1, cont_v));
        const uint64_t change = ~bits64(_mm256_cmpeq_epi8(c2_0, prev_n<1>(c2_0, prev_c2)),
                                        _mm256_cmpeq_epi8(c2_1, prev_n<1>(c2_1, c2_0)));
        const uint64_t is_cont = bits64(_mm256_cmpeq_epi8(r0, cont_v), _mm256_cmpeq_epi8(r1, cont_v));
        const uint64_t forced = bits64(_mm256_or_si256(eq(r0, BC_CTRL), eq(r0, BC_DIGIT)),
                                       _mm256_or_si256(eq(r1, BC_CTRL), eq(r1, BC_DIGIT)));
        const uint64_t sp = bits64(eq(r0, BC_SP), eq(r1, BC_SP));
        // attaches_space: every class except SP, CTRL, DIGIT, CONT (and the 0xFF "none").
        const __m256i lim = _mm256_set1_epi8(BC_OTHER - BC_LATIN);
        const __m256i a0 = _mm256_sub_epi8(r0, _mm256_set1_epi8(BC_LATIN));
        const __m256i a1 = _mm256_sub_epi8(r1, _mm256_set1_epi8(BC_LATIN));
        const uint64_t att = bits64(_mm256_cmpeq_epi8(_mm256_min_epu8(a0, lim), a0),
                                    _mm256_cmpeq_epi8(_mm256_min_epu8(a1, lim), a1));
        const uint64_t valid = len == 64 ? ~uint64_t(0) : (uint64_t(1) << len) - 1;
        uint64_t att_next = (att >> 1) & (valid >> 1);
        bool after_attaches;
        if (off + len < n) after_attaches = attaches_space(BYTE_CLASS[p[off + len]]);
        else after_attaches = next_attaches;
        if (after_attaches) att_next |= uint64_t(1) << (len - 1);
        const uint64_t attach = sp & att_next & valid;
        const uint64_t s = ((~is_cont & (change | forced)) | attach) & ~((attach << 1) | attach_carry);
        starts[off >> 6] = s & valid;
        attach_carry = attach >> 63;
        prev_r = r1;
        prev_c1 = c1_1;
        prev_c2 = c2_1;
    }
    replay_state(p, n, next, st);
}

}  // namespace tlb::tokens
