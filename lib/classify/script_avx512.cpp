// AVX-512 kernel of the script-counting pass: 64 bytes per step. Each byte goes through the 256-entry
// count-class table (two VBMI vpermi2b lookups, picked by the top bit), the eight class bits of
// every 8 bytes are transposed with one GFNI affine op (bit j of byte i -> bit i of byte 7-j) and
// counted with the BITALG per-byte popcount, so all eight counts cost three ops per 64 bytes instead
// of a compare + popcnt per class. Digits per 32-byte half (for the digit window) come from one
// mask. With a gate table: the same two lookups on it, OR-ed (needs= classes), a masked test
// against the previous byte's class (two-byte needs= items) and the token-run check on a 64-bit mask
// (run >= 15 as four shift-and steps that carry the previous block's bits).
// Built with -mavx512f -mavx512bw -mavx512vbmi -mgfni -mavx512bitalg in its own static library;
// only called when avx512_supported(). Must match count_scripts_scalar exactly (classify_test
// ScriptKernel.Avx512MatchesScalar and GateFacts.KernelsMatchScalar).
#include <immintrin.h>

#include "classify/classify.hpp"

// GCC 12's AVX-512 intrinsics (alignr, max, extract, ...) pass _mm512_undefined_*() as the unused
// merge source, which -Wuninitialized reports once they are inlined here; nothing is read from it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tlb::classify {

namespace {

struct Lut {
    __m512i t0, t1, t2, t3;
    explicit Lut(const uint8_t* t) noexcept
        : t0(_mm512_load_si512(t)), t1(_mm512_load_si512(t + 64)), t2(_mm512_load_si512(t + 128)),
          t3(_mm512_load_si512(t + 192)) {}
    // Table entry of every byte of v; hi: bytes >= 0x80.
    __m512i operator()(__m512i v, __mmask64 hi) const noexcept {
        return _mm512_mask_blend_epi8(hi, _mm512_permutex2var_epi8(t0, v, t1), _mm512_permutex2var_epi8(t2, v, t3));
    }
};

// acc32[k] (16 dwords) += the bytes 16k..16k+15 of acc8.
template <int K>
inline __m512i widen(__m512i acc8) noexcept {
    return _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(acc8, K));
}
inline void flush(__m512i& acc8, __m512i* acc32) noexcept {
    acc32[0] = _mm512_add_epi32(acc32[0], widen<0>(acc8));
    acc32[1] = _mm512_add_epi32(acc32[1], widen<1>(acc8));
    acc32[2] = _mm512_add_epi32(acc32[2], widen<2>(acc8));
    acc32[3] = _mm512_add_epi32(acc32[3], widen<3>(acc8));
    acc8 = _mm512_setzero_si512();
}

// OR of the 64 bytes of v.
inline uint64_t or_bytes(__m512i v) noexcept {
    alignas(64) uint64_t q[8];
    _mm512_store_si512(q, v);
    uint64_t x = q[0] | q[1] | q[2] | q[3] | q[4] | q[5] | q[6] | q[7];
    x |= x >> 32;
    x |= x >> 16;
    x |= x >> 8;
    return x & 0xFF;
}

// WithGates: a gate table was given; Pairs / Runs: it has two-byte items / needs_run (template
// parameters rather than flags: the loop needs every general-purpose register it can get).
// Digit window and token runs of 8 blocks at once, from the blocks' 64-bit digit and token masks
// (d[k], t[k]: block k of the group; unused blocks are 0, which changes neither).
struct Batch {
    __m512i halves = _mm512_setzero_si512();  // digits per 32-byte half of the previous group
    __m512i best = _mm512_setzero_si512();    // densest pair of consecutive halves so far, per lane
    __m512i t = _mm512_setzero_si512(), a1 = _mm512_setzero_si512(), a2 = _mm512_setzero_si512(),
            a4 = _mm512_setzero_si512();      // run masks of the previous group (lane 7: its last block)
    __m512i run = _mm512_setzero_si512();     // bit set: a token run of >= 15 ends there

    template <bool Runs>
    [[gnu::always_inline]] inline void add(const uint64_t* d, const uint64_t* tm) noexcept {
        // Dword 2k / 2k+1: digits in the low / high half of block k; each half paired with the one
        // before it (the first with the previous group's last).
        const __m512i h = _mm512_popcnt_epi32(_mm512_loadu_si512(d));
        best = _mm512_max_epu32(best, _mm512_add_epi32(h, _mm512_alignr_epi32(h, halves, 15)));
        halves = h;
        if constexpr (Runs) {
            // Lane k's previous block is lane k-1 (lane 0: the previous group's lane 7); each step
            // ANDs the mask with itself shifted by 1, 2, 4, 7 bytes, funnelling in the previous block's
            // bits: a_k bit i = the 2, 4, 8, 15 bytes ending at i are all token bytes.
            const __m512i x = _mm512_loadu_si512(tm);
            const __m512i b1 = _mm512_and_si512(x, _mm512_shldi_epi64(x, _mm512_alignr_epi64(x, t, 7), 1));
            const __m512i b2 = _mm512_and_si512(b1, _mm512_shldi_epi64(b1, _mm512_alignr_epi64(b1, a1, 7), 2));
            const __m512i b4 = _mm512_and_si512(b2, _mm512_shldi_epi64(b2, _mm512_alignr_epi64(b2, a2, 7), 4));
            const __m512i b8 = _mm512_and_si512(b4, _mm512_shldi_epi64(b4, _mm512_alignr_epi64(b4, a4, 7), 7));
            run = _mm512_or_si512(run, b8);
            t = x;
            a1 = b1;
            a2 = b2;
            a4 = b4;
        }
    }
};

// WithGates: a gate table was given; Pairs / Runs: it has two-byte items / needs_run (template
// parameters rather than flags: fewer live registers in the loop).
template <bool WithGates, bool Pairs, bool Runs>
void run(const uint8_t* p, size_t n, ScriptCounts& acc, const GateTable* gt) noexcept {
    const Lut cls(script_class_table());
    alignas(64) static constexpr uint8_t NONE[256] = {};
    const Lut gl(WithGates ? gt->cls : NONE);
    const __m512i transpose = _mm512_set1_epi64(0x0102040810204080LL);
    const __m512i digit_bit = _mm512_set1_epi8(static_cast<char>(SCRIPT_DIGIT));
    const __m512i token_bit = _mm512_set1_epi8(static_cast<char>(GT_TOKEN));
    // Byte i's previous byte: byte i-1 of this block (index 64+i-1), or byte 63 of the previous one.
    const __m512i before_idx = _mm512_set_epi8(
        126, 125, 124, 123, 122, 121, 120, 119, 118, 117, 116, 115, 114, 113, 112, 111, 110, 109, 108, 107, 106, 105,
        104, 103, 102, 101, 100, 99, 98, 97, 96, 95, 94, 93, 92, 91, 90, 89, 88, 87, 86, 85, 84, 83, 82, 81, 80, 79,
        78, 77, 76, 75, 74, 73, 72, 71, 70, 69, 68, 67, 66, 65, 64, 63);
    __m512i acc8 = _mm512_setzero_si512();
    __m512i acc32[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                        _mm512_setzero_si512()};
    // Gate state: OR of all gate classes, OR of (previous byte's classes << 1) & classes (pairs),
    // the previous block's classes.
    __m512i g_any = _mm512_setzero_si512(), g_pairs = _mm512_setzero_si512(), g_prev = _mm512_setzero_si512();
    Batch batch;
    // Masks of the current group of 8 blocks and of the previous one. A group is processed when
    // the next one is full: loading 64 bytes just written as eight 8-byte stores would stall
    // (no store forwarding), a group later they are plain L1 data.
    alignas(64) uint64_t dmask[2][8] = {}, tmask[2][8] = {};
    size_t j = 0, cur = 0;  // blocks in dmask[cur] / tmask[cur]
    bool pending = false;   // dmask[cur ^ 1] is a full group not processed yet

    // One 64-byte step; `valid` masks the bytes of a short last block (missing bytes get class 0).
    auto step = [&](__m512i v, __mmask64 valid) __attribute__((always_inline)) {
        const __mmask64 hi = _mm512_movepi8_mask(v);
        const __m512i c = _mm512_maskz_mov_epi8(valid, cls(v, hi));
        // Transpose the 8x8 bit matrix of every 8 bytes: byte 7-j of each qword holds class bit j of
        // its 8 bytes; the per-byte popcount is then the count of class j in those 8 bytes.
        acc8 = _mm512_add_epi8(acc8, _mm512_popcnt_epi8(_mm512_gf2p8affine_epi64_epi8(transpose, c, 0)));
        dmask[cur][j] = _mm512_test_epi8_mask(c, digit_bit);
        if constexpr (WithGates) {
            const __m512i gc = _mm512_maskz_mov_epi8(valid, gl(v, hi));
            g_any = _mm512_or_si512(g_any, gc);
            if constexpr (Pairs) {
                // A first-byte bit k moves to k+1 (16-bit shift: bit 7 of a byte lands on bit 0 of
                // the next, which is never a second-byte bit).
                const __m512i before = _mm512_permutex2var_epi8(g_prev, before_idx, gc);
                g_pairs = _mm512_ternarylogic_epi32(g_pairs, _mm512_slli_epi16(before, 1), gc, 0xF8);  // a | (b & c)
                g_prev = gc;
            }
            if constexpr (Runs) tmask[cur][j] = _mm512_test_epi8_mask(gc, token_bit);
        }
        if (++j == 8) {
            if (pending) batch.add<Runs>(dmask[cur ^ 1], tmask[cur ^ 1]);
            pending = true;
            cur ^= 1;
            j = 0;
        }
    };

    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        step(_mm512_loadu_si512(p + i), ~__mmask64{0});
        if ((i & 1023) == 960) flush(acc8, acc32);  // every 16 steps: at most 8 * 16 = 128 per byte
    }
    if (i < n) {
        // The short last block: masked load (no read past the end). Its digit halves are the
        // window's short last block(s); an empty second half cannot raise the window.
        const __mmask64 valid = (uint64_t{1} << (n - i)) - 1;
        step(_mm512_maskz_loadu_epi8(valid, p + i), valid);
    }
    if (pending) batch.add<Runs>(dmask[cur ^ 1], tmask[cur ^ 1]);
    if (j) {
        for (size_t k = j; k < 8; ++k) dmask[cur][k] = tmask[cur][k] = 0;
        batch.add<Runs>(dmask[cur], tmask[cur]);
    }
    flush(acc8, acc32);
    // Byte b of acc8 counted class 7 - (b & 7): fold the 64 dword sums to 8.
    const __m512i s16 = _mm512_add_epi32(_mm512_add_epi32(acc32[0], acc32[1]), _mm512_add_epi32(acc32[2], acc32[3]));
    const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s16), _mm512_extracti64x4_epi64(s16, 1));
    alignas(32) uint32_t c[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(c), s8);
    add_counts(acc, ScriptCounts{c[7], c[6], c[5], c[4], c[3], c[2], c[1], 0, c[0], n, 0});
    const uint64_t best = _mm512_reduce_max_epu32(batch.best);
    if (best > acc.digit_window) acc.digit_window = best;
    if constexpr (WithGates) {
        const uint64_t any = or_bytes(g_any), prs = or_bytes(g_pairs);
        const bool run_hit = _mm512_test_epi64_mask(batch.run, batch.run) != 0;
        acc.gates |= (any & gt->singles) | (prs & gt->seconds) | (run_hit ? GATE_RUN : 0);
    }
}

}  // namespace

void count_scripts_avx512(const uint8_t* p, size_t n, ScriptCounts& acc, const GateTable* gates) noexcept {
    if (!gates) run<false, false, false>(p, n, acc, nullptr);
    else if (gates->seconds && gates->runs) run<true, true, true>(p, n, acc, gates);
    else if (gates->seconds) run<true, true, false>(p, n, acc, gates);
    else if (gates->runs) run<true, false, true>(p, n, acc, gates);
    else run<true, false, false>(p, n, acc, gates);
}

}  // namespace tlb::classify

#pragma GCC diagnostic pop
