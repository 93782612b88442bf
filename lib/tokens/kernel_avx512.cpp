// AVX-512 kernel (built with -mavx512bw; called only when the CPU has it). Same definition as
// kernel_scalar.cpp, in two passes over the chunk:
//   1. every byte -> an 8-bit class code (two 128-entry vpermi2b lookups, AVX-512 VBMI), stored in
//      a stack buffer with the carried state as four codes before it and the code of `next`
//      after it;
//   2. per 64 bytes: unaligned loads of the codes at offsets -4..+1 replace all cross-lane shifts;
//      the resolved class of the previous byte is the first non-continuation code of the four
//      before it; the boundary logic runs on 64-bit masks.
// CPUs with AVX-512BW but without VBMI (Skylake-SP, Cascade Lake) take the AVX2 kernel.
//
// Codes: bit 7 = continuation byte (vpblendmb/vpmovb2m select on it), bit 6 = does not take an
// attached space (SP, CTRL, DIGIT, CONT, none), bit 0 = 0 only for CTRL/DIGIT ("forced"), so
// comparing a code with (resolved previous | 1) is never equal for a forced byte. CTRL and DIGIT
// share a code: both always start a segment, and neither equals any other class.
#include <immintrin.h>

#include "tokens/kernel_codes.hpp"
#include "tokens/model.hpp"

namespace tlb::tokens {

namespace {

constexpr size_t PRE = 64;  // codes of the chunk start at buf + PRE

__attribute__((target("avx512vbmi"))) void classify_vbmi(const uint8_t* p, size_t n, int next,
                                                          KernelState& st, uint64_t* starts) {
    alignas(64) uint8_t buf[PRE + CHUNK + 64];
    uint8_t* const b = buf + PRE;
    write_prefix(st, b - 4);

    // Pass 1: codes.
    const __m512i t0 = _mm512_load_si512(CODES.b), t1 = _mm512_load_si512(CODES.b + 64);
    const __m512i t2 = _mm512_load_si512(CODES.b + 128), t3 = _mm512_load_si512(CODES.b + 192);
    for (size_t j = 0; j < n; j += 64) {
        const size_t len = n - j < 64 ? n - j : 64;
        const __m512i v = len == 64 ? _mm512_loadu_si512(p + j)
                                    : _mm512_maskz_loadu_epi8(_bzhi_u64(~uint64_t(0), unsigned(len)), p + j);
        const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1);
        const __m512i hi = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_store_si512(b + j, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
    }
    // Defined codes up to the end of the last 64-byte block and one past it (the look-ahead of
    // the last byte of a block), then the code of `next` right after the chunk.
    _mm512_store_si512(b + ((n + 63) & ~size_t(63)), _mm512_set1_epi8(char(K_NONE)));
    b[n] = next >= 0 ? CODES.b[uint8_t(next)] : K_NONE;

    // Pass 2: boundaries.
    const __m512i one = _mm512_set1_epi8(1), sp = _mm512_set1_epi8(char(K_SP));
    const __m512i no_attach = _mm512_set1_epi8(0x40), cont_bit = _mm512_set1_epi8(char(0x80));
    uint64_t attach_carry = st.attach1 ? 1 : 0;
    for (size_t j = 0; j < n; j += 64) {
        const __m512i c0 = _mm512_load_si512(b + j);
        const __m512i p1 = _mm512_loadu_si512(b + j - 1), p2 = _mm512_loadu_si512(b + j - 2);
        const __m512i p3 = _mm512_loadu_si512(b + j - 3), p4 = _mm512_loadu_si512(b + j - 4);
        const __m512i n1 = _mm512_loadu_si512(b + j + 1);
        // Resolved class of the previous byte: first non-continuation code among p1..p3, else p4.
        __m512i t = _mm512_mask_blend_epi8(_mm512_movepi8_mask(p3), p3, p4);
        t = _mm512_mask_blend_epi8(_mm512_movepi8_mask(p2), p2, t);
        t = _mm512_mask_blend_epi8(_mm512_movepi8_mask(p1), p1, t);
        const __mmask64 not_cont = _mm512_testn_epi8_mask(c0, cont_bit);
        const uint64_t class_start = _mm512_mask_cmpneq_epi8_mask(not_cont, c0, _mm512_or_si512(t, one));
        const uint64_t attach = _mm512_mask_cmpeq_epi8_mask(_mm512_testn_epi8_mask(n1, no_attach), c0, sp);
        const uint64_t s = (class_start | attach) & ~((attach << 1) | attach_carry);
        attach_carry = attach >> 63;
        starts[j >> 6] = n - j < 64 ? _bzhi_u64(s, unsigned(n - j)) : s;
    }
    replay_state(p, n, next, st);
}

}  // namespace

void classify_avx512(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts) {
    static const bool vbmi = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512vbmi") != 0;
    }();
    if (vbmi) classify_vbmi(p, n, next, st, starts);
    else classify_avx2(p, n, next, st, starts);
}

}  // namespace tlb::tokens
