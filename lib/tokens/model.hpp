// Internal to lib/tokens: the calibrated model, the byte classes shared by every kernel, the
// segment-key hash and the kernel function table. Not part of the public API (tokens.hpp).
#pragma once

#include <emmintrin.h>
#include <immintrin.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "tokens/tokens.hpp"

// Free helpers here are `static`: this header is also compiled into the AVX2/AVX-512 kernel
// objects, and an inline function with external linkage emitted there could be the copy the
// linker keeps for baseline callers (illegal instructions on CPUs without AVX).
namespace tlb::tokens {

// Byte classes. A class is a coarse Unicode script decided by the byte alone (lead byte for
// multi-byte sequences), which is what lets a SIMD kernel find segment boundaries 64 bytes at a
// time. Sentencepiece never merges across a script change, whitespace-to-non-whitespace, a digit
// (split_digits) or a control character, so its output factorises over these segments.
enum ByteClass : uint8_t {
    BC_SP = 0,      // ' '
    BC_CTRL = 1,    // C0 controls except TAB, DEL, bytes that are never valid UTF-8: own segment
    BC_DIGIT = 2,   // 0-9: own segment (split_digits)
    BC_LATIN = 3,   // A-Z a-z, lead bytes C3-CB (U+00C0..U+02FF)
    BC_PUNCT = 4,   // ASCII punctuation, TAB, lead C2 (U+0080..), E2 (U+2000..), EF (U+F000..), F0-F4
    BC_CYR = 5,     // lead D0-D4 (U+0400..U+052F)
    BC_GREEK = 6,   // lead CE-CF (U+0380..U+03FF)
    BC_HAN = 7,     // lead E3-E9 (U+3000..U+9FFF: CJK punctuation, kana, ideographs)
    BC_OTHER = 8,   // other scripts (Armenian, Hebrew, Arabic, Indic, Hangul, ...)
    BC_CONT = 9,    // UTF-8 continuation byte: never starts a segment, inherits its lead's class
    BC_COUNT = 10,
};

static constexpr std::array<uint8_t, 256> make_byte_class() {
    std::array<uint8_t, 256> t{};
    for (int b = 0; b < 256; ++b) {
        uint8_t c = BC_OTHER;
        if (b < 0x20) c = BC_CTRL;
        else if (b == 0x20) c = BC_SP;
        else if (b >= '0' && b <= '9') c = BC_DIGIT;
        else if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z')) c = BC_LATIN;
        else if (b == 0x7f) c = BC_CTRL;
        else if (b < 0x80) c = BC_PUNCT;
        else if (b < 0xC0) c = BC_CONT;
        else if (b < 0xC2) c = BC_CTRL;
        else if (b == 0xC2) c = BC_PUNCT;
        else if (b <= 0xCB) c = BC_LATIN;
        else if (b <= 0xCD) c = BC_OTHER;
        else if (b <= 0xCF) c = BC_GREEK;
        else if (b <= 0xD4) c = BC_CYR;
        else if (b <= 0xE1) c = BC_OTHER;
        else if (b == 0xE2) c = BC_PUNCT;
        else if (b <= 0xE9) c = BC_HAN;
        else if (b <= 0xEE) c = BC_OTHER;
        else if (b == 0xEF) c = BC_PUNCT;
        else if (b <= 0xF4) c = BC_PUNCT;
        else c = BC_CTRL;
        t[b] = c;
    }
    t[0x09] = BC_PUNCT;  // sentencepiece treats TAB like punctuation (it is not whitespace to it)
    return t;
}
inline constexpr std::array<uint8_t, 256> BYTE_CLASS = make_byte_class();

// Classes a preceding space attaches to ("▁word", "▁{", "▁中"): the last space of a run starts
// the following segment.
static constexpr bool attaches_space(uint8_t c) {
    return c == BC_LATIN || c == BC_PUNCT || c == BC_CYR || c == BC_GREEK || c == BC_HAN ||
           c == BC_OTHER;
}

// ---- kernels ---------------------------------------------------------------------------------
// A kernel turns a chunk of bytes into a bitmask of segment starts (bit i of word i/64 = byte i
// starts a segment). It is a pure function of the bytes, the carried state and one byte of
// look-ahead, so every ISA produces the same bits (tested).
constexpr size_t CHUNK = 4096;

struct KernelState {
    // Carried from the previous chunk (0xFF: none, start of text). r = raw class, c1/c2 = class
    // after one/two continuation-propagation steps (see kernel_scalar.cpp for the definition).
    uint8_t r1 = 0xFF;      // r of byte -1
    uint8_t c1_1 = 0xFF;    // c1 of byte -1
    uint8_t c1_2 = 0xFF;    // c1 of byte -2
    uint8_t c2_1 = 0xFF;    // c2 of byte -1
    bool attach1 = false;   // byte -1 was a space attached to byte 0
};

// p[0..n) is the chunk (n <= CHUNK); `next` is the byte after it or -1 at end of text.
// starts must hold (n + 63) / 64 words. Updates `st` for the next chunk.
using ClassifyFn = void (*)(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts);

// State after a chunk depends only on its last four bytes (and `next`); SIMD kernels call this
// instead of extracting lanes.
static inline void replay_state(const uint8_t* p, size_t n, int next, KernelState& st) {
    size_t i = n >= 4 ? n - 4 : 0;
    uint8_t r1 = st.r1, c1_1 = st.c1_1, c1_2 = st.c1_2, c2_1 = st.c2_1;
    for (; i < n; ++i) {
        const uint8_t r = BYTE_CLASS[p[i]];
        const uint8_t c1 = r == BC_CONT ? r1 : r;
        const uint8_t c2 = c1 == BC_CONT ? c1_2 : c1;
        r1 = r;
        c1_2 = c1_1;
        c1_1 = c1;
        c2_1 = c2;
    }
    if (n > 0) {
        st.r1 = r1;
        st.c1_1 = c1_1;
        st.c1_2 = c1_2;
        st.c2_1 = c2_1;
        st.attach1 = r1 == BC_SP && next >= 0 && attaches_space(BYTE_CLASS[uint8_t(next)]);
    }
}

struct MemoTable;
// Memo pass over segments [begins[i], ends[i]) of the text p[0..n), i < ns: returns the summed
// cost (FIX) of the memo hits and appends the misses' bounds, in order, to miss_b/miss_e at
// *n_miss (both need 8 slots of slack). The scalar loop in estimator.cpp is the reference.
// begins and ends are increasing and ends[i] <= begins[i + 1].
using MemoFn = uint64_t (*)(const MemoTable& mt, const uint8_t* p, size_t n, const uint32_t* begins,
                            const uint32_t* ends, uint32_t ns, uint32_t* miss_b, uint32_t* miss_e, uint32_t* n_miss);
uint64_t memo_avx512(const MemoTable& mt, const uint8_t* p, size_t n, const uint32_t* begins, const uint32_t* ends,
                     uint32_t ns, uint32_t* miss_b, uint32_t* miss_e, uint32_t* n_miss);
bool memo_avx512_supported() noexcept;  // AVX-512 F/BW/DQ/VL/VBMI
uint64_t memo_avx2(const MemoTable& mt, const uint8_t* p, size_t n, const uint32_t* begins, const uint32_t* ends,
                   uint32_t ns, uint32_t* miss_b, uint32_t* miss_e, uint32_t* n_miss);  // AVX2
// One-byte segments priced from MemoTable::single, and the remaining segments' starts and ends as
// offsets, in one pass over a chunk's start masks (needs AVX-512 VBMI2 and POPCNT, see
// singles_flatten_supported(); the loop in run() is the reference): starts[0..words) are the chunk's segment starts, forced[] the
// starts one-byte pricing must leave alone. Writes q[w] (the one-byte segments priced), qpre[w]
// (their count in words < w; words + 1 entries), begins (the other starts) and ends (the ends of
// the segments those start; both may get 32 entries past the count), adds the one-byte segments'
// tokens to *tokens and returns the number of ends.
uint32_t singles_flatten_vbmi2(const MemoTable& mt, const uint8_t* p, size_t n, const uint64_t* starts,
                               const uint64_t* forced, size_t words, uint32_t base, uint64_t* q, uint32_t* qpre,
                               uint32_t* begins, uint32_t* ends, uint64_t* tokens);
bool singles_flatten_supported() noexcept;
// Offsets (base + bit index) of the set bits of starts[0..words), in order; returns the count and
// may write 32 entries past it. Used with memo_avx512.
uint32_t flatten_avx512(const uint64_t* starts, size_t words, uint32_t base, uint32_t* out);

struct Kernels {
    ClassifyFn classify;
    MemoFn memo;  // nullptr: the scalar memo loop
};

void classify_scalar(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts);
void classify_avx2(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts);
void classify_avx512(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts);
ClassifyFn classify_fn(Isa isa) noexcept;

// ---- segment keys ----------------------------------------------------------------------------
// A segment key is (leading space?, body bytes), body at most KEY_MAX bytes. Vocabulary pieces are
// inserted with '▁' prefix mapped to the flag.
constexpr size_t KEY_MAX = 32;

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

// Hash of a key whose body bytes are given zero-padded in w[0..3] (little-endian 8-byte words).
// Split in two so the estimator can hash a body once and finish it with and without the
// leading-space flag.
static inline uint64_t key_hash_base(const uint64_t* w, size_t len) {
    const uint64_t a = w[0] * 0xbf58476d1ce4e5b9ULL;
    const uint64_t b = w[1] * 0x94d049bb133111ebULL;
    const uint64_t c = (w[2] ^ (w[3] << 29 | w[3] >> 35)) * 0x9E3779B97F4A7C15ULL;
    return a ^ (b >> 23 | b << 41) ^ (c >> 41 | c << 23) ^ (uint64_t(len) * 0xC2B2AE3D27D4EB4FULL);
}
static inline uint64_t key_hash_finish(uint64_t base, bool space) {
    uint64_t h = base ^ (space ? 0x165667B19E3779F9ULL : 0);
    h ^= h >> 29;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}
static inline uint64_t key_hash_words(const uint64_t* w, size_t len, bool space) {
    return key_hash_finish(key_hash_base(w, len), space);
}

static inline uint64_t key_hash(const uint8_t* body, size_t len, bool space) {
    uint64_t w[4] = {0, 0, 0, 0};
    std::memcpy(w, body, len < KEY_MAX ? len : KEY_MAX);
    return key_hash_words(w, len, space);
}

// Bucketized fingerprint set: 8 x 16-bit fingerprints per 16-byte bucket, linear probing over
// buckets that are full. 32k-piece vocabularies fit in 128 KiB (L2 resident).
struct PieceSet {
    std::vector<uint16_t> slots;  // buckets * 8, 0 = empty
    uint32_t bucket_mask = 0;

    static uint16_t fp(uint64_t h) {
        uint16_t f = uint16_t(h >> 48);
        return f ? f : 1;
    }
    void init(size_t keys);
    void insert(uint64_t h);
    bool contains(uint64_t h) const noexcept;
    // Hot path (estimator.cpp only; needs SSE2, which the x86-64 baseline has).
    __attribute__((always_inline)) inline bool contains_inline(uint64_t h) const noexcept;
};

// Segment memo: cost of whole segments, keyed by their raw bytes (a leading space included), at
// most MEMO_KEY_MAX bytes. Filled at calibration with every segment seen at least twice in the
// corpus (its exact piece count, from the real tokenizer in context) and with every vocabulary
// piece (one token). The data plane prices a segment with one branch-free probe here and leaves
// only the misses to the feature model below. Buckets of 8 entries: 8 x 16-bit fingerprints then
// 8 x 16-bit costs (32 bytes, one SSE2 compare); a full bucket refuses further keys (they stay
// misses), so a probe never leaves its bucket.
constexpr size_t MEMO_KEY_MAX = 32;

struct MemoTable {
    // Entry: 12-bit fingerprint << 4 | cost in whole tokens (0..15); 0 = empty. A segment's piece
    // count is a whole number (the tokenizer is deterministic), so 16-bit entries lose nothing and
    // keep ~100k keys in 512 KiB (L2; power-of-two buckets at <= 60% load). Bucket = 4 entries =
    // 8 bytes: one 64-bit load (or one gather lane) per probe.
    std::vector<uint64_t> buckets;  // bucket_mask + 1 buckets
    uint32_t bucket_mask = 0;
    size_t entries = 0;
    // The memo's answer for every one-byte ASCII segment, in whole tokens, 0xFF where it misses
    // (filled by build_memo). One-byte segments (punctuation, a lone letter, a newline) are 15-45%
    // of all segments; the pass prices them from this table without hashing (see run()).
    std::array<uint8_t, 128> single{};

    void init(size_t keys);
    // False when the key is already present, its bucket is full or the cost is not 0..15 tokens.
    bool insert(uint64_t hv, uint32_t cost_fix);
    bool empty() const noexcept { return entries == 0; }
};

// Bytes of the UTF-8 sequence that `lead` starts (1 for ASCII, continuation and invalid bytes).
inline constexpr uint32_t utf8_len(uint8_t lead) { return lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1; }

// Memo key hash: NH (sum of 32x32->64-bit products of key-added halves; almost-universal) over
// the 32 key bytes masked to `len`, then a multiply-xorshift finish. SSE2 only, ~20 instructions:
// the data plane hashes every segment with it.
alignas(64) inline constexpr uint8_t MEMO_MASK_WINDOW[64] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
// q: 32 readable bytes; len <= MEMO_KEY_MAX. Returns bucket index bits (high 32) and the
// fingerprint (bits 4..15 of the low half, never 0) as  hv = (uint64(y >> 32) << 32) | fp << 4.
//   s  = sum_k (lo_k + A_k) * (hi_k + B_k)   over the four 64-bit words of the masked key (NH),
//        A_0 also adds len;  x = lo32(s) ^ hi32(s);  y = (x ^ C) * M  (32 x 32 -> 64 bits).
// Only 32 x 32 -> 64 multiplies, so SIMD kernels compute the same value lane by lane.
constexpr uint32_t MEMO_A[4] = {0xA54FF53Au, 0x6A09E667u, 0x5BE0CD19u, 0x9B05688Cu};
constexpr uint32_t MEMO_B[4] = {0xBB67AE85u, 0x3C6EF372u, 0x1F83D9ABu, 0x510E527Fu};
constexpr uint32_t MEMO_C = 0x85EBCA6Bu;
constexpr uint32_t MEMO_M = 0xC2B2AE35u;
static inline uint64_t memo_finish(uint64_t s) {
    const uint32_t x = uint32_t(s) ^ uint32_t(s >> 32);
    const uint64_t y = uint64_t(x ^ MEMO_C) * MEMO_M;
    uint32_t fp = (uint32_t(y) >> 20) & 0xFFF;
    fp += fp == 0;
    return (y & 0xFFFFFFFF00000000ULL) | (fp << 4);
}
// The same over key bytes in two registers (bytes 0-15, 16-31).
static inline uint64_t memo_hash_v(__m128i a, __m128i b, size_t len) {
    const __m128i m0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(MEMO_MASK_WINDOW + 32 - len));
    const __m128i m1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(MEMO_MASK_WINDOW + 48 - len));
    a = _mm_and_si128(a, m0);
    b = _mm_and_si128(b, m1);
    a = _mm_add_epi32(a, _mm_setr_epi32(int(MEMO_A[0] + uint32_t(len)), int(MEMO_B[0]), int(MEMO_A[1]), int(MEMO_B[1])));
    b = _mm_add_epi32(b, _mm_setr_epi32(int(MEMO_A[2]), int(MEMO_B[2]), int(MEMO_A[3]), int(MEMO_B[3])));
    const __m128i pa = _mm_mul_epu32(a, _mm_srli_epi64(a, 32));
    const __m128i pb = _mm_mul_epu32(b, _mm_srli_epi64(b, 32));
    __m128i s = _mm_add_epi64(pa, pb);
    s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
    return memo_finish(uint64_t(_mm_cvtsi128_si64(s)));
}
static inline uint64_t memo_hash(const uint8_t* q, size_t len) {
    return memo_hash_v(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)),
                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)), len);
}
// Hash of ' ' followed by the first len - 1 bytes at q (the dummy-prefix key), built in registers.
static inline uint64_t memo_hash_space(const uint8_t* q, size_t len) {
    const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16));
    const __m128i a = _mm_or_si128(_mm_slli_si128(v0, 1), _mm_cvtsi32_si128(' '));
    const __m128i b = _mm_or_si128(_mm_slli_si128(v1, 1), _mm_srli_si128(v0, 15));
    return memo_hash_v(a, b, len);
}
// Sum of the eight 64-bit lanes with vector adds, which wrap (GCC's _mm512_reduce_add_epi64 adds
// signed long longs in C: undefined on overflow, which UBSan reports for hash sums). For AVX-512
// code only (memo pass, prefix hash); the target attribute lets baseline files call it from
// functions compiled for AVX-512.
__attribute__((target("avx512f"))) static inline uint64_t hsum_epi64(__m512i x) {
    const __m256i h4 = _mm256_add_epi64(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64(x, 1));
    const __m128i h2 = _mm_add_epi64(_mm256_castsi256_si128(h4), _mm256_extracti128_si256(h4, 1));
    return uint64_t(_mm_cvtsi128_si64(_mm_add_epi64(h2, _mm_unpackhi_epi64(h2, h2))));
}
static inline uint64_t memo_hash_str(const std::string& key) {
    uint8_t buf[32] = {};
    std::memcpy(buf, key.data(), key.size() < 32 ? key.size() : 32);
    return memo_hash(buf, key.size() < 32 ? key.size() : 32);
}

// ---- the model -------------------------------------------------------------------------------
// Costs are fixed point, 1/256 token (FIX).
constexpr uint32_t FIX = 256;
constexpr int WS_MAX = 64;       // whitespace-only runs longer than this use the last entry
constexpr int LEN_MAX = 24;      // code points; longer segments use the last length bucket
constexpr int N_TYPES = 6;       // word types: LATIN, PUNCT, CYR, GREEK, OTHER, HAN(unused in tables)
constexpr int N_CASE = 8;        // lower, Capitalised, UPPER, mixed; +4 if the body has non-ASCII
                                 // letters (accents break merges: "▁último" splits more than "▁ultimo")
// Miss kinds: (prefix 0-4) + 5 * suffix. prefix 0-3 = longest piece that is a prefix of the
// segment (with its leading space) among 3, 4, 5-6 code points: none / 3 / 4 / 5+; 4 = the body
// without its leading space is a piece. suffix = the last 3 bytes are a piece. How much of a word
// the vocabulary covers from either end says how it will split: a language the vocabulary covers
// poorly has short first and last pieces.
constexpr int N_KIND = 10;
constexpr int KIND_BODY = 4;
constexpr int N_WORD_TYPES = 5;  // types with a miss table (not han)
constexpr int MISS_BINS = 8;     // bins of the per-text memo-miss rate for miss_scale
// Bin of a text's memo-miss rate (word misses / segments): 1/32 wide, the last open-ended.
static inline uint32_t miss_bin(uint64_t misses, uint64_t segments) {
    if (segments == 0) return 0;
    const uint64_t b = misses * 32 / segments;
    return b < uint64_t(MISS_BINS) ? uint32_t(b) : uint32_t(MISS_BINS - 1);
}

static constexpr int word_type(uint8_t cls) {
    switch (cls) {
        case BC_LATIN: return 0;
        case BC_PUNCT: return 1;
        case BC_CYR: return 2;
        case BC_GREEK: return 3;
        case BC_HAN: return 5;
        default: return 4;
    }
}
static inline const char* word_type_name(int t) {
    static const char* names[] = {"latin", "punct", "cyrillic", "greek", "other", "han"};
    return names[t];
}

static inline size_t miss_index(int type, int space, int cs, int kind, int len) {
    return ((((size_t(type) * 2 + space) * N_CASE + cs) * N_KIND + kind) * (LEN_MAX + 1)) + len;
}
constexpr size_t MISS_SIZE = size_t(N_TYPES) * 2 * N_CASE * N_KIND * (LEN_MAX + 1);

struct Model {
    std::string name;
    std::string source;
    uint32_t vocab_size = 0;
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = false;
    bool byte_fallback = true;

    std::vector<std::string> pieces;  // vocabulary as written in the calibration file ("▁" kept)
    PieceSet set;                     // keys of all pieces
    std::vector<uint64_t> cp_bitmap;  // BMP code points that are single pieces (no leading space)
    int han_max_chars = 1;            // longest Han-class piece in code points (capped)
    std::array<uint64_t, 256> lead_bits{};  // two-byte lead -> its 64 code points' single-piece bits
    // Symbol characters of which a run of two or more is a piece: (the character's UTF-8 bytes
    // packed little-endian, the longest such run in characters), sorted. Pieces of any length.
    std::vector<std::pair<uint32_t, uint32_t>> run_longest;
    uint32_t longest_run(const uint8_t* ch, uint32_t l) const noexcept {
        uint32_t k = 0;
        for (uint32_t i = 0; i < l; ++i) k |= uint32_t(ch[i]) << (8 * i);
        size_t lo = 0, hi = run_longest.size();
        while (lo < hi) {
            const size_t mid = (lo + hi) / 2;
            if (run_longest[mid].first < k) lo = mid + 1;
            else hi = mid;
        }
        return lo < run_longest.size() && run_longest[lo].first == k ? run_longest[lo].second : 0;
    }

    // Costs (FIX units).
    uint32_t ctrl_cost = FIX;
    uint32_t digit_cost = FIX;
    std::array<uint32_t, WS_MAX + 1> ws_cost{};  // whitespace-only run of k spaces
    std::array<uint32_t, N_TYPES * 2> hit_cost{};  // segment that is a piece, per (type, space)
    std::vector<uint16_t> miss_cost;        // MISS_SIZE
    uint32_t han_scale = FIX;               // correction on greedy Han matching (x/256)
    // The last length cell of miss_cost is the cost of LEN_MAX code points of a longer segment,
    // priced in proportion (calibration files since 2026-12-08); false: the cost of any segment of
    // LEN_MAX or more code points (older files, read as they were fitted).
    bool long_miss_proportional = false;
    // With a memo: Han-class runs the memo misses are priced per code point (FIX units), the
    // piece count of corpus runs shared out over their characters; index 0x20 = a leading space.
    // Empty: greedy matching against the vocabulary (han_scale applies).
    std::vector<uint16_t> han_cost;                           // 0x10000 entries + a zero one, or empty
    std::vector<std::pair<uint32_t, uint32_t>> han_cost_keys; // (code point, cost FIX) as in the file
    std::array<uint32_t, N_WORD_TYPES * MISS_BINS> miss_scale{};  // x/256 by (type, miss-rate bin)

    // Segment memo (may be empty: calibration files without one, the builtin model).
    std::vector<std::pair<std::string, uint32_t>> memo_keys;  // key bytes, cost (FIX); file order
    MemoTable memo;

    bool cp_single(uint32_t cp) const noexcept {
        if (cp < 0x10000) return (cp_bitmap[cp >> 6] >> (cp & 63)) & 1;
        return false;
    }
};

// Builds the lookup structures (set, bitmap) from `pieces`, and the memo table from `memo_keys`.
// Throws CalibrationError.
void build_lookup(Model& m);
// Builds the memo table from memo_keys, the vocabulary and the fitted costs (call after both).
void build_memo(Model& m);
// Builds the per-code-point Han cost table from han_cost_keys (call after build_lookup).
void build_han_cost(Model& m);
// Writes the model as TOML.
std::string model_to_toml(const Model& m);
Model model_from_toml(std::string_view text, const std::string& source);
void builtin_model(Model& m);

// One prefix block's hash (len a multiple of 16, at most PREFIX_MAX_BLOCK_BYTES): simd = the
// AVX-512 lanes when the CPU has them, else the SSE2 reference. Both give the same value (tested);
// prefix_fingerprint() uses the best one.
uint64_t prefix_block_hash(const uint8_t* p, size_t len, bool simd) noexcept;

// Per-segment detail for calibration and diagnostics (the data plane never builds these).
struct SegmentInfo {
    uint32_t begin, end;     // byte offsets in the text
    uint8_t kind;            // 0 ws-only, 1 ctrl, 2 digit, 3 word hit, 4 word miss, 5 han, 6 space-before-digit, 7 other, 8 memo hit
    uint8_t type;            // word type
    uint8_t space;           // leading space (real or dummy prefix)
    uint8_t cs;              // case class
    uint8_t miss_kind;       // 0/1
    uint8_t len;             // code points (capped LEN_MAX), or ws run length (capped WS_MAX)
    uint32_t cost;           // FIX units
    uint8_t counted = 0;     // counted as a word of its type for the miss rate
    uint8_t scaled = 0;      // a miss whose cost is scaled by miss_scale
};
// Runs the same segmentation and pricing as estimate() (scalar kernel), records every segment
// (SegmentInfo::cost of a word miss is before miss_scale) and returns the estimate (FIX units).
// Used by calibration; slow path (std::vector).
uint64_t explain(const Model& m, const char* p, size_t n, std::vector<SegmentInfo>& out);
// The two-byte-word test of a memo miss (estimator.cpp), exposed for the unit tests: the loop is
// the reference, the pairwise SSSE3 form answers 1/0 or -1 (not decided: the loop's turn).
bool two_byte_known_loop(const uint64_t* lead_bits, const uint8_t* q, uint32_t leads) noexcept;
int two_byte_known_pair(const uint64_t* lead_bits, const uint8_t* key32, uint32_t leads) noexcept;

}  // namespace tlb::tokens
