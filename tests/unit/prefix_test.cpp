// Prefix fingerprint: chained block hashes over the decoded prompt with role separators.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <random>

#include "tokens/model.hpp"
#include "tokens/request_text.hpp"
#include "tokens/tokens.hpp"

using namespace tlb::tokens;

namespace {

std::vector<uint64_t> fp(const std::vector<std::pair<Role, std::string>>& msgs, size_t block = 64, size_t max = 64) {
    std::vector<TextSpan> spans;
    for (const auto& [r, t] : msgs) spans.push_back({t.data(), t.size(), r});
    std::vector<uint64_t> out(max);
    out.resize(prefix_fingerprint(spans.data(), spans.size(), out.data(), max, block));
    return out;
}

std::vector<uint64_t> fp_json(const std::string& json, size_t block = 64) {
    RequestText rt;
    EXPECT_TRUE(extract_request_text(json, rt)) << json;
    std::vector<TextSpan> spans;
    for (size_t i = 0; i < rt.texts.size(); ++i) spans.push_back({rt.texts[i].data(), rt.texts[i].size(), rt.roles[i]});
    std::vector<uint64_t> out(64);
    out.resize(prefix_fingerprint(spans.data(), spans.size(), out.data(), out.size(), block));
    return out;
}

const std::string SYSTEM =
    "You are a careful assistant for the tokenlb project. Answer in English, cite the design document "
    "where relevant, and never invent configuration keys that the reference does not list.";

}  // namespace

TEST(Prefix, SameSystemPromptSameLeadingHashes) {
    const auto a = fp({{Role::System, SYSTEM}, {Role::User, "What is a prefix cache? Explain with an example please."}});
    const auto b = fp({{Role::System, SYSTEM}, {Role::User, "Write a haiku about load balancers and GPUs, then stop."}});
    const size_t shared_blocks = (2 + SYSTEM.size() + 2) / 64;  // blocks entirely inside the shared part
    ASSERT_GE(a.size(), shared_blocks + 1);
    ASSERT_GE(b.size(), shared_blocks + 1);
    for (size_t i = 0; i < shared_blocks; ++i) EXPECT_EQ(a[i], b[i]) << i;
    EXPECT_NE(a[shared_blocks], b[shared_blocks]);
    for (size_t i = shared_blocks; i < std::min(a.size(), b.size()); ++i) EXPECT_NE(a[i], b[i]) << i;
}

TEST(Prefix, DifferentSystemPromptsDifferFromTheFirstBlock) {
    std::string other = SYSTEM;
    other[3] = 'X';
    const auto a = fp({{Role::System, SYSTEM}, {Role::User, "hello"}});
    const auto b = fp({{Role::System, other}, {Role::User, "hello"}});
    ASSERT_FALSE(a.empty());
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NE(a[i], b[i]) << i;  // chained: every later block differs too
}

TEST(Prefix, ConversationHistoryIsAPrefix) {
    std::vector<std::pair<Role, std::string>> conv = {{Role::System, SYSTEM}};
    std::vector<uint64_t> prev;
    for (int turn = 0; turn < 6; ++turn) {
        conv.push_back({turn % 2 ? Role::Assistant : Role::User, "turn " + std::to_string(turn) + ": " + std::string(90, char('a' + turn))});
        const auto h = fp(conv);
        ASSERT_GE(h.size(), prev.size());
        for (size_t i = 0; i < prev.size(); ++i) EXPECT_EQ(h[i], prev[i]) << "turn " << turn << " block " << i;
        prev = h;
    }
}

TEST(Prefix, RolesArePartOfTheIdentity) {
    const std::string t(300, 'z');
    const auto u = fp({{Role::User, t}});
    const auto s = fp({{Role::System, t}});
    ASSERT_FALSE(u.empty());
    EXPECT_NE(u[0], s[0]);
    // Moving a boundary between two messages changes the stream, even with the same characters.
    const auto one = fp({{Role::User, "abcdef" + t}});
    const auto two = fp({{Role::User, "abc"}, {Role::User, "def" + t}});
    EXPECT_NE(one[0], two[0]);
}

TEST(Prefix, IndependentOfJsonFormattingKeyOrderAndEscapes) {
    const std::string compact =
        R"({"model":"m","messages":[{"role":"system","content":")" + SYSTEM +
        R"("},{"role":"user","content":"caf\u00e9 \"quoted\" line\nnext line, long enough to fill a couple of blocks of the stream"}]})";
    const std::string pretty =
        "{\n  \"messages\" : [\n    { \"content\" : \"" + SYSTEM +
        "\", \"role\" : \"system\" },\n    { \"role\": \"user\",\n      \"content\": [{\"type\":\"text\",\"text\":\"café \\\"quoted\\\" "
        "line\\u000anext line, long enough to fill a couple of blocks of the stream\"}] }\n  ],\n  \"stream\": true, \"model\": \"m\"\n}";
    const auto a = fp_json(compact);
    const auto b = fp_json(pretty);
    ASSERT_GE(a.size(), 4u);
    EXPECT_EQ(a, b);
    const auto c = fp_json(R"({"model":"m","messages":[{"role":"system","content":")" + SYSTEM + R"( "}]})");
    EXPECT_EQ(c[0], a[0]);  // first block still inside the shared system prompt
}

TEST(Prefix, LimitsAndEdgeCases) {
    const std::string t(1000, 'q');
    TextSpan s{t.data(), t.size(), Role::User};
    uint64_t out[100];
    EXPECT_EQ(prefix_fingerprint(&s, 1, out, 100, 256), (1000 + 2) / 256);
    EXPECT_EQ(prefix_fingerprint(&s, 1, out, 2, 256), 2u);           // capped by max_out
    EXPECT_EQ(prefix_fingerprint(&s, 1, out, 100, 8), 0u);           // block too small
    EXPECT_EQ(prefix_fingerprint(&s, 1, out, 100, 100), 0u);         // not a multiple of 16
    EXPECT_EQ(prefix_fingerprint(&s, 1, out, 100, PREFIX_MAX_BLOCK_BYTES * 2), 0u);
    EXPECT_EQ(prefix_fingerprint(nullptr, 0, out, 100, 256), 0u);
    EXPECT_EQ(prefix_fingerprint(&s, 1, nullptr, 100, 256), 0u);
    const std::string shrt = "short prompt";
    TextSpan ss{shrt.data(), shrt.size(), Role::User};
    EXPECT_EQ(prefix_fingerprint(&ss, 1, out, 100, 256), 0u);  // no complete block yet
    // Deterministic across calls.
    uint64_t a[3], b[3];
    ASSERT_EQ(prefix_fingerprint(&s, 1, a, 3, 256), 3u);
    ASSERT_EQ(prefix_fingerprint(&s, 1, b, 3, 256), 3u);
    EXPECT_EQ(a[0], b[0]);
    EXPECT_EQ(a[2], b[2]);
    EXPECT_NE(a[0], a[1]);  // identical block contents still chain to different hashes
}

// Every byte, its position and the block order count: changing one byte anywhere in block i, or
// swapping two 16-byte pieces, changes hash i and every later one, never the earlier ones; all
// hashes of distinct random prompts differ.
TEST(Prefix, EveryBytePositionAndOrderCount) {
    std::string text;
    for (int i = 0; i < 2048; ++i) text += char('a' + (i * 7919) % 26);
    const size_t block = 256;
    const auto base = fp({{Role::User, text}}, block);
    ASSERT_EQ(base.size(), (text.size() + 2) / block);
    for (size_t pos = 0; pos < text.size(); pos += 37) {
        std::string t = text;
        t[pos] = char(t[pos] ^ 0x20);
        const auto h = fp({{Role::User, t}}, block);
        const size_t first_changed = (pos + 2) / block;  // the stream starts with 0xFF, role
        for (size_t i = 0; i < h.size(); ++i) {
            if (i < first_changed) EXPECT_EQ(h[i], base[i]) << pos << " " << i;
            else EXPECT_NE(h[i], base[i]) << pos << " " << i;
        }
    }
    std::string swapped = text;
    std::swap_ranges(swapped.begin() + 30, swapped.begin() + 46, swapped.begin() + 94);  // 16-byte pieces
    EXPECT_NE(fp({{Role::User, swapped}}, block)[0], base[0]);
    std::vector<uint64_t> all;
    uint64_t x = 88172645463325252ULL;
    for (int k = 0; k < 200; ++k) {
        std::string t;
        for (int i = 0; i < 300; ++i) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            t += char(' ' + x % 90);
        }
        for (uint64_t h : fp({{Role::User, t}}, 64)) all.push_back(h);
    }
    std::sort(all.begin(), all.end());
    EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
}

// The AVX-512 block hash is the SSE2 one, lane for lane: every block length, every alignment.
TEST(Prefix, SimdBlockHashEqualsTheReference) {
    std::mt19937 rng(5);
    std::vector<uint8_t> buf(PREFIX_MAX_BLOCK_BYTES + 64);
    for (auto& b : buf) b = uint8_t(rng());
    for (size_t len = 16; len <= PREFIX_MAX_BLOCK_BYTES; len += 16)
        for (size_t off : {size_t(0), size_t(1), size_t(7), size_t(33), size_t(63)})
            ASSERT_EQ(prefix_block_hash(buf.data() + off, len, true), prefix_block_hash(buf.data() + off, len, false))
                << "len " << len << " off " << off;
}

// The fingerprint is part of the routing state shared between instances and restarts: pinned.
TEST(Prefix, ValuesArePinned) {
    std::string sys(300, 'x');
    for (size_t i = 0; i < sys.size(); ++i) sys[i] = char('a' + (i * 7) % 26);
    const std::string user = "Hello, how are you today? Please answer in one sentence.";
    const TextSpan spans[2] = {{sys.data(), sys.size(), Role::System}, {user.data(), user.size(), Role::User}};
    uint64_t out[8];
    ASSERT_EQ(prefix_fingerprint(spans, 2, out, 8, 256), 1u);
    ASSERT_EQ(prefix_fingerprint(spans, 2, out, 8, 16), 8u);  // capped by max_out
    EXPECT_EQ(out[0], 0xe76e5885308ceb04ULL);
    EXPECT_EQ(out[7], 0x3d11558661d5b3f4ULL);
}
