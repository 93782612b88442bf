// lib/tokens: kernels against the scalar reference, pricing rules on a hand-written calibration,
// calibration file round trip and errors, and no heap allocation on the estimate path.
// Accuracy against real sentencepiece models is tests/integration/test_tokens_accuracy.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "tokens/model.hpp"
#include "tokens/request_text.hpp"
#include "tokens/tokens.hpp"

// GCC 12 pairs the inlined std::allocator new with these deletes and warns about free(); the
// replacement pair is malloc/free on both sides, so the warning does not apply.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
// Counts heap allocations made by this thread while armed (global operator new replacement).
static thread_local bool g_count_allocs = false;
static std::atomic<size_t> g_allocs{0};
void* operator new(size_t n) {
    if (g_count_allocs) g_allocs++;
    void* p = std::malloc(n ? n : 1);
    if (!p) throw std::bad_alloc();
    return p;
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
    if (g_count_allocs) g_allocs++;
    return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

using namespace tlb::tokens;

namespace {

std::vector<Isa> simd_isas() {
    std::vector<Isa> v;
    for (Isa i : {Isa::Avx2, Isa::Avx512})
        if (isa_supported(i)) v.push_back(i);
    return v;
}

// Text fragments that exercise every class and boundary rule.
const char* FRAGMENTS[] = {
    "the", " quick", "  brown", "\tfox", "\n", "\n\n", "    return x;", "42", " 1984", "Über", " straße",
    " ¿Qué", " niño", " Привет", " мир", "中文", "汉字测试", "。", "，", "カタカナ", "ひらがな", " Ελληνικά",
    " שלום", " مرحبا", " 한국어", "😀", " 👍🏽", "{\"a\":1}", "()", "->", "==", "__init__", "camelCase", "URL",
    "https://example.com/a?b=c", "\x01", "\x7f", " ", "   ", "\r\n", "—", "«»", "x", "Z", "ÿ", "\xc3", "\x80\x80",
    "\xf0\x9f", "\xe4\xb8", "\xff", "\xc0\xaf", "é", "ё", "Ё", "1.5e10", "#include <stdio.h>", "  // comment",
};

std::string random_text(std::mt19937& rng, size_t n) {
    std::string s;
    std::uniform_int_distribution<int> pick(0, int(sizeof FRAGMENTS / sizeof FRAGMENTS[0]) - 1);
    while (s.size() < n) s += FRAGMENTS[pick(rng)];
    s.resize(n);
    return s;
}

std::string random_bytes(std::mt19937& rng, size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = char(rng() & 0xFF);
    return s;
}

// Classifies a whole text in CHUNK pieces with the given kernel.
std::vector<uint64_t> starts_of(ClassifyFn fn, const std::string& s) {
    std::vector<uint64_t> out((s.size() + 63) / 64 + 1, 0);
    KernelState st;
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    uint64_t buf[CHUNK / 64];
    for (size_t off = 0; off < s.size(); off += CHUNK) {
        const size_t len = std::min(CHUNK, s.size() - off);
        const int next = off + len < s.size() ? int(p[off + len]) : -1;
        fn(p + off, len, next, st, buf);
        for (size_t w = 0; w < (len + 63) / 64; ++w) out[off / 64 + w] = buf[w];
    }
    return out;
}

// A small calibration: a handful of pieces and round-number costs so expectations are exact.
const char* TINY_TOML = R"(format = "tokenlb-tokens-calibration-1"
[tokenizer]
name = "tiny"
vocab_size = 20
add_dummy_prefix = true
[costs]
ctrl = 1.0
digit = 1.0
han_scale = 1.0
ws = [0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0, 7.0, 8.0, 8.0, 9.0, 9.0, 10.0, 10.0, 11.0, 11.0, 12.0, 12.0, 13.0, 13.0, 14.0, 14.0, 15.0, 15.0, 16.0, 16.0, 17.0, 17.0, 18.0, 18.0, 19.0, 19.0, 20.0, 20.0, 21.0, 21.0, 22.0, 22.0, 23.0, 23.0, 24.0, 24.0, 25.0, 25.0, 26.0, 26.0, 27.0, 27.0, 28.0, 28.0, 29.0, 29.0, 30.0, 30.0, 31.0, 31.0, 32.0, 32.0]
hit = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
miss = []
[vocab]
pieces = ["▁hello", "world", "▁world", "中", "文", "中文", "▁the", "a", "b", "c", "▁{", "}", "▁▁", "д", "а"]
)";

std::string tiny_toml(double miss_value) {
    std::string s = TINY_TOML;
    std::string arr;
    for (size_t i = 0; i < MISS_SIZE; ++i) arr += (i ? ", " : "") + std::to_string(miss_value);
    s.replace(s.find("miss = []"), 9, "miss = [" + arr + "]");
    return s;
}

}  // namespace

TEST(Kernels, ByteClassTableMatchesDefinition) {
    EXPECT_EQ(BYTE_CLASS[' '], BC_SP);
    EXPECT_EQ(BYTE_CLASS['\t'], BC_PUNCT);
    EXPECT_EQ(BYTE_CLASS['\n'], BC_CTRL);
    EXPECT_EQ(BYTE_CLASS['7'], BC_DIGIT);
    EXPECT_EQ(BYTE_CLASS['q'], BC_LATIN);
    EXPECT_EQ(BYTE_CLASS['_'], BC_PUNCT);
    EXPECT_EQ(BYTE_CLASS[0xD0], BC_CYR);
    EXPECT_EQ(BYTE_CLASS[0xE4], BC_HAN);
    EXPECT_EQ(BYTE_CLASS[0xA5], BC_CONT);
    EXPECT_EQ(BYTE_CLASS[0xF0], BC_PUNCT);
    EXPECT_EQ(BYTE_CLASS[0xFF], BC_CTRL);
}

TEST(Kernels, ScalarSegmentsAsDocumented) {
    // "ab  cd\n12" -> [ab][ ][ cd][\n][1][2]
    const std::string s = "ab  cd\n12";
    const auto st = starts_of(classify_scalar, s);
    EXPECT_EQ(st[0], (1u << 0) | (1u << 2) | (1u << 3) | (1u << 6) | (1u << 7) | (1u << 8));
    // Cyrillic two-byte letters stay one segment; a space attaches to Han.
    const std::string r = "мир 中";
    const auto sr = starts_of(classify_scalar, r);
    EXPECT_EQ(sr[0], (1u << 0) | (1u << 6));
}

TEST(Kernels, EveryIsaMatchesScalarOnRandomInputsAllLengthsAndAlignments) {
    const auto isas = simd_isas();
    if (isas.empty()) GTEST_SKIP() << "no SIMD ISA on this CPU";
    std::mt19937 rng(12345);
    // Every length 0..300 at every alignment 0..63, text-like and random bytes.
    for (int kind = 0; kind < 2; ++kind) {
        const std::string big = kind ? random_bytes(rng, 400) : random_text(rng, 400);
        for (size_t align = 0; align < 64; ++align) {
            for (size_t len = 0; len + align <= 364 && len <= 300; ++len) {
                const std::string s = big.substr(align, len);
                const auto ref = starts_of(classify_scalar, s);
                for (Isa isa : isas) {
                    ASSERT_EQ(starts_of(classify_fn(isa), s), ref)
                        << isa_name(isa) << " kind=" << kind << " align=" << align << " len=" << len;
                }
            }
        }
    }
}

TEST(Kernels, EveryIsaMatchesScalarAcrossChunkBoundaries) {
    const auto isas = simd_isas();
    if (isas.empty()) GTEST_SKIP() << "no SIMD ISA on this CPU";
    std::mt19937 rng(777);
    for (size_t n : {CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 63, 3 * CHUNK + 5, size_t(100000)}) {
        for (int kind = 0; kind < 3; ++kind) {
            std::string s = kind == 0 ? random_text(rng, n) : kind == 1 ? random_bytes(rng, n) : std::string(n, ' ');
            if (kind == 2)  // spaces with a word exactly at each chunk edge
                for (size_t k = CHUNK - 2; k + 3 < n; k += CHUNK) s.replace(k, 3, " ab");
            const auto ref = starts_of(classify_scalar, s);
            for (Isa isa : isas) ASSERT_EQ(starts_of(classify_fn(isa), s), ref) << isa_name(isa) << " n=" << n;
        }
    }
}

TEST(Estimator, EveryIsaGivesTheScalarEstimate) {
    const Estimator e = Estimator::from_toml(tiny_toml(2.5));
    const Estimator b = Estimator::builtin();
    std::mt19937 rng(99);
    for (int i = 0; i < 400; ++i) {
        const size_t n = i < 200 ? size_t(i) : size_t(rng() % 20000);
        const std::string s = (i % 3 == 2) ? random_bytes(rng, n) : random_text(rng, n);
        const uint32_t ref = e.estimate(s.data(), s.size(), Isa::Scalar);
        const uint32_t refb = b.estimate(s.data(), s.size(), Isa::Scalar);
        for (Isa isa : simd_isas()) {
            ASSERT_EQ(e.estimate(s.data(), s.size(), isa), ref) << isa_name(isa) << " n=" << n;
            ASSERT_EQ(b.estimate(s.data(), s.size(), isa), refb) << isa_name(isa) << " n=" << n;
        }
        ASSERT_EQ(e.estimate(s), e.estimate(s.data(), s.size(), best_isa()));
    }
}

TEST(Estimator, ExplainPathAgreesWithTheFastPath) {
    // Calibration fits costs through explain(); the data plane prices through the fast path.
    std::string toml = tiny_toml(1.0);
    // Distinct miss costs per cell so a wrong feature on either path changes the sum.
    std::string arr;
    for (size_t i = 0; i < MISS_SIZE; ++i) arr += (i ? ", " : "") + std::to_string(1.0 + double(i % 97) / 37.0);
    const size_t a = toml.find("miss = [");
    toml.replace(a, toml.find(']', a) - a + 1, "miss = [" + arr + "]");
    const std::string brace = "\"▁{\"";
    toml.replace(toml.find(brace), brace.size(), "\"▁hel\", \"▁hell\", \"▁quick\", \"▁qui\", \"▁Прив\", \"▁camel\", \"▁{\"");
    const Estimator e = Estimator::from_toml(toml);
    std::mt19937 rng(42);
    std::vector<SegmentInfo> segs;
    for (int i = 0; i < 300; ++i) {
        std::string s = random_text(rng, size_t(rng() % 3000));
        if (i % 5 == 0) s += " hellooo quickly camelCaseWord Привет helloworld";
        const uint64_t slow = explain(e.model(), s.data(), s.size(), segs);
        ASSERT_EQ(slow, e.estimate_fixed(s.data(), s.size())) << i;
    }
}

TEST(Estimator, PricesSegmentsFromTheVocabulary) {
    const Estimator e = Estimator::from_toml(tiny_toml(2.5));
    EXPECT_EQ(e.estimate(""), 0u);
    EXPECT_EQ(e.estimate("hello"), 1u);         // dummy prefix: "▁hello" is a piece
    EXPECT_EQ(e.estimate("hello world"), 2u);   // "▁hello" "▁world"
    EXPECT_EQ(e.estimate("hello\nworld"), 3u);  // newline (1) + "world" without the space is a piece
    EXPECT_EQ(e.estimate("hello 123"), 5u);     // "▁hello" + lone space (ws[1]=1) + 3 digits
    EXPECT_EQ(e.estimate("中文"), 2u);          // "▁中文" is not a piece: ws[1] + "中文" (greedy) = 2
    EXPECT_EQ(e.estimate("x中文"), 4u);         // "x" miss (2.5 -> costs 2.5) + "中文" 1 = 3.5 -> 4
    EXPECT_EQ(e.estimate("\n\x01\n"), 3u);      // control characters: one each
    // Byte fallback: U+4E01 is not in the vocabulary -> 3 bytes, plus the dummy-prefix space.
    EXPECT_EQ(e.estimate("丁"), 4u);
    // Miss cost comes from the table (2.5 each here): "▁zzz" and "▁qqq".
    EXPECT_EQ(e.estimate("zzz qqq"), 5u);
}

TEST(Estimator, CalibrationTomlRoundTrip) {
    const Estimator e = Estimator::from_toml(tiny_toml(1.75));
    const std::string again = model_to_toml(e.model());
    const Estimator e2 = Estimator::from_toml(again);
    std::mt19937 rng(5);
    for (int i = 0; i < 50; ++i) {
        const std::string s = random_text(rng, 1000);
        EXPECT_EQ(e.estimate(s), e2.estimate(s));
    }
    EXPECT_EQ(e2.tokenizer_name(), "tiny");
}

TEST(Estimator, BadCalibrationFilesAreRejectedWithAReason) {
    EXPECT_THROW(Estimator::from_toml("format = 1\n"), CalibrationError);
    EXPECT_THROW(Estimator::from_toml("this is not toml"), CalibrationError);
    std::string wrong = tiny_toml(1.0);
    wrong.replace(wrong.find("ctrl = 1.0"), 10, "ctrl = \"x\"");
    EXPECT_THROW(Estimator::from_toml(wrong), CalibrationError);
    try {
        std::string s = tiny_toml(1.0);
        s.replace(s.find("hit = ["), 7, "hit = [1.0, ");
        Estimator::from_toml(s, "x.toml");
        FAIL() << "expected CalibrationError";
    } catch (const CalibrationError& err) {
        EXPECT_NE(std::string(err.what()).find("costs.hit"), std::string::npos) << err.what();
    }
    EXPECT_THROW(Estimator::from_file("/nonexistent/tokens.toml"), CalibrationError);
}

TEST(Estimator, BuiltinIsInTheRightBallpark) {
    const Estimator b = Estimator::builtin();
    const std::string en = "The quick brown fox jumps over the lazy dog. ";
    std::string text;
    for (int i = 0; i < 20; ++i) text += en;
    const uint32_t t = b.estimate(text);
    // ~10-11 tokens per sentence for Llama-style tokenizers.
    EXPECT_GT(t, 20u * 8);
    EXPECT_LT(t, 20u * 16);
}

TEST(Estimator, NoHeapAllocationOnTheEstimatePath) {
    const Estimator e = Estimator::from_toml(tiny_toml(2.0));
    std::mt19937 rng(3);
    std::vector<std::string> texts;
    for (int i = 0; i < 50; ++i) texts.push_back(random_text(rng, size_t(rng() % 70000)));
    TextSpan spans[2] = {{texts[0].data(), texts[0].size(), Role::System}, {texts[1].data(), texts[1].size(), Role::User}};
    uint64_t hashes[64];
    volatile uint64_t sink = 0;
    g_allocs = 0;
    g_count_allocs = true;
    for (const auto& s : texts) {
        sink = sink + e.estimate(s.data(), s.size());
        for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) sink = sink + e.estimate(s.data(), s.size(), isa);
    }
    sink = sink + prefix_fingerprint(spans, 2, hashes, 64);
    g_count_allocs = false;
    EXPECT_EQ(g_allocs.load(), 0u);
    // The counter works (guards against a test that cannot fail).
    g_count_allocs = true;
    auto* v = new std::vector<int>(10);
    g_count_allocs = false;
    delete v;
    EXPECT_GE(g_allocs.load(), 1u);
}

// ---- segment memo -----------------------------------------------------------------------------

namespace {

// tiny_toml plus a [memo] built from the segments of random texts (costs vary with the key) and a
// [han] table, so every pricing path of a memo-bearing calibration is exercised.
std::string memo_toml() {
    const Estimator base = Estimator::from_toml(tiny_toml(2.0));
    std::mt19937 rng(17);
    std::vector<SegmentInfo> segs;
    std::vector<std::string> keys;
    for (int i = 0; i < 200; ++i) {
        const std::string s = random_text(rng, 2000);
        explain(base.model(), s.data(), s.size(), segs);
        for (const auto& g : segs) {
            if (g.begin == 0 || g.end - g.begin > MEMO_KEY_MAX) continue;
            const std::string k = s.substr(g.begin, g.end - g.begin);
            bool valid = true;  // TOML strings: UTF-8 only
            for (size_t j = 0; j < k.size(); ++j) valid = valid && uint8_t(k[j]) < 0x80;
            if (valid && (rng() % 3) != 0) keys.push_back(k);
        }
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    // Distinct miss costs per cell, so a wrong feature (case, length, space, type) on any path
    // changes the sum.
    std::string t = tiny_toml(2.0);
    std::string arr;
    for (size_t i = 0; i < MISS_SIZE; ++i) arr += (i ? ", " : "") + std::to_string(1.0 + double(i % 89) / 31.0);
    const size_t a = t.find("miss = [");
    t.replace(a, t.find(']', a) - a + 1, "miss = [" + arr + "]");
    // A different miss-rate scale per (type, bin), so the segment count each text or field's
    // miss rate is taken over matters on every path.
    std::string scale;
    for (int ty = 0; ty < N_WORD_TYPES; ++ty)
        for (int bin = 0; bin < MISS_BINS; ++bin) scale += (scale.empty() ? "" : ", ") + std::to_string(0.6 + 0.11 * bin + 0.03 * ty);
    t.replace(t.find("[vocab]"), 7, "miss_scale = [" + scale + "]\n[vocab]");
    // Accented Latin, Greek and Cyrillic letters as single pieces (but not U+00E9 'é' and U+0451
    // 'ё'), so words of two-byte characters take both the all-known and the byte-fallback paths.
    std::string letters;
    auto add_range = [&](uint32_t lo, uint32_t hi) {
        for (uint32_t cp = lo; cp <= hi; ++cp) {
            if (cp == 0xE9 || cp == 0x451 || cp == 0xD7 || cp == 0xF7) continue;
            letters += ", \"";
            letters += char(0xC0 | (cp >> 6));
            letters += char(0x80 | (cp & 0x3F));
            letters += "\"";
        }
    };
    add_range(0xC0, 0xFF);
    add_range(0x391, 0x3C9);
    add_range(0x400, 0x45F);
    const std::string last = "\"д\", \"а\"]";
    t.replace(t.find(last), last.size(), "\"д\", \"а\"" + letters + "]");
    t += "\n[memo]\nkeys = [";
    std::string c = "cost256 = [";
    for (size_t i = 0; i < keys.size(); ++i) {
        std::string esc;
        for (char ch : keys[i]) {
            if (ch == '"' || ch == '\\') esc += '\\', esc += ch;
            else if (uint8_t(ch) < 0x20 || ch == 0x7f) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04X", uint8_t(ch));
                esc += buf;
            } else esc += ch;
        }
        t += (i ? ", \"" : "\"") + esc + "\"";
        c += (i ? ", " : "") + std::to_string(256 * (1 + keys[i].size() % 4));
    }
    t += "]\n" + c + "]\n[han]\ncp = [32, 20013, 25991]\ncost256 = [256, 128, 384]\n";
    return t;
}

}  // namespace

TEST(Memo, PricesMemoKeysExactlyAndHanPerCodePoint) {
    std::string t = tiny_toml(2.5) +
                    "\n[memo]\nkeys = [\" zzz\", \"qqq\", \"\\n\", \" hello\"]\ncost256 = [768, 512, 512, 256]\n"
                    "[han]\ncp = [32, 20013, 25991]\ncost256 = [256, 128, 384]\n";
    const Estimator e = Estimator::from_toml(t);
    EXPECT_EQ(e.estimate("a zzz"), 6u);        // "a": no "▁a" key, feature model 2.5 + " zzz" 3
    EXPECT_EQ(e.estimate("zzz zzz zzz"), 9u);  // "zzz" -> key " zzz" (dummy prefix) 3 + 3 + 3
    EXPECT_EQ(e.estimate("hello\nqqq"), 5u);   // " hello" 1 + "\n" 2 + "qqq" 2
    EXPECT_EQ(e.estimate("b\nqqq"), 7u);       // "b" 2.5 + 2 + 2 = 6.5 -> 7
    EXPECT_EQ(e.estimate("b 中文"), 6u);        // 2.5 + " 中文" per code point: 1 + 0.5 + 1.5
    EXPECT_EQ(e.estimate("x 中中中中"), 6u);    // 2.5 + 1 + 4 x 0.5 = 5.5 -> 6
}

TEST(Memo, EveryIsaAndTheExplainPathGiveTheScalarEstimate) {
    const Estimator e = Estimator::from_toml(memo_toml());
    ASSERT_GT(e.model().memo.entries, 300u);
    std::mt19937 rng(123);
    std::vector<SegmentInfo> segs;
    size_t hits = 0, misses = 0;
    for (int i = 0; i < 400; ++i) {
        const size_t n = i < 150 ? size_t(i) : size_t(rng() % 20000);
        const std::string s = (i % 4 == 3) ? random_bytes(rng, n) : random_text(rng, n);
        const uint64_t ref = e.estimate(s.data(), s.size(), Isa::Scalar);
        for (Isa isa : simd_isas()) ASSERT_EQ(e.estimate(s.data(), s.size(), isa), ref) << isa_name(isa) << " n=" << n;
        const uint64_t slow = explain(e.model(), s.data(), s.size(), segs);
        ASSERT_EQ((slow + FIX / 2) / FIX, ref) << i;
        ASSERT_EQ(slow, e.estimate_fixed(s.data(), s.size())) << i;
        for (const auto& g : segs) (g.kind == 8 ? hits : misses) += 1;
    }
    EXPECT_GT(hits, 10000u);  // both paths really taken
    EXPECT_GT(misses, 1000u);
}

// Runs of Han-class characters priced per code point: runs of 1-60 characters with a distinct
// cost per code point, broken by malformed sequences, four-byte characters and the end of the
// text; every ISA's segmentation and the explain path give the scalar estimate.
TEST(Memo, HanRunsPricedPerCodePointOnEveryIsa) {
    std::string t = memo_toml();
    std::mt19937 rng(4242);
    std::string cps = "32", costs = "256";
    std::vector<uint32_t> pool;
    for (int i = 0; i < 300; ++i) {
        const uint32_t cp = 0x4E00 + rng() % 0x5000;
        pool.push_back(cp);
        cps += ", " + std::to_string(cp);
        costs += ", " + std::to_string(64 + rng() % 900);
    }
    t.replace(t.find("[han]"), std::string::npos, "[han]\ncp = [" + cps + "]\ncost256 = [" + costs + "]\n");
    const Estimator e = Estimator::from_toml(t);
    auto utf8 = [](uint32_t cp) {
        std::string o;
        o += char(0xE0 | (cp >> 12));
        o += char(0x80 | ((cp >> 6) & 0x3F));
        o += char(0x80 | (cp & 0x3F));
        return o;
    };
    std::vector<SegmentInfo> segs;
    for (int round = 0; round < 400; ++round) {
        std::string s;
        const int runs = 1 + int(rng() % 12);
        for (int r = 0; r < runs; ++r) {
            s += (rng() % 3 == 0) ? " " : (rng() % 2 ? "a " : ", ");
            const int len = 1 + int(rng() % 60);
            for (int c = 0; c < len; ++c) {
                const uint32_t k = rng() % 40;
                if (k == 0) s += "\xE4\xB8";                 // truncated sequence
                else if (k == 1) s += "\xE4\x41\x80";       // bad continuation
                else if (k == 2) s += "\xF0\x9F\x98\x80";  // four-byte character
                else s += utf8(k < 20 ? pool[rng() % pool.size()] : 0x4E00 + rng() % 0x5000);
            }
        }
        const uint64_t ref = e.estimate(s.data(), s.size(), Isa::Scalar);
        for (Isa isa : simd_isas()) ASSERT_EQ(e.estimate(s.data(), s.size(), isa), ref) << isa_name(isa) << " round " << round;
        const TextField whole{0, uint32_t(s.size())};
        const uint64_t fixed = e.estimate_fields_fixed(s.data(), &whole, 1, Isa::Scalar);
        for (Isa isa : simd_isas()) ASSERT_EQ(e.estimate_fields_fixed(s.data(), &whole, 1, isa), fixed) << isa_name(isa);
        ASSERT_EQ(explain(e.model(), s.data(), s.size(), segs), fixed) << round;
    }
}

// Fields of one buffer in one pass: exactly the sum of one estimate per field, for every ISA and
// model kind, whatever the layout (lib/openai's '\n' separators take the one-pass path; spaces,
// letters, overlapping or unordered fields fall back to a call per field).
TEST(Fields, OnePassEqualsTheSumOfPerFieldEstimates) {
    const Estimator memo = Estimator::from_toml(memo_toml());
    const Estimator plain = Estimator::from_toml(tiny_toml(2.5));
    const Estimator builtin = Estimator::builtin();
    const char* seps[] = {"\n", "\n", "\n", "\n\n", "\x01", "\n ", "7", " ", "", "x", "\xe4\xb8\xad"};
    std::mt19937 rng(2024);
    for (int round = 0; round < 300; ++round) {
        const size_t nf = 1 + rng() % 24;
        const char* sep = seps[round % (sizeof seps / sizeof seps[0])];
        std::string buf;
        std::vector<TextField> f(nf);
        for (size_t i = 0; i < nf; ++i) {
            if (i) buf += sep;
            const uint32_t kind = rng() % 10;
            const size_t len = kind == 0 ? 0 : kind == 1 ? 1 + rng() % 4 : kind == 2 ? 4000 + rng() % 5000 : rng() % 700;
            f[i].off = uint32_t(buf.size());
            f[i].len = uint32_t(len);
            buf += (round % 7 == 6) ? random_bytes(rng, len) : random_text(rng, len);
        }
        if (round % 11 == 10 && nf > 2) std::swap(f[0], f[1]);  // out of order
        for (const Estimator* e : {&memo, &plain, &builtin}) {
            uint64_t sum = 0;
            for (const auto& x : f) sum += e->estimate_fixed(buf.data() + x.off, x.len);
            ASSERT_EQ(e->estimate_fields_fixed(buf.data(), f.data(), f.size()), sum) << "round " << round;
            for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
                if (!isa_supported(isa)) continue;
                ASSERT_EQ(e->estimate_fields_fixed(buf.data(), f.data(), f.size(), isa), sum)
                    << isa_name(isa) << " round " << round << " sep " << int(sep[0]);
            }
        }
    }
}

// Text made mostly of one-byte segments ("a,b;(c)"), so chunks take the one-byte pricing path:
// field starts and ends and the '\n' between fields are one-byte segments too, and must keep
// their own pricing (dummy prefix, not a token of the prompt); fields cross chunk boundaries.
TEST(Fields, DenseOneByteSegmentsAcrossFieldsAndChunks) {
    const Estimator e = Estimator::from_toml(memo_toml());
    const std::string alphabet = "ab,;()x. \n7";
    std::mt19937 rng(99);
    for (int round = 0; round < 200; ++round) {
        const size_t nf = 1 + rng() % 40;
        std::string buf;
        std::vector<TextField> f(nf);
        for (size_t i = 0; i < nf; ++i) {
            if (i) buf += '\n';
            const size_t len = rng() % 6 == 0 ? 1 : rng() % 5 == 0 ? 2000 + rng() % 5000 : rng() % 60;
            f[i] = {uint32_t(buf.size()), uint32_t(len)};
            for (size_t j = 0; j < len; ++j) buf += j % 2 ? alphabet[rng() % alphabet.size()] : alphabet[rng() % 6];
        }
        auto one = [&](const TextField& x, Isa isa) {
            const TextField whole{0, x.len};
            return e.estimate_fields_fixed(buf.data() + x.off, &whole, 1, isa);
        };
        uint64_t sum = 0;
        for (const auto& x : f) sum += one(x, Isa::Scalar);
        for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
            if (!isa_supported(isa)) continue;
            ASSERT_EQ(e.estimate_fields_fixed(buf.data(), f.data(), f.size(), isa), sum) << isa_name(isa) << " round " << round;
            uint64_t each = 0;
            for (const auto& x : f) each += one(x, isa);
            ASSERT_EQ(each, sum) << isa_name(isa) << " round " << round;
        }
    }
}

TEST(Fields, ChatRequestFieldsAsTheExtractorLaysThemOut) {
    const Estimator e = Estimator::from_toml(memo_toml());
    const std::string parts[] = {"You are a helpful assistant.", " Hello there", "中文 text", "  indented\ncode();",
                                 "", "42 is the answer", "Ünïcödé"};
    std::string buf;
    std::vector<TextField> f;
    uint64_t sum = 0;
    for (const auto& p : parts) {
        if (!buf.empty()) buf += '\n';
        f.push_back({uint32_t(buf.size()), uint32_t(p.size())});
        buf += p;
        sum += e.estimate_fixed(p.data(), p.size());
    }
    EXPECT_EQ(e.estimate_fields_fixed(buf.data(), f.data(), f.size()), sum);
    // Not the same as one call over the joined text: each field has its own dummy prefix and
    // the separators are not tokens of the prompt.
    EXPECT_NE(e.estimate_fixed(buf.data(), buf.size()), sum);
    EXPECT_EQ(e.estimate_fields_fixed(buf.data(), f.data(), 0), 0u);
}

TEST(Memo, KeysAreWholeSegmentsOfAtMost32Bytes) {
    // A 32-byte key is a hit; a longer segment whose first 32 bytes are that key is not, on every
    // ISA, at every distance from the end of the text.
    const std::string k32 = " abcdefghijklmnopqrstuvwxyzabcde";  // 32 bytes: space + 31 letters
    ASSERT_EQ(k32.size(), 32u);
    std::string t = tiny_toml(3.0) + "\n[memo]\nkeys = [\"" + k32 + "\", \"x\"]\ncost256 = [256, 256]\n";
    std::string tp = t;
    tp.replace(tp.find("ctrl = 1.0"), 10, "ctrl = 1.0\nlong_miss_proportional = true");
    const Estimator old_file = Estimator::from_toml(t);
    const Estimator e = Estimator::from_toml(tp);
    for (size_t pad = 0; pad < 80; ++pad) {
        const std::string hit = "x" + k32 + std::string(pad, '.');
        const std::string longer = "x" + k32 + "fgh" + std::string(pad, '.');
        const uint32_t ref_hit = e.estimate(hit.data(), hit.size(), Isa::Scalar);
        const uint32_t ref_long = e.estimate(longer.data(), longer.size(), Isa::Scalar);
        // The 35-byte word is a miss, not the key's 1 token: 3.0 per 24 letters, priced in
        // proportion above 24 (34 letters: 4.25); in a file without long_miss_proportional, 3.0.
        EXPECT_EQ(e.estimate_fixed(longer.data(), longer.size()) - e.estimate_fixed(hit.data(), hit.size()),
                  uint64_t(768 * 34 / 24 - 256)) << pad;
        EXPECT_EQ(old_file.estimate_fixed(longer.data(), longer.size()) - old_file.estimate_fixed(hit.data(), hit.size()),
                  uint64_t(768 - 256)) << pad;
        for (Isa isa : simd_isas()) {
            EXPECT_EQ(e.estimate(hit.data(), hit.size(), isa), ref_hit) << isa_name(isa) << " pad=" << pad;
            EXPECT_EQ(e.estimate(longer.data(), longer.size(), isa), ref_long) << isa_name(isa) << " pad=" << pad;
        }
    }
}

TEST(Memo, FileRoundTripAndErrors) {
    const Estimator e = Estimator::from_toml(memo_toml());
    const Estimator e2 = Estimator::from_toml(model_to_toml(e.model()));
    EXPECT_EQ(e2.model().memo_keys.size(), e.model().memo_keys.size());
    EXPECT_EQ(e2.model().memo.entries, e.model().memo.entries);
    std::mt19937 rng(8);
    for (int i = 0; i < 50; ++i) {
        const std::string s = random_text(rng, 3000);
        EXPECT_EQ(e.estimate(s), e2.estimate(s));
    }
    auto reason = [](const std::string& toml) -> std::string {
        try {
            Estimator::from_toml(toml, "m.toml");
        } catch (const CalibrationError& err) {
            return err.what();
        }
        return "";
    };
    EXPECT_NE(reason(tiny_toml(1.0) + "[memo]\nkeys = [\"a\"]\ncost256 = [1, 2]\n").find("memo"), std::string::npos);
    EXPECT_NE(reason(tiny_toml(1.0) + "[memo]\nkeys = [\"\"]\ncost256 = [1]\n").find("memo.keys[0]"), std::string::npos);
    EXPECT_NE(reason(tiny_toml(1.0) + "[memo]\nkeys = [\"a\"]\ncost256 = [-1]\n").find("memo.cost256[0]"), std::string::npos);
    EXPECT_NE(reason(tiny_toml(1.0) + "[han]\ncp = [70000]\ncost256 = [1]\n").find("han.cp[0]"), std::string::npos);
}

TEST(Memo, NoHeapAllocationOnTheEstimatePath) {
    // Also a tokenizer without byte fallback, and symbol runs (rules, table borders).
    std::string nbf = memo_toml();
    nbf.replace(nbf.find("add_dummy_prefix = true"), 23, "add_dummy_prefix = true\nbyte_fallback = false");
    for (const std::string& toml : {memo_toml(), nbf}) {
        const Estimator e = Estimator::from_toml(toml);
        std::mt19937 rng(4);
        std::vector<std::string> texts;
        for (int i = 0; i < 30; ++i)
            texts.push_back(random_text(rng, size_t(rng() % 70000)) + "\n\n" + std::string(80, '-') + "\n|----|---|\n" +
                            std::string(40, '=') + " ┌────┐");
        std::string joined;  // fields as lib/openai lays them out
        std::vector<TextField> fields;
        for (const auto& s : texts) {
            fields.push_back({uint32_t(joined.size()), uint32_t(s.size() % 5000)});
            joined += s.substr(0, s.size() % 5000) + "\n";
        }
        volatile uint64_t sink = 0;
        g_allocs = 0;
        g_count_allocs = true;
        for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
            for (const auto& s : texts) sink = sink + e.estimate(s.data(), s.size(), isa);
            sink = sink + e.estimate_fields_fixed(joined.data(), fields.data(), fields.size(), isa);
        }
        g_count_allocs = false;
        EXPECT_EQ(g_allocs.load(), 0u);
    }
}

TEST(RequestText, ExtractsMessagesPartsPromptAndTools) {
    RequestText rt;
    ASSERT_TRUE(extract_request_text(
        R"({"model":"m","messages":[{"role":"system","content":"be brief"},)"
        R"({"role":"user","content":[{"type":"text","text":"caf\u00e9 \"x\""},{"type":"image_url","image_url":{"url":"u"}}]}],)"
        R"("tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object"}}}]})",
        rt));
    ASSERT_EQ(rt.texts.size(), 5u);
    EXPECT_EQ(rt.texts[0], "be brief");
    EXPECT_EQ(rt.roles[0], Role::System);
    EXPECT_EQ(rt.texts[1], "café \"x\"");
    EXPECT_EQ(rt.roles[1], Role::User);
    EXPECT_EQ(rt.texts[4], R"({"type":"object"})");
    ASSERT_TRUE(extract_request_text(
        R"({"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",)"
        R"("function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}]})",
        rt));
    ASSERT_EQ(rt.texts.size(), 2u);
    EXPECT_EQ(rt.texts[0], "get_weather");
    EXPECT_EQ(rt.texts[1], R"({"city":"Paris"})");
    EXPECT_EQ(rt.roles[1], Role::Assistant);
    ASSERT_TRUE(extract_request_text(R"({"prompt":["a","b"]})", rt));
    EXPECT_EQ(rt.texts.size(), 2u);
    EXPECT_FALSE(extract_request_text("[1,2]", rt));
    EXPECT_FALSE(extract_request_text("{\"model\":\"m\"}", rt));
    EXPECT_FALSE(extract_request_text("{bad json", rt));
}

// ---- kernels against the written definition --------------------------------------------------
// The scalar kernel is itself optimised (codes + 64-bit lanes), so every kernel, the scalar one
// included, is checked against a literal transcription of the definition in kernel_scalar.cpp.
// Chunks are cut at arbitrary points (lengths 0..CHUNK) so the carried state is entered after
// every mix of continuation bytes; the byte alphabet is heavy in continuation bytes, spaces,
// lead bytes, controls and digits.
namespace {

std::vector<uint64_t> definition_starts(const std::string& s) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const ptrdiff_t n = ptrdiff_t(s.size());
    auto r = [&](ptrdiff_t i) -> int { return i < 0 ? 0xFF : BYTE_CLASS[p[i]]; };
    auto c1 = [&](ptrdiff_t i) -> int { return i < 0 ? 0xFF : r(i) == BC_CONT ? r(i - 1) : r(i); };
    auto c2 = [&](ptrdiff_t i) -> int { return i < 0 ? 0xFF : c1(i) == BC_CONT ? c1(i - 2) : c1(i); };
    auto attach = [&](ptrdiff_t i) -> bool {
        return i >= 0 && r(i) == BC_SP && i + 1 < n && attaches_space(uint8_t(r(i + 1)));
    };
    std::vector<uint64_t> out((s.size() + 63) / 64 + 1, 0);
    for (ptrdiff_t i = 0; i < n; ++i) {
        const bool start = ((r(i) != BC_CONT && (c2(i) != c2(i - 1) || r(i) == BC_CTRL || r(i) == BC_DIGIT)) ||
                            attach(i)) && !attach(i - 1);
        if (start) out[size_t(i) / 64] |= uint64_t(1) << (i % 64);
    }
    return out;
}

// Classifies s in chunks of the given lengths (cycled), rebasing each chunk's bits.
std::vector<uint64_t> starts_cut(ClassifyFn fn, const std::string& s, const std::vector<size_t>& lens) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    std::vector<uint64_t> out((s.size() + 63) / 64 + 1, 0);
    KernelState st;
    uint64_t buf[CHUNK / 64 + 1];
    size_t off = 0;
    for (size_t k = 0; off < s.size(); ++k) {
        const size_t len = std::min(lens[k % lens.size()], s.size() - off);
        const int next = off + len < s.size() ? int(p[off + len]) : -1;
        fn(p + off, len, next, st, buf);
        for (size_t i = 0; i < len; ++i)
            if (buf[i / 64] >> (i % 64) & 1) out[(off + i) / 64] |= uint64_t(1) << ((off + i) % 64);
        off += len;
    }
    return out;
}

}  // namespace

TEST(KernelsDefinition, EveryKernelMatchesTheDefinitionWithArbitraryCuts) {
    std::vector<Isa> isas = simd_isas();
    isas.insert(isas.begin(), Isa::Scalar);
    const uint8_t alphabet[] = {0x80, 0x81, 0x9F, 0xA0, 0xBF, ' ', ' ', 'a', 'Z', '7', '\n', '\t', ',',
                                0x7F, 0xC2, 0xC3, 0xCE, 0xD0, 0xD5, 0xE2, 0xE4, 0xEF, 0xF0, 0xF5, 0xC0};
    std::mt19937 rng(4242);
    for (int round = 0; round < 300; ++round) {
        const size_t n = round < 200 ? size_t(rng() % 300) : size_t(rng() % (3 * CHUNK));
        std::string s(n, '\0');
        for (auto& c : s) c = char(rng() % 4 == 0 ? uint8_t(rng()) : alphabet[rng() % sizeof alphabet]);
        std::vector<size_t> lens;
        for (int k = 0; k < 8; ++k) {
            const unsigned pick = rng() % 4;
            lens.push_back(pick == 0 ? rng() % 6 : pick == 1 ? rng() % 130 : pick == 2 ? CHUNK - rng() % 70 : CHUNK);
        }
        if (std::all_of(lens.begin(), lens.end(), [](size_t l) { return l == 0; })) lens[0] = 1;
        const auto ref = definition_starts(s);
        for (Isa isa : isas) {
            ASSERT_EQ(starts_cut(classify_fn(isa), s, lens), ref) << isa_name(isa) << " round=" << round << " n=" << n;
            ASSERT_EQ(starts_of(classify_fn(isa), s), ref) << isa_name(isa) << " round=" << round << " n=" << n;
        }
    }
}

TEST(KernelsDefinition, EveryKernelMatchesTheDefinitionOnAllShortStringsCutAnywhere) {
    // Every string of length 6 over a lead / continuation / letter / space / control alphabet, cut
    // into two chunks at every point: runs of 1..6 continuation bytes on both sides of the cut.
    std::vector<Isa> isas = simd_isas();
    isas.insert(isas.begin(), Isa::Scalar);
    const uint8_t alphabet[] = {0xC3, 0xE4, 'a', ' ', 0x80, '\n'};
    constexpr size_t A = sizeof alphabet, N = 6;
    std::string s(N, '\0');
    size_t total = 1;
    for (size_t k = 0; k < N; ++k) total *= A;
    for (size_t code = 0; code < total; ++code) {
        for (size_t k = 0, c = code; k < N; ++k, c /= A) s[k] = char(alphabet[c % A]);
        const auto ref = definition_starts(s);
        for (size_t cut = 0; cut <= N; ++cut) {
            const std::vector<size_t> lens{cut, CHUNK};
            for (Isa isa : isas)
                ASSERT_EQ(starts_cut(classify_fn(isa), s, lens), ref) << isa_name(isa) << " code=" << code << " cut=" << cut;
        }
    }
}

// The pairwise SSSE3 test of two-byte words (memo misses of Cyrillic, Greek, accented Latin) must
// answer exactly as the per-character loop wherever it answers: random sparse vocabularies per
// lead, words of 1-16 characters mixing ASCII with two-byte characters from one or two adjacent
// leads (the decided case) or three (the loop's turn), at every length up to 32 bytes.
TEST(Memo, TwoByteWordTestMatchesThePerCharacterLoop) {
    std::mt19937_64 rng(77);
    uint64_t bits[256] = {};
    const uint8_t lead_sets[][3] = {{0xD0, 0xD1, 0xD0}, {0xCE, 0xCF, 0xCE}, {0xC3, 0xC3, 0xC3}, {0xC3, 0xC4, 0xC5},
                                    {0xD0, 0xD1, 0xD2}, {0xDF, 0xDF, 0xDF}, {0xC2, 0xC3, 0xC2}};
    size_t decided = 0, known = 0, unknown = 0;
    for (int round = 0; round < 200000; ++round) {
        if (round % 1000 == 0)
            for (uint32_t l = 0xC2; l <= 0xDF; ++l) {
                // Dense (a few holes), sparse, full or empty bitmaps.
                const int kind = int(rng() % 4);
                bits[l] = kind == 0 ? ~(uint64_t(1) << (rng() % 64)) : kind == 1 ? rng() & rng() : kind == 2 ? ~uint64_t(0) : 0;
            }
        const auto& ls = lead_sets[rng() % (sizeof lead_sets / sizeof lead_sets[0])];
        alignas(16) uint8_t key[32] = {};
        uint32_t len = 0, leads = 0;
        const uint32_t chars = 1 + uint32_t(rng() % 16);
        for (uint32_t c = 0; c < chars && len < 32; ++c) {
            if (rng() % 4 == 0 || len == 31) {
                key[len++] = uint8_t('a' + rng() % 26);
            } else {
                leads |= 1u << len;
                key[len++] = ls[rng() % 3];
                key[len++] = uint8_t(0x80 | (rng() % 64));
            }
        }
        if (leads == 0) continue;
        const int fast = two_byte_known_pair(bits, key, leads);
        if (fast < 0) continue;
        ++decided;
        const bool ref = two_byte_known_loop(bits, key, leads);
        ASSERT_EQ(fast != 0, ref) << "round " << round << " len " << len;
        (ref ? known : unknown)++;
    }
    // Both answers occur often, and most words are decided without the loop.
    EXPECT_GT(known, 10000u);
    EXPECT_GT(unknown, 10000u);
    EXPECT_GT(decided, 100000u);
}

// A tokenizer without byte fallback (byte_fallback = false in the calibration file, probed from
// the model's pieces by `calibrate`) emits one <unk> for a run of characters its vocabulary lacks:
// consecutive newlines, unknown letters inside a word, unknown Han characters. Every ISA, the
// one-pass fields path and the explain path (which calibration uses) agree on such a model.
TEST(Estimator, WithoutByteFallbackARunOfUnknownCharactersIsOneUnk) {
    auto without = [](std::string t) {
        t.replace(t.find("add_dummy_prefix = true"), 23, "add_dummy_prefix = true\nbyte_fallback = false");
        return t;
    };
    const Estimator fb = Estimator::from_toml(tiny_toml(2.0));
    const Estimator unk = Estimator::from_toml(without(tiny_toml(2.0)));
    ASSERT_TRUE(fb.model().byte_fallback);
    ASSERT_FALSE(unk.model().byte_fallback);
    auto diff = [&](const std::string& s) { return int(fb.estimate(s)) - int(unk.estimate(s)); };
    EXPECT_EQ(diff("hello\n\n\nworld"), 2);  // three unknown control bytes: 3 tokens, or one <unk>
    EXPECT_EQ(diff("hello\nworld"), 0);      // one alone is one token either way
    EXPECT_EQ(diff("hello\r\n\n"), 2);
    EXPECT_EQ(diff("hello \xD0\xB4\xD0\x96\xD0\x96\xD0\xB0"), 3);  // " дЖЖа": Ж is no piece: 4 bytes, or one <unk>
    EXPECT_EQ(diff("hello \xD0\x96\xD0\xB4\xD0\x96"), 2);          // " ЖдЖ": two runs, 4 bytes or two <unk>
    EXPECT_EQ(diff("\xE4\xB8\xAD\xE9\xBE\x98\xE9\xBE\x98\xE6\x96\x87"), 5);  // 中龘龘文: 6 bytes or one <unk>

    // A memo-bearing calibration as well (one-byte pricing, memo passes).
    const Estimator memo = Estimator::from_toml(without(memo_toml()));
    std::mt19937 rng(99);
    std::vector<SegmentInfo> segs;
    for (const Estimator* e : {&unk, &memo})
        for (int i = 0; i < 200; ++i) {
            const size_t n = i < 100 ? size_t(i) : size_t(rng() % 20000);
            std::string s = (i % 4 == 3) ? random_bytes(rng, n) : random_text(rng, n);
            for (size_t j = 0; j + 3 < s.size(); j += 1 + rng() % 200) s.replace(j, 3, "\n\r\n");  // runs across chunk ends too
            const uint64_t ref = e->estimate(s.data(), s.size(), Isa::Scalar);
            for (Isa isa : simd_isas()) ASSERT_EQ(e->estimate(s.data(), s.size(), isa), ref) << isa_name(isa) << " n=" << n;
            ASSERT_EQ(explain(e->model(), s.data(), s.size(), segs), e->estimate_fixed(s.data(), s.size())) << i;
            // The same text as '\n'-separated fields, in one pass: the sum of the fields alone.
            std::vector<TextField> f;
            uint64_t sum = 0;
            for (size_t a = 0; a < s.size();) {
                const size_t len = std::min<size_t>(1 + rng() % 3000, s.size() - a);
                f.push_back({uint32_t(a), uint32_t(len)});
                sum += e->estimate_fixed(s.data() + a, len);
                a += len + 1;
                if (a - 1 < s.size()) s[a - 1] = '\n';
            }
            if (f.empty()) continue;
            for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
                if (!isa_supported(isa)) continue;
                ASSERT_EQ(e->estimate_fields_fixed(s.data(), f.data(), f.size(), isa), sum) << isa_name(isa) << " i=" << i;
            }
        }
}

// A run of one repeated ASCII symbol longer than a memo key ("-----..." rules, "=====" underlines)
// is priced in key-sized blocks from the memo's run keys, the first block carrying a leading
// space; a memo miss of ASCII symbols with a run of three or more (table borders) is the sum of
// its runs; without a key it stays with the feature model. Every ISA and the explain path agree.
TEST(Memo, LongSymbolRunsArePricedInKeySizedBlocks) {
    const std::string d32(32, '-'), d31(31, '-');
    std::string t = tiny_toml(2.5) + "\n[memo]\nkeys = [\"" + d32 + "\", \" " + d31 +
                    "\", \"-----\", \"----\", \"|\", \"+\", \" |\", \"────\"]\n" +
                    "cost256 = [512, 768, 256, 256, 256, 512, 256, 256]\n";
    // "--" and "──" are pieces: runs of them merge (memo run keys); "==" is not: a run of '=' is
    // one token per character ('=' not a piece: byte fallback, also one).
    t.replace(t.find("pieces = ["), 10, "pieces = [\"--\", \"──\", \"┌\", \"┐\", ");
    const Estimator e = Estimator::from_toml(t);
    std::vector<SegmentInfo> segs;
    auto run_cost = [&](const std::string& s, size_t begin) -> int64_t {
        explain(e.model(), s.data(), s.size(), segs);
        for (const auto& g : segs)
            if (g.begin == begin) return g.kind == 8 ? int64_t(g.cost) : -int64_t(g.kind);
        return -100;
    };
    EXPECT_EQ(run_cost("x\n" + std::string(100, '-') + "\n", 2), 7 * 256);  // 32+32+32+4: 2+2+2+1
    EXPECT_EQ(run_cost("x " + std::string(100, '-') + "\n", 1), 8 * 256);   // " "+31, 32, 32, 5: 3+2+2+1
    EXPECT_EQ(run_cost("x\n" + std::string(64, '-') + "\n", 2), 4 * 256);
    EXPECT_LT(run_cost("x\n" + std::string(70, '-') + "\n", 2), 0);  // 32+32+6: no key of 6 dashes
    EXPECT_EQ(run_cost("x\n" + std::string(40, '=') + "\n", 2), 40 * 256);  // no "==" piece: no merges
    EXPECT_EQ(run_cost("x\n────\n", 2), 256);         // a run of one non-ASCII symbol: its key
    EXPECT_EQ(run_cost("x\n" + std::string("──────────────") + "\n", 2), 4 * 256);  // 14 ─: 4+4+4+2
    EXPECT_LT(run_cost("x\n┌────┐\n", 2), 0);          // box drawing mixes: feature model
    EXPECT_LT(run_cost("x\n" + std::string(40, '-') + "+\n", 2), 0);  // no key of 8 dashes
    EXPECT_EQ(run_cost("x\n|-----|----|\n", 2), 5 * 256);             // | ----- | ---- |
    EXPECT_EQ(run_cost("x |-----+-----|\n", 1), 6 * 256);              // " |" ----- + (2) ----- |
    EXPECT_LT(run_cost("x\n|-|-|-|\n", 2), 0);                         // no run of three: feature model
    EXPECT_LT(run_cost("x\n|---|\n", 2), 0);                            // no key of 3 dashes
    std::mt19937 rng(5);
    for (int i = 0; i < 300; ++i) {
        std::string s = random_text(rng, rng() % 3000);
        for (size_t j = 0; j < s.size(); j += 1 + rng() % 400)
            s.insert(j, std::string(1 + rng() % 3, '\n') + std::string(rng() % 2, ' ') +
                            (rng() % 2 ? std::string(20 + rng() % 120, rng() % 4 ? '-' : '=')
                                       : "|" + std::string(rng() % 9, '-') + (rng() % 2 ? "+" : "|") + std::string(rng() % 40, '-') + "|"));
        const uint64_t ref = e.estimate_fixed(s.data(), s.size());
        for (Isa isa : simd_isas()) {
            const TextField whole{0, uint32_t(s.size())};
            ASSERT_EQ(e.estimate_fields_fixed(s.data(), &whole, 1, isa), ref) << isa_name(isa) << " i=" << i;
        }
        ASSERT_EQ(explain(e.model(), s.data(), s.size(), segs), ref) << i;
    }
}
