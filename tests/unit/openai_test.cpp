// lib/openai: request body extraction (valid and invalid variants), padding contract, model
// rewrite, usage extraction from bodies and SSE, and the no-allocation check for the per-request
// path (http request framing + extraction + response framing + usage).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <simdjson.h>

#include "http/request.hpp"
#include "http/response.hpp"
#include "openai/request.hpp"
#include "openai/text_copy.hpp"
#include "openai/usage.hpp"

// Counts every heap allocation in this binary; the no-allocation test reads it around the
// per-request calls.
static std::atomic<uint64_t> g_allocs{0};
void* operator new(size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n ? n : 1);
}
// Pairs with the malloc above; GCC cannot see that and warns about free() on new'd memory.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace tlb::openai;

namespace {

constexpr size_t MAX_BODY = 1 << 20;

struct Fixture {
    Extractor ex;
    std::vector<uint8_t> scratch = std::vector<uint8_t>(MAX_BODY);
    Request req;
    Fixture() { EXPECT_TRUE(ex.init(MAX_BODY)); }
    // Parses body from a buffer with padding (in place), and again without (copy path); both
    // must agree.
    Error run(const std::string& body, Endpoint ep = Endpoint::CHAT_COMPLETIONS) {
        std::vector<uint8_t> padded(body.size() + PADDING, 'x');
        std::memcpy(padded.data(), body.data(), body.size());
        Error e1 = ex.extract(ep, padded.data(), body.size(), padded.size(), scratch.data(), scratch.size(), req);
        std::string m1 = ex.message();
        std::string t1 = text();
        std::vector<uint8_t> tight(body.begin(), body.end());
        Error e2 = ex.extract(ep, tight.data(), tight.size(), tight.size(), scratch.data(), scratch.size(), req);
        EXPECT_EQ(e1, e2) << body;
        EXPECT_EQ(m1, ex.message()) << body;
        EXPECT_EQ(t1, text()) << body;
        return e2;
    }
    std::string text() const { return std::string(reinterpret_cast<const char*>(req.text), req.text_len); }
    std::string span(uint32_t i) const { return std::string(req.span_text(req.spans[i])); }
    std::string msg() const { return ex.message(); }
};

std::string chat(const std::string& messages, const std::string& extra = "") {
    return R"({"model":"llama-3-8b","messages":)" + messages + extra + "}";
}

}  // namespace

// ---- valid bodies ---------------------------------------------------------------------------

TEST(OpenAiExtract, SimpleChat) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"Hello there"}])")), Error::NONE) << f.msg();
    EXPECT_EQ(f.req.model, "llama-3-8b");
    EXPECT_EQ(f.req.message_count, 1u);
    ASSERT_EQ(f.req.span_count, 1u);
    EXPECT_EQ(f.span(0), "Hello there");
    EXPECT_EQ(f.req.spans[0].role, Role::USER);
    EXPECT_EQ(f.req.spans[0].source, Source::MESSAGE);
    EXPECT_EQ(f.req.max_tokens, -1);
    EXPECT_EQ(f.req.n, 1u);
    EXPECT_FALSE(f.req.stream);
}

TEST(OpenAiExtract, RolesAndOrder) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Q1"},)"
                         R"({"role":"assistant","content":"A1"},{"content":"Q2","role":"user"},)"
                         R"({"role":"developer","content":"D"},{"role":"tool","content":"T","tool_call_id":"c1"}])")),
              Error::NONE) << f.msg();
    ASSERT_EQ(f.req.span_count, 6u);
    EXPECT_EQ(f.text(), "Be brief.\nQ1\nA1\nQ2\nD\nT");
    EXPECT_EQ(f.req.spans[0].role, Role::SYSTEM);
    EXPECT_EQ(f.req.spans[2].role, Role::ASSISTANT);
    EXPECT_EQ(f.req.spans[3].role, Role::USER);  // role after content is patched in
    EXPECT_EQ(f.req.spans[3].index, 3u);
    EXPECT_EQ(f.req.spans[4].role, Role::DEVELOPER);
    EXPECT_EQ(f.req.spans[5].role, Role::TOOL);
}

TEST(OpenAiExtract, EscapesAreDecoded) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"a\"b\\c\/d\ne\tf\r\b\f"}])")), Error::NONE) << f.msg();
    EXPECT_EQ(f.span(0), "a\"b\\c/d\ne\tf\r\b\f");
}

TEST(OpenAiExtract, UnicodeEscapesAndSurrogatePairs) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"caf\u00e9 \u4e2d\u6587 \ud83d\ude00 \u0000x"}])")), Error::NONE) << f.msg();
    EXPECT_EQ(f.span(0), std::string("caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 ") + std::string(1, '\0') + "x");
}

TEST(OpenAiExtract, RawUtf8PassesThrough) {
    Fixture f;
    std::string s = "Привет, мир. 你好，世界。 ¿Qué tal? Grüße";
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":")" + s + R"("}])")), Error::NONE);
    EXPECT_EQ(f.span(0), s);
}

TEST(OpenAiExtract, ContentPartArrays) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":[{"type":"text","text":"Describe"},)"
                         R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},)"
                         R"({"text":"text before type","type":"text"},)"
                         R"({"type":"input_audio","input_audio":{"data":"x","format":"wav"}},)"
                         R"({"text":"dropped: not a text part","type":"image_url","image_url":{"url":"u"}}]}])")),
              Error::NONE) << f.msg();
    ASSERT_EQ(f.req.span_count, 2u);
    EXPECT_EQ(f.text(), "Describe\ntext before type");
    EXPECT_EQ(f.req.image_parts, 2u);
    EXPECT_EQ(f.req.other_parts, 1u);
}

TEST(OpenAiExtract, ToolCallsInHistory) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"weather?"},{"role":"assistant","content":null,)"
                         R"("tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},)"
                         R"({"role":"tool","tool_call_id":"c1","content":"sunny"}])")),
              Error::NONE) << f.msg();
    EXPECT_EQ(f.text(), "weather?\nget_weather\n{\"city\":\"Paris\"}\nsunny");
    EXPECT_EQ(f.req.spans[1].source, Source::TOOL_CALL);
}

TEST(OpenAiExtract, NestedToolDefinitions) {
    Fixture f;
    std::string tools = R"(,"tools":[{"type":"function","function":{"name":"search","description":"Search the web",)"
                        R"("parameters":{"type":"object","properties":{"q":{"type":"string","enum":["a","b"]},)"
                        R"("opts":{"type":"object","properties":{"deep":{"type":"array","items":[{"x":[1,[2,{"y":null}]]}]}}}},"required":["q"]}}},)"
                        R"({"type":"function","function":{"name":"noop"}}],"tool_choice":"auto")";
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"hi"}])", tools)), Error::NONE) << f.msg();
    EXPECT_EQ(f.req.tool_count, 2u);
    ASSERT_EQ(f.req.span_count, 5u);
    EXPECT_EQ(f.span(1), "search");
    EXPECT_EQ(f.span(2), "Search the web");
    EXPECT_EQ(f.span(3).substr(0, 16), R"({"type":"object")");
    EXPECT_EQ(f.span(3).back(), '}');
    EXPECT_EQ(f.span(4), "noop");
    EXPECT_EQ(f.req.spans[3].source, Source::TOOL_DEF);
}

TEST(OpenAiExtract, LegacyFunctions) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"x"}])",
                         R"(,"functions":[{"name":"f","description":"d","parameters":{"type":"object"}}])")),
              Error::NONE) << f.msg();
    EXPECT_EQ(f.text(), "x\nf\nd\n{\"type\":\"object\"}");
}

TEST(OpenAiExtract, ScalarOptions) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"x"}])",
                         R"(,"max_tokens":256,"n":3,"stream":true,"stream_options":{"include_usage":true},"user":"u-42","temperature":0.2)")),
              Error::NONE) << f.msg();
    EXPECT_EQ(f.req.max_tokens, 256);
    EXPECT_EQ(f.req.n, 3u);
    EXPECT_TRUE(f.req.stream);
    EXPECT_TRUE(f.req.include_usage);
    EXPECT_EQ(f.req.user, "u-42");
}

TEST(OpenAiExtract, MaxCompletionTokensWins) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"x"}])", R"(,"max_completion_tokens":100,"max_tokens":5)")), Error::NONE);
    EXPECT_EQ(f.req.max_tokens, 100);
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"x"}])", R"(,"max_tokens":5,"max_completion_tokens":100)")), Error::NONE);
    EXPECT_EQ(f.req.max_tokens, 100);
}

TEST(OpenAiExtract, NullsMeanAbsent) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"x"}])",
                         R"(,"max_tokens":null,"stream":null,"stream_options":null,"user":null,"n":null,"tools":null)")),
              Error::NONE) << f.msg();
    EXPECT_EQ(f.req.max_tokens, -1);
    EXPECT_FALSE(f.req.stream);
    EXPECT_EQ(f.req.n, 1u);
}

TEST(OpenAiExtract, EscapedKeyIsTheSameField) {
    Fixture f;
    ASSERT_EQ(f.run(R"({"mod\u0065l":"m2","messages":[{"role":"user","content":"x"}]})"), Error::NONE) << f.msg();
    EXPECT_EQ(f.req.model, "m2");
    // ... and therefore a duplicate of a plain "model".
    EXPECT_EQ(f.run(R"({"model":"m1","mod\u0065l":"m2","messages":[{"role":"user","content":"x"}]})"), Error::DUPLICATE_FIELD);
    EXPECT_EQ(f.msg(), "model appears more than once");
}

TEST(OpenAiExtract, UnknownFieldsSkipped) {
    Fixture f;
    ASSERT_EQ(f.run(R"({"logit_bias":{"1":2},"response_format":{"type":"json_schema","json_schema":{"schema":{"a":[1,2,{"b":"}"}]}}},)"
                    R"("model":"m","seed":1,"messages":[{"role":"user","content":"x","name":"bob"}],"metadata":null})"),
              Error::NONE) << f.msg();
    EXPECT_EQ(f.text(), "x");
    EXPECT_EQ(f.req.model, "m");
}

TEST(OpenAiExtract, DeepNestingInSkippedFieldsIsFine) {
    // Skipped values are walked iteratively by On-Demand: no recursion, no depth limit to trip.
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":"x"}])", R"(,"x":)" + std::string(3000, '[') + std::string(3000, ']'))),
              Error::NONE) << f.msg();
    EXPECT_EQ(f.span(0), "x");
}

TEST(OpenAiExtract, PrettyPrintedWhitespace) {
    Fixture f;
    ASSERT_EQ(f.run("\n{\n  \"model\" :  \"m\" ,\n  \"messages\" : [ { \"role\" : \"user\" , \"content\" : \"x\" } ]\n}\n  "), Error::NONE) << f.msg();
    EXPECT_EQ(f.req.model, "m");
    EXPECT_EQ(f.span(0), "x");
}

TEST(OpenAiExtract, EmptyContentHasNoSpan) {
    Fixture f;
    ASSERT_EQ(f.run(chat(R"([{"role":"user","content":""},{"role":"user","content":[]}])")), Error::NONE);
    EXPECT_EQ(f.req.span_count, 0u);
    EXPECT_EQ(f.req.message_count, 2u);
}

TEST(OpenAiExtract, CompletionsPromptForms) {
    Fixture f;
    ASSERT_EQ(f.run(R"({"model":"m","prompt":"Once upon","max_tokens":7})", Endpoint::COMPLETIONS), Error::NONE) << f.msg();
    EXPECT_EQ(f.text(), "Once upon");
    EXPECT_EQ(f.req.spans[0].source, Source::PROMPT);
    EXPECT_EQ(f.req.max_tokens, 7);
    ASSERT_EQ(f.run(R"({"model":"m","prompt":["a","b\u00e9"]})", Endpoint::COMPLETIONS), Error::NONE);
    EXPECT_EQ(f.req.span_count, 2u);
    EXPECT_EQ(f.span(1), "b\xc3\xa9");
    ASSERT_EQ(f.run(R"({"model":"m","prompt":[1,2,3]})", Endpoint::COMPLETIONS), Error::NONE);
    EXPECT_EQ(f.req.prompt_token_ids, 3u);
    ASSERT_EQ(f.run(R"({"model":"m","prompt":[[1,2],[3]]})", Endpoint::COMPLETIONS), Error::NONE);
    EXPECT_EQ(f.req.prompt_token_ids, 3u);
    // "messages" is not looked at on /v1/completions, "prompt" not on chat.
    ASSERT_EQ(f.run(R"({"model":"m","prompt":"p","messages":5})", Endpoint::COMPLETIONS), Error::NONE);
    EXPECT_EQ(f.run(R"({"model":"m","prompt":{"x":1}})", Endpoint::COMPLETIONS), Error::WRONG_TYPE);
    EXPECT_EQ(f.msg(), "prompt must be a string, an array of strings, or token ids");
    EXPECT_EQ(f.run(R"({"model":"m","prompt":[1,-2]})", Endpoint::COMPLETIONS), Error::WRONG_TYPE);
    EXPECT_EQ(f.msg(), "prompt[1] must be a token id (non-negative integer)");
}

TEST(OpenAiExtract, ManyPiecesMergeIntoLastSpan) {
    Fixture f;
    std::string msgs = "[";
    for (uint32_t i = 0; i < MAX_SPANS + 10; ++i) msgs += std::string(i ? "," : "") + R"({"role":"user","content":"m)" + std::to_string(i) + "\"}";
    msgs += "]";
    ASSERT_EQ(f.run(chat(msgs)), Error::NONE);
    EXPECT_EQ(f.req.span_count, MAX_SPANS);
    EXPECT_TRUE(f.req.spans_merged);
    EXPECT_EQ(f.req.message_count, MAX_SPANS + 10);
    // No text is lost: the last span runs to the end of the text.
    const TextSpan& last = f.req.spans[MAX_SPANS - 1];
    EXPECT_EQ(last.off + last.len, f.req.text_len);
    EXPECT_EQ(f.span(MAX_SPANS - 1).substr(f.span(MAX_SPANS - 1).size() - 4), "m521");
}

// ---- invalid bodies: each names the field ---------------------------------------------------

struct Bad {
    std::string body;
    Error err;
    std::string message;
    Endpoint ep = Endpoint::CHAT_COMPLETIONS;
};

TEST(OpenAiExtract, InvalidBodiesNameTheField) {
    const std::string M = R"("messages":[{"role":"user","content":"x"}])";
    const std::vector<Bad> cases = {
        {"not json", Error::INVALID_JSON, "The request body is not valid JSON."},
        {R"({"model":"m","messages":[{"role":"user","content":"x"})", Error::INVALID_JSON, ""},
        {R"([1,2])", Error::NOT_OBJECT, "The request body must be a JSON object."},
        {R"("just a string")", Error::NOT_OBJECT, "The request body must be a JSON object."},
        {"{" + M + "}", Error::MISSING_FIELD, "model is required"},
        {R"({"model":42,)" + M + "}", Error::WRONG_TYPE, "model must be a string"},
        {R"({"model":"",)" + M + "}", Error::BAD_VALUE, "model must not be empty"},
        {R"({"model":"m"})", Error::MISSING_FIELD, "messages is required"},
        {R"({"model":"m","messages":[]})", Error::BAD_VALUE, "messages must contain at least one message"},
        {R"({"model":"m","messages":{"role":"user"}})", Error::WRONG_TYPE, "messages must be an array of messages"},
        {R"({"model":"m","messages":["hi"]})", Error::WRONG_TYPE, "messages[0] must be an object"},
        {R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":7}]})",
         Error::WRONG_TYPE, "messages[2].content must be a string or an array of content parts"},
        {R"({"model":"m","messages":[{"role":"user","content":{"text":"x"}}]})", Error::WRONG_TYPE,
         "messages[0].content must be a string or an array of content parts"},
        {R"({"model":"m","messages":[{"content":"x"}]})", Error::MISSING_FIELD, "messages[0].role is required"},
        {R"({"model":"m","messages":[{"role":1,"content":"x"}]})", Error::WRONG_TYPE, "messages[0].role must be a string"},
        {R"({"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]})", Error::MISSING_FIELD, "messages[0].content[0].type is required"},
        {R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":5}]}]})",
         Error::WRONG_TYPE, "messages[0].content[1].text must be a string"},
        {R"({"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]})", Error::MISSING_FIELD,
         "messages[0].content[0].text is required for a text part"},
        {R"({"model":"m","messages":[{"role":"user","content":["x"]}]})", Error::WRONG_TYPE, "messages[0].content[0] must be a content part object"},
        {R"({"model":"m","messages":[{"role":"user","content":"x","content":"y"}]})", Error::DUPLICATE_FIELD,
         "messages[0].content appears more than once"},
        {R"({"model":"m",)" + M + R"(,"max_tokens":"10"})", Error::WRONG_TYPE, "max_tokens must be a non-negative integer"},
        {R"({"model":"m",)" + M + R"(,"max_tokens":-1})", Error::BAD_VALUE, "max_tokens must be a non-negative integer"},
        {R"({"model":"m",)" + M + R"(,"max_tokens":1.5})", Error::WRONG_TYPE, "max_tokens must be a non-negative integer"},
        {R"({"model":"m",)" + M + R"(,"max_tokens":99999999999999999999999})", Error::BAD_VALUE, "max_tokens is out of range"},
        {R"({"model":"m",)" + M + R"(,"max_tokens":1e300})", Error::WRONG_TYPE, "max_tokens must be a non-negative integer"},
        {R"({"model":"m",)" + M + R"(,"max_completion_tokens":2000000000000})", Error::BAD_VALUE, "max_completion_tokens is out of range"},
        {R"({"model":"m",)" + M + R"(,"n":0})", Error::BAD_VALUE, "n must be a positive integer"},
        {R"({"model":"m",)" + M + R"(,"n":5000})", Error::BAD_VALUE, "n must be at most 1024"},
        {R"({"model":"m",)" + M + R"(,"stream":"yes"})", Error::WRONG_TYPE, "stream must be a boolean"},
        {R"({"model":"m",)" + M + R"(,"stream_options":true})", Error::WRONG_TYPE, "stream_options must be an object or null"},
        {R"({"model":"m",)" + M + R"(,"stream_options":{"include_usage":1}})", Error::WRONG_TYPE, "stream_options.include_usage must be a boolean"},
        {R"({"model":"m",)" + M + R"(,"user":{"id":1}})", Error::WRONG_TYPE, "user must be a string"},
        {R"({"model":"m",)" + M + R"(,"model":"n"})", Error::DUPLICATE_FIELD, "model appears more than once"},
        {R"({"model":"m",)" + M + R"(,"stream":true,"stream":false})", Error::DUPLICATE_FIELD, "stream appears more than once"},
        {R"({"model":"m",)" + M + R"(} {"x":1})", Error::INVALID_JSON, "The request body has content after the JSON object."},
        {R"({"model":"m","messages":[{"role":"user","content":"bad \x escape"}]})", Error::INVALID_JSON, ""},
        {R"({"model":"m","messages":[{"role":"user","content":"lone \ud800 surrogate"}]})", Error::INVALID_JSON, ""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"bad utf8 \xff\xfe\"}]}", Error::INVALID_JSON, ""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"raw\ncontrol\"}]}", Error::INVALID_JSON, ""},
        {R"({"model":"m",)" + M + R"(,"tools":[{"type":"function","function":{"name":5}}]})", Error::WRONG_TYPE,
         "tools[0].function.name must be a string"},
        {R"({"model":"m",)" + M + R"(,"tools":{"a":1}})", Error::WRONG_TYPE, "tools must be an array"},
        {R"({"model":"m",)" + M + R"(,"tools":[1]})", Error::WRONG_TYPE, "tools[0] must be an object"},
        {R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{}}}]}]})",
         Error::WRONG_TYPE, "messages[0].tool_calls[0].function.arguments must be a string"},
        {"", Error::EMPTY_BODY, "The request body is empty; expected a JSON object."},
        {R"({"model":"m","prompt":true})", Error::WRONG_TYPE, "prompt must be a string, an array of strings, or token ids", Endpoint::COMPLETIONS},
        {R"({"prompt":"x"})", Error::MISSING_FIELD, "model is required", Endpoint::COMPLETIONS},
        {R"({"model":"m",)" + M + R"(,"x":)" + std::string(3000, '[') + std::string(2999, ']') + "}", Error::INVALID_JSON, ""},
    };
    Fixture f;
    for (const auto& c : cases) {
        Error e = f.run(c.body, c.ep);
        EXPECT_EQ(e, c.err) << c.body << " -> " << error_name(e) << ": " << f.msg();
        if (!c.message.empty()) {
            EXPECT_EQ(f.msg(), c.message) << c.body;
        }
        EXPECT_FALSE(f.msg().empty()) << c.body;
        EXPECT_EQ(error_status(e), 400) << c.body;
    }
    EXPECT_GE(cases.size(), 30u);
}

TEST(OpenAiExtract, InvalidStringMessageNamesTheField) {
    Fixture f;
    EXPECT_EQ(f.run(chat(R"([{"role":"user","content":"ok"},{"role":"user","content":"bad \q"}])")), Error::INVALID_JSON);
    // Either stage 1 (whole document) or the field decoder catches it; a field-level error names it.
    if (f.msg() != "The request body is not valid JSON.") {
        EXPECT_EQ(f.msg(), "messages[1].content is not a valid JSON string");
    }
    EXPECT_EQ(f.run(chat(R"([{"role":"user","content":"lone \udc00"}])")), Error::INVALID_JSON);
    EXPECT_EQ(f.msg(), "messages[0].content is not a valid JSON string");
}

TEST(OpenAiExtract, TextIsTheSameWhateverTheScratchRoom) {
    // Prompt text is decoded straight into scratch when there is room for the vector block writes
    // past its end, and through simdjson's own buffer when there is not (a scratch buffer of
    // exactly the size of the result). Escapes land at every offset around the 16/32/64-byte
    // block edges.
    const std::string plain = "The quick brown fox jumps over the lazy dog; Grüße, Привет, 你好. ";
    std::vector<std::string> contents;
    for (size_t at : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{31}, size_t{32}, size_t{33},
                      size_t{63}, size_t{64}, size_t{65}, size_t{127}, size_t{200}}) {
        std::string c = (plain + plain + plain + plain).substr(0, at);
        while (!c.empty() && (static_cast<unsigned char>(c.back()) & 0x80)) c.pop_back();  // no cut UTF-8
        c.resize(at, '.');
        contents.push_back(c + R"(\n)" + plain + R"(\"q\" \u00e9\ud83d\ude00 \\ end)");
        contents.push_back(c);                      // no escape at all
        contents.push_back(c + R"(\\)");             // escape as the last thing
    }
    for (const auto& c : contents) {
        const std::string body = chat(R"([{"role":"system","content":"S"},{"role":"user","content":")" + c +
                                      R"("},{"role":"user","content":[{"type":"text","text":")" + c + R"("}]}])");
        Fixture roomy;
        ASSERT_EQ(roomy.run(body), Error::NONE) << roomy.msg() << "\n" << body;
        Extractor ex;
        ASSERT_TRUE(ex.init(MAX_BODY));
        std::vector<uint8_t> buf(body.begin(), body.end());
        buf.resize(body.size() + PADDING);
        // Exactly what the result needs: the last pieces cannot be decoded in place.
        std::vector<uint8_t> scratch(roomy.req.text_len + roomy.req.model.size());
        Request req;
        ASSERT_EQ(ex.extract(Endpoint::CHAT_COMPLETIONS, buf.data(), body.size(), buf.size(), scratch.data(),
                             scratch.size(), req), Error::NONE) << ex.message();
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(req.text), req.text_len), roomy.text());
        ASSERT_EQ(req.span_count, roomy.req.span_count);
        for (uint32_t i = 0; i < req.span_count; ++i) {
            EXPECT_EQ(req.spans[i].off, roomy.req.spans[i].off);
            EXPECT_EQ(req.spans[i].len, roomy.req.spans[i].len);
            EXPECT_EQ(req.spans[i].role, roomy.req.spans[i].role);
        }
    }
}

TEST(OpenAiExtract, BadEscapeAfterLongPlainTextNamesTheField) {
    const std::string pre(150, 'p');
    Fixture f;
    EXPECT_EQ(f.run(chat(R"([{"role":"user","content":")" + pre + R"(\x"}])")), Error::INVALID_JSON);
    if (f.msg() != "The request body is not valid JSON.") {
        EXPECT_EQ(f.msg(), "messages[0].content is not a valid JSON string");
    }
    EXPECT_EQ(f.run(chat(R"([{"role":"user","content":")" + pre + R"(\ud800x"}])")), Error::INVALID_JSON);
    EXPECT_EQ(f.msg(), "messages[0].content is not a valid JSON string");
    EXPECT_EQ(f.run(chat(R"([{"role":"user","content":[{"type":"text","text":")" + pre + R"(\udc00"}]}])")), Error::INVALID_JSON);
    EXPECT_EQ(f.msg(), "messages[0].content[0].text is not a valid JSON string");
    EXPECT_EQ(f.run(R"({"model":"m","prompt":")" + pre + R"(\u12"})", Endpoint::COMPLETIONS), Error::INVALID_JSON);
}

TEST(OpenAiText, CopyKernelsMatchTheReference) {
    using namespace tlb::openai::text;
    std::vector<std::pair<const char*, CopyPlainFn>> kernels;
#if defined(__x86_64__)
    kernels.push_back({"sse2", copy_plain_sse2});
    if (__builtin_cpu_supports("avx2")) kernels.push_back({"avx2", copy_plain_avx2});
    if (__builtin_cpu_supports("avx512bw")) kernels.push_back({"avx512", copy_plain_avx512});
#endif
    uint32_t x = 99;
    auto rnd = [&x] { x = x * 1103515245u + 12345u; return x >> 8; };
    std::vector<char> src(400 + 64);
    for (int iter = 0; iter < 3000; ++iter) {
        const size_t n = rnd() % 400;
        for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>('a' + rnd() % 26);
        if (rnd() % 4 != 0 && n > 0) src[rnd() % n] = '\\';
        if (rnd() % 2) src[n + rnd() % 8] = '\\';  // past the end: must not count
        std::vector<uint8_t> want(n + 64, 0), got(n + 64, 0);
        const size_t k = copy_plain_scalar(src.data(), n, want.data());
        for (const auto& [name, fn] : kernels) {
            std::fill(got.begin(), got.end(), 0xee);
            ASSERT_EQ(fn(src.data(), n, got.data()), k) << name << " n=" << n;
            ASSERT_EQ(std::memcmp(got.data(), src.data(), k), 0) << name << " n=" << n;
            for (size_t i = n; i < got.size(); ++i) ASSERT_EQ(got[i], 0xee) << name << " wrote past n=" << n;
        }
    }
}

namespace {
using DecodeKernels = std::vector<std::pair<const char*, tlb::openai::text::DecodeSimpleFn>>;

// The picked kernel and every kernel this CPU can run.
DecodeKernels decode_kernels() {
    using namespace tlb::openai::text;
    DecodeKernels kernels = {{"picked", pick_decode_simple()}};
#if defined(__x86_64__)
    kernels.push_back({"sse2", decode_simple_sse2});
    if (__builtin_cpu_supports("avx2")) kernels.push_back({"avx2", decode_simple_avx2});
    if (__builtin_cpu_supports("avx512bw")) kernels.push_back({"avx512", decode_simple_avx512});
    if (__builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw"))
        kernels.push_back({"vbmi2", decode_simple_vbmi2});
#endif
    return kernels;
}

// Each kernel on src (raw's bytes then padding) gives the reference's result (want/win/wout/wdone)
// and writes nothing past the text.
void expect_decode_kernels(const DecodeKernels& kernels, const std::vector<char>& src, const std::string& raw,
                           const std::vector<uint8_t>& want, size_t win, size_t wout, bool wdone) {
    std::vector<uint8_t> got(raw.size() + 64);
    for (const auto& [name, fn] : kernels) {
        std::fill(got.begin(), got.end(), 0xee);
        size_t in = 0, out = 0;
        ASSERT_EQ(fn(src.data(), raw.size(), got.data(), in, out), wdone) << name << " " << raw;
        ASSERT_EQ(in, win) << name << " " << raw;
        ASSERT_EQ(out, wout) << name << " " << raw;
        ASSERT_EQ(std::memcmp(got.data(), want.data(), out), 0) << name << " " << raw;
        for (size_t i = raw.size(); i < got.size(); ++i) ASSERT_EQ(got[i], 0xee) << name << " wrote past the text";
    }
}
}  // namespace

TEST(OpenAiText, DecodeKernelsMatchTheReference) {
    using namespace tlb::openai::text;
    const auto kernels = decode_kernels();
    const char* pieces[] = {"\\n", "\\t", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r", "\\u00e9", "\\x", "ab", "xyz", "Gr\xc3\xbc\xc3\x9f" "e", " ",
                            // \u: one, two and three UTF-8 bytes, their edges, upper-case digits, NUL; runs of
                            // them (clients that escape all non-ASCII); surrogates, short and bad ones stop
                            "\\u0041", "\\u007F", "\\u0080", "\\u07ff", "\\u0800", "\\u0416\\u0435\\u043d", "\\u4E2D\\u6587",
                            "\\uFFFF", "\\uD7FF", "\\uE000", "\\u0000", "\\uD83D\\uDE00", "\\uDC00", "\\u12", "\\u12G4", "\\u"};
    uint32_t x = 7;
    auto rnd = [&x] { x = x * 1103515245u + 12345u; return x >> 8; };
    for (int iter = 0; iter < 5000; ++iter) {
        std::string raw;
        const size_t parts = rnd() % 40;
        for (size_t p = 0; p < parts; ++p) {
            const size_t pick = rnd() % 100;
            if (pick < 60) raw += std::string(rnd() % 90, static_cast<char>('a' + rnd() % 26));
            else raw += pieces[rnd() % (sizeof pieces / sizeof pieces[0])];
        }
        std::vector<char> src(raw.begin(), raw.end());
        src.resize(raw.size() + 64, '"');
        size_t win = 0, wout = 0;
        std::vector<uint8_t> want(raw.size() + 64, 0xee);
        const bool wdone = decode_simple_scalar(src.data(), raw.size(), want.data(), win, wout);
        // The reference itself: simple escapes and \u escapes outside the surrogates decoded,
        // stopped at the first surrogate, incomplete or invalid one.
        size_t stop = raw.size();
        auto hexd = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
        for (size_t i = 0; i + 1 < raw.size(); ++i) {
            if (raw[i] != '\\') continue;
            if (SIMPLE_ESCAPE.t[static_cast<uint8_t>(raw[i + 1])] != 0) { ++i; continue; }
            if (raw[i + 1] == 'u' && i + 6 <= raw.size() && hexd(raw[i + 2]) && hexd(raw[i + 3]) && hexd(raw[i + 4]) &&
                hexd(raw[i + 5])) {
                const unsigned long cp = std::stoul(raw.substr(i + 2, 4), nullptr, 16);
                if (cp < 0xD800 || cp >= 0xE000) { i += 5; continue; }
            }
            stop = i;
            break;
        }
        ASSERT_EQ(win, stop) << raw;
        ASSERT_EQ(wdone, stop == raw.size()) << raw;
        // What was decoded is what simdjson decodes (the whole string, when it was all decoded).
        if (wdone) {
            simdjson::dom::parser dp;
            std::string_view sv;
            ASSERT_EQ(dp.parse("\"" + raw + "\"").get(sv), simdjson::SUCCESS) << raw;
            ASSERT_EQ(std::string_view(reinterpret_cast<const char*>(want.data()), wout), sv) << raw;
        }
        ASSERT_NO_FATAL_FAILURE(expect_decode_kernels(kernels, src, raw, want, win, wout, wdone));
    }
}

TEST(OpenAiText, DecodeKernelsOnEveryShortEscapePattern) {
    // Every string of up to 6 bytes over {a, \\, n, u, ", D} (runs of backslashes, escaped quotes,
    // \u escapes: \uaaaa decodes, \uDDDD is a surrogate), behind a plain prefix that puts it on
    // either side of a 64-byte block edge; strings ending in an unpaired backslash cannot occur in
    // JSON and are skipped.
    using namespace tlb::openai::text;
    const auto kernels = decode_kernels();
    const char alpha[] = {'a', '\\', 'n', 'u', '"', 'D'};
    for (size_t prefix : {size_t{0}, size_t{1}, size_t{59}, size_t{62}, size_t{63}, size_t{64}, size_t{126}}) {
        for (size_t len = 1; len <= 6; ++len) {
            size_t total = 1;
            for (size_t k = 0; k < len; ++k) total *= sizeof alpha;
            for (size_t code = 0; code < total; ++code) {
                std::string raw(prefix, 'p');
                for (size_t k = 0, c = code; k < len; ++k, c /= sizeof alpha) raw += alpha[c % sizeof alpha];
                size_t run = 0;
                while (run < raw.size() && raw[raw.size() - 1 - run] == '\\') ++run;
                if (run % 2) continue;
                std::vector<char> src(raw.begin(), raw.end());
                src.resize(raw.size() + 64, '"');
                std::vector<uint8_t> want(raw.size() + 64, 0xee);
                size_t win = 0, wout = 0;
                const bool wdone = decode_simple_scalar(src.data(), raw.size(), want.data(), win, wout);
                ASSERT_NO_FATAL_FAILURE(expect_decode_kernels(kernels, src, raw, want, win, wout, wdone));
            }
        }
    }
}

TEST(OpenAiExtract, SizeLimitsAndScratch) {
    Extractor ex;
    ASSERT_TRUE(ex.init(150));
    std::vector<uint8_t> scratch(1000);
    Request req;
    std::string big = chat(R"([{"role":"user","content":")" + std::string(200, 'a') + "\"}]");
    EXPECT_EQ(ex.extract(Endpoint::CHAT_COMPLETIONS, reinterpret_cast<uint8_t*>(big.data()), big.size(),
                         big.size(), scratch.data(), scratch.size(), req),
              Error::BODY_TOO_LARGE);
    EXPECT_EQ(error_status(Error::BODY_TOO_LARGE), 413);
    // A scratch buffer smaller than documented is an error, never an overflow.
    std::string ok = chat(R"([{"role":"user","content":")" + std::string(40, 'a') + "\"}]");
    std::vector<uint8_t> small(30, 0xee);
    std::vector<uint8_t> guard(64, 0xee);
    EXPECT_EQ(ex.extract(Endpoint::CHAT_COMPLETIONS, reinterpret_cast<uint8_t*>(ok.data()), ok.size(),
                         ok.size(), small.data(), 20, req),
              Error::SCRATCH_FULL);
    for (size_t i = 20; i < small.size(); ++i) EXPECT_EQ(small[i], 0xee);
    Extractor uninit;
    EXPECT_EQ(uninit.extract(Endpoint::CHAT_COMPLETIONS, reinterpret_cast<uint8_t*>(ok.data()), ok.size(),
                             ok.size(), scratch.data(), scratch.size(), req),
              Error::NOT_INITIALISED);
}

TEST(OpenAiExtract, PaddingIsBorrowedAndRestoredAndDoesNotChangeTheVerdict) {
    // Found by fuzzing: with On-Demand, bytes after a malformed body could flip accept/refuse.
    // The extractor now parses with space padding whatever follows the body in the caller's buffer.
    std::string body = R"({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": ","t1y "pe": "function"}]}], "tools": [{"type":"properties": function": {"name": "f", "d}}]})";
    Fixture f;
    std::vector<Error> verdicts;
    for (uint8_t fill : {uint8_t(' '), uint8_t('}'), uint8_t(']'), uint8_t('"'), uint8_t('0'), uint8_t(0), uint8_t('e')}) {
        std::vector<uint8_t> buf(body.size() + PADDING, fill);
        std::memcpy(buf.data(), body.data(), body.size());
        for (auto ep : {Endpoint::CHAT_COMPLETIONS, Endpoint::COMPLETIONS}) {
            verdicts.push_back(f.ex.extract(ep, buf.data(), body.size(), buf.size(), f.scratch.data(), f.scratch.size(), f.req));
            for (size_t i = body.size(); i < buf.size(); ++i) ASSERT_EQ(buf[i], fill) << "padding not restored";
        }
    }
    for (size_t i = 2; i < verdicts.size(); ++i) EXPECT_EQ(verdicts[i], verdicts[i % 2]) << i;
}

TEST(OpenAiExtract, EndpointForPath) {
    Endpoint ep = Endpoint::COMPLETIONS;
    EXPECT_TRUE(endpoint_for_path("/v1/chat/completions", ep));
    EXPECT_EQ(ep, Endpoint::CHAT_COMPLETIONS);
    EXPECT_TRUE(endpoint_for_path("/v1/completions", ep));
    EXPECT_EQ(ep, Endpoint::COMPLETIONS);
    EXPECT_FALSE(endpoint_for_path("/v1/models", ep));
    EXPECT_FALSE(endpoint_for_path("/v1/chat/completions/", ep));
}

// ---- model rewrite --------------------------------------------------------------------------

TEST(OpenAiRewrite, ReplacesOnlyTheModelValue) {
    Fixture f;
    std::string body = R"({"messages":[{"role":"user","content":"model: \"auto\""}], "model" : "auto" , "stream":true})";
    ASSERT_EQ(f.run(body), Error::NONE);
    std::vector<uint8_t> out(body.size() + 64);
    int64_t n = rewrite_model(reinterpret_cast<const uint8_t*>(body.data()), body.size(), f.req, "llama-3-70b",
                              out.data(), out.size());
    ASSERT_GT(n, 0);
    std::string nb(reinterpret_cast<char*>(out.data()), static_cast<size_t>(n));
    EXPECT_EQ(nb, R"({"messages":[{"role":"user","content":"model: \"auto\""}], "model" : "llama-3-70b" , "stream":true})");
    ASSERT_EQ(f.run(nb), Error::NONE);
    EXPECT_EQ(f.req.model, "llama-3-70b");
    EXPECT_TRUE(f.req.stream);
    // Names that need escaping stay valid JSON.
    ASSERT_EQ(f.run(body), Error::NONE);
    n = rewrite_model(reinterpret_cast<const uint8_t*>(body.data()), body.size(), f.req, "we\"ird\\\x01", out.data(), out.size());
    ASSERT_GT(n, 0);
    nb.assign(reinterpret_cast<char*>(out.data()), static_cast<size_t>(n));
    ASSERT_EQ(f.run(nb), Error::NONE) << nb;
    EXPECT_EQ(f.req.model, "we\"ird\\\x01");
    // Too small an output buffer.
    ASSERT_EQ(f.run(body), Error::NONE);
    EXPECT_EQ(rewrite_model(reinterpret_cast<const uint8_t*>(body.data()), body.size(), f.req, "llama-3-70b",
                            out.data(), body.size()),
              -1);
}

TEST(OpenAiRewrite, EscapedOriginalModel) {
    Fixture f;
    std::string body = R"({"model":"au\u0074o","messages":[{"role":"user","content":"x"}]})";
    ASSERT_EQ(f.run(body), Error::NONE);
    EXPECT_EQ(f.req.model, "auto");
    std::vector<uint8_t> out(256);
    int64_t n = rewrite_model(reinterpret_cast<const uint8_t*>(body.data()), body.size(), f.req, "m", out.data(), out.size());
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(out.data()), static_cast<size_t>(n)),
              R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
}

// ---- usage ----------------------------------------------------------------------------------

namespace {
const std::string COMPLETION_BODY =
    R"({"id":"cmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",)"
    R"("content":"the \"usage\": {\"prompt_tokens\": 1} text","usage":{"prompt_tokens":999}}}],)"
    R"("usage":{"prompt_tokens":42,"completion_tokens":7,"total_tokens":49,"prompt_tokens_details":{"cached_tokens":32}}})";
}

TEST(OpenAiUsage, ParseWholeBody) {
    UsageParser up;
    ASSERT_TRUE(up.init(1 << 16));
    Usage u;
    ASSERT_TRUE(up.parse(reinterpret_cast<const uint8_t*>(COMPLETION_BODY.data()), COMPLETION_BODY.size(),
                         COMPLETION_BODY.size(), u));
    EXPECT_EQ(u.prompt_tokens, 42);
    EXPECT_EQ(u.completion_tokens, 7);
    EXPECT_EQ(u.total_tokens, 49);
    EXPECT_EQ(u.cached_tokens, 32);
    std::string nul = R"({"choices":[],"usage":null})";
    EXPECT_FALSE(up.parse(reinterpret_cast<const uint8_t*>(nul.data()), nul.size(), nul.size(), u));
    std::string bad = R"({"usage":{"prompt_tokens":"x"}})";
    EXPECT_FALSE(up.parse(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), bad.size(), u));
    EXPECT_TRUE(is_done_marker(reinterpret_cast<const uint8_t*>(" [DONE]\n"), 8));
    EXPECT_FALSE(is_done_marker(reinterpret_cast<const uint8_t*>("[DONE]x"), 7));
}

TEST(OpenAiUsage, ScannerFindsTopLevelUsageAtEverySplit) {
    UsageParser up;
    ASSERT_TRUE(up.init(1 << 16));
    const std::string& b = COMPLETION_BODY;
    for (size_t k = 0; k <= b.size(); ++k) {
        UsageScanner s;
        s.reset();
        s.feed(reinterpret_cast<const uint8_t*>(b.data()), k);
        s.feed(reinterpret_cast<const uint8_t*>(b.data()) + k, b.size() - k);
        ASSERT_TRUE(s.captured()) << k;
        Usage u;
        ASSERT_TRUE(up.parse(s.object(), s.object_len(), s.object_capacity(), u, true)) << k;
        ASSERT_EQ(u.prompt_tokens, 42) << k;
        ASSERT_EQ(u.cached_tokens, 32) << k;
    }
    UsageScanner s;
    s.reset();
    std::string none = R"({"choices":[{"usage":{"prompt_tokens":1}}],"x":"\"usage\":{}"})";
    s.feed(reinterpret_cast<const uint8_t*>(none.data()), none.size());
    EXPECT_FALSE(s.captured());
}

TEST(OpenAiUsage, ThroughResponseParserNonStreamAndSse) {
    UsageParser up;
    ASSERT_TRUE(up.init(1 << 16));
    // Non-stream, chunked.
    std::string r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (size_t i = 0; i < COMPLETION_BODY.size(); i += 50) {
        size_t n = std::min<size_t>(50, COMPLETION_BODY.size() - i);
        char hex[16];
        snprintf(hex, sizeof hex, "%zx", n);
        r += std::string(hex) + "\r\n" + COMPLETION_BODY.substr(i, n) + "\r\n";
    }
    r += "0\r\n\r\n";
    // SSE with usage in the last chunk before [DONE], and "usage":null before it.
    std::string sse = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                      "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"
                      "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\"\"}}]}\n\n"
                      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2,\"total_tokens\":13}}\n\n"
                      "data: [DONE]\n\n";
    for (int which = 0; which < 2; ++which) {
        const std::string& resp = which == 0 ? r : sse;
        for (size_t k = 1; k < resp.size(); ++k) {
            tlb::http::ResponseParser rp;
            UsageSink sink(&up);
            rp.reset();
            sink.reset();
            rp.set_sink(&sink);
            int64_t rc = rp.feed(reinterpret_cast<const uint8_t*>(resp.data()), k);
            ASSERT_GE(rc, 0);
            if (rc == 0) rc = rp.feed(reinterpret_cast<const uint8_t*>(resp.data()) + k, resp.size() - k);
            if (rc == 0 && which == 1) rc = rp.finish();
            ASSERT_GT(rc, 0) << k;
            sink.finish();
            if (which == 0) {
                ASSERT_EQ(sink.usage().prompt_tokens, 42) << k;
                ASSERT_EQ(sink.usage().completion_tokens, 7) << k;
            } else {
                ASSERT_EQ(sink.usage().prompt_tokens, 11) << k;
                ASSERT_EQ(sink.usage().total_tokens, 13) << k;
                ASSERT_TRUE(sink.done()) << k;
                ASSERT_EQ(sink.events(), 4u) << k;
            }
        }
    }
}

// ---- no allocation on the per-request path --------------------------------------------------

TEST(PerRequestPath, NoHeapAllocation) {
    Fixture f;  // allocation happens here, at "start-up"
    UsageParser up;
    ASSERT_TRUE(up.init(1 << 16));
    tlb::http::RequestParser hp;
    tlb::http::ResponseParser rp;
    UsageSink sink(&up);
    std::vector<uint8_t> out(MAX_BODY);

    std::string body = chat(R"([{"role":"system","content":"You are \u00e9 helpful."},{"role":"user","content":[{"type":"text","text":"Hi \ud83d\ude00"}]}])",
                            R"(,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"stream":true,"max_tokens":9)");
    std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n" + [&] {
                          char hex[16];
                          snprintf(hex, sizeof hex, "%zx", body.size());
                          return std::string(hex) + "\r\n" + body + "\r\n0\r\n\r\n";
                      }();
    auto chunk = [](const std::string& s) {
        char hex[16];
        snprintf(hex, sizeof hex, "%zx", s.size());
        return std::string(hex) + "\r\n" + s + "\r\n";
    };
    std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
                       chunk("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n") +
                       chunk("data: [DONE]\n\n") + "0\r\n\r\n";
    std::vector<uint8_t> buf(req.size() + PADDING);
    uint8_t bad_body[] = "{\"model\":1}";
    uint64_t before = g_allocs.load();
    for (int round = 0; round < 3; ++round) {
        std::memcpy(buf.data(), req.data(), req.size());
        hp.reset();
        int64_t rc = hp.parse(buf.data(), req.size() / 2);
        ASSERT_EQ(rc, 0);
        rc = hp.parse(buf.data(), req.size());
        ASSERT_EQ(rc, static_cast<int64_t>(req.size()));
        ASSERT_EQ(f.ex.extract(Endpoint::CHAT_COMPLETIONS, hp.body_data(buf.data()), hp.body_length(), buf.size() - hp.headers_end(),
                               f.scratch.data(), f.scratch.size(), f.req),
                  Error::NONE) << f.msg();
        ASSERT_EQ(f.req.max_tokens, 9);
        ASSERT_GT(rewrite_model(hp.body_data(buf.data()), hp.body_length(), f.req, "other", out.data(), out.size()), 0);
        rp.reset();
        sink.reset();
        rp.set_sink(&sink);
        ASSERT_GT(rp.feed(reinterpret_cast<const uint8_t*>(resp.data()), resp.size()), 0);
        sink.finish();
        ASSERT_EQ(sink.usage().completion_tokens, 2);
        // Error paths allocate nothing either.
        ASSERT_NE(f.ex.extract(Endpoint::CHAT_COMPLETIONS, bad_body, 11, 11,
                               f.scratch.data(), f.scratch.size(), f.req),
                  Error::NONE);
    }
    EXPECT_EQ(g_allocs.load(), before) << "heap allocations on the per-request path";
}
