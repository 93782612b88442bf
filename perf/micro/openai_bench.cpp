// lib/openai micro benchmarks: request extraction on 1 KB / 4 KB / 64 KB chat bodies (in place
// with padding, and through the padded copy), model rewrite, and usage extraction from a
// streamed response. Each benchmark checks its result against a reference before timing.
//   build/perf/micro/openai_bench --benchmark_repetitions=9 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "http/response.hpp"
#include "openai/request.hpp"
#include "openai/usage.hpp"

using namespace tlb::openai;

namespace {

struct Body {
    std::string json;
    std::string expected_text;  // decoded prompt text, pieces joined by '\n'
};

// Chat body of about `target` bytes with escapes and non-ASCII text; also returns the text the
// extractor must produce (the reference the benchmark checks before timing).
Body chat_body(size_t target) {
    static const char* const WORDS[] = {"the", "model", "routes", "tokens", "quickly", "across", "GPU",
                                        "servers", "caf\\u00e9", "\\\"quoted\\\"", "line\\nbreak", "über", "数据"};
    static const char* const DECODED[] = {"the", "model", "routes", "tokens", "quickly", "across", "GPU",
                                          "servers", "caf\xc3\xa9", "\"quoted\"", "line\nbreak", "über", "数据"};
    Body b;
    b.json = R"({"model":"llama-3-8b-instruct","stream":true,"stream_options":{"include_usage":true},"max_tokens":256,"temperature":0.7,"messages":[)"
             R"({"role":"system","content":"You are a helpful assistant."})";
    b.expected_text = "You are a helpful assistant.";
    unsigned seed = 1;
    int turn = 0;
    while (b.json.size() + 64 < target) {
        b.json += turn % 2 ? R"(,{"role":"assistant","content":")" : R"(,{"role":"user","content":")";
        b.expected_text += '\n';
        size_t stop = std::min(target - 40, b.json.size() + 400);
        while (b.json.size() < stop) {
            seed = seed * 1103515245 + 12345;
            unsigned w = (seed >> 16) % 13;
            b.json += WORDS[w];
            b.json += ' ';
            b.expected_text += DECODED[w];
            b.expected_text += ' ';
        }
        b.json += "\"}";
        ++turn;
    }
    b.json += "]}";
    return b;
}

void check(bool ok, const char* what) {
    if (!ok) {
        fprintf(stderr, "benchmark self-check failed: %s\n", what);
        std::abort();
    }
}

struct Setup {
    Body body;
    std::vector<uint8_t> buf;  // body + padding, as the data plane's request buffer has
    std::vector<uint8_t> scratch;
    Extractor ex;
    Request req;
    explicit Setup(size_t size) : body(chat_body(size)) {
        buf.assign(body.json.size() + PADDING, ' ');
        std::memcpy(buf.data(), body.json.data(), body.json.size());
        scratch.resize(1 << 17);
        check(ex.init(1 << 17), "init");
    }
    void verify(size_t capacity) {
        Error e = ex.extract(Endpoint::CHAT_COMPLETIONS, buf.data(), body.json.size(), capacity, scratch.data(),
                             scratch.size(), req);
        check(e == Error::NONE, ex.message());
        check(req.model == "llama-3-8b-instruct" && req.max_tokens == 256 && req.stream && req.include_usage, "fields");
        check(std::string(reinterpret_cast<const char*>(req.text), req.text_len) == body.expected_text, "decoded text");
    }
};

void BM_ExtractInPlace(benchmark::State& st) {
    Setup s(static_cast<size_t>(st.range(0)));
    s.verify(s.buf.size());
    for (auto _ : st) {
        Error e = s.ex.extract(Endpoint::CHAT_COMPLETIONS, s.buf.data(), s.body.json.size(), s.buf.size(),
                               s.scratch.data(), s.scratch.size(), s.req);
        benchmark::DoNotOptimize(e);
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * s.body.json.size()));
}

// Caller without padding room: one copy into the extractor's padded buffer first.
void BM_ExtractCopy(benchmark::State& st) {
    Setup s(static_cast<size_t>(st.range(0)));
    s.verify(s.body.json.size());
    for (auto _ : st) {
        Error e = s.ex.extract(Endpoint::CHAT_COMPLETIONS, s.buf.data(), s.body.json.size(), s.body.json.size(),
                               s.scratch.data(), s.scratch.size(), s.req);
        benchmark::DoNotOptimize(e);
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * s.body.json.size()));
}

void BM_RewriteModel(benchmark::State& st) {
    Setup s(static_cast<size_t>(st.range(0)));
    s.verify(s.buf.size());
    std::vector<uint8_t> out(s.body.json.size() + 64);
    int64_t n = rewrite_model(s.buf.data(), s.body.json.size(), s.req, "llama-3-70b-instruct", out.data(), out.size());
    check(n == static_cast<int64_t>(s.body.json.size() + 1), "rewrite length");
    check(std::memcmp(out.data(), R"({"model":"llama-3-70b-instruct","stream")", 40) == 0, "rewrite content");
    for (auto _ : st) {
        n = rewrite_model(s.buf.data(), s.body.json.size(), s.req, "llama-3-70b-instruct", out.data(), out.size());
        benchmark::DoNotOptimize(n);
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * s.body.json.size()));
}

// Usage from a streamed response: `range` content events, then the usage event and [DONE],
// through the http response parser in 1448-byte segments.
void BM_StreamUsage(benchmark::State& st) {
    const int events = static_cast<int>(st.range(0));
    std::string body;
    for (int i = 0; i < events; ++i)
        body += R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama-3-8b",)"
                R"("choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}],"usage":null})" "\n\n";
    body += R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],)"
            R"("usage":{"prompt_tokens":812,"completion_tokens":256,"total_tokens":1068}})" "\n\ndata: [DONE]\n\n";
    std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + body;
    UsageParser up;
    check(up.init(1 << 16), "init");
    tlb::http::ResponseParser rp;
    UsageSink sink(&up);
    auto run = [&] {
        rp.reset();
        sink.reset();
        rp.set_sink(&sink);
        for (size_t off = 0; off < resp.size(); off += 1448)
            rp.feed(reinterpret_cast<const uint8_t*>(resp.data()) + off, std::min<size_t>(1448, resp.size() - off));
        rp.finish();
        sink.finish();
        return sink.usage().total_tokens;
    };
    check(run() == 1068 && sink.done() && sink.usage().prompt_tokens == 812, "stream usage");
    for (auto _ : st) benchmark::DoNotOptimize(run());
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * resp.size()));
}

}  // namespace

BENCHMARK(BM_ExtractInPlace)->Arg(1024)->Arg(4096)->Arg(65536);
BENCHMARK(BM_ExtractCopy)->Arg(1024)->Arg(4096)->Arg(65536);
BENCHMARK(BM_RewriteModel)->Arg(4096);
BENCHMARK(BM_StreamUsage)->Arg(16)->Arg(256);

BENCHMARK_MAIN();
