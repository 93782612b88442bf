// AVX2 memo pass (built with -mavx2 -mbmi2 -mpopcnt; called only when the CPU has AVX2): the same
// hash, probe and miss list as the scalar loop in estimator.cpp, four segments per step (one 64-bit
// lane each), so it gives exactly the scalar result (tested against every ISA).
//
// AVX2 has no byte permute across a 128-byte window (vpermi2b), so each segment's key comes from
// its own unaligned 32-byte load, ANDed with the byte mask of its length and added to the NH key
// halves (A_0 + len in the first one), both from a 64-byte entry per length. One vpmuludq per
// segment gives its four NH products; a 4x4 transpose-add (vpunpck, one vperm2i128, one blend)
// sums them into one 64-bit lane per segment. The finish and the fingerprint compare (16-bit
// lanes, any match per 64-bit lane, cost nibble by vpsadbw) are those of memo_avx512.cpp; the four
// buckets come in by scalar loads (7% faster than vpgatherqq on Zen 4, measured; and AVX2 parts
// with slow microcoded or mitigated gathers are common). Segments whose 32-byte load would pass
// the end of the text read a zero-padded copy of the last bytes instead. Miss masks are kept per
// step and expanded into the caller's miss list afterwards, so the stores never wait for the
// bucket loads. `ns` is at most CHUNK + 1.
#include <immintrin.h>

#include "tokens/model.hpp"

namespace tlb::tokens {

namespace {

// Per key length l (0..MEMO_KEY_MAX), 64 bytes: the byte mask of the first l bytes, then what is
// added (32-bit lanes) to the masked key: the NH key halves, A_0 + l in the first half of word 0.
struct KeyTable {
    struct Entry {
        alignas(32) uint8_t mask[32];
        uint64_t add[4];
    };
    Entry e[MEMO_KEY_MAX + 1];
};
constexpr KeyTable make_key_table() {
    KeyTable t{};
    for (uint32_t l = 0; l <= MEMO_KEY_MAX; ++l) {
        for (uint32_t b = 0; b < 32; ++b) t.e[l].mask[b] = b < l ? 0xFF : 0;
        for (uint32_t w = 0; w < 4; ++w)
            t.e[l].add[w] =
                uint64_t(uint32_t(MEMO_A[w] + (w == 0 ? l : 0u))) | (uint64_t(MEMO_B[w]) << 32);
    }
    return t;
}
alignas(64) constexpr KeyTable KEY_TABLE = make_key_table();

// The four NH products of one segment: q has 32 readable bytes, l = min(length, MEMO_KEY_MAX).
inline __m256i nh_products(const uint8_t* q, uint32_t l) {
    const KeyTable::Entry& t = KEY_TABLE.e[l];
    const __m256i k = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)),
                                       _mm256_load_si256(reinterpret_cast<const __m256i*>(t.mask)));
    const __m256i a =
        _mm256_add_epi32(k, _mm256_load_si256(reinterpret_cast<const __m256i*>(t.add)));
    return _mm256_mul_epu32(a, _mm256_srli_epi64(a, 32));
}

// Lane j = sum of the four lanes of pj.
inline __m256i sum4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    // s01 = [p0.0+p0.1, p1.0+p1.1, p0.2+p0.3, p1.2+p1.3], s23 likewise.
    const __m256i s01 =
        _mm256_add_epi64(_mm256_unpacklo_epi64(p0, p1), _mm256_unpackhi_epi64(p0, p1));
    const __m256i s23 =
        _mm256_add_epi64(_mm256_unpacklo_epi64(p2, p3), _mm256_unpackhi_epi64(p2, p3));
    return _mm256_add_epi64(_mm256_permute2x128_si256(s01, s23, 0x21),
                            _mm256_blend_epi32(s01, s23, 0xF0));
}

struct Probe {
    __m256i c_v, m_v, bmask, ent_fp, ent_cost, fp_min, rep_fp, zero;
    const long long* table;

    explicit Probe(const MemoTable& mt)
        : c_v(_mm256_set1_epi64x(MEMO_C)),
          m_v(_mm256_set1_epi64x(MEMO_M)),
          bmask(_mm256_set1_epi64x(mt.bucket_mask)),
          ent_fp(_mm256_set1_epi16(short(0xFFF0))),
          ent_cost(_mm256_set1_epi16(15)),
          fp_min(_mm256_set1_epi16(0x10)),
          // 16-bit word 1 of each 64-bit lane to its four words.
          rep_fp(_mm256_setr_epi8(2, 3, 2, 3, 2, 3, 2, 3, 10, 11, 10, 11, 10, 11, 10, 11, 2, 3, 2,
                                  3, 2, 3, 2, 3, 10, 11, 10, 11, 10, 11, 10, 11)),
          zero(_mm256_setzero_si256()),
          table(reinterpret_cast<const long long*>(mt.buckets.data())) {}

    // NH sums s (one lane per segment) -> memo hits' cost added to total (whole tokens); returns
    // the lanes that are not hits (bit per lane). ok: all-ones 64-bit lanes for segments of at
    // most MEMO_KEY_MAX bytes (the others are never hits).
    inline uint32_t operator()(__m256i s, __m256i ok, __m256i& total) const {
        const __m256i x = _mm256_xor_si256(_mm256_xor_si256(s, _mm256_srli_epi64(s, 32)), c_v);
        const __m256i y = _mm256_mul_epu32(x, m_v);
        const __m256i bucket = _mm256_and_si256(_mm256_srli_epi64(y, 32), bmask);
        // Fingerprint (bits 20..31 of y, 0 -> 1) << 4 = bytes 2-3 of the lane & 0xFFF0, at least
        // 0x10; to the four 16-bit words of the lane.
        const __m256i fp4 =
            _mm256_max_epu16(_mm256_and_si256(_mm256_shuffle_epi8(y, rep_fp), ent_fp), fp_min);
        // The four buckets (scalar loads: see the top of the file).
        const __m128i blo = _mm256_castsi256_si128(bucket);
        const __m128i bhi = _mm256_extracti128_si256(bucket, 1);
        const __m128i g0 = _mm_insert_epi64(_mm_cvtsi64_si128(table[_mm_cvtsi128_si64(blo)]),
                                            table[_mm_extract_epi64(blo, 1)], 1);
        const __m128i g1 = _mm_insert_epi64(_mm_cvtsi64_si128(table[_mm_cvtsi128_si64(bhi)]),
                                            table[_mm_extract_epi64(bhi, 1)], 1);
        const __m256i bk = _mm256_inserti128_si256(_mm256_castsi128_si256(g0), g1, 1);
        const __m256i eq =
            _mm256_and_si256(_mm256_cmpeq_epi16(_mm256_and_si256(bk, ent_fp), fp4), ok);
        // At most one entry of a bucket matches: vpsadbw adds its cost nibble.
        total = _mm256_add_epi64(
            total, _mm256_sad_epu8(_mm256_and_si256(_mm256_and_si256(bk, eq), ent_cost), zero));
        return uint32_t(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(eq, zero))));
    }
};

inline uint32_t clamp_len(uint32_t l) {
    return l < MEMO_KEY_MAX ? l : uint32_t(MEMO_KEY_MAX);
}

}  // namespace

uint64_t memo_avx2(const MemoTable& mt, const uint8_t* p, size_t n, const uint32_t* begins, const uint32_t* ends,
                   uint32_t ns, uint32_t* miss_b, uint32_t* miss_e, uint32_t* n_miss) {
    const Probe probe(mt);
    const __m128i key_max1 = _mm_set1_epi32(int(MEMO_KEY_MAX + 1));
    __m256i total = _mm256_setzero_si256();
    uint8_t step_miss[(CHUNK + 1) / 4 + 2];
    uint8_t* sm = step_miss;
    uint32_t i = 0;

    // Four segments whose 32-byte loads stay inside the text (starts ascend: the last decides).
    for (; i + 4 <= ns && size_t(begins[i + 3]) + MEMO_KEY_MAX <= n; i += 4) {
        const uint32_t* bb = begins + i;
        const uint32_t* ee = ends + i;
        const __m256i p0 = nh_products(p + bb[0], clamp_len(ee[0] - bb[0]));
        const __m256i p1 = nh_products(p + bb[1], clamp_len(ee[1] - bb[1]));
        const __m256i p2 = nh_products(p + bb[2], clamp_len(ee[2] - bb[2]));
        const __m256i p3 = nh_products(p + bb[3], clamp_len(ee[3] - bb[3]));
        const __m128i len = _mm_sub_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ee)),
                                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(bb)));
        const __m256i ok = _mm256_cvtepi32_epi64(_mm_cmplt_epi32(len, key_max1));
        *sm++ = uint8_t(probe(sum4(p0, p1, p2, p3), ok, total));
    }

    // The rest (the last segments of the text, or fewer than four): keys near the end come from a
    // zero-padded copy of the last 64 bytes; lanes past ns are never hits nor misses.
    if (i < ns) {
        alignas(32) uint8_t tail[64 + MEMO_KEY_MAX] = {};
        const size_t tail_start = n > 64 ? n - 64 : 0;
        __builtin_memcpy(tail, p + tail_start, n - tail_start);
        for (; i < ns; i += 4) {
            __m256i pr[4];
            alignas(16) uint32_t len[4];
            for (uint32_t j = 0; j < 4; ++j) {
                if (i + j < ns) {
                    const uint32_t b = begins[i + j];
                    len[j] = ends[i + j] - b;
                    const uint8_t* q =
                        size_t(b) + MEMO_KEY_MAX <= n ? p + b : tail + (b - tail_start);
                    pr[j] = nh_products(q, clamp_len(len[j]));
                } else {
                    len[j] = MEMO_KEY_MAX + 1;  // not keyable: no hit
                    pr[j] = nh_products(tail, 0);
                }
            }
            const __m128i l = _mm_load_si128(reinterpret_cast<const __m128i*>(len));
            const __m256i ok = _mm256_cvtepi32_epi64(_mm_cmplt_epi32(l, key_max1));
            const uint32_t live = ns - i >= 4 ? 0xF : (1u << (ns - i)) - 1;
            *sm++ = uint8_t(probe(sum4(pr[0], pr[1], pr[2], pr[3]), ok, total) & live);
        }
    }

    uint32_t nm = *n_miss;
    const uint32_t steps = uint32_t(sm - step_miss);
    for (uint32_t k = 0; k < steps; ++k) {
        uint32_t mm = step_miss[k];
        while (mm) {
            const uint32_t j = 4 * k + uint32_t(__builtin_ctz(mm));
            mm &= mm - 1;
            miss_b[nm] = begins[j];
            miss_e[nm] = ends[j];
            ++nm;
        }
    }
    *n_miss = nm;
    const __m128i t =
        _mm_add_epi64(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
    return uint64_t(_mm_cvtsi128_si64(_mm_add_epi64(t, _mm_unpackhi_epi64(t, t)))) * FIX;
}

}  // namespace tlb::tokens
