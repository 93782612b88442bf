// AVX-512BW kernel (built with -mavx512bw; called only when the CPU has it). Same definition as
// kernel_scalar.cpp, 64 bytes per step: byte classes by unsigned range compares into masks,
// continuation propagation with cross-lane byte shifts (valignd + vpalignr, as in simdjson),
// boundary logic on 64-bit masks.
#include <immintrin.h>

#include "tokens/model.hpp"

namespace tlb::tokens {

namespace {

inline __mmask64 in_range(__m512i v, uint8_t lo, uint8_t hi) {
    return _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8(char(lo))),
                                  _mm512_set1_epi8(char(hi - lo)));
}

inline __m512i classes(__m512i v) {
    const __mmask64 ctrl = _mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(0x20)) |
                           _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(0x7f)) | in_range(v, 0xC0, 0xC1) |
                           _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(char(0xF5)));
    const __mmask64 tab = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(0x09));
    const __mmask64 sp = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(0x20));
    const __mmask64 digit = in_range(v, '0', '9');
    const __mmask64 alpha = _mm512_cmplt_epu8_mask(
        _mm512_sub_epi8(_mm512_or_si512(v, _mm512_set1_epi8(0x20)), _mm512_set1_epi8('a')),
        _mm512_set1_epi8(26));
    const __mmask64 ascii_print = in_range(v, 0x21, 0x7E);
    const __mmask64 punct = (ascii_print & ~digit & ~alpha) | tab |
                            _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(char(0xC2))) |
                            _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(char(0xE2))) |
                            _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(char(0xEF))) | in_range(v, 0xF0, 0xF4);
    const __mmask64 cont = in_range(v, 0x80, 0xBF);
    const __mmask64 latin = alpha | in_range(v, 0xC3, 0xCB);
    const __mmask64 greek = in_range(v, 0xCE, 0xCF);
    const __mmask64 cyr = in_range(v, 0xD0, 0xD4);
    const __mmask64 han = in_range(v, 0xE3, 0xE9);
    __m512i c = _mm512_set1_epi8(BC_OTHER);
    c = _mm512_mask_mov_epi8(c, ctrl & ~tab, _mm512_set1_epi8(BC_CTRL));
    c = _mm512_mask_mov_epi8(c, sp, _mm512_set1_epi8(BC_SP));
    c = _mm512_mask_mov_epi8(c, digit, _mm512_set1_epi8(BC_DIGIT));
    c = _mm512_mask_mov_epi8(c, latin, _mm512_set1_epi8(BC_LATIN));
    c = _mm512_mask_mov_epi8(c, punct, _mm512_set1_epi8(BC_PUNCT));
    c = _mm512_mask_mov_epi8(c, cont, _mm512_set1_epi8(BC_CONT));
    c = _mm512_mask_mov_epi8(c, greek, _mm512_set1_epi8(BC_GREEK));
    c = _mm512_mask_mov_epi8(c, cyr, _mm512_set1_epi8(BC_CYR));
    c = _mm512_mask_mov_epi8(c, han, _mm512_set1_epi8(BC_HAN));
    return c;
}

// Bytes of `cur` shifted up by N positions, the first N taken from the end of `prev`.
template <int N>
inline __m512i prev_n(__m512i cur, __m512i prev) {
    // [prev[48..63], cur[0..47]]; the masked form avoids GCC 12 warning on _mm512_undefined.
    const __m512i t = _mm512_mask_alignr_epi32(cur, __mmask16(0xFFFF), cur, prev, 12);
    return _mm512_alignr_epi8(cur, t, 16 - N);
}

}  // namespace

void classify_avx512(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts) {
    alignas(64) uint8_t init[64];
    std::memset(init, 0xFF, sizeof init);
    init[63] = st.r1;
    __m512i prev_r = _mm512_load_si512(init);
    init[63] = st.c1_1;
    init[62] = st.c1_2;
    __m512i prev_c1 = _mm512_load_si512(init);
    init[62] = 0xFF;
    init[63] = st.c2_1;
    __m512i prev_c2 = _mm512_load_si512(init);
    uint64_t attach_carry = st.attach1 ? 1 : 0;
    const bool next_attaches = next >= 0 && attaches_space(BYTE_CLASS[uint8_t(next)]);
    const __m512i cont_v = _mm512_set1_epi8(BC_CONT);

    for (size_t off = 0; off < n; off += 64) {
        const size_t len = n - off < 64 ? n - off : 64;
        __m512i v;
        if (len == 64) {
            v = _mm512_loadu_si512(p + off);
        } else {
            alignas(64) uint8_t buf[64];
            std::memset(buf, 0, sizeof buf);
            std::memcpy(buf, p + off, len);
            v = _mm512_load_si512(buf);
        }
        const __m512i r = classes(v);
        const __m512i c1 = _mm512_mask_mov_epi8(r, _mm512_cmpeq_epi8_mask(r, cont_v), prev_n<1>(r, prev_r));
        const __m512i c2 = _mm512_mask_mov_epi8(c1, _mm512_cmpeq_epi8_mask(c1, cont_v), prev_n<2>(c1, prev_c1));
        const uint64_t change = _mm512_cmpneq_epi8_mask(c2, prev_n<1>(c2, prev_c2));
        const uint64_t is_cont = _mm512_cmpeq_epi8_mask(r, cont_v);
        const uint64_t forced = _mm512_cmpeq_epi8_mask(r, _mm512_set1_epi8(BC_CTRL)) |
                                _mm512_cmpeq_epi8_mask(r, _mm512_set1_epi8(BC_DIGIT));
        const uint64_t sp = _mm512_cmpeq_epi8_mask(r, _mm512_set1_epi8(BC_SP));
        const uint64_t att = _mm512_cmpeq_epi8_mask(r, _mm512_set1_epi8(BC_LATIN)) |
                             _mm512_cmpeq_epi8_mask(r, _mm512_set1_epi8(BC_PUNCT)) |
                             _mm512_cmpeq_epi8_mask(r, _mm512_set1_epi8(BC_CYR)) |
                             _mm512_cmpeq_epi8_mask(r, _mm512_set1_epi8(BC_GREEK)) |
                             _mm512_cmpeq_epi8_mask(r, _mm512_set1_epi8(BC_HAN)) |
                             _mm512_cmpeq_epi8_mask(r, _mm512_set1_epi8(BC_OTHER));
        uint64_t valid = len == 64 ? ~uint64_t(0) : (uint64_t(1) << len) - 1;
        // Attachability of the byte after each position: inside the block from `att`, for the
        // last valid byte from the following block or `next`.
        uint64_t att_next = (att >> 1) & (valid >> 1);
        bool after_attaches;
        if (off + len < n) after_attaches = attaches_space(BYTE_CLASS[p[off + len]]);
        else after_attaches = next_attaches;
        if (after_attaches) att_next |= uint64_t(1) << (len - 1);
        const uint64_t attach = sp & att_next & valid;
        uint64_t s = ((~is_cont & (change | forced)) | attach) & ~((attach << 1) | attach_carry);
        starts[off >> 6] = s & valid;
        attach_carry = attach >> 63;
        prev_r = r;
        prev_c1 = c1;
        prev_c2 = c2;
    }
    replay_state(p, n, next, st);
}

}  // namespace tlb::tokens
