// The estimator: kernel dispatch, the per-segment pricing loop, the piece set, and the public
// Estimator methods. Everything reachable from Estimator::estimate() is noexcept, allocation-free
// and built for the project baseline (SSE2 only); only the kernels and the memo passes
// (memo_avx512.cpp, memo_avx2.cpp) use wider ISAs.
#include <emmintrin.h>
#include <xmmintrin.h>
#ifdef __SSSE3__
#include <tmmintrin.h>
#endif

#include <algorithm>

#include "tokens/model.hpp"

namespace tlb::tokens {

// ---- ISA selection ---------------------------------------------------------------------------

bool isa_supported(Isa isa) noexcept {
    switch (isa) {
        case Isa::Scalar: return true;
        case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
        case Isa::Avx512:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("bmi2");
    }
    return false;
}

bool memo_avx512_supported() noexcept {
    static const bool ok = isa_supported(Isa::Avx512) && __builtin_cpu_supports("avx512dq") &&
                           __builtin_cpu_supports("avx512vbmi");
    return ok;
}

Isa best_isa() noexcept {
    static const Isa best = [] {
        __builtin_cpu_init();
        if (isa_supported(Isa::Avx512)) return Isa::Avx512;
        if (isa_supported(Isa::Avx2)) return Isa::Avx2;
        return Isa::Scalar;
    }();
    return best;
}

const char* isa_name(Isa isa) noexcept {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
    }
    return "?";
}

ClassifyFn classify_fn(Isa isa) noexcept {
    switch (isa) {
        case Isa::Avx512: return classify_avx512;
        case Isa::Avx2: return classify_avx2;
        default: return classify_scalar;
    }
}

// ---- piece set -------------------------------------------------------------------------------

inline bool PieceSet::contains_inline(uint64_t h) const noexcept {
    const __m128i f = _mm_set1_epi16(short(fp(h)));
    const __m128i zero = _mm_setzero_si128();
    uint32_t b = uint32_t(h) & bucket_mask;
    for (;;) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&slots[size_t(b) * 8]));
        const int hit = _mm_movemask_epi8(_mm_cmpeq_epi16(v, f));
        const int empty = _mm_movemask_epi8(_mm_cmpeq_epi16(v, zero));
        if (__builtin_expect(hit | empty, 1)) return hit != 0;  // a non-full bucket ends the probe
        b = (b + 1) & bucket_mask;
    }
}

void PieceSet::init(size_t keys) {
    size_t buckets = 64;
    while (buckets * 8 < keys * 2) buckets <<= 1;  // load <= 50%
    slots.assign(buckets * 8, 0);
    bucket_mask = uint32_t(buckets - 1);
}

void PieceSet::insert(uint64_t h) {
    if (contains(h)) return;
    const uint16_t f = fp(h);
    uint32_t b = uint32_t(h) & bucket_mask;
    for (;;) {
        uint16_t* s = &slots[size_t(b) * 8];
        for (int i = 0; i < 8; ++i) {
            if (s[i] == 0) {
                s[i] = f;
                return;
            }
        }
        b = (b + 1) & bucket_mask;
    }
}

bool PieceSet::contains(uint64_t h) const noexcept { return contains_inline(h); }

// ---- memo table ------------------------------------------------------------------------------

void MemoTable::init(size_t keys) {
    size_t n = 64;
    while (n * 4 * 3 < keys * 5) n <<= 1;  // load <= 60%: 4-way buckets rarely fill
    buckets.assign(n, 0);
    bucket_mask = uint32_t(n - 1);
    entries = 0;
    single.fill(0xFF);
}

bool MemoTable::insert(uint64_t hv, uint32_t cost_fix) {
    if (buckets.empty()) return false;
    const uint32_t tokens = (cost_fix + FIX / 2) / FIX;
    if (tokens > 15) return false;
    uint64_t& b = buckets[uint32_t(hv >> 32) & bucket_mask];
    const uint16_t f = uint16_t(hv & 0xFFF0);
    for (int i = 0; i < 4; ++i) {
        const uint16_t e = uint16_t(b >> (16 * i));
        if ((e & 0xFFF0) == f) return false;
        if (e == 0) {
            b |= uint64_t(f | tokens) << (16 * i);
            ++entries;
            return true;
        }
    }
    return false;
}

// ---- pricing ---------------------------------------------------------------------------------

namespace {

// The POPCNT instruction where the target has it (the project's x86-64-v2 baseline); SWAR
// otherwise, since __builtin_popcount would then be a libgcc call.
#ifdef __POPCNT__
inline uint32_t popcnt32(uint32_t x) { return uint32_t(__builtin_popcount(x)); }
inline uint64_t popcnt64(uint64_t x) { return uint64_t(__builtin_popcountll(x)); }
#else
inline uint32_t popcnt32(uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
}

inline uint64_t popcnt64(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (x * 0x0101010101010101ull) >> 56;
}
#endif

// Whether at least a quarter of the segment starts in a chunk's first 1 KiB (a sample: the check
// runs on every chunk) are followed by another start (one-byte segments, counted before the table
// and forced boundaries are taken into account).
// popcnt64 is the instruction on the x86-64-v2 baseline, so no run-time dispatch is needed.
bool singles_worth_it(const uint64_t* starts, size_t words) {
    uint64_t cand = 0, all = 0;
    for (size_t w = 0; w < words && w < 16; ++w) {
        const uint64_t s = starts[w];
        cand += popcnt64(s & (s >> 1));
        all += popcnt64(s);
    }
    return cand * 4 >= all;
}

// Without byte fallback the tokenizer emits one <unk> piece for a run of characters its
// vocabulary lacks, so consecutive control bytes that are not pieces (newlines, as a rule) form one
// segment: their starts after the first are cleared (the kernels start a segment at every control
// byte). SSE2 finds the bytes below 0x20; the few there are checked one by one. carry: whether the
// byte before q is such a byte (updated). Only for such tokenizers; the rest never call it.
void merge_unknown_ctrl(const Model& m, const uint8_t* q, size_t len, uint64_t* starts, bool& carry) {
    for (size_t w = 0; 64 * w < len; ++w) {
        const size_t lim = std::min<size_t>(64, len - 64 * w);
        uint64_t low = 0;
        size_t i = 0;
        for (; i + 16 <= lim; i += 16) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 64 * w + i));
            const __m128i below = _mm_and_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)), _mm_cmpgt_epi8(v, _mm_set1_epi8(-1)));
            low |= uint64_t(uint32_t(_mm_movemask_epi8(below))) << i;
        }
        for (; i < lim; ++i) low |= uint64_t(q[64 * w + i] < 0x20) << i;
        uint64_t u = 0;
        for (uint64_t bits = low; bits; bits &= bits - 1) {
            const size_t j = size_t(__builtin_ctzll(bits));
            const uint8_t c = q[64 * w + j];
            u |= uint64_t(BYTE_CLASS[c] == BC_CTRL && !m.cp_single(c)) << j;
        }
        starts[w] &= ~(u & ((u << 1) | uint64_t(carry)));
        carry = (u >> (lim - 1)) & 1;
    }
}

// One memo probe with a precomputed hash: the cost (FIX) and whether the key was found.
__attribute__((always_inline)) inline uint32_t memo_probe_hash(const MemoTable& mt, uint64_t hv, bool& hit) {
    const uint64_t bk = mt.buckets[uint32_t(hv >> 32) & mt.bucket_mask];
    const __m128i v = _mm_cvtsi64_si128(int64_t(bk));
    const __m128i eq = _mm_cmpeq_epi16(_mm_and_si128(v, _mm_set1_epi16(short(0xFFF0))), _mm_set1_epi16(short(hv & 0xFFF0)));
    // At most one lane matches: psadbw adds the bytes, i.e. the matching entry's cost nibble.
    const __m128i c = _mm_sad_epu8(_mm_and_si128(_mm_and_si128(v, eq), _mm_set1_epi16(15)), _mm_setzero_si128());
    hit = (_mm_movemask_epi8(eq) & 0xFF) != 0;
    return uint32_t(_mm_cvtsi128_si32(c)) * FIX;
}

// Decodes one UTF-8 code point at p[0..avail); returns its length (>=1) and the code point
// (0xFFFFFFFF for malformed input, priced as one byte-fallback token per byte).
inline uint32_t decode_cp(const uint8_t* p, size_t avail, uint32_t& cp) {
    const uint8_t b = p[0];
    if (b < 0x80) {
        cp = b;
        return 1;
    }
    const uint32_t len = utf8_len(b);
    if (len == 1 || len > avail) {
        cp = 0xFFFFFFFF;
        return 1;
    }
    uint32_t v = b & (0x7F >> len);
    for (uint32_t i = 1; i < len; ++i) {
        if ((p[i] & 0xC0) != 0x80) {
            cp = 0xFFFFFFFF;
            return 1;
        }
        v = (v << 6) | (p[i] & 0x3F);
    }
    cp = v;
    return len;
}

// The text and a zero-padded copy of its tail, so 32-byte reads never leave the buffer.
struct Text {
    const uint8_t* p;
    size_t n;
    size_t tail_start;
    alignas(16) uint8_t tail[64 + KEY_MAX];

    Text(const uint8_t* p_, size_t n_) : p(p_), n(n_) {
        tail_start = n > 64 ? n - 64 : 0;
        std::memset(tail, 0, sizeof tail);
        std::memcpy(tail, p + tail_start, n - tail_start);
    }
    // 32 readable bytes at pos (bytes beyond n are zero only in the tail copy; callers mask).
    const uint8_t* at(size_t pos) const {
        return pos + KEY_MAX <= n ? p + pos : tail + (pos - tail_start);
    }
};

struct WordFeat {
    uint64_t w[4];
    uint32_t high;   // bytes >= 0x80 (bit per byte, first 32 bytes)
    uint32_t cont;   // continuation bytes
    uint32_t upper;  // 'A'..'Z'
};

// Loads up to 32 body bytes, zeroes those beyond len, and computes byte masks (SSE2).
inline void load_feat(const uint8_t* q, size_t len, WordFeat& f) {
    const __m128i iota0 = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m128i iota1 = _mm_add_epi8(iota0, _mm_set1_epi8(16));
    const __m128i l = _mm_set1_epi8(char(len > 32 ? 32 : len));
    const __m128i a = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), _mm_cmpgt_epi8(l, iota0));
    const __m128i b = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)), _mm_cmpgt_epi8(l, iota1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&f.w[0]), a);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&f.w[2]), b);
    f.high = uint32_t(_mm_movemask_epi8(a)) | (uint32_t(_mm_movemask_epi8(b)) << 16);
    const __m128i c0 = _mm_set1_epi8(char(0xC0)), c8 = _mm_set1_epi8(char(0x80));
    f.cont = uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(a, c0), c8))) |
             (uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(b, c0), c8))) << 16);
    // (x - 'A') < 26 unsigned  <=>  int8(x - 'A' + 0x80) < int8(0x80 + 26)   (SSE2 has no unsigned compare)
    const __m128i bias = _mm_set1_epi8(char(0x80 - 'A'));
    const __m128i lim = _mm_set1_epi8(char(0x80 + 26));
    f.upper = uint32_t(_mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(a, bias), lim))) |
              (uint32_t(_mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(b, bias), lim))) << 16);
}

inline int case_class(uint32_t n_upper, bool first_upper, uint32_t cps) {
    if (n_upper == 0) return 0;
    if (first_upper && n_upper == 1) return 1;
    if (n_upper == cps && cps > 1) return 2;
    return 3;
}

// Byte length of the first k code points given the bitmask of code point starts (bit 0 set).
inline uint32_t prefix_bytes(uint32_t starts, uint32_t k) {
    for (uint32_t i = 0; i < k; ++i) starts &= starts - 1;
    return starts ? uint32_t(__builtin_ctz(starts)) : 32;
}

// Upper-case two-byte characters of a key (bit on the second byte): U+00C0..U+00DE but U+00D7,
// U+0391..U+03A9, U+0401, U+0410..U+042F - the same set as the decoding loop in Pricer::word.
inline __m128i in_range_u8(__m128i x, uint8_t lo, uint8_t hi) {
    const __m128i d = _mm_sub_epi8(x, _mm_set1_epi8(char(lo)));
    return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(char(hi - lo))), d);
}
inline uint32_t upper2_half(__m128i x, __m128i px) {
    const __m128i d0 = _mm_and_si128(_mm_cmpeq_epi8(px, _mm_set1_epi8(char(0xD0))),
                                     _mm_or_si128(in_range_u8(x, 0x90, 0xAF), _mm_cmpeq_epi8(x, _mm_set1_epi8(char(0x81)))));
    const __m128i c3 = _mm_andnot_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(char(0x97))),
                                        _mm_and_si128(_mm_cmpeq_epi8(px, _mm_set1_epi8(char(0xC3))), in_range_u8(x, 0x80, 0x9E)));
    const __m128i ce = _mm_and_si128(_mm_cmpeq_epi8(px, _mm_set1_epi8(char(0xCE))), in_range_u8(x, 0x91, 0xA9));
    return uint32_t(_mm_movemask_epi8(_mm_or_si128(d0, _mm_or_si128(c3, ce))));
}
// q: 32 readable bytes, len <= 32.
inline uint32_t upper2(const uint8_t* q, size_t len) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16));
    const uint32_t m = upper2_half(a, _mm_slli_si128(a, 1)) |
                       (upper2_half(b, _mm_or_si128(_mm_slli_si128(b, 1), _mm_srli_si128(a, 15))) << 16);
    return len >= 32 ? m : m & ((1u << len) - 1);
}

// Whether every two-byte character of a key is a single piece, one character at a time: bit
// (continuation & 0x3F) of lead_bits[lead] for every lead in `leads` (bit i = lead at q[i], its
// continuation at q[i + 1]). The reference for known_pair.
__attribute__((always_inline)) inline bool known_loop(const uint64_t* lead_bits, const uint8_t* q, uint32_t leads) {
    uint64_t known = ~uint64_t(0);
    for (uint32_t x = leads; x; x &= x - 1) {
        const uint32_t i = uint32_t(__builtin_ctz(x));
        known &= lead_bits[q[i]] >> (q[i + 1] & 0x3F);
    }
    return known & 1;
}

// The same answer without a loop when every lead is L or L + 1, L the first lead (Cyrillic
// D0/D1, Greek CE/CF, Latin-1 C3: nearly every such memo miss): both leads' bitmaps in one
// register and every continuation's bit tested with two pshufb lookups (the loop's exit
// mispredicts). key32: the key's 32 bytes, zero past its length; leads nonzero (each lead's
// continuation follows it). Returns 1 / 0, or -1 when some lead is neither L nor L + 1 (or without SSSE3): ask known_loop.
__attribute__((always_inline)) inline int known_pair(const uint64_t* lead_bits, const uint8_t* key32, uint32_t leads) {
#ifdef __SSSE3__
    const uint32_t cont = leads << 1;
    const uint32_t L = key32[__builtin_ctz(leads)];
    const __m128i tab = _mm_set_epi64x(int64_t(lead_bits[(L + 1) & 0xFF]), int64_t(lead_bits[L]));
    const __m128i pow2 = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
    const __m128i vl = _mm_set1_epi8(char(L)), vl1 = _mm_set1_epi8(char(L + 1));
    const __m128i seven = _mm_set1_epi8(7);
    // Per byte of a 16-byte half (prev = the bytes before it): `ours` = preceded by L or L + 1,
    // result = that lead's bit for the byte is clear.
    auto half = [&](__m128i x, __m128i prev, uint32_t& ours) -> uint32_t {
        const __m128i is_l = _mm_cmpeq_epi8(prev, vl), is_l1 = _mm_cmpeq_epi8(prev, vl1);
        const __m128i c6 = _mm_and_si128(x, _mm_set1_epi8(0x3F));
        const __m128i idx = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c6, 3), seven),
                                         _mm_and_si128(is_l1, _mm_set1_epi8(8)));
        const __m128i bit = _mm_shuffle_epi8(pow2, _mm_and_si128(c6, seven));
        const __m128i has = _mm_and_si128(_mm_shuffle_epi8(tab, idx), bit);
        ours = uint32_t(_mm_movemask_epi8(_mm_or_si128(is_l, is_l1)));
        return uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(has, _mm_setzero_si128())));
    };
    const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key32));
    const __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key32 + 16));
    uint32_t ours0 = 0, ours1 = 0;
    const uint32_t unknown =
        half(x0, _mm_slli_si128(x0, 1), ours0) | (half(x1, _mm_alignr_epi8(x1, x0, 15), ours1) << 16);
    if ((cont & ~(ours0 | (ours1 << 16))) != 0) return -1;
    return (unknown & cont) == 0 ? 1 : 0;
#else
    (void)lead_bits, (void)key32, (void)leads;
    return -1;
#endif
}
}  // namespace

// Both, for the unit tests (model.hpp).
bool two_byte_known_loop(const uint64_t* lead_bits, const uint8_t* q, uint32_t leads) noexcept {
    return known_loop(lead_bits, q, leads);
}
int two_byte_known_pair(const uint64_t* lead_bits, const uint8_t* key32, uint32_t leads) noexcept {
    return known_pair(lead_bits, key32, leads);
}

namespace {

struct Pricer {
    const Model& m;
    const Text& t;

    // A character the vocabulary lacks (l UTF-8 bytes), priced alone: one byte-fallback token per
    // byte, or one <unk> piece without byte fallback.
    uint32_t unknown_cost(uint32_t l) const { return (m.byte_fallback ? l : 1) * FIX; }

    // The memo's cost (FIX) of key[0..l) (32 readable bytes at key), or false.
    bool memo_cost(const uint8_t* key, size_t l, uint32_t& cost) const {
        bool hit;
        cost = memo_probe_hash(m.memo, memo_hash(key, l), hit);
        return hit;
    }
    // Tokens (FIX) of a run of r >= 1 copies of one symbol character ch (l UTF-8 bytes), after a
    // space or not:
    //  - when the vocabulary has no piece of two of them, nothing in the run merges: r times the
    //    character (a piece, or byte fallback / <unk>), and the space is "▁" + the first one when
    //    that is a piece, else its own piece;
    //  - else from the memo's run keys (calibration adds every run of such a character up to a
    //    key's length, ASCII symbols always): one key when it fits, else blocks of the longest
    //    power-of-two run key the memo has, the first carrying the space, then the remainder's
    //    key; when the vocabulary's longest run piece is longer than a key, as many of those
    //    first (a token each). BPE builds long runs from power-of-two pieces, so the blocks give
    //    the tokenizer's count (checked against sentencepiece for - = * # + up to 100 bytes). A
    //    key costing over 15 tokens (32 '+') is not stored: shorter blocks then.
    // False when a key is missing.
    __attribute__((noinline)) bool run_cost(const uint8_t* ch, uint32_t l, uint32_t cp, size_t r, bool space, uint32_t& cost) const {
        const size_t longest = m.longest_run(ch, l);  // longest run piece, in characters
        if (longest < 2) {
            const uint32_t one = m.cp_single(cp) ? FIX : unknown_cost(l);
            // Not a piece and no byte fallback: the whole run is one <unk>.
            cost = m.cp_single(cp) || m.byte_fallback ? uint32_t(r) * one : FIX;
            if (space) cost += m.set.contains_inline(key_hash(ch, l, true)) ? FIX - one : m.ws_cost[1];
            return true;
        }
        alignas(16) uint8_t key[MEMO_KEY_MAX + 16] = {};
        const size_t per_key = MEMO_KEY_MAX / l;  // characters in a key
        if (l == 1)
            std::memset(key, ch[0], MEMO_KEY_MAX);
        else
            for (size_t i = 0; i < per_key; ++i) std::memcpy(key + i * l, ch, l);
        alignas(16) uint8_t skey[MEMO_KEY_MAX + 16] = {' '};  // " " + characters
        std::memcpy(skey + 1, key, MEMO_KEY_MAX - 1);
        if (r * l + space <= MEMO_KEY_MAX) return memo_cost(space ? skey : key, r * l + space, cost);
        size_t blk = 1;
        while (blk * 2 <= per_key) blk *= 2;
        uint32_t blk_cost = 0;
        while (!memo_cost(key, blk * l, blk_cost))
            if ((blk /= 2) < 2) return false;
        cost = 0;
        size_t rest = r;
        if (longest * l > MEMO_KEY_MAX) {
            // Pieces longer than a key ("─" x 16 is 48 bytes): the whole ones first, each a token;
            // the space its own piece.
            cost = uint32_t(rest / longest) * FIX + (space ? m.ws_cost[1] : 0);
            rest %= longest;
        } else if (space) {  // " " + blk - 1 characters
            if (!memo_cost(skey, (blk - 1) * l + 1, cost)) return false;
            rest -= blk - 1;
        }
        cost += uint32_t(rest / blk) * blk_cost;
        uint32_t k = 0;
        if (rest % blk && !memo_cost(key, (rest % blk) * l, k)) return false;
        cost += k;
        return true;
    }
    // A memo miss made of symbol characters with a run of at least three of one (rules,
    // underlines, table borders, box drawing: "|-----|---|", "+------+", "┌────┐", "├──"): the sum
    // of its runs of one character (run_cost), the first carrying the leading space.
    // Sentencepiece splits ASCII symbols at every change of character (checked on table borders
    // and comment rules); segments without such a run ("*-*-*-", "!@#$", which merge pairs of
    // symbols) keep the feature model, and so do mixed runs of other symbols: box drawing merges
    // across characters ("───────┼", "├────────" are pieces of a vocabulary trained on such
    // text), so only a run of one such character is priced here. Body at b, len bytes; tab is not
    // a symbol here.
    __attribute__((noinline)) bool symbol_runs(size_t b, size_t len, bool space, uint32_t& cost) const {
        if (len < 3 || len > 4096) return false;
        const uint8_t* s = t.p + b;  // the segment's bytes are all in the text
        // Most symbol misses have no run of three ("，", "!)", "?\"", "*-*"): a byte that equals
        // the one 1 and 2 characters on (characters of 1, 2 or 3 bytes), or nothing to do.
        bool maybe = false;
        for (size_t i = 0; i + 2 < len && !maybe; ++i)
            maybe = (s[i] == s[i + 1] && s[i] == s[i + 2]) ||
                    (i + 4 < len && s[i] == s[i + 2] && s[i] == s[i + 4]) ||
                    (i + 6 < len && s[i] == s[i + 3] && s[i] == s[i + 6]);
        if (!maybe) return false;
        // The runs: (start, characters, bytes per character), at most len of them.
        auto next_run = [&](size_t i, uint32_t& l, uint32_t& cp, size_t& n) {
            l = s[i] < 0x80 ? (cp = s[i], 1u) : decode_cp(s + i, len - i, cp);
            size_t j = i + l;
            n = 1;
            if (l == 1)
                while (j < len && s[j] == s[i]) ++j, ++n;
            else
                while (j + l <= len && s[j] == s[i] && s[j + 1] == s[i + 1] && (l < 3 || s[j + 2] == s[i + 2]) &&
                       (l < 4 || s[j + 3] == s[i + 3]))
                    j += l, ++n;
            return j;
        };
        size_t longest = 0, runs = 0;
        bool ascii = true;
        for (size_t i = 0; i < len;) {
            uint32_t l, cp;
            size_t n;
            if (BYTE_CLASS[s[i]] != BC_PUNCT || s[i] == '\t') return false;
            const size_t j = next_run(i, l, cp, n);
            if (cp == 0xFFFFFFFF) return false;
            ascii &= l == 1;
            longest = std::max(longest, n);
            ++runs;
            i = j;
        }
        if (longest < 3 || (!ascii && runs > 1)) return false;
        cost = 0;
        for (size_t i = 0; i < len;) {
            uint32_t l, cp, k;
            size_t n;
            const size_t j = next_run(i, l, cp, n);
            if (!run_cost(s + i, l, cp, n, space && i == 0, k)) return false;
            cost += k;
            i = j;
        }
        return true;
    }

    // Every non-ASCII character of the key is a well-formed two-byte sequence that is a single
    // piece (then the decoding loop would find nothing missing).
    bool two_byte_all_known(const uint8_t* q, size_t len, const WordFeat& f) const {
        const uint32_t lm = len >= 32 ? ~0u : (1u << len) - 1;
        const uint32_t cont = f.cont & lm;
        const uint32_t leads = f.high & ~f.cont & lm;
        if ((uint64_t(leads) << 1) != cont) return false;  // lead + one continuation, nothing else
        // lead_bits[lead]: bit c of it = U+((lead & 0x1F) << 6 | c) is a single piece; zero for
        // bytes that are not two-byte leads, so those fail here too.
        if (leads == 0) return true;
        // A few two-byte characters (accented Latin): the loop is short; many (Cyrillic, Greek):
        // the pairwise test (Russian bodies +6%; on every word it cost German/Spanish 2-3%).
        const uint8_t* key32 = reinterpret_cast<const uint8_t*>(f.w);
        const int fast = popcnt32(leads) >= 4 ? known_pair(m.lead_bits.data(), key32, leads) : -1;
        return fast >= 0 ? fast != 0 : known_loop(m.lead_bits.data(), q, leads);
    }
    // Vocabulary probes on a miss (prefix/suffix pieces, hit check) only without a memo: with one,
    // every piece is a memo key and the probes no longer improve the fit (measured: MAPE 0.56% ->
    // 0.62% without them) while costing most of a miss.
    const bool probes = m.memo.empty();

    // +5 when the last three bytes of a body of at least 5 bytes are a piece (no leading space).
    int suffix_kind(const uint8_t* q, size_t len) const {
        if (len < 5) return 0;
        uint32_t w;
        std::memcpy(&w, q + len - 4, 4);
        const uint64_t pw[4] = {uint64_t(w >> 8), 0, 0, 0};
        return m.set.contains_inline(key_hash_words(pw, 3, false)) ? 5 : 0;
    }

    // Miss kind 0-3 from the longest prefix piece among 3, 4, 5, 6 code points (see N_KIND).
    // `starts`: code point starts of the body (bit per byte), cps: its code points.
    int prefix_kind(const uint8_t* q, uint32_t starts, uint32_t cps, bool space) const {
        int kind = 0;
        for (uint32_t k = 3; k <= 6 && k < cps; ++k) {
            const uint32_t nb = prefix_bytes(starts, k);
            if (nb > KEY_MAX) break;
            if (m.set.contains_inline(key_hash(q, nb, space))) kind = k >= 5 ? 3 : int(k) - 2;
        }
        return kind;
    }

    // Word misses are summed per type and scaled at the end by how often words of that type
    // missed the vocabulary in this text (Model::miss_scale): a language the vocabulary covers
    // poorly both misses more often and splits its misses into more pieces.
    mutable uint64_t miss_sum[N_WORD_TYPES] = {};
    mutable uint32_t n_miss[N_WORD_TYPES] = {};

    // Misses priced exactly on the fast path (symbol runs), added unscaled when the field closes:
    // the explain path prices them in word() as memo entries.
    mutable uint64_t exact_sum = 0;
    __attribute__((noinline)) bool symbol_runs_miss(size_t b, size_t len, bool space) const {
        uint32_t c;
        if (m.memo.empty() || !symbol_runs(b, len, space, c)) return false;
        exact_sum += c;
        return true;
    }
    void reset_misses() const {
        exact_sum = 0;
        for (int ty = 0; ty < N_WORD_TYPES; ++ty) miss_sum[ty] = n_miss[ty] = 0;
    }
    uint64_t scaled_misses(uint64_t segments) const {
        uint32_t misses = 0;
        for (int ty = 0; ty < N_WORD_TYPES; ++ty) misses += n_miss[ty];
        if (!misses) return exact_sum;
        const uint32_t bin = miss_bin(misses, segments);
        uint64_t total = exact_sum;
        for (int ty = 0; ty < N_WORD_TYPES; ++ty)
            total += (miss_sum[ty] * m.miss_scale[size_t(ty) * MISS_BINS + bin]) >> 8;
        return total;
    }

    // The last length cell (LEN_MAX code points) holds the cost of LEN_MAX code points of a
    // longer segment: priced in proportion (a 60-character box line is not a 24-character one),
    // unless the file predates that (Model::long_miss_proportional).
    uint32_t miss(int type, int space, int cs, int kind, uint32_t len) const {
        const uint32_t c = m.miss_cost[miss_index(type, space, cs, kind, int(len > LEN_MAX ? LEN_MAX : len))];
        return len > LEN_MAX && m.long_miss_proportional ? uint32_t(uint64_t(c) * len / LEN_MAX) : c;
    }

#ifdef __SSSE3__
    // Han-class run of at most 12 characters, all of them three-byte sequences (nearly every Han
    // run the memo misses): the per-code-point sum of han() without a branch per character. Three
    // 16-byte loads cover 4 characters each; pshufb puts each character's bytes in a 32-bit lane,
    // one compare checks the lead/continuation pattern, pmaddubsw + pmaddwd assemble the code
    // point, lanes past the run read the zero entry at han_cost[0x10000]. Exactly han()'s result
    // (its three-byte loop computes the same code points); false: not such a run, nothing done.
    __attribute__((always_inline)) bool han_short3(size_t b, size_t e, uint32_t& cost) const {
        const size_t len = e - b;
        const uint32_t nch = uint32_t(len / 3);
        if (len != size_t(nch) * 3 || nch > 12 || nch == 0) return false;
        const __m128i sh = _mm_setr_epi8(2, 1, 0, -1, 5, 4, 3, -1, 8, 7, 6, -1, 11, 10, 9, -1);
        const __m128i pat_m = _mm_set1_epi32(0x00F0C0C0), pat = _mm_set1_epi32(0x00E08080);
        const __m128i bits = _mm_set1_epi32(0x000F3F3F);
        const __m128i mul1 = _mm_set1_epi32(0x00014001);  // bytes 1, 64, 1, 0: b2 + 64*b1 | b0
        const __m128i mul2 = _mm_set1_epi32(0x10000001);  // words 1, 4096
        const __m128i iota = _mm_setr_epi32(0, 1, 2, 3);
        const __m128i none = _mm_set1_epi32(0x10000);
        alignas(16) uint32_t cp[12];
        uint32_t ok = 0;
        for (uint32_t k = 0; k < 3; ++k) {
            // Blocks past the run read its start instead (their lanes are all masked off): at()
            // guarantees 32 readable bytes only from positions inside the text.
            const size_t pos = b + (12 * k & -size_t(4 * k < nch));
            const __m128i d = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.at(pos))), sh);
            const __m128i in = _mm_cmpgt_epi32(_mm_set1_epi32(int(nch - 4 * k)), iota);  // lanes inside the run
            ok |= uint32_t(_mm_movemask_ps(_mm_castsi128_ps(
                      _mm_andnot_si128(_mm_cmpeq_epi32(_mm_and_si128(d, pat_m), pat), in)))) << (4 * k);
            const __m128i c = _mm_madd_epi16(_mm_maddubs_epi16(_mm_and_si128(d, bits), mul1), mul2);
            _mm_store_si128(reinterpret_cast<__m128i*>(cp + 4 * k), _mm_or_si128(_mm_and_si128(in, c), _mm_andnot_si128(in, none)));
        }
        if (ok) return false;  // a lane inside the run is not a three-byte sequence
        const uint16_t* hc = m.han_cost.data();
        cost = hc[cp[0]] + hc[cp[1]] + hc[cp[2]] + hc[cp[3]] + hc[cp[4]] + hc[cp[5]] + hc[cp[6]] + hc[cp[7]] +
               hc[cp[8]] + hc[cp[9]] + hc[cp[10]] + hc[cp[11]];
        return true;
    }
#endif

    // Han-class run: greedy longest match against the vocabulary, extending while the growing
    // prefix is itself a piece (BPE builds long pieces from shorter ones). A leading space that
    // no piece absorbs ("▁中") becomes its own whitespace piece.
    template <bool EXPLAIN>
    uint32_t han(size_t b, size_t e, bool space, SegmentInfo* info) const {
        uint32_t cost = 0;
        size_t pos = b;
        bool sp = space;
        bool prev_unk = false;  // without byte fallback, a run of unknown characters is one <unk>
        uint32_t cps = 0;
        if (!m.han_cost.empty()) {
            // Per code point: a table load per character instead of vocabulary probes.
            if (sp) cost += m.han_cost[0x20];
            while (pos < e) {
                // Three-byte sequences (all of the Han class) without the general decoder.
                while (pos + 3 <= e) {
                    uint32_t w;
                    std::memcpy(&w, t.at(pos), 4);
                    if ((w & 0xC0C0F0u) != 0x8080E0u) break;
                    cost += m.han_cost[((w & 0x0Fu) << 12) | ((w & 0x3F00u) >> 2) | ((w >> 16) & 0x3Fu)];
                    pos += 3;
                    ++cps;
                }
                if (pos >= e) break;
                uint32_t cp;
                const uint32_t l = decode_cp(t.at(pos), e - pos, cp);
                cost += cp < 0x10000 ? m.han_cost[cp] : unknown_cost(l);  // malformed/astral
                pos += l;
                ++cps;
            }
            if constexpr (EXPLAIN) {
                info->kind = 5;
                info->type = 5;
                info->len = uint8_t(cps > 255 ? 255 : cps);
            }
            return cost;
        }
        while (pos < e) {
            const uint8_t* q = t.at(pos);
            uint32_t cp;
            const uint32_t l1 = decode_cp(q, e - pos, cp);
            if (cp == 0xFFFFFFFF) {  // malformed: one byte token
                if (sp) cost += m.ws_cost[1];
                cost += FIX;
                pos += 1;
                sp = false;
                prev_unk = false;
                continue;
            }
            // Longest piece starting here: single char first, then extend.
            bool have = sp ? m.set.contains_inline(key_hash(q, l1, true)) : m.cp_single(cp);
            if (!have && sp) {
                cost += m.ws_cost[1];
                sp = false;
                continue;
            }
            size_t end = pos + l1;
            uint32_t chars = 1;
            if (have) {
                while (int(chars) < m.han_max_chars && end < e) {
                    uint32_t cp2;
                    const uint32_t l2 = decode_cp(t.at(end), e - end, cp2);
                    if (cp2 == 0xFFFFFFFF || end + l2 - pos > KEY_MAX) break;
                    if (!m.set.contains_inline(key_hash(q, end + l2 - pos, sp))) break;
                    end += l2;
                    ++chars;
                }
                cost += FIX;
            } else {
                // Byte fallback, or one <unk> for a run of characters the vocabulary lacks.
                cost += m.byte_fallback ? l1 * FIX : prev_unk ? 0 : FIX;
            }
            prev_unk = !have;
            cps += chars;
            pos = end;
            sp = false;
        }
        cost = uint32_t((uint64_t(cost) * m.han_scale) >> 8);
        if constexpr (EXPLAIN) {
            info->kind = 5;
            info->type = 5;
            info->len = uint8_t(cps > 255 ? 255 : cps);
        }
        return cost;
    }

    // Word-like segment body [b, e) (letters of one script, or a punctuation/symbol run).
    template <bool EXPLAIN>
    __attribute__((always_inline)) uint32_t word(size_t b, size_t e, int type, bool space, SegmentInfo* info) const {
        const size_t len = e - b;
        const uint8_t* q = t.at(b);
        // Rules, underlines, table borders (ascii_word_miss takes the same turn for short ones).
        if (type == 1 && !m.memo.empty()) {
            uint32_t c;
            if (symbol_runs(b, len, space, c)) {
                if constexpr (EXPLAIN) {
                    info->kind = 8;  // priced from memo entries
                    info->cost = c;
                    info->len = uint8_t(len > 255 ? 255 : len);
                }
                return c;
            }
        }
        uint32_t cps, n_upper = 0, missing_bytes = 0, missing_cps = 0, missing_runs = 0;
        bool first_upper = false;
        bool keyable = len <= KEY_MAX;
        uint64_t h = 0;
        WordFeat f{};
        if constexpr (!EXPLAIN) {
            // Fast path (ASCII body that fits a key): no data-dependent branches, both lookups
            // issued together; hit/miss is ~50/50 and would mispredict.
            if (__builtin_expect(keyable, 1)) {
                // Hits need only the masked bytes; case masks are computed on a miss.
                const __m128i iota0 = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
                const __m128i l = _mm_set1_epi8(char(len));
                const __m128i a = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), _mm_cmpgt_epi8(l, iota0));
                const __m128i bb = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)),
                                                 _mm_cmpgt_epi8(l, _mm_add_epi8(iota0, _mm_set1_epi8(16))));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(&f.w[0]), a);
                _mm_storeu_si128(reinterpret_cast<__m128i*>(&f.w[2]), bb);
                f.high = uint32_t(_mm_movemask_epi8(_mm_or_si128(a, bb)));
                if (!f.high) {
                    const uint32_t n = uint32_t(len);
                    int kind = 0;
                    if (!probes) {
                        // The memo holds every piece and the frequent words; its misses are
                        // priced by (type, space, case, length) alone.
                    } else if (const uint64_t base = key_hash_base(f.w, len); m.set.contains_inline(key_hash_finish(base, space))) {
                        return m.hit_cost[size_t(type) * 2 + space];
                    } else if (space && m.set.contains_inline(key_hash_finish(base, false))) {
                        kind = KIND_BODY;
                    } else {
                        // ASCII: k code points are k bytes; prefixes come from w[0] (k <= 6).
                        kind = 0;
                        for (uint32_t k = 3; k <= 6 && k < n; ++k) {
                            const uint64_t pw[4] = {f.w[0] & ((uint64_t(1) << (8 * k)) - 1), 0, 0, 0};
                            if (m.set.contains_inline(key_hash_words(pw, k, space))) kind = k >= 5 ? 3 : int(k) - 2;
                        }
                    }
                    if (probes) kind += suffix_kind(q, len);
                    const __m128i bias = _mm_set1_epi8(char(0x80 - 'A'));
                    const __m128i lim = _mm_set1_epi8(char(0x80 + 26));
                    f.upper = uint32_t(_mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(a, bias), lim))) |
                              (uint32_t(_mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(bb, bias), lim))) << 16);
                    const uint32_t nu = popcnt32(f.upper);
                    const int cs = type == 1 || nu == 0 ? 0 : ((f.upper & 1) && nu == 1) ? 1 : (nu == n && n > 1) ? 2 : 3;
                    ++n_miss[type];
                    miss_sum[type] += miss(type, space, cs, kind, n);
                    return 0;
                }
                keyable = true;
            }
        }
        if (keyable) {
            load_feat(q, len, f);
            h = key_hash_words(f.w, len, space);
            if (probes && m.set.contains_inline(h)) {
                if constexpr (EXPLAIN) {
                    info->kind = 3;
                    info->len = uint8_t(len - popcnt32(f.cont));
                }
                return m.hit_cost[size_t(type) * 2 + space];
            }
            cps = uint32_t(len) - popcnt32(f.cont);
            n_upper = popcnt32(f.upper);
            first_upper = f.upper & 1;
            if (f.high && two_byte_all_known(q, len, f)) {
                // Only two-byte characters whose leads the vocabulary covers entirely (Latin-1,
                // Greek, Cyrillic, ...): no byte fallback, upper case from byte pairs (SIMD).
                const uint32_t up2 = upper2(q, len);
                n_upper = popcnt32(f.upper | up2);
                first_upper = q[0] < 0x80 ? (f.upper & 1) : ((up2 >> 1) & 1);
            } else if (f.high) {
                // Non-ASCII: code points the vocabulary lacks fall back to bytes; Cyrillic case.
                cps = 0;
                n_upper = 0;
                size_t i = 0;
                bool prev_unk = false;
                while (i < len) {
                    uint32_t cp;
                    const uint32_t l = decode_cp(q + i, len - i, cp);
                    const bool known = cp < 0x10000 ? m.cp_single(cp)
                                                     : cp != 0xFFFFFFFF && m.set.contains_inline(key_hash(q + i, l, false));
                    missing_runs += !known && !prev_unk;
                    prev_unk = !known;
                    if (!known) {
                        missing_bytes += l;
                        ++missing_cps;
                    } else {
                        const bool up = (cp >= 'A' && cp <= 'Z') || (cp >= 0x410 && cp <= 0x42F) ||
                                        cp == 0x401 || (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) ||
                                        (cp >= 0x391 && cp <= 0x3A9);
                        if (up) {
                            if (cps == 0) first_upper = true;
                            ++n_upper;
                        }
                        ++cps;
                    }
                    i += l;
                }
            }
        } else {
            // Longer than any key: code points, upper-case letters and non-ASCII bytes, 16 bytes
            // per step (SSE2).
            uint32_t conts = 0, highs = 0;
            first_upper = q[0] >= 'A' && q[0] <= 'Z';
            const __m128i c0 = _mm_set1_epi8(char(0xC0)), c8 = _mm_set1_epi8(char(0x80));
            const __m128i bias = _mm_set1_epi8(char(0x80 - 'A')), lim = _mm_set1_epi8(char(0x80 + 26));
            for (size_t i = 0; i < len; i += 16) {
                const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.at(b + i)));
                const uint32_t keep = len - i >= 16 ? 0xFFFFu : (1u << (len - i)) - 1;
                conts += popcnt32(uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(v, c0), c8))) & keep);
                n_upper += popcnt32(uint32_t(_mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(v, bias), lim))) & keep);
                highs |= uint32_t(_mm_movemask_epi8(v)) & keep;
            }
            cps = uint32_t(len) - conts;
            f.high = highs;
        }
        const bool any_high = f.high != 0;
        const int cs = type == 1 ? 0 : case_class(n_upper, first_upper, cps) + (any_high ? 4 : 0);
        int kind = 0;
        if (probes && keyable && missing_cps == 0) {
            if (space && m.set.contains_inline(key_hash_words(f.w, len, false))) kind = KIND_BODY;
            else kind = prefix_kind(q, ~f.cont & (len >= 32 ? 0xFFFFFFFFu : (1u << len) - 1), cps, space);
            kind += suffix_kind(q, len);
        }
        uint32_t cost;
        if (missing_cps) {
            // Byte fallback: a token per byte; without it, one <unk> per run of such characters.
            cost = (m.byte_fallback ? missing_bytes : missing_runs) * FIX +
                   (cps ? miss(type, space, cs, 0, cps) : (space ? m.ws_cost[1] : 0));
        } else {
            const uint32_t c = miss(type, space, cs, kind, cps);
            if (keyable) {
                if constexpr (EXPLAIN) info->scaled = 1;
                ++n_miss[type];
                miss_sum[type] += c;
                cost = 0;
            } else {
                cost = c;
            }
            if constexpr (EXPLAIN) info->cost = c;
        }
        if constexpr (EXPLAIN) {
            info->kind = missing_cps ? 7 : 4;
            info->cs = uint8_t(cs);
            info->miss_kind = uint8_t(kind);
            info->len = uint8_t(cps > LEN_MAX ? LEN_MAX : cps);
        }
        return cost;
    }

    // Memo miss that is an ASCII word or punctuation run of at most 32 bytes, with or without a
    // leading space (most misses): priced as segment<false>(b, e, false) would, but with one
    // predictable branch instead of the class switch and the space/no-space split, which
    // mispredict. Only with a memo (the vocabulary probes are off). False: not such a segment,
    // nothing done.
    __attribute__((always_inline)) bool ascii_word_miss(size_t b, size_t e) const {
        const size_t len = e - b;
        const uint8_t* q = t.at(b);
        const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
        const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16));
        const uint32_t lm = len >= 32 ? ~0u : (1u << len) - 1;
        const uint32_t high = uint32_t(_mm_movemask_epi8(v0)) | (uint32_t(_mm_movemask_epi8(v1)) << 16);
        const uint32_t sp = q[0] == ' ';
        const uint8_t c = BYTE_CLASS[q[sp]];
        // Not: longer than 32, non-ASCII, a whitespace run, or a digit/control segment.
        if (__builtin_expect(len > 32 || (high & lm) || len <= sp || (c != BC_LATIN && c != BC_PUNCT), 0))
            return false;
        const __m128i bias = _mm_set1_epi8(char(0x80 - 'A'));
        const __m128i lim = _mm_set1_epi8(char(0x80 + 26));
        const uint32_t upper = uint32_t(_mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(v0, bias), lim))) |
                               (uint32_t(_mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(v1, bias), lim))) << 16);
        const uint32_t n = uint32_t(len) - sp;
        const uint32_t up = (upper & lm) >> sp;
        const uint32_t nu = popcnt32(up);
        const int type = c == BC_LATIN ? 0 : 1;
        if (type == 1 && symbol_runs_miss(b + sp, n, sp != 0)) return true;
        const int cs = type == 1 ? 0 : case_class(nu, up & 1, n);
        ++n_miss[type];
        miss_sum[type] += miss(type, int(sp), cs, 0, n);
        return true;
    }

    // Memo miss that is a word of ASCII and two-byte characters (accented Latin, Greek, Cyrillic)
    // of at most 32 bytes after an optional leading space, every character a single piece:
    // priced as segment<false>(b, e, false) would (the word() path through two_byte_all_known),
    // without the class switch and the unused key hash. False: not such a segment, nothing done.
    __attribute__((always_inline)) bool two_byte_word_miss(size_t b, size_t e) const {
        const uint8_t* q0 = t.at(b);
        const uint32_t sp = q0[0] == ' ';
        const size_t len = e - b - sp;
        if (len == 0 || len > 32) return false;
        const uint8_t* q = t.at(b + sp);
        const uint8_t c = BYTE_CLASS[q[0]];
        if (c != BC_LATIN && c != BC_PUNCT && c != BC_CYR && c != BC_GREEK && c != BC_OTHER) return false;
        WordFeat f;
        load_feat(q, len, f);
        if (!f.high || !two_byte_all_known(q, len, f)) return false;
        const int type = word_type(c);
        if (type == 1 && symbol_runs_miss(b + sp, len, sp != 0)) return true;  // as word() would
        const uint32_t cps = uint32_t(len) - popcnt32(f.cont);
        const uint32_t up2 = upper2(q, len);
        const uint32_t n_upper = popcnt32(f.upper | up2);
        const bool first_upper = q[0] < 0x80 ? (f.upper & 1) : ((up2 >> 1) & 1);
        const int cs = type == 1 ? 0 : case_class(n_upper, first_upper, cps) + 4;
        ++n_miss[type];
        miss_sum[type] += miss(type, int(sp), cs, 0, cps);
        return true;
    }

    template <bool EXPLAIN>
    __attribute__((always_inline)) uint32_t segment(size_t b, size_t e, bool first, SegmentInfo* info) const {
        const uint8_t c0 = BYTE_CLASS[t.p[b]];
        if constexpr (EXPLAIN) {
            *info = SegmentInfo{uint32_t(b), uint32_t(e), 0, 0, 0, 0, 0, 0, 0, 0, 0};
        }
        uint32_t cost;
        switch (c0) {
            case BC_SP: {
                if (e - b > 1 && t.p[b + 1] != ' ') {
                    const uint8_t c1 = BYTE_CLASS[t.p[b + 1]];
                    const int type = word_type(c1);
                    if constexpr (EXPLAIN) {
                        info->space = 1;
                        info->type = uint8_t(type);
                    }
                    cost = type == 5 ? han<EXPLAIN>(b + 1, e, true, info)
                                     : word<EXPLAIN>(b + 1, e, type, true, info);
                    if (first) cost += m.ws_cost[1];
                } else {
                    size_t k = e - b + (first ? 1 : 0);
                    if constexpr (EXPLAIN) {
                        info->kind = 0;
                        info->len = uint8_t(k > WS_MAX ? WS_MAX : k);
                    }
                    cost = m.ws_cost[k > WS_MAX ? WS_MAX : k];
                }
                break;
            }
            case BC_CTRL:
                // Several bytes only without byte fallback: one <unk> (merge_unknown_ctrl).
                if constexpr (EXPLAIN) info->kind = 1;
                cost = m.byte_fallback ? m.ctrl_cost * uint32_t(e - b) : m.ctrl_cost;
                break;
            case BC_DIGIT:
                if constexpr (EXPLAIN) info->kind = 2;
                cost = m.digit_cost * uint32_t(e - b);
                break;
            case BC_CONT:
                if constexpr (EXPLAIN) info->kind = 7;
                cost = FIX * uint32_t(e - b);
                break;
            default: {
                const int type = word_type(c0);
                if constexpr (EXPLAIN) {
                    info->space = first;
                    info->type = uint8_t(type);
                }
                cost = type == 5 ? han<EXPLAIN>(b, e, first, info) : word<EXPLAIN>(b, e, type, first, info);
                break;
            }
        }
        if constexpr (EXPLAIN) {
            if (info->kind != 4) info->cost = cost;
        }
        return cost;
    }
};

// Segments of `p`: the SIMD kernel marks segment starts chunk by chunk; every segment is priced by
// one memo probe (branch-free; misses are queued), then the queued misses go through the feature
// model (Pricer::segment). The first segment of a text carries the tokenizer's dummy-prefix space
// and always takes the feature model. EXPLAIN records every segment (calibration, tests) and gives
// the same total.
//
// `fields` (offsets into p, in order, at least one byte apart; nf >= 1, the first starting at 0
// and the last ending at n) are texts the tokenizer encodes one by one: the result is the sum of
// their estimates, each as if it were run alone (see fields_fusable() for what makes that exact).
// A segment boundary is forced at every field start and end, segments between fields are
// skipped, each field's first segment takes the dummy prefix, and the miss-rate scale is
// computed per field. A single text is one field covering it.
//
// One-byte segments (with a memo kernel, not EXPLAIN): a segment start whose next byte also starts
// a segment is a one-byte segment; when it is ASCII, not a forced boundary and the memo has its
// byte (MemoTable::single, exactly what the probe would find), it is priced from that table and
// left out of the segment lists: begins then lists the other segments' starts, ends their ends.
// Its field still counts it as a segment (the miss-rate bin). Only when fields are at most one
// byte apart (lib/openai's layout), so that no such segment can lie between fields.
template <bool EXPLAIN>
uint64_t run(const Model& m, const Kernels& k, const uint8_t* p, size_t n, const TextField* fields, size_t nf,
             uint32_t base, std::vector<SegmentInfo>* out) {
    if (n == 0) return 0;
    const Text text(p, n);
    const Pricer pr{m, text};
    const bool use_memo = !m.memo.empty();
    const bool dummy = m.add_dummy_prefix;
    bool singles = !EXPLAIN && use_memo && k.memo != nullptr;
    for (size_t f = 1; singles && f < nf; ++f)
        if (uint64_t(fields[f].off) > uint64_t(fields[f - 1].off) + fields[f - 1].len + 1) singles = false;
    const bool singles_fused = k.memo == memo_avx512 && singles_flatten_supported();
    KernelState st;
    constexpr size_t WORDS = CHUNK / 64;
    uint64_t starts[WORDS];
    uint64_t single[WORDS];        // one-byte segments priced from the table (read while single_words)
    uint32_t qpre[WORDS + 1];      // their count in the words before w
    uint64_t forcedm[WORDS];
    size_t chunk_off = 0, chunk_len = 0, single_words = 0;  // the chunk `single` describes
    // begins[0] = pending segment start, begins[1..] = the next starts; segment i is
    // [begins[i], ends[i]). Without one-byte pricing ends = begins + 1. Miss lists get slack for
    // the eight-lane stores of the SIMD memo pass.
    uint32_t begins[CHUNK + 40], ends_own[CHUNK + 40], miss_b[CHUNK + 10], miss_e[CHUNK + 10];
    const uint32_t* ends = begins + 1;
    uint64_t total = 0;
    uint64_t field_segments = 0;  // segments of field fi so far
    size_t fi = 0;                // field of the segments being priced
    size_t forced = 1;            // next forced boundary: field fb/2's start (even) or end (odd)

    auto price = [&](size_t b, size_t e, bool first) {
        if constexpr (EXPLAIN) {
            SegmentInfo info;
            total += pr.template segment<true>(b, e, first, &info);
            info.counted = 1;
            out->push_back(info);
        } else {
            total += pr.template segment<false>(b, e, first, nullptr);
        }
    };
    // One-byte segments of field fi in the current chunk (called once per field and chunk: when
    // the field closes, or at the end of the chunk for the field still open).
    auto count_singles = [&]() {
        if (single_words == 0) return;
        const size_t fs = fields[fi].off - base, fe = fs + fields[fi].len;
        const size_t lo = std::max(fs, chunk_off), hi = std::min(fe, chunk_off + chunk_len);
        if (lo >= hi) return;
        const size_t l = lo - chunk_off, h = hi - chunk_off, wl = l / 64, wh = h / 64;
        const uint64_t below_l = (uint64_t(1) << (l % 64)) - 1, below_h = (uint64_t(1) << (h % 64)) - 1;
        if (wl == wh) {
            field_segments += popcnt64(single[wl] & below_h & ~below_l);
        } else {
            field_segments += qpre[wh] - qpre[wl] - popcnt64(single[wl] & below_l);
            if (h % 64) field_segments += popcnt64(single[wh] & below_h);
        }
    };
    // A field's misses are scaled by its own miss rate once all its segments are priced.
    auto close_field = [&]() {
        total += pr.scaled_misses(field_segments);
        pr.reset_misses();
        field_segments = 0;
    };
    // Queued memo misses (none a field's first segment): the ASCII word fast path first (most
    // misses); then by the class of the first letter, Han runs to the per-code-point pricing
    // (branch-free for short runs), the rest to the two-byte word fast path and, where that
    // declines, Pricer::segment. Same result as segment() for every miss: the order only skips
    // fast paths that cannot apply (trying the two-byte path on Han runs cost Chinese 8%).
    const bool han_fast = !m.han_cost.empty();
    auto price_misses = [&](uint32_t nm) {
        for (uint32_t q = 0; q < nm; ++q) {
            const size_t b = miss_b[q], e = miss_e[q];
            if (pr.ascii_word_miss(b, e)) continue;
            const uint8_t* s = text.at(b);
            const uint32_t sp = uint32_t(s[0] == ' ') & uint32_t(e - b > 1) & uint32_t(s[1] != ' ');
            if (BYTE_CLASS[s[sp]] == BC_HAN) {
#ifdef __SSSE3__
                uint32_t c;
                if (han_fast && pr.han_short3(b + sp, e, c)) {
                    total += c + (m.han_cost[0x20] & -sp);
                    continue;
                }
#endif
                total += pr.template han<false>(b + sp, e, sp != 0, nullptr);
            } else if (!pr.two_byte_word_miss(b, e)) {
                price(b, e, false);
            }
        }
    };
    // Segments i..j-1 of one field, none of them its first.
    auto field_run = [&](uint32_t i, uint32_t j) {
        field_segments += j - i;
        if (!use_memo) {
            for (; i < j; ++i) price(begins[i], ends[i], false);
            return;
        }
        uint32_t nm = 0;
        if constexpr (!EXPLAIN) {
            if (k.memo) {
                total += k.memo(m.memo, p, n, begins + i, ends + i, j - i, miss_b, miss_e, &nm);
                price_misses(nm);
                return;
            }
        }
        for (; i < j; ++i) {
            const size_t b = begins[i], e = ends[i];
            const size_t l = e - b;
            bool hit;
            const uint32_t cost = memo_probe_hash(m.memo, memo_hash(text.at(b), l < MEMO_KEY_MAX ? l : MEMO_KEY_MAX), hit);
            hit &= l <= MEMO_KEY_MAX;
            if constexpr (EXPLAIN) {
                if (hit) {
                    SegmentInfo info{uint32_t(b), uint32_t(e), 8, 0, 0, 0, 0, uint8_t(l), cost, 1, 0};
                    const uint8_t c0 = text.at(b)[0] == ' ' && l > 1 ? text.at(b)[1] : text.at(b)[0];
                    info.type = uint8_t(word_type(BYTE_CLASS[c0]));
                    out->push_back(info);
                    total += cost;
                } else {
                    price(b, e, false);
                }
            } else {
                total += hit ? cost : 0;
                miss_b[nm] = uint32_t(b);
                miss_e[nm] = uint32_t(e);
                nm += !hit;
            }
        }
        if constexpr (!EXPLAIN) price_misses(nm);
    };
    // A field's first segment: the tokenizer sees "▁" + segment.
    auto first_segment = [&](size_t b, size_t e) {
        ++field_segments;
        const size_t l = e - b;
        const uint8_t c0 = BYTE_CLASS[p[b]];
        bool hit = false;
        if (use_memo && l < MEMO_KEY_MAX && attaches_space(c0)) {
            const uint32_t cost = memo_probe_hash(m.memo, memo_hash_space(text.at(b), l + 1), hit);
            if (hit) {
                total += cost;
                if constexpr (EXPLAIN)
                    out->push_back(SegmentInfo{uint32_t(b), uint32_t(e), 8, uint8_t(word_type(c0)), 1, 0, 0, uint8_t(l), cost, 1, 0});
            }
        }
        if (!hit) price(b, e, true);
    };
    // Where a field ends inside the chunk, the index of its end in begins: a field end is a
    // forced start, so it is 1 + the begins below it in this chunk, counted from the start masks
    // (bpre[w]: begins in the chunk's words < w). Replaces a binary search of ~10 dependent loads
    // per field (fresh bodies, 3 alternated runs: de +6%, mixed +2%, en/es +1%, ru -1%; the
    // synthetic 4 KB request: no change above the noise). Only for chunks of a text
    // with several fields (bpre_off != SIZE_MAX); else, or when the end is not a start bit (text
    // after the last field), the search.
    uint32_t bpre[WORDS];
    size_t bpre_off = SIZE_MAX, bpre_len = 0;
    bool bpre_singles = false;
    // The starts of word w that are in begins (one-byte segments are not when singles were taken out).
    auto begin_bits = [&](size_t w, bool singles_out) { return singles_out ? starts[w] & ~single[w] : starts[w]; };
    auto field_end_index = [&](uint32_t fe, uint32_t& j) {
        const size_t rel = size_t(fe) - bpre_off;
        if (fe < bpre_off || rel >= bpre_len) return false;
        const size_t w = rel / 64;
        const uint64_t bits = begin_bits(w, bpre_singles);
        const uint64_t below = (uint64_t(1) << (rel % 64)) - 1;
        if (!((bits >> (rel % 64)) & 1)) return false;
        j = 1 + bpre[w] + uint32_t(popcnt64(bits & below));
        return true;
    };
    // Segments i < ns (begins/ends), sorted into fields.
    auto chunk_segments = [&](uint32_t ns) {
        uint32_t i = 0;
        while (i < ns) {
            const uint32_t b = begins[i];
            while (fields[fi].off - base + fields[fi].len <= b) {  // past the end of field fi
                count_singles();
                if (field_segments) close_field();
                ++fi;
            }
            const uint32_t fs = fields[fi].off - base, fe = fs + fields[fi].len;
            if (b < fs) {  // between fields
                ++i;
                continue;
            }
            if (b == fs && dummy) {
                first_segment(b, ends[i]);
                ++i;
                continue;
            }
            uint32_t j = ns;
            if (begins[ns - 1] >= fe && !field_end_index(fe, j)) {
                // First start at or past the field's end (branch-free search: the field sizes
                // vary and std::lower_bound's branches mispredict).
                const uint32_t* lo = begins + i + 1;
                size_t len = ns - (i + 1);
                while (len > 1) {
                    const size_t half = len / 2;
                    lo += size_t(lo[half - 1] < fe) * half;
                    len -= half;
                }
                j = uint32_t(lo - begins) + (*lo < fe);
            }
            field_run(i, j);
            i = j;
        }
    };

    begins[0] = 0;
    bool unk_carry = false;  // the byte before the chunk is an unknown control byte
    const size_t n_forced = 2 * nf - 1;  // field ends and starts after the first start, before n
    for (size_t off = 0; off < n; off += CHUNK) {
        const size_t len = std::min(CHUNK, n - off);
        const size_t words = (len + 63) / 64;
        const int next = off + len < n ? int(p[off + len]) : -1;
        k.classify(p + off, len, next, st, starts);
        if (!m.byte_fallback) merge_unknown_ctrl(m, p + off, len, starts, unk_carry);
        if (singles)
            for (size_t w = 0; w < words; ++w) forcedm[w] = 0;
        for (; forced < n_forced; ++forced) {
            const TextField& f = fields[forced / 2];
            const size_t pos = (forced & 1) ? f.off - base + f.len : f.off - base;
            if (pos >= off + len) break;
            starts[(pos - off) / 64] |= uint64_t(1) << ((pos - off) % 64);
            if (singles) forcedm[(pos - off) / 64] |= uint64_t(1) << ((pos - off) % 64);
        }
        if (off == 0) starts[0] &= ~uint64_t(1);  // byte 0 starts the pending segment
        uint32_t ns = 0;
        // Worth it only where one-byte segments are common (prose with punctuation, code: 30-45%
        // of segments); below a quarter the extra pass costs more than the probes it saves
        // (measured: chat text at 17% lost 6%, English at 31% gained 7%, code at 45% 29%).
        bool chunk_singles = false;
        if (singles) chunk_singles = singles_worth_it(starts, words);
        if (chunk_singles) {
            // One-byte segments: a start followed by a start in this chunk (the chunk's last
            // byte never qualifies), not forced, that the table can price.
            uint64_t tok = 0;
            if (singles_fused) {
                ns = singles_flatten_vbmi2(m.memo, p + off, len, starts, forcedm, words, uint32_t(off), single, qpre,
                                           begins + 1, ends_own, &tok);
            } else {
                uint32_t nb = 0, nq = 0;
                uint64_t carry = 0;
                for (size_t w = 0; w < words; ++w) {
                    const uint64_t s = starts[w];
                    const uint64_t nxt = (s >> 1) | (w + 1 < words ? starts[w + 1] << 63 : 0);
                    uint64_t q = s & nxt & ~forcedm[w];
                    for (uint64_t bits = q; bits; bits &= bits - 1) {
                        const size_t i = w * 64 + size_t(__builtin_ctzll(bits));
                        const uint8_t c = p[off + i] < 0x80 ? m.memo.single[p[off + i]] : 0xFF;
                        if (c == 0xFF)
                            q &= ~(uint64_t(1) << (i % 64));
                        else
                            tok += c;
                    }
                    single[w] = q;
                    qpre[w] = nq;
                    nq += uint32_t(popcnt64(q));
                    // ends: starts not preceded by a one-byte segment; begins: the other starts.
                    const uint32_t wb = uint32_t(off + w * 64);
                    for (uint64_t bits = s & ~((q << 1) | carry); bits; bits &= bits - 1)
                        ends_own[ns++] = wb + uint32_t(__builtin_ctzll(bits));
                    for (uint64_t bits = s & ~q; bits; bits &= bits - 1) begins[++nb] = wb + uint32_t(__builtin_ctzll(bits));
                    carry = q >> 63;
                }
                qpre[words] = nq;
            }
            total += tok * FIX;
            chunk_off = off;
            chunk_len = len;
            single_words = words;
            ends = ends_own;
        } else if (k.memo == memo_avx512) {
            ns = flatten_avx512(starts, words, uint32_t(off), begins + 1);
        } else {
            for (size_t w = 0; w < words; ++w) {
                uint64_t bits = starts[w];
                const uint32_t wb = uint32_t(off + w * 64);
                while (bits) {
                    begins[++ns] = wb + uint32_t(__builtin_ctzll(bits));
                    bits &= bits - 1;
                }
            }
        }
        if (!chunk_singles) {
            single_words = 0;
            ends = begins + 1;
        }
        if (nf > 1) {
            uint32_t c = 0;
            for (size_t w = 0; w < words; ++w) {
                bpre[w] = c;
                c += uint32_t(popcnt64(begin_bits(w, chunk_singles)));
            }
            bpre_off = off;
            bpre_len = len;
            bpre_singles = chunk_singles;
        }
        chunk_segments(ns);
        count_singles();
        begins[0] = begins[ns];
    }
    // The last segment, [pending start, n).
    bpre_off = SIZE_MAX;
    single_words = 0;
    ends = begins + 1;
    begins[1] = uint32_t(n);
    chunk_segments(1);
    close_field();
    return total;
}

}  // namespace

uint64_t explain(const Model& m, const char* p, size_t n, std::vector<SegmentInfo>& out) {
    out.clear();
    const TextField all{0, uint32_t(n)};
    return run<true>(m, Kernels{classify_scalar, nullptr}, reinterpret_cast<const uint8_t*>(p), n, &all, 1, 0, &out);
}

namespace {
// One text: a single field covering it (offsets are 32-bit: texts above 4 GiB are priced in
// parts, at most one segment split per 1 GiB).
uint64_t run_text(const Model& m, const Kernels& k, const uint8_t* p, size_t n) {
    constexpr size_t PART = size_t(1) << 30;
    uint64_t total = 0;
    for (; n > PART; p += PART, n -= PART) {
        const TextField f{0, uint32_t(PART)};
        total += run<false>(m, k, p, PART, &f, 1, 0, nullptr);
    }
    const TextField f{0, uint32_t(n)};
    return total + run<false>(m, k, p, n, &f, 1, 0, nullptr);
}

// Fields can share one pass when the pass segments each of them exactly as it would alone: in
// order, non-empty ones at least one byte apart, the byte after each (non-last) non-empty field
// is not one a space attaches to (the kernel looks one byte ahead only to attach a trailing
// space), and no non-empty field starts with a UTF-8 continuation byte (the only byte whose
// class comes from the bytes before it). lib/openai's layout ('\n' between decoded, valid
// UTF-8 fields) always qualifies. Sets [lo, hi) to the non-empty fields' extent, first/last to
// the first and last non-empty field. False when no field has a byte.
bool fields_fusable(const uint8_t* p, const TextField* f, size_t nf, size_t& first, size_t& last, size_t& lo,
                    size_t& hi) {
    bool any = false;
    uint64_t prev_end = 0, prev_off = 0;
    for (size_t i = 0; i < nf; ++i) {
        if (f[i].off < prev_off) return false;
        prev_off = f[i].off;
        if (f[i].len == 0) continue;
        if (BYTE_CLASS[p[f[i].off]] == BC_CONT) return false;
        if (any) {
            if (f[i].off <= prev_end) return false;
            if (attaches_space(BYTE_CLASS[p[prev_end]])) return false;
        } else {
            lo = f[i].off;
            first = i;
        }
        any = true;
        prev_end = uint64_t(f[i].off) + f[i].len;
        if (prev_end > 0xFFFFFFFFu) return false;
        hi = size_t(prev_end);
        last = i;
    }
    return any;
}

uint64_t run_fields(const Model& m, const Kernels& k, const uint8_t* p, const TextField* f, size_t nf) {
    size_t first = 0, last = 0, lo = 0, hi = 0;
    if (nf == 1) return run_text(m, k, p + f[0].off, f[0].len);
    if (!fields_fusable(p, f, nf, first, last, lo, hi)) {
        uint64_t total = 0;
        for (size_t i = 0; i < nf; ++i) total += run_text(m, k, p + f[i].off, f[i].len);
        return total;
    }
    // Empty fields before the first and after the last non-empty one add nothing.
    return run<false>(m, k, p + lo, hi - lo, f + first, last - first + 1, uint32_t(lo), nullptr);
}
}  // namespace

// ---- Estimator -------------------------------------------------------------------------------

namespace {
Kernels kernels_for(Isa isa) {
    if (isa == Isa::Avx512) return Kernels{classify_fn(isa), memo_avx512_supported() ? memo_avx512 : memo_avx2};
    return Kernels{classify_fn(isa), isa == Isa::Avx2 ? memo_avx2 : nullptr};
}
const Kernels& default_kernels() {
    static const Kernels k = kernels_for(best_isa());
    return k;
}}  // namespace

Estimator::Estimator(std::unique_ptr<Model> m) : _model(std::move(m)) { default_kernels(); }
Estimator::Estimator(Estimator&&) noexcept = default;
Estimator& Estimator::operator=(Estimator&&) noexcept = default;
Estimator::~Estimator() = default;

uint64_t Estimator::estimate_fixed(const char* p, size_t n) const noexcept {
    return run_text(*_model, default_kernels(), reinterpret_cast<const uint8_t*>(p), n);
}

uint64_t Estimator::estimate_fields_fixed(const char* text, const TextField* fields, size_t n) const noexcept {
    if (n == 0) return 0;
    return run_fields(*_model, default_kernels(), reinterpret_cast<const uint8_t*>(text), fields, n);
}

uint64_t Estimator::estimate_fields_fixed(const char* text, const TextField* fields, size_t n, Isa isa) const noexcept {
    if (n == 0) return 0;
    if (!isa_supported(isa)) isa = Isa::Scalar;
    return run_fields(*_model, kernels_for(isa), reinterpret_cast<const uint8_t*>(text), fields, n);
}

uint32_t Estimator::estimate(const char* p, size_t n) const noexcept {
    const uint64_t f = estimate_fixed(p, n);
    const uint64_t t = (f + FIX / 2) / FIX;
    return t > 0xFFFFFFFFu ? 0xFFFFFFFFu : uint32_t(t);
}

uint32_t Estimator::estimate(const char* p, size_t n, Isa isa) const noexcept {
    if (!isa_supported(isa)) isa = Isa::Scalar;
    const uint64_t f = run_text(*_model, kernels_for(isa), reinterpret_cast<const uint8_t*>(p), n);
    const uint64_t t = (f + FIX / 2) / FIX;
    return t > 0xFFFFFFFFu ? 0xFFFFFFFFu : uint32_t(t);
}

const std::string& Estimator::tokenizer_name() const noexcept { return _model->name; }

Estimator Estimator::from_toml(std::string_view text, const std::string& source_name) {
    auto m = std::make_unique<Model>(model_from_toml(text, source_name));
    return Estimator(std::move(m));
}

Estimator Estimator::from_file(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw CalibrationError(path + ": cannot open calibration file");
    std::string s;
    char buf[65536];
    size_t r;
    while ((r = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, r);
    std::fclose(f);
    return from_toml(s, path);
}

Estimator Estimator::builtin() {
    auto m = std::make_unique<Model>();
    builtin_model(*m);
    return Estimator(std::move(m));
}

}  // namespace tlb::tokens
