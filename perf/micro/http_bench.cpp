// lib/http micro benchmarks: request framing of 1 KB / 4 KB / 64 KB chat requests (Content-Length
// on the fast path and, with the fast path off, through http-parser; chunked), side by side with
// bare http-parser (no strictness checks) and with a lower bound (find the end of the header
// block, read Content-Length), plus response framing of an SSE stream. Each benchmark checks its result before timing. Report medians:
//   build/perf/micro/http_bench --benchmark_repetitions=9 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <http_parser.h>

#include "http/request.hpp"
#include "http/response.hpp"

using namespace tlb::http;

namespace {

// A chat body of about `target` bytes: a system prompt and alternating turns of English text
// with some escapes and non-ASCII, like SDK traffic.
std::string chat_body(size_t target) {
    static const char* const WORDS[] = {"the", "model", "routes", "tokens", "quickly", "across", "GPU",
                                        "servers", "caf\\u00e9", "\\\"quoted\\\"", "line\\nbreak", "über", "数据"};
    std::string b = R"({"model":"llama-3-8b-instruct","stream":true,"max_tokens":256,"messages":[)"
                     R"({"role":"system","content":"You are a helpful assistant."})";
    unsigned seed = 1;
    int turn = 0;
    while (b.size() + 64 < target) {
        b += turn % 2 ? R"(,{"role":"assistant","content":")" : R"(,{"role":"user","content":")";
        size_t stop = std::min(target - 40, b.size() + 400);
        while (b.size() < stop) {
            seed = seed * 1103515245 + 12345;
            b += WORDS[(seed >> 16) % 13];
            b += ' ';
        }
        b += "\"}";
        ++turn;
    }
    b += "]}";
    return b;
}

std::string request_cl(const std::string& body) {
    return "POST /v1/chat/completions HTTP/1.1\r\nHost: inference.example.com\r\n"
           "User-Agent: OpenAI/Python 1.40.0\r\nAccept: application/json\r\nContent-Type: application/json\r\n"
           "Authorization: Bearer sk-0123456789abcdef0123456789abcdef\r\nX-Stainless-Lang: python\r\n"
           "Connection: keep-alive\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string request_chunked(const std::string& body, size_t chunk) {
    std::string r = "POST /v1/chat/completions HTTP/1.1\r\nHost: inference.example.com\r\n"
                    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    char hex[32];
    for (size_t i = 0; i < body.size(); i += chunk) {
        size_t n = std::min(chunk, body.size() - i);
        snprintf(hex, sizeof hex, "%zx\r\n", n);
        r += hex + body.substr(i, n) + "\r\n";
    }
    return r + "0\r\n\r\n";
}

void check(bool ok, const char* what) {
    if (!ok) {
        fprintf(stderr, "benchmark self-check failed: %s\n", what);
        std::abort();
    }
}

void BM_RequestContentLength(benchmark::State& st) {
    std::string body = chat_body(static_cast<size_t>(st.range(0)));
    std::string req = request_cl(body);
    std::vector<uint8_t> buf(req.begin(), req.end());
    RequestParser p;
    p.set_limits({16384, 64, 8u << 20});
    check(p.parse(buf.data(), buf.size()) == static_cast<int64_t>(buf.size()) && p.fast_framed(), "CL request complete");
    check(p.body_length() == body.size() && std::memcmp(p.body_data(buf.data()), body.data(), body.size()) == 0, "CL body");
    for (auto _ : st) {
        p.reset();
        int64_t rc = p.parse(buf.data(), buf.size());
        benchmark::DoNotOptimize(rc);
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * buf.size()));
}

// The same, with the fast path switched off: every request goes through http-parser (what the
// fast path replaced; both must give the same result, see tests/unit/http_test.cpp).
void BM_RequestContentLengthViaHttpParser(benchmark::State& st) {
    std::string body = chat_body(static_cast<size_t>(st.range(0)));
    std::string req = request_cl(body);
    std::vector<uint8_t> buf(req.begin(), req.end());
    RequestParser p;
    p.set_limits({16384, 64, 8u << 20});
    p.set_fast_path(false);
    check(p.parse(buf.data(), buf.size()) == static_cast<int64_t>(buf.size()) && !p.fast_framed(), "CL request via http-parser");
    check(p.body_length() == body.size(), "CL body via http-parser");
    for (auto _ : st) {
        p.reset();
        int64_t rc = p.parse(buf.data(), buf.size());
        benchmark::DoNotOptimize(rc);
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * buf.size()));
}

// The same request arriving in 1448-byte TCP segments (parse called once per segment).
void BM_RequestSegmented(benchmark::State& st) {
    std::string body = chat_body(static_cast<size_t>(st.range(0)));
    std::string req = request_cl(body);
    std::vector<uint8_t> buf(req.begin(), req.end());
    RequestParser p;
    auto run = [&] {
        p.reset();
        int64_t rc = 0;
        for (size_t len = std::min<size_t>(1448, buf.size());; len = std::min(buf.size(), len + 1448)) {
            rc = p.parse(buf.data(), len);
            if (rc != 0 || len == buf.size()) break;
        }
        return rc;
    };
    check(run() == static_cast<int64_t>(buf.size()) && p.body_length() == body.size(), "segmented request");
    for (auto _ : st) benchmark::DoNotOptimize(run());
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * buf.size()));
}

void BM_RequestChunked(benchmark::State& st) {
    std::string body = chat_body(static_cast<size_t>(st.range(0)));
    std::string req = request_chunked(body, 1000);
    std::vector<uint8_t> orig(req.begin(), req.end()), buf(orig.size()), out(body.size() + 64);
    RequestParser p;
    p.set_body_buffer(out.data(), out.size());  // de-chunk into a separate buffer: input stays intact
    buf = orig;
    check(p.parse(buf.data(), buf.size()) == static_cast<int64_t>(buf.size()), "chunked complete");
    check(p.body_length() == body.size() && std::memcmp(p.body_data(buf.data()), body.data(), body.size()) == 0, "chunked body");
    for (auto _ : st) {
        p.reset();
        int64_t rc = p.parse(buf.data(), buf.size());
        benchmark::DoNotOptimize(rc);
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * buf.size()));
}

// Bare http-parser over the same bytes with no callbacks: the library's own cost.
void BM_BareHttpParser(benchmark::State& st) {
    std::string req = request_cl(chat_body(static_cast<size_t>(st.range(0))));
    http_parser_settings s{};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    check(http_parser_execute(&p, &s, req.data(), req.size()) == req.size() && p.http_errno == HPE_OK, "bare parse");
    for (auto _ : st) {
        http_parser_init(&p, HTTP_REQUEST);
        size_t n = http_parser_execute(&p, &s, req.data(), req.size());
        benchmark::DoNotOptimize(n);
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * req.size()));
}

// Lower bound for any framing: find CRLFCRLF and read Content-Length, nothing validated.
void BM_LowerBoundFindHeaderEnd(benchmark::State& st) {
    std::string req = request_cl(chat_body(static_cast<size_t>(st.range(0))));
    auto run = [&] {
        const char* b = req.data();
        const void* e = memmem(b, req.size(), "\r\n\r\n", 4);
        const char* cl = static_cast<const char*>(memmem(b, req.size(), "Content-Length: ", 16));
        return static_cast<size_t>(static_cast<const char*>(e) - b) + 4 + strtoull(cl + 16, nullptr, 10);
    };
    check(run() == req.size(), "lower bound");
    for (auto _ : st) benchmark::DoNotOptimize(run());
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * req.size()));
}

struct CountSink : ResponseSink {
    uint64_t bytes = 0;
    uint32_t events = 0;
    void on_event_data(const uint8_t*, size_t n) noexcept override { bytes += n; }
    void on_event_end(bool) noexcept override { ++events; }
};

// A streamed chat completion: `range` SSE events in chunked encoding, fed in 1448-byte segments.
void BM_ResponseSse(benchmark::State& st) {
    const int events = static_cast<int>(st.range(0));
    std::string body;
    for (int i = 0; i < events; ++i)
        body += R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama-3-8b",)"
                R"("choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]})" "\n\n";
    body += "data: [DONE]\n\n";
    std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    // One chunk per event, as vLLM/uvicorn write them.
    size_t pos = 0;
    char hex[32];
    while (pos < body.size()) {
        size_t end = body.find("\n\n", pos) + 2;
        snprintf(hex, sizeof hex, "%zx\r\n", end - pos);
        resp += hex + body.substr(pos, end - pos) + "\r\n";
        pos = end;
    }
    resp += "0\r\n\r\n";
    ResponseParser p;
    CountSink sink;
    auto run = [&] {
        p.reset();
        sink = CountSink{};
        p.set_sink(&sink);
        int64_t rc = 0;
        for (size_t off = 0; off < resp.size() && rc == 0; off += 1448)
            rc = p.feed(reinterpret_cast<const uint8_t*>(resp.data()) + off, std::min<size_t>(1448, resp.size() - off));
        return rc;
    };
    check(run() > 0 && sink.events == static_cast<uint32_t>(events + 1) && p.done_seen(), "sse response");
    for (auto _ : st) benchmark::DoNotOptimize(run());
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * resp.size()));
}

}  // namespace

BENCHMARK(BM_RequestContentLength)->Arg(1024)->Arg(4096)->Arg(65536);
BENCHMARK(BM_RequestContentLengthViaHttpParser)->Arg(1024)->Arg(4096)->Arg(65536);
BENCHMARK(BM_RequestSegmented)->Arg(1024)->Arg(4096)->Arg(65536);
BENCHMARK(BM_RequestChunked)->Arg(1024)->Arg(4096)->Arg(65536);
BENCHMARK(BM_BareHttpParser)->Arg(1024)->Arg(4096)->Arg(65536);
BENCHMARK(BM_LowerBoundFindHeaderEnd)->Arg(1024)->Arg(4096)->Arg(65536);
BENCHMARK(BM_ResponseSse)->Arg(16)->Arg(256);

BENCHMARK_MAIN();
