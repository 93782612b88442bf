// lib/understand end to end: realistic requests through framing, extraction, token estimate,
// classification and prefix fingerprint; errors with their statuses; no allocation per request.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "classify/classify.hpp"
#include "http/request.hpp"
#include "tokens/tokens.hpp"
#include "understand/understand.hpp"

// ---- operator new counting --------------------------------------------------------------------
// The replacements below allocate with malloc, so free() in operator delete is the matching call;
// GCC cannot see that across the replacement and warns.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
// Every global allocation path is replaced; counting is switched on only around the code under test.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<uint64_t> g_news{0};
void* counted_alloc(std::size_t n) {
    if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
    void* p = std::malloc(n ? n : 1);
    return p;
}
void* counted_aligned(std::size_t n, std::align_val_t a) {
    if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
    const std::size_t al = static_cast<std::size_t>(a);
    return std::aligned_alloc(al, (n + al - 1) / al * al);
}
}  // namespace
void* operator new(std::size_t n) { if (void* p = counted_alloc(n)) return p; throw std::bad_alloc(); }
void* operator new[](std::size_t n) { if (void* p = counted_alloc(n)) return p; throw std::bad_alloc(); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void* operator new(std::size_t n, std::align_val_t a) { if (void* p = counted_aligned(n, a)) return p; throw std::bad_alloc(); }
void* operator new[](std::size_t n, std::align_val_t a) { if (void* p = counted_aligned(n, a)) return p; throw std::bad_alloc(); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace tlb;
using understand::EndpointKind;
using understand::RequestFeatures;

namespace {

std::string http_request(const std::string& method, const std::string& path, const std::string& body,
                         const std::string& extra_headers = "") {
    std::string r = method + " " + path + " HTTP/1.1\r\nHost: lb.example\r\nContent-Type: application/json\r\n" +
                    extra_headers;
    if (method == "POST" || !body.empty()) r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    r += "\r\n" + body;
    return r;
}

const char* SYSTEM_PROMPT =
    "You are a careful senior software engineer. Answer concisely, show code in fenced blocks, and "
    "explain trade-offs. Never reveal secrets. When you are unsure, say so and propose how to find "
    "out. Prefer standard libraries. Use metric units. Keep answers under 300 words unless asked.";

std::string chat_body(const std::string& user, const std::string& extra = "") {
    return std::string("{\"model\":\"llama-3-8b\",\"messages\":[{\"role\":\"system\",\"content\":\"") + SYSTEM_PROMPT +
           "\"},{\"role\":\"user\",\"content\":\"" + user + "\"}]" + extra + "}";
}

class Understand : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        std::string err;
        cls = classify::Classifier::load_dir(std::string(TLB_SOURCE_DIR) + "/conf/rules", &err).release();
        ASSERT_NE(cls, nullptr) << err;
        est = new tokens::Estimator(tokens::Estimator::builtin());
    }
    static void TearDownTestSuite() {
        delete cls;
        delete est;
    }
    void SetUp() override {
        understand::Options o;
        o.max_body_bytes = 1 << 20;
        std::string err;
        ASSERT_TRUE(u.init(o, cls, est, &err)) << err;
    }
    // Runs understand on a copy of req with generous padding room.
    RequestFeatures run(const std::string& req) {
        buf.assign(req.begin(), req.end());
        buf.resize(req.size() + 4096, 0xEE);
        RequestFeatures f;
        u.understand(buf.data(), req.size(), buf.size(), f);
        return f;
    }
    uint32_t estimate_sum(const std::vector<std::string>& texts) {
        uint64_t fixed = 0;
        for (const auto& t : texts) fixed += est->estimate_fixed(t.data(), t.size());
        return static_cast<uint32_t>((fixed + 128) >> 8);
    }
    bool has_tag(const RequestFeatures& f, const char* tag) { return (f.tags & cls->tag_mask(tag)) != 0; }

    static classify::Classifier* cls;
    static tokens::Estimator* est;
    understand::Understander u;
    std::vector<uint8_t> buf;
};
classify::Classifier* Understand::cls = nullptr;
tokens::Estimator* Understand::est = nullptr;

}  // namespace

TEST_F(Understand, ChatWithSystemAndUser) {
    const std::string user = "How do I reverse a list in Python? My email is jane.roe@example.com.";
    const auto f = run(http_request("POST", "/v1/chat/completions",
                                    chat_body(user, ",\"max_tokens\":200,\"stream\":true,"
                                                    "\"stream_options\":{\"include_usage\":true},\"user\":\"u-42\",\"n\":2")));
    ASSERT_TRUE(f.ok()) << f.status << " " << f.message;
    EXPECT_EQ(f.endpoint, EndpointKind::CHAT);
    EXPECT_EQ(f.method, http::Method::POST);
    EXPECT_EQ(f.model, "llama-3-8b");
    EXPECT_EQ(f.max_tokens, 200);
    EXPECT_EQ(f.n, 2u);
    EXPECT_TRUE(f.stream);
    EXPECT_TRUE(f.include_usage);
    EXPECT_EQ(f.user, "u-42");
    EXPECT_EQ(f.message_count, 2u);
    EXPECT_EQ(f.prompt_tokens, estimate_sum({SYSTEM_PROMPT, user}));
    EXPECT_GT(f.prompt_tokens, 60u);
    EXPECT_TRUE(has_tag(f, "pii"));
    EXPECT_FALSE(has_tag(f, "code"));
    EXPECT_EQ(f.text_bytes, std::strlen(SYSTEM_PROMPT) + 1 + user.size());
    EXPECT_GE(f.prefix_blocks, 1u);  // the system prompt alone is longer than one 256-byte block
    EXPECT_TRUE(f.keep_alive);
}

TEST_F(Understand, SharedSystemPromptSharesPrefixBlocks) {
    const auto a = run(http_request("POST", "/v1/chat/completions", chat_body("First question about apples and pears.")));
    const auto b = run(http_request("POST", "/v1/chat/completions",
                                    "{\"messages\":[{\"role\":\"system\",\"content\":\"" + std::string(SYSTEM_PROMPT) +
                                        "\"},{\"role\":\"user\",\"content\":\"Second, different question.\"}],"
                                        "\"model\":\"llama-3-8b\",\"temperature\":0.2}"));
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_GE(a.prefix_blocks, 1u);
    ASSERT_GE(b.prefix_blocks, 1u);
    EXPECT_EQ(a.prefix_hash[0], b.prefix_hash[0]);  // key order and other fields do not matter
    std::string other = SYSTEM_PROMPT;
    other[0] = 'X';
    const auto c = run(http_request("POST", "/v1/chat/completions",
                                    "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"" + other +
                                        "\"},{\"role\":\"user\",\"content\":\"First question about apples and pears.\"}]}"));
    ASSERT_TRUE(c.ok());
    EXPECT_NE(a.prefix_hash[0], c.prefix_hash[0]);
}

TEST_F(Understand, CodeInUserMessageIsTagged) {
    const auto f = run(http_request(
        "POST", "/v1/chat/completions",
        chat_body("Why does this crash?\\n```c\\n#include <stdio.h>\\nint main(void) {\\n  char *p = 0;\\n  "
                  "printf(\\\"%s\\\", p);\\n  return 0;\\n}\\n```")));
    ASSERT_TRUE(f.ok()) << f.message;
    EXPECT_TRUE(has_tag(f, "code"));
    EXPECT_FALSE(has_tag(f, "pii"));
}

TEST_F(Understand, CompletionsWithPromptArray) {
    const std::string p1 = "Once upon a time", p2 = "Привет, как дела? Это пример русского текста.";
    const auto f = run(http_request("POST", "/v1/completions",
                                    "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":[\"" + p1 + "\",\"" + p2 +
                                        "\"],\"max_tokens\":16}"));
    ASSERT_TRUE(f.ok()) << f.message;
    EXPECT_EQ(f.endpoint, EndpointKind::COMPLETIONS);
    EXPECT_EQ(f.model, "gpt-3.5-turbo-instruct");
    EXPECT_EQ(f.max_tokens, 16);
    EXPECT_FALSE(f.stream);
    EXPECT_EQ(f.prompt_tokens, estimate_sum({p1, p2}));
    EXPECT_TRUE(has_tag(f, "cyrillic"));
}

TEST_F(Understand, CompletionsWithTokenIds) {
    const auto f = run(http_request("POST", "/v1/completions", "{\"model\":\"m\",\"prompt\":[1,2,3,4,5]}"));
    ASSERT_TRUE(f.ok()) << f.message;
    EXPECT_EQ(f.prompt_tokens, 5u);
}

TEST_F(Understand, ToolsCountAndComeFirstInTheFingerprint) {
    const std::string tools =
        ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the "
        "current weather for a city, in metric units, with a short forecast for the next three days and "
        "any weather warnings that apply to the area right now.\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]";
    const auto with_tools = run(http_request("POST", "/v1/chat/completions", chat_body("Weather in Oslo?", tools)));
    ASSERT_TRUE(with_tools.ok()) << with_tools.message;
    EXPECT_EQ(with_tools.tool_count, 1u);
    const auto without = run(http_request("POST", "/v1/chat/completions", chat_body("Weather in Oslo?")));
    ASSERT_TRUE(without.ok());
    EXPECT_GT(with_tools.prompt_tokens, without.prompt_tokens + 20);
    // Tools come before the messages in the fingerprint, so the first block differs.
    ASSERT_GE(with_tools.prefix_blocks, 1u);
    EXPECT_NE(with_tools.prefix_hash[0], without.prefix_hash[0]);
    // The same tools with another question share the first block.
    const auto other = run(http_request("POST", "/v1/chat/completions", chat_body("Weather in Bergen?", tools)));
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(with_tools.prefix_hash[0], other.prefix_hash[0]);
}

TEST_F(Understand, InvalidJsonIs400) {
    const auto f = run(http_request("POST", "/v1/chat/completions", "{\"model\":\"m\",\"messages\":[{\"role\":"));
    EXPECT_EQ(f.status, 400);
    EXPECT_EQ(f.endpoint, EndpointKind::CHAT);
    EXPECT_STRNE(f.message, "");
}

TEST_F(Understand, WrongTypeNamesTheField) {
    const auto f = run(http_request("POST", "/v1/chat/completions", chat_body("hi", ",\"max_tokens\":\"lots\"")));
    EXPECT_EQ(f.status, 400);
    EXPECT_NE(std::string(f.message).find("max_tokens"), std::string::npos) << f.message;
    EXPECT_STREQ(f.param, "max_tokens");
    // Message and param stay valid until the next call: render the response now.
    uint8_t out[1024];
    const int64_t n = understand::Understander::build_error(f, out, sizeof(out));
    ASSERT_GT(n, 0);
    const std::string resp(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    EXPECT_EQ(resp.rfind("HTTP/1.1 400 ", 0), 0u) << resp;
    EXPECT_NE(resp.find("\"param\":\"max_tokens\""), std::string::npos) << resp;
    EXPECT_NE(resp.find("\"type\":\"invalid_request_error\""), std::string::npos) << resp;
    const auto g = run(http_request("POST", "/v1/chat/completions", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}"));
    EXPECT_EQ(g.status, 400);
    EXPECT_NE(std::string(g.message).find("messages[0].content"), std::string::npos) << g.message;
    const auto h = run(http_request("POST", "/v1/chat/completions", "{\"messages\":[]}"));
    EXPECT_EQ(h.status, 400);
    EXPECT_NE(std::string(h.message).find("model"), std::string::npos) << h.message;
}

TEST_F(Understand, UnknownPathAndWrongMethod) {
    auto f = run(http_request("POST", "/v1/embeddings", "{}"));
    EXPECT_EQ(f.status, 404);
    EXPECT_EQ(f.endpoint, EndpointKind::UNKNOWN);
    EXPECT_STREQ(f.message, "Unknown request URL: POST /v1/embeddings.");
    uint8_t out[1024];
    const int64_t n = understand::Understander::build_error(f, out, sizeof(out));
    ASSERT_GT(n, 0);
    const std::string resp(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    EXPECT_EQ(resp.rfind("HTTP/1.1 404 ", 0), 0u) << resp;
    EXPECT_NE(resp.find("Unknown request URL"), std::string::npos);
    EXPECT_NE(resp.find("keep-alive"), std::string::npos) << resp;  // framing was fine

    f = run(http_request("GET", "/v1/chat/completions", ""));
    EXPECT_EQ(f.status, 405);
    EXPECT_STREQ(f.code, "method_not_allowed");
    f = run(http_request("POST", "/v1/models", "{}"));
    EXPECT_EQ(f.status, 405);
}

TEST_F(Understand, ModelsAndHealth) {
    auto f = run(http_request("GET", "/v1/models", ""));
    EXPECT_TRUE(f.ok());
    EXPECT_EQ(f.endpoint, EndpointKind::MODELS);
    f = run(http_request("GET", "/v1/models/llama-3-8b", ""));
    EXPECT_EQ(f.endpoint, EndpointKind::MODELS);
    f = run(http_request("GET", "/health", ""));
    EXPECT_TRUE(f.ok());
    EXPECT_EQ(f.endpoint, EndpointKind::HEALTH);
    f = run(http_request("GET", "/v1/chat/completions?x=1", ""));  // query does not change the endpoint
    EXPECT_EQ(f.endpoint, EndpointKind::CHAT);
    EXPECT_EQ(f.status, 405);
}

TEST_F(Understand, FramingErrorsAndLimits) {
    auto f = run("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}");
    EXPECT_EQ(f.status, 400);
    f = run("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}");
    EXPECT_EQ(f.status, 400);
    EXPECT_STREQ(f.code, "incomplete_request");
    f = run(http_request("POST", "/v1/chat/completions", ""));
    EXPECT_EQ(f.status, 400);  // empty body

    understand::Understander small;
    understand::Options o;
    o.max_body_bytes = 1024;
    o.limits.max_body_bytes = 1 << 20;  // framing accepts it, understand refuses it
    ASSERT_TRUE(small.init(o, cls, est, nullptr));
    const std::string big = chat_body(std::string(2000, 'a'));
    const std::string req = http_request("POST", "/v1/chat/completions", big);
    std::vector<uint8_t> b(req.begin(), req.end());
    b.resize(req.size() + 64);
    RequestFeatures g;
    EXPECT_FALSE(small.understand(b.data(), req.size(), b.size(), g));
    EXPECT_EQ(g.status, 413);
}

TEST_F(Understand, ChunkedBodyAndNoPaddingRoom) {
    const std::string body = chat_body("Chunked hello");
    char head[64];
    std::snprintf(head, sizeof(head), "%zx\r\n", body.size());
    const std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                            std::string(head) + body + "\r\n0\r\n\r\n";
    auto f = run(req);
    ASSERT_TRUE(f.ok()) << f.message;
    EXPECT_EQ(f.model, "llama-3-8b");
    // Exactly the request's bytes, no room for simdjson padding: the body is copied, same result.
    const std::string plain = http_request("POST", "/v1/chat/completions", chat_body("Chunked hello"));
    std::vector<uint8_t> b(plain.begin(), plain.end());
    RequestFeatures g;
    ASSERT_TRUE(u.understand(b.data(), b.size(), b.size(), g)) << g.message;
    EXPECT_EQ(g.prompt_tokens, f.prompt_tokens);
    EXPECT_EQ(g.prefix_hash[0], f.prefix_hash[0]);
}

TEST_F(Understand, FramedByCallersParser) {
    const std::string req = http_request("POST", "/v1/chat/completions", chat_body("Framed elsewhere"));
    std::vector<uint8_t> b(req.begin(), req.end());
    b.resize(req.size() + 128);
    http::RequestParser rp;
    // Fed in two pieces, as TCP would deliver it.
    ASSERT_EQ(rp.parse(b.data(), 20), 0);
    RequestFeatures early;
    EXPECT_FALSE(u.understand_framed(rp, b.data(), b.size(), early));  // not complete yet
    EXPECT_EQ(early.status, 400);
    ASSERT_EQ(rp.parse(b.data(), req.size()), static_cast<int64_t>(req.size()));
    RequestFeatures f;
    ASSERT_TRUE(u.understand_framed(rp, b.data(), b.size(), f)) << f.message;
    EXPECT_EQ(f.model, "llama-3-8b");
    EXPECT_EQ(f.prompt_tokens, estimate_sum({SYSTEM_PROMPT, "Framed elsewhere"}));
    // The padding borrowed past the body is given back.
    for (size_t i = req.size(); i < b.size(); ++i) ASSERT_EQ(b[i], 0) << i;
}

TEST_F(Understand, NoAllocationOnWarmObject) {
    std::vector<std::string> reqs = {
        http_request("POST", "/v1/chat/completions", chat_body("Warm request with code: ```\\nint x = 1;\\n```")),
        http_request("POST", "/v1/completions", "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"],\"stream\":true}"),
        http_request("POST", "/v1/chat/completions", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}"),
        http_request("POST", "/v1/chat/completions", "{not json"),
        http_request("POST", "/v1/embeddings", "{}"),
        http_request("GET", "/v1/models", ""),
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
    };
    std::vector<std::vector<uint8_t>> bufs;
    for (const auto& r : reqs) {
        bufs.emplace_back(r.begin(), r.end());
        bufs.back().resize(r.size() + 256);
    }
    RequestFeatures f;
    uint8_t out[2048];
    for (size_t i = 0; i < reqs.size(); ++i) u.understand(bufs[i].data(), reqs[i].size(), bufs[i].size(), f);  // warm
    g_news = 0;
    g_counting = true;
    uint32_t ok = 0;
    for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < reqs.size(); ++i) {
            if (u.understand(bufs[i].data(), reqs[i].size(), bufs[i].size(), f)) ++ok;
            else understand::Understander::build_error(f, out, sizeof(out));
        }
    g_counting = false;
    EXPECT_EQ(g_news.load(), 0u);
    EXPECT_EQ(ok, 20u * 3u);
    // The counter itself works.
    g_counting = true;
    auto* p = new std::string(100, 'x');
    g_counting = false;
    delete p;
    EXPECT_GE(g_news.load(), 1u);
}
