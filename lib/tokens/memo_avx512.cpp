// AVX-512 memo pass (built with -mavx512f/bw/dq/vl/vbmi; called only when the CPU has them):
// the same hash, probe and miss list as the scalar loop in estimator.cpp, eight segments per step
// (one 64-bit lane each), so it gives exactly the scalar result (tested).
//
// Per step: the eight segments must start within 96 bytes of the first one, so all their key bytes
// (at most 32 each) lie in one 128-byte window, loaded with two masked loads (never past the text).
// Lane keys come out of the window with vpermi2b (indexes = start + byte, zero-masked past the
// segment's length), the NH hash runs on 32-bit halves with vpmuludq, the buckets come in with one
// 64-bit gather, and the four fingerprints of a bucket are compared as 16-bit lanes. Miss masks are
// kept per step and expanded into the caller's miss list afterwards. Segments beyond the 96-byte
// reach wait for the next step (steps cover at least one segment). `ns` is at most CHUNK + 1.
// GCC 12 reports its own AVX-512 intrinsic headers (_mm512_undefined operands) as uninitialised.
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "tokens/model.hpp"

namespace tlb::tokens {

uint64_t memo_avx512(const MemoTable& mt, const uint8_t* p, size_t n, const uint32_t* begins, const uint32_t* ends,
                     uint32_t ns, uint32_t* miss_b, uint32_t* miss_e, uint32_t* n_miss) {
    const __m512i iota8 = _mm512_set_epi8(7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5,
                                          4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2,
                                          1, 0, 7, 6, 5, 4, 3, 2, 1, 0);
    // Byte 4k (byte 0 of 32-bit lane k) to the eight bytes of 64-bit lane k.
    const __m512i rep_d0 = _mm512_set_epi8(28, 28, 28, 28, 28, 28, 28, 28, 24, 24, 24, 24, 24, 24, 24, 24, 20, 20, 20, 20,
                                           20, 20, 20, 20, 16, 16, 16, 16, 16, 16, 16, 16, 12, 12, 12, 12, 12, 12, 12, 12,
                                           8, 8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0);
    // 16-bit word 1 of each 64-bit lane to its four words.
    const __m512i rep_w1 = _mm512_set_epi8(11, 10, 11, 10, 11, 10, 11, 10, 3, 2, 3, 2, 3, 2, 3, 2, 11, 10, 11, 10, 11, 10,
                                           11, 10, 3, 2, 3, 2, 3, 2, 3, 2, 11, 10, 11, 10, 11, 10, 11, 10, 3, 2, 3, 2, 3, 2,
                                           3, 2, 11, 10, 11, 10, 11, 10, 11, 10, 3, 2, 3, 2, 3, 2, 3, 2);
    __m512i key[4];
    for (int w = 0; w < 4; ++w)
        key[w] = _mm512_set1_epi64(int64_t(uint64_t(MEMO_A[w]) | (uint64_t(MEMO_B[w]) << 32)));
    const __m512i zero23 = _mm512_set1_epi64(int64_t(uint64_t(MEMO_A[2]) * MEMO_B[2] + uint64_t(MEMO_A[3]) * MEMO_B[3]));
    const __m256i sixteen = _mm256_set1_epi32(16);
    const __m512i c_v = _mm512_set1_epi64(MEMO_C);
    const __m512i m_v = _mm512_set1_epi64(MEMO_M);
    const __m512i bmask = _mm512_set1_epi64(mt.bucket_mask);
    const __m512i fp_min = _mm512_set1_epi16(0x10);
    const __m512i ent_fp = _mm512_set1_epi16(short(0xFFF0));
    const __m512i sixteen16 = _mm512_set1_epi16(16);
    const __m256i max_len = _mm256_set1_epi32(int(MEMO_KEY_MAX));
    const __m256i reach = _mm256_set1_epi32(96);
    const long long* table = reinterpret_cast<const long long*>(mt.buckets.data());

    __m512i total = _mm512_setzero_si512();
    uint32_t nm = *n_miss;
    uint32_t i = 0;
    uint32_t steps = 0, hits = 0;
    uint32_t step_i[CHUNK + 1];
    uint8_t step_miss[CHUNK + 1];
    while (i < ns) {
        const uint32_t left = ns - i;
        const __mmask8 in = left >= 8 ? __mmask8(0xFF) : __mmask8((1u << left) - 1);
        const __m256i b = _mm256_maskz_loadu_epi32(in, begins + i);
        const __m256i e = _mm256_maskz_loadu_epi32(in, ends + i);
        const uint32_t b0 = begins[i];
        const __m256i rel = _mm256_sub_epi32(b, _mm256_set1_epi32(int(b0)));
        const __mmask8 valid = in & _mm256_cmple_epu32_mask(rel, reach);  // a prefix, lane 0 set
        const __m256i len32 = _mm256_sub_epi32(e, b);
        const __mmask8 keyable = _mm256_cmple_epu32_mask(len32, max_len);
        const __m256i klen = _mm256_min_epu32(len32, max_len);

        // 128-byte window at b0 (masked loads never touch bytes past the text).
        const size_t avail = n - b0;
        const __mmask64 k_lo = avail >= 64 ? ~__mmask64(0) : (__mmask64(1) << avail) - 1;
        const __mmask64 k_hi = avail >= 128 ? ~__mmask64(0) : avail <= 64 ? 0 : (__mmask64(1) << (avail - 64)) - 1;
        const __m512i win_lo = _mm512_maskz_loadu_epi8(k_lo, p + b0);
        const __m512i win_hi = _mm512_maskz_loadu_epi8(k_hi, p + b0 + 64);

        // Byte 0 of dword lane k to all eight bytes of qword lane k (one vpermb each).
        const __m512i relb = _mm512_permutexvar_epi8(rep_d0, _mm512_castsi256_si512(rel));
        const __m512i lenb = _mm512_permutexvar_epi8(rep_d0, _mm512_castsi256_si512(klen));
        const __m512i len64 = _mm512_cvtepu32_epi64(klen);
        __m512i s = _mm512_setzero_si512();
        // Words 2-3 of keys up to 16 bytes are zero, and NH of a zero word is the constant
        // A_k * B_k: add that instead of hashing them when no lane is longer (most steps).
        const int words = (_mm256_cmpgt_epu32_mask(klen, sixteen) & valid) ? 4 : 2;
        for (int w = 0; w < words; ++w) {
            const __m512i pos = _mm512_add_epi8(iota8, _mm512_set1_epi8(char(8 * w)));
            const __mmask64 kw = _mm512_cmplt_epu8_mask(pos, lenb);
            const __m512i word = _mm512_maskz_permutex2var_epi8(kw, win_lo, _mm512_add_epi8(relb, pos), win_hi);
            __m512i a = _mm512_add_epi32(word, key[w]);
            if (w == 0) a = _mm512_add_epi32(a, len64);
            s = _mm512_add_epi64(s, _mm512_mul_epu32(a, _mm512_srli_epi64(a, 32)));
        }
        if (words == 2) s = _mm512_add_epi64(s, zero23);
        const __m512i xs = _mm512_xor_si512(_mm512_xor_si512(s, _mm512_srli_epi64(s, 32)), c_v);
        const __m512i y = _mm512_mul_epu32(xs, m_v);
        const __m512i bucket = _mm512_and_si512(_mm512_srli_epi64(y, 32), bmask);
        // memo_finish's fingerprint << 4 is bits 16..31 of y with the low nibble cleared (0 -> 0x10):
        // taken as a 16-bit word, replicated to the lane's four words.
        const __m512i fp4 = _mm512_max_epu16(_mm512_and_si512(_mm512_shuffle_epi8(y, rep_w1), ent_fp), fp_min);
        const __m512i bk = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), valid, bucket, table, 8);
        // Entry ^ (fingerprint << 4) is below 16 exactly where the fingerprints match, and is then
        // the entry's cost; +16 keeps a zero-cost match nonzero for the hit test (at most one
        // match per bucket, so each lane's bytes sum to 16 + cost; the 16s come off at the end).
        const __m512i x = _mm512_xor_si512(bk, fp4);
        const __mmask32 eq = _mm512_cmplt_epu16_mask(x, sixteen16);
        const __m512i hv = _mm512_maskz_add_epi16(eq, x, sixteen16);
        const __mmask8 hit = valid & keyable & _mm512_test_epi64_mask(hv, hv);
        total = _mm512_mask_add_epi64(total, hit, total, _mm512_sad_epu8(hv, _mm512_setzero_si512()));
        hits += uint32_t(__builtin_popcount(hit));

        // Miss masks go to a per-step list at addresses that do not depend on the gathered data,
        // so the next step's gather never waits behind this step's stores.
        step_i[steps] = i;
        step_miss[steps] = uint8_t(valid & ~hit);
        ++steps;
        // Nearly every step takes all eight lanes: a predicted branch keeps the next step's loads
        // off the mask -> ctz chain, so steps overlap (+1-4% over the ctz alone).
        if (__builtin_expect(valid == 0xFF, 1))
            i += 8;
        else
            i += uint32_t(__builtin_ctz(~uint32_t(valid)));
    }
    // Miss masks to the miss list: one register compress per step and list (the bit loop's exit
    // mispredicts on nearly every step with a miss). The loads read only the missed lanes (never
    // past ns); the stores write up to 7 entries past the count.
    for (uint32_t k = 0; k < steps; ++k) {
        const __mmask8 mm = step_miss[k];
        const __m256i bb = _mm256_maskz_loadu_epi32(mm, begins + step_i[k]);
        const __m256i ee = _mm256_maskz_loadu_epi32(mm, ends + step_i[k]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(miss_b + nm), _mm256_maskz_compress_epi32(mm, bb));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(miss_e + nm), _mm256_maskz_compress_epi32(mm, ee));
        nm += uint32_t(__builtin_popcount(mm));
    }
    *n_miss = nm;
    return (hsum_epi64(total) - 16 * uint64_t(hits)) * FIX;
}

// Segment-start masks to offsets without a loop per bit (the bit loop mispredicts its exit once
// per mask). With VBMI2 (Ice Lake, Zen 4): one vpcompressb per 64-bit mask packs the byte indexes
// of the set bits, then 16 at a time are widened to 32 bits and offset; the first two groups are
// always stored (no branch on the count, which varies around 16 in prose), more only for dense
// masks. Without VBMI2: 16 offsets per vpcompressd, four per mask. Writes up to 32 entries past
// the returned count.
namespace {
__attribute__((target("avx512vbmi2"))) uint32_t flatten_vbmi2(const uint64_t* starts, size_t words, uint32_t base,
                                                             uint32_t* out) {
    const __m512i iota = _mm512_set_epi8(63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44,
                                         43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24,
                                         23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2,
                                         1, 0);
    uint32_t n = 0;
    for (size_t w = 0; w < words; ++w) {
        const uint64_t bits = starts[w];
        const __m512i idx = _mm512_maskz_compress_epi8(bits, iota);
        const __m512i b = _mm512_set1_epi32(int(base + uint32_t(w * 64)));
        const uint32_t c = uint32_t(__builtin_popcountll(bits));
        _mm512_storeu_si512(out + n, _mm512_add_epi32(b, _mm512_cvtepu8_epi32(_mm512_castsi512_si128(idx))));
        _mm512_storeu_si512(out + n + 16, _mm512_add_epi32(b, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(idx, 1))));
        if (__builtin_expect(c > 32, 0)) {
            _mm512_storeu_si512(out + n + 32, _mm512_add_epi32(b, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(idx, 2))));
            _mm512_storeu_si512(out + n + 48, _mm512_add_epi32(b, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(idx, 3))));
        }
        n += c;
    }
    return n;
}
uint32_t flatten_dword(const uint64_t* starts, size_t words, uint32_t base, uint32_t* out) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    uint32_t n = 0;
    for (size_t w = 0; w < words; ++w) {
        const uint64_t bits = starts[w];
        for (int q = 0; q < 4; ++q) {
            const __mmask16 m = __mmask16(bits >> (16 * q));
            const __m512i v = _mm512_add_epi32(iota, _mm512_set1_epi32(int(base + uint32_t(w * 64 + 16 * q))));
            _mm512_storeu_si512(out + n, _mm512_maskz_compress_epi32(m, v));
            n += uint32_t(__builtin_popcount(m));
        }
    }
    return n;
}
}  // namespace

// singles + flatten in one pass over the chunk's words (VBMI2): per 64 bytes, the one-byte
// segments (start followed by a start, not forced, priced by the table), then the other starts
// and the ends of the other segments packed into begins/ends with one vpcompressb each.
// qpre[w] = one-byte segments in words < w (qpre has words + 1 entries).
__attribute__((target("avx512vbmi2"))) uint32_t singles_flatten_vbmi2(const MemoTable& mt, const uint8_t* p, size_t n,
                                                                     const uint64_t* starts, const uint64_t* forced,
                                                                     size_t words, uint32_t base, uint64_t* q,
                                                                     uint32_t* qpre, uint32_t* begins, uint32_t* ends,
                                                                     uint64_t* tokens) {
    const __m512i iota = _mm512_set_epi8(63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44,
                                         43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24,
                                         23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2,
                                         1, 0);
    const __m512i t_lo = _mm512_loadu_si512(mt.single.data());
    const __m512i t_hi = _mm512_loadu_si512(mt.single.data() + 64);
    const __m512i none = _mm512_set1_epi8(char(0xFF));
    __m512i acc = _mm512_setzero_si512();
    uint32_t nb = 0, ne = 0, nq = 0;
    uint64_t carry = 0;
    for (size_t w = 0; w < words; ++w) {
        const uint64_t s = starts[w];
        const uint64_t nxt = (s >> 1) | (w + 1 < words ? starts[w + 1] << 63 : 0);
        const size_t left = n - 64 * w;
        const __mmask64 k = left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1;
        const __m512i v = _mm512_maskz_loadu_epi8(k, p + 64 * w);
        const __m512i c = _mm512_permutex2var_epi8(t_lo, v, t_hi);
        const uint64_t qw = s & nxt & ~forced[w] & ~(_mm512_movepi8_mask(v) | _mm512_cmpeq_epi8_mask(c, none));
        q[w] = qw;
        qpre[w] = nq;
        nq += uint32_t(__builtin_popcountll(qw));
        acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_maskz_mov_epi8(qw, c), _mm512_setzero_si512()));
        const uint64_t e = s & ~((qw << 1) | carry);
        carry = qw >> 63;
        const uint64_t b = s & ~qw;
        const __m512i off = _mm512_set1_epi32(int(base + uint32_t(w * 64)));
        const __m512i ib = _mm512_maskz_compress_epi8(b, iota);
        const __m512i ie = _mm512_maskz_compress_epi8(e, iota);
        _mm512_storeu_si512(begins + nb, _mm512_add_epi32(off, _mm512_cvtepu8_epi32(_mm512_castsi512_si128(ib))));
        _mm512_storeu_si512(begins + nb + 16, _mm512_add_epi32(off, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(ib, 1))));
        _mm512_storeu_si512(ends + ne, _mm512_add_epi32(off, _mm512_cvtepu8_epi32(_mm512_castsi512_si128(ie))));
        _mm512_storeu_si512(ends + ne + 16, _mm512_add_epi32(off, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(ie, 1))));
        const uint32_t cb = uint32_t(__builtin_popcountll(b)), ce = uint32_t(__builtin_popcountll(e));
        if (__builtin_expect(cb > 32, 0)) {
            _mm512_storeu_si512(begins + nb + 32, _mm512_add_epi32(off, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(ib, 2))));
            _mm512_storeu_si512(begins + nb + 48, _mm512_add_epi32(off, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(ib, 3))));
        }
        if (__builtin_expect(ce > 32, 0)) {
            _mm512_storeu_si512(ends + ne + 32, _mm512_add_epi32(off, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(ie, 2))));
            _mm512_storeu_si512(ends + ne + 48, _mm512_add_epi32(off, _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(ie, 3))));
        }
        nb += cb;
        ne += ce;
    }
    qpre[words] = nq;
    *tokens = hsum_epi64(acc);
    return ne;
}

bool singles_flatten_supported() noexcept {
    static const bool ok = [] {
        __builtin_cpu_init();
        return memo_avx512_supported() && __builtin_cpu_supports("avx512vbmi2") != 0 &&
               __builtin_cpu_supports("popcnt") != 0;
    }();
    return ok;
}

uint32_t flatten_avx512(const uint64_t* starts, size_t words, uint32_t base, uint32_t* out) {
    static const bool vbmi2 = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512vbmi2") != 0;
    }();
    return vbmi2 ? flatten_vbmi2(starts, words, base, out) : flatten_dword(starts, words, base, out);
}

}  // namespace tlb::tokens
