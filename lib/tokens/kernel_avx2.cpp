// AVX2 kernel (built with -mavx2; called only when the CPU has it). Same definition as
// kernel_scalar.cpp, in two passes over the chunk:
//   1. every byte -> an 8-bit class code by vpshufb nibble lookups (Classifier below), stored
//      in a stack buffer with the carried state as four codes before it and the code of `next`
//      after it;
//   2. per 32 bytes: unaligned loads of the codes at offsets -4..+1 replace all cross-lane shifts
//      (and the scalar look-ahead); the resolved class of the previous byte is the first
//      non-continuation code of the four before it (three vpblendvb on the code's sign bit); the
//      boundary logic runs on 64-bit masks.
//
// Codes: bit 7 = continuation byte (vpblendvb selects on it), bit 6 = does not take an attached
// space (SP, CTRL, DIGIT, CONT, none), bit 0 = 0 only for CTRL/DIGIT ("forced"), so comparing a
// code with (resolved previous | 1) is never equal for a forced byte. CTRL and DIGIT share a code:
// both always start a segment, and neither equals any other class.
#include <immintrin.h>

#include "tokens/kernel_codes.hpp"
#include "tokens/model.hpp"

namespace tlb::tokens {

namespace {

// ---- pass 1: byte -> code ---------------------------------------------------------------------
// Per high nibble h a row of 16 codes. Every row but C and E has at most three runs:
// code = lo <= T1[h] ? A[h] : lo <= T2[h] ? B[h] : C[h]. Rows C and E (leads C0-CF and E0-EF, five
// runs each) come from their own low-nibble tables instead.
struct Tables {
    uint8_t t1[16], t2[16], a[16], b[16], c[16], row_c[16], row_e[16];
    bool ok = true;
};
constexpr Tables make_tables() {
    Tables t{};
    for (int h = 0; h < 16; ++h) {
        uint8_t row[16];
        for (int l = 0; l < 16; ++l) row[l] = code_of(BYTE_CLASS[h * 16 + l]);
        if (h == 0xC || h == 0xE) {
            for (int l = 0; l < 16; ++l) (h == 0xC ? t.row_c : t.row_e)[l] = row[l];
            t.t1[h] = t.t2[h] = 15;
            continue;
        }
        // Runs of the row: at most three (checked at compile time below).
        int ends[2] = {15, 15}, runs = 0;
        uint8_t vals[3] = {row[0], row[0], row[0]};
        for (int l = 1; l < 16; ++l) {
            if (row[l] == row[l - 1]) continue;
            if (runs == 2) {
                t.ok = false;
                break;
            }
            ends[runs] = l - 1;
            vals[++runs] = row[l];
        }
        t.t1[h] = uint8_t(ends[0]);
        t.t2[h] = uint8_t(ends[1]);
        t.a[h] = vals[0];
        t.b[h] = runs >= 1 ? vals[1] : vals[0];
        t.c[h] = runs >= 2 ? vals[2] : t.b[h];
    }
    return t;
}
constexpr Tables TABLES = make_tables();
static_assert(TABLES.ok, "a byte-class row other than C and E has more than three runs");

inline __m256i table(const uint8_t* t) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
}

struct Classifier {
    __m256i t1 = table(TABLES.t1), t2 = table(TABLES.t2), a = table(TABLES.a), b = table(TABLES.b),
            c = table(TABLES.c), row_c = table(TABLES.row_c), row_e = table(TABLES.row_e),
            low = _mm256_set1_epi8(0x0F), mask_ce = _mm256_set1_epi8(char(0xD0)), rows_ce = _mm256_set1_epi8(char(0xC0));

    __m256i operator()(__m256i v) const {
        const __m256i lo = _mm256_and_si256(v, low);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        __m256i x = _mm256_blendv_epi8(_mm256_shuffle_epi8(a, hi), _mm256_shuffle_epi8(b, hi),
                                       _mm256_cmpgt_epi8(lo, _mm256_shuffle_epi8(t1, hi)));
        x = _mm256_blendv_epi8(x, _mm256_shuffle_epi8(c, hi), _mm256_cmpgt_epi8(lo, _mm256_shuffle_epi8(t2, hi)));
        // Rows C and E: their own low-nibble tables, bit 5 picks between them.
        const __m256i ce = _mm256_blendv_epi8(_mm256_shuffle_epi8(row_c, lo), _mm256_shuffle_epi8(row_e, lo),
                                              _mm256_slli_epi16(v, 2));
        return _mm256_blendv_epi8(x, ce, _mm256_cmpeq_epi8(_mm256_and_si256(v, mask_ce), rows_ce));
    }
};

constexpr size_t PRE = 64;  // codes of the chunk start at buf + PRE

inline uint32_t bits(__m256i m) { return uint32_t(_mm256_movemask_epi8(m)); }

}  // namespace

void classify_avx2(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts) {
    alignas(64) uint8_t buf[PRE + CHUNK + 64];
    uint8_t* const b = buf + PRE;
    write_prefix(st, b - 4);

    // Pass 1: codes.
    const Classifier classes;
    size_t j = 0;
    for (; j + 32 <= n; j += 32)
        _mm256_store_si256(reinterpret_cast<__m256i*>(b + j),
                           classes(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + j))));
    if (j < n) {
        alignas(32) uint8_t tail[32] = {};
        std::memcpy(tail, p + j, n - j);
        _mm256_store_si256(reinterpret_cast<__m256i*>(b + j),
                           classes(_mm256_load_si256(reinterpret_cast<const __m256i*>(tail))));
    }
    // Defined codes up to the end of the last 64-byte block and one past it (the look-ahead of
    // the last byte of a block), then the code of `next` right after the chunk.
    const size_t end = (n + 63) & ~size_t(63);
    const __m256i none = _mm256_set1_epi8(char(K_NONE));
    if (end > ((n + 31) & ~size_t(31))) _mm256_store_si256(reinterpret_cast<__m256i*>(b + end - 32), none);
    _mm256_store_si256(reinterpret_cast<__m256i*>(b + end), none);
    b[n] = next >= 0 ? code_of(BYTE_CLASS[uint8_t(next)]) : K_NONE;

    // Pass 2: boundaries.
    const __m256i one = _mm256_set1_epi8(1), sp = _mm256_set1_epi8(char(K_SP));
    uint64_t attach_carry = st.attach1 ? 1 : 0;
    for (j = 0; j < n; j += 64) {
        uint32_t ns[2], at[2];
        for (int k = 0; k < 2; ++k) {
            const uint8_t* q = b + j + 32 * k;
            const __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(q));
            const __m256i p1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q - 1));
            const __m256i p2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q - 2));
            const __m256i p3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q - 3));
            const __m256i p4 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q - 4));
            const __m256i n1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 1));
            // Resolved class of the previous byte: first non-continuation code of p1..p3, else p4.
            __m256i t = _mm256_blendv_epi8(p3, p4, p3);
            t = _mm256_blendv_epi8(p2, t, p2);
            t = _mm256_blendv_epi8(p1, t, p1);
            // Not a class start: a continuation byte, or the same class as the previous byte.
            ns[k] = bits(_mm256_or_si256(_mm256_cmpeq_epi8(c0, _mm256_or_si256(t, one)), c0));
            // A space followed by a byte that takes it (bit 6 clear -> bit 7 of n1 + n1 clear).
            at[k] = bits(_mm256_andnot_si256(_mm256_add_epi8(n1, n1), _mm256_cmpeq_epi8(c0, sp)));
        }
        const uint64_t not_start = uint64_t(ns[0]) | uint64_t(ns[1]) << 32;
        const uint64_t attach = uint64_t(at[0]) | uint64_t(at[1]) << 32;
        const uint64_t s = (~not_start | attach) & ~((attach << 1) | attach_carry);
        attach_carry = attach >> 63;
        starts[j >> 6] = n - j < 64 ? _bzhi_u64(s, unsigned(n - j)) : s;
    }
    replay_state(p, n, next, st);
}

}  // namespace tlb::tokens
