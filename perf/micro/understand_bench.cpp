// The whole understand step (framing + endpoint + simdjson extraction + token estimate + Hyperscan
// tags + prefix fingerprint) on realistic chat requests of about 1 KB, 4 KB and 64 KB, plus each
// stage alone on the 4 KB request so the total can be attributed.
// Acceptance (issue 3): 4 KB body <= 5 us median on one core.
//   build/perf/micro/understand_bench --benchmark_repetitions=9 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "classify/classify.hpp"
#include "http/request.hpp"
#include "openai/request.hpp"
#include "tokens/tokens.hpp"
#include "understand/understand.hpp"

using namespace tlb;

namespace {

// Content of a typical assistant conversation: prose, a question with a code block, an answer with
// numbers, a bit of German and Russian. Deterministic, so runs are comparable.
const char* PROSE[] = {
    "The quarterly report shows that revenue grew by 12 percent while costs stayed flat, which means "
    "the team can finally hire the two engineers it has been asking for since spring.",
    "Could you summarise the main arguments of the article in three bullet points and suggest a title "
    "that would work for a general audience?",
    "In the meantime, please double-check the delivery dates with the supplier; last time the shipment "
    "arrived a week late and nobody noticed until the customer called.",
    "Die Besprechung wurde auf Donnerstag verschoben, weil der Projektleiter noch auf die Zahlen wartet.",
    "El informe final estará listo la próxima semana, después de revisar todos los comentarios.",
    "Спасибо за подробный ответ, теперь всё стало намного понятнее.",
    "We measured the latency at the 99th percentile over a full day of traffic, and the tail is "
    "dominated by a handful of very long prompts rather than by queueing.",
    "What are the trade-offs between a write-ahead log and copy-on-write pages for a small embedded "
    "database that must survive power loss?",
};
const char* CODE =
    "```python\\ndef moving_average(values, window):\\n    if window <= 0:\\n        raise "
    "ValueError(\\\"window must be positive\\\")\\n    out = []\\n    total = 0.0\\n    for i, v in "
    "enumerate(values):\\n        total += v\\n        if i >= window:\\n            total -= values[i - "
    "window]\\n        out.append(total / min(i + 1, window))\\n    return out\\n```";
const char* SYSTEM =
    "You are a helpful assistant for an engineering team. Answer precisely, cite assumptions, and "
    "format code in fenced blocks. Keep answers short unless asked for detail.";

// A chat body of about `target` bytes: system prompt, then alternating user/assistant turns.
std::string chat_body(size_t target) {
    std::string b = "{\"model\":\"llama-3.1-8b-instruct\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                    "\"max_tokens\":512,\"temperature\":0.7,\"messages\":[{\"role\":\"system\",\"content\":\"";
    b += SYSTEM;
    b += "\"}";
    uint32_t x = 12345;
    int turn = 0;
    while (b.size() + 200 < target) {
        const bool user = turn % 2 == 0;
        std::string content;
        const size_t want = 200 + (x % 500);
        while (content.size() < want) {
            x = x * 1103515245u + 12345u;
            if (!content.empty()) content += ' ';
            content += PROSE[(x >> 16) % (sizeof(PROSE) / sizeof(PROSE[0]))];
        }
        if (turn == 2) content += "\\nHere is my code:\\n" + std::string(CODE);
        if (b.size() + content.size() + 64 > target) content.resize(target > b.size() + 64 ? target - b.size() - 64 : 0);
        while (!content.empty() && (static_cast<unsigned char>(content.back()) & 0xC0) == 0x80) content.pop_back();
        while (!content.empty() && (static_cast<unsigned char>(content.back()) & 0x80)) content.pop_back();
        while (!content.empty() && content.back() == '\\') content.pop_back();
        b += ",{\"role\":\"";
        b += user ? "user" : "assistant";
        b += "\",\"content\":\"" + content + "\"}";
        ++turn;
    }
    b += "]}";
    return b;
}

std::string http_request(const std::string& body, const char* path = "/v1/chat/completions") {
    return std::string("POST ") + path + " HTTP/1.1\r\nHost: lb.example\r\nUser-Agent: OpenAI/Python 1.40.0\r\n"
           "Authorization: Bearer sk-test\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// conf/<sub>: relative to the working directory (repo root), else relative to the binary
// (<repo>/<builddir>/perf/micro/).
std::string conf_path(const char* sub) {
    const std::filesystem::path rel = std::filesystem::path("conf") / sub;
    if (std::filesystem::exists(rel)) return rel.string();
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const auto d = exe.parent_path().parent_path().parent_path().parent_path() / rel;
        if (std::filesystem::exists(d)) return d.string();
    }
    return rel.string();
}

// The token estimator as deployed: a calibration file ($TLB_CALIB, else the repository's
// conf/tokenizers/fortunes-bpe8k.toml); the vocabulary-free builtin only when there is none.
tokens::Estimator make_estimator() {
    std::string path;
    if (const char* e = std::getenv("TLB_CALIB")) path = e;
    else path = conf_path("tokenizers/fortunes-bpe8k.toml");
    if (std::filesystem::exists(path)) {
        std::fprintf(stderr, "estimator: %s\n", path.c_str());
        return tokens::Estimator::from_file(path);
    }
    std::fprintf(stderr, "estimator: builtin (no calibration file)\n");
    return tokens::Estimator::builtin();
}

struct Fixture {
    std::unique_ptr<classify::Classifier> cls;
    tokens::Estimator est = make_estimator();
    Fixture() {
        std::string err;
        const char* rd = std::getenv("TLB_RULES_DIR");
        cls = classify::Classifier::load_dir(rd ? std::string(rd) : conf_path("rules"), &err);
        if (!cls) {
            std::fprintf(stderr, "rules: %s\n", err.c_str());
            std::exit(1);
        }
    }
};
Fixture& fixture() {
    static Fixture f;
    return f;
}

// The understand step as the benchmarks run it (1 MiB body limit); false: skipped with the error.
bool init_understander(understand::Understander& u, benchmark::State& state) {
    Fixture& fx = fixture();
    understand::Options o;
    o.max_body_bytes = 1 << 20;
    std::string err;
    if (!u.init(o, fx.cls.get(), &fx.est, &err)) {
        state.SkipWithError(err.c_str());
        return false;
    }
    return true;
}

void BM_Understand(benchmark::State& state) {
    Fixture& fx = fixture();
    const std::string body = chat_body(static_cast<size_t>(state.range(0)));
    const std::string req = http_request(body);
    std::vector<uint8_t> buf(req.begin(), req.end());
    buf.resize(req.size() + 64);
    understand::Understander u;
    if (!init_understander(u, state)) return;
    // Check against a reference computed stage by stage before timing.
    understand::RequestFeatures f;
    if (!u.understand(buf.data(), req.size(), buf.size(), f) || f.model != "llama-3.1-8b-instruct" || !f.stream ||
        f.max_tokens != 512) {
        state.SkipWithError("understand failed on the benchmark request");
        return;
    }
    {
        openai::Extractor ex;
        ex.init(1 << 20);
        auto req2 = std::make_unique<openai::Request>();
        std::vector<uint8_t> b2(body.begin(), body.end());
        std::vector<uint8_t> scratch(body.size() + 64);
        if (ex.extract(openai::Endpoint::CHAT_COMPLETIONS, b2.data(), b2.size(), b2.size(), scratch.data(),
                       scratch.size(), *req2) != openai::Error::NONE) {
            state.SkipWithError("reference extraction failed");
            return;
        }
        uint64_t fixed = 0;
        for (uint32_t i = 0; i < req2->span_count; ++i)
            fixed += fx.est.estimate_fixed(reinterpret_cast<const char*>(req2->text) + req2->spans[i].off,
                                           req2->spans[i].len);
        classify::Scanner sc(*fx.cls);
        const uint64_t tags = sc.scan(std::string_view(reinterpret_cast<const char*>(req2->text), req2->text_len));
        if (f.prompt_tokens != ((fixed + 128) >> 8) || f.tags != tags) {
            state.SkipWithError("understand disagrees with the stage-by-stage reference");
            return;
        }
        if (state.range(0) >= 4096 && !(tags & fx.cls->tag_mask("code"))) {
            state.SkipWithError("benchmark body should be tagged code");
            return;
        }
    }
    for (auto _ : state) {
        u.understand(buf.data(), req.size(), buf.size(), f);
        benchmark::DoNotOptimize(f.prompt_tokens);
        benchmark::DoNotOptimize(f.tags);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * req.size()));
    state.counters["body_bytes"] = static_cast<double>(body.size());
    state.counters["prompt_tokens"] = f.prompt_tokens;
    state.counters["prefix_blocks"] = f.prefix_blocks;
}
BENCHMARK(BM_Understand)->Arg(1024)->Arg(4096)->Arg(65536);

// The same step on many distinct request bodies, one after the other: the OpenAI bodies (*.json)
// in $TLB_BODIES_DIR, e.g. the held-out chat bodies tests/integration/test_tokens_accuracy.sh
// builds (TLB_TOKENS_KEEP=1 keeps them). A body repeated in a loop lets the branch predictor learn
// its data-dependent branches (docs/tokens.md, night of 2026-12-07); production sees every body
// once, so this is the number to expect there. Registered only when the variable is set.
struct FreshBody {
    std::string body, req;  // the JSON body and the whole HTTP request around it
    openai::Endpoint ep;
};
void BM_UnderstandFresh(benchmark::State& state, std::vector<FreshBody> in) {
    understand::Understander u;
    if (!init_understander(u, state)) return;
    std::vector<std::vector<uint8_t>> bufs;
    size_t total = 0;
    for (const auto& x : in) {
        bufs.emplace_back(x.req.begin(), x.req.end());
        bufs.back().resize(x.req.size() + 64);
        total += x.body.size();
    }
    understand::RequestFeatures f;
    for (size_t i = 0; i < bufs.size(); ++i)
        if (!u.understand(bufs[i].data(), in[i].req.size(), bufs[i].size(), f)) {
            std::fprintf(stderr, "body %zu: status %u %s\n", i, unsigned(f.status), f.message);
            state.SkipWithError("understand rejected a body of $TLB_BODIES_DIR");
            return;
        }
    size_t i = 0, bytes = 0;
    for (auto _ : state) {
        u.understand(bufs[i].data(), in[i].req.size(), bufs[i].size(), f);
        benchmark::DoNotOptimize(f.prompt_tokens);
        bytes += in[i].body.size();
        if (++i == bufs.size()) i = 0;
    }
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    state.counters["bodies"] = static_cast<double>(bufs.size());
    state.counters["body_bytes_avg"] = static_cast<double>(total) / static_cast<double>(bufs.size());
    // Time per 4 KiB of body, the unit of the 4 KB target.
    state.counters["ns_per_4KiB"] = benchmark::Counter(static_cast<double>(bytes) / 4096.0,
                                                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
// The stages alone on the same fresh bodies (extraction, estimate, classify, prefix fingerprint):
// where the fresh-body time goes.
const char* const FRESH_STAGES[4] = {"BM_StageFresh_Extract", "BM_StageFresh_Estimate", "BM_StageFresh_Classify",
                                     "BM_StageFresh_Prefix"};
void BM_StageFresh(benchmark::State& state, std::vector<FreshBody> in, int stage) {
    Fixture& fx = fixture();
    struct Body {
        std::vector<uint8_t> json, scratch;
        size_t len;
        openai::Endpoint ep;
        std::unique_ptr<openai::Request> r = std::make_unique<openai::Request>();
        std::vector<tokens::TextField> fields;
        std::vector<std::string_view> views;
        std::vector<tokens::TextSpan> spans;
    };
    std::vector<Body> bodies(in.size());
    openai::Extractor ex;
    ex.init(1 << 20);
    for (size_t i = 0; i < in.size(); ++i) {
        Body& b = bodies[i];
        b.len = in[i].body.size();
        b.json.assign(in[i].body.begin(), in[i].body.end());
        b.json.resize(b.len + 64);
        b.scratch.resize(b.len + 64);
        b.ep = in[i].ep;
        if (ex.extract(b.ep, b.json.data(), b.len, b.json.size(), b.scratch.data(), b.scratch.size(), *b.r) !=
            openai::Error::NONE) {
            state.SkipWithError("extraction failed on a body of $TLB_BODIES_DIR");
            return;
        }
        const char* t = reinterpret_cast<const char*>(b.r->text);
        for (uint32_t k = 0; k < b.r->span_count; ++k) {
            b.fields.push_back({b.r->spans[k].off, b.r->spans[k].len});
            b.views.emplace_back(t + b.r->spans[k].off, b.r->spans[k].len);
            b.spans.push_back({t + b.r->spans[k].off, b.r->spans[k].len, tokens::Role::User});
        }
    }
    classify::Scanner sc(*fx.cls);
    auto work = std::make_unique<openai::Request>();
    std::vector<uint8_t> wscratch(1 << 20);
    uint64_t out[understand::MAX_PREFIX_BLOCKS];
    size_t i = 0, bytes = 0;
    for (auto _ : state) {
        Body& b = bodies[i];
        switch (stage) {
            case 0:  // decodes into scratch, the body stays as it was
                benchmark::DoNotOptimize(ex.extract(b.ep, b.json.data(), b.len, b.json.size(), wscratch.data(),
                                                    wscratch.size(), *work));
                break;
            case 1:
                benchmark::DoNotOptimize(fx.est.estimate_fields_fixed(reinterpret_cast<const char*>(b.r->text),
                                                                      b.fields.data(), b.fields.size()));
                break;
            case 2: benchmark::DoNotOptimize(sc.scan(b.views.data(), b.views.size())); break;
            default:
                benchmark::DoNotOptimize(
                    tokens::prefix_fingerprint(b.spans.data(), b.spans.size(), out, understand::MAX_PREFIX_BLOCKS));
        }
        bytes += b.len;
        if (++i == bodies.size()) i = 0;
    }
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    state.counters["ns_per_4KiB"] = benchmark::Counter(static_cast<double>(bytes) / 4096.0,
                                                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

const bool fresh_registered = [] {
    const char* dir = std::getenv("TLB_BODIES_DIR");
    if (!dir) return false;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::vector<FreshBody> in;
    for (const auto& p : files) {
        std::FILE* fp = std::fopen(p.c_str(), "rb");
        if (!fp) continue;
        std::string body;
        char chunk[65536];
        size_t n;
        while ((n = std::fread(chunk, 1, sizeof chunk, fp)) > 0) body.append(chunk, n);
        std::fclose(fp);
        // Chat bodies have messages, completion bodies a prompt.
        const bool chat = body.find("\"messages\"") != std::string::npos;
        std::string req = http_request(body, chat ? "/v1/chat/completions" : "/v1/completions");
        in.push_back({std::move(body), std::move(req),
                      chat ? openai::Endpoint::CHAT_COMPLETIONS : openai::Endpoint::COMPLETIONS});
    }
    if (in.empty()) return false;
    benchmark::RegisterBenchmark("BM_UnderstandFresh", BM_UnderstandFresh, in);
    for (int stage = 0; stage < 4; ++stage) benchmark::RegisterBenchmark(FRESH_STAGES[stage], BM_StageFresh, in, stage);
    return true;
}();

// ---- the stages alone, on the same 4 KB request --------------------------------------------------

struct Stage {
    std::string body, req;
    std::vector<uint8_t> buf;
    openai::Extractor ex;
    std::unique_ptr<openai::Request> r = std::make_unique<openai::Request>();
    std::vector<uint8_t> scratch;
    explicit Stage(size_t n) : body(chat_body(n)), req(http_request(body)), buf(req.begin(), req.end()) {
        buf.resize(req.size() + 64);
        ex.init(1 << 20);
        scratch.resize(body.size() + 64);
        std::vector<uint8_t> b2(body.begin(), body.end());
        b2.resize(body.size() + 64);
        ex.extract(openai::Endpoint::CHAT_COMPLETIONS, b2.data(), body.size(), b2.size(), scratch.data(),
                   scratch.size(), *r);
    }
    std::string_view text() const { return {reinterpret_cast<const char*>(r->text), r->text_len}; }
};

void BM_Stage_Framing(benchmark::State& state) {
    Stage s(static_cast<size_t>(state.range(0)));
    http::RequestParser p;
    for (auto _ : state) {
        p.reset();
        benchmark::DoNotOptimize(p.parse(s.buf.data(), s.req.size()));
    }
}
void BM_Stage_Extract(benchmark::State& state) {
    Stage s(static_cast<size_t>(state.range(0)));
    std::vector<uint8_t> b(s.body.begin(), s.body.end());
    b.resize(s.body.size() + 64);
    for (auto _ : state)
        benchmark::DoNotOptimize(s.ex.extract(openai::Endpoint::CHAT_COMPLETIONS, b.data(), s.body.size(), b.size(),
                                              s.scratch.data(), s.scratch.size(), *s.r));
}
// As the understand step does it: one pass over all text fields (Estimator::estimate_fields_fixed).
void BM_Stage_Estimate(benchmark::State& state) {
    Stage s(static_cast<size_t>(state.range(0)));
    const auto& est = fixture().est;
    std::vector<tokens::TextField> f;
    for (uint32_t i = 0; i < s.r->span_count; ++i) f.push_back({s.r->spans[i].off, s.r->spans[i].len});
    for (auto _ : state)
        benchmark::DoNotOptimize(est.estimate_fields_fixed(reinterpret_cast<const char*>(s.r->text), f.data(), f.size()));
}
// One estimator call per field (the same sum): shows what the one-pass form saves.
void BM_Stage_EstimatePerField(benchmark::State& state) {
    Stage s(static_cast<size_t>(state.range(0)));
    const auto& est = fixture().est;
    for (auto _ : state) {
        uint64_t fixed = 0;
        for (uint32_t i = 0; i < s.r->span_count; ++i)
            fixed += est.estimate_fixed(reinterpret_cast<const char*>(s.r->text) + s.r->spans[i].off, s.r->spans[i].len);
        benchmark::DoNotOptimize(fixed);
    }
}
// The estimator over the whole decoded text in one call (vs per field above): shows the per-call cost.
void BM_Stage_EstimateOneCall(benchmark::State& state) {
    Stage s(static_cast<size_t>(state.range(0)));
    const auto& est = fixture().est;
    const std::string_view t = s.text();
    for (auto _ : state) benchmark::DoNotOptimize(est.estimate_fixed(t.data(), t.size()));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * t.size()));
}
void BM_Stage_Classify(benchmark::State& state) {
    Stage s(static_cast<size_t>(state.range(0)));
    classify::Scanner sc(*fixture().cls);
    const std::string_view t = s.text();
    for (auto _ : state) benchmark::DoNotOptimize(sc.scan(&t, 1));
}
void BM_Stage_Prefix(benchmark::State& state) {
    Stage s(static_cast<size_t>(state.range(0)));
    std::vector<tokens::TextSpan> spans(s.r->span_count);
    for (uint32_t i = 0; i < s.r->span_count; ++i)
        spans[i] = {reinterpret_cast<const char*>(s.r->text) + s.r->spans[i].off, s.r->spans[i].len, tokens::Role::User};
    uint64_t out[understand::MAX_PREFIX_BLOCKS];
    for (auto _ : state)
        benchmark::DoNotOptimize(tokens::prefix_fingerprint(spans.data(), spans.size(), out, understand::MAX_PREFIX_BLOCKS));
}
BENCHMARK(BM_Stage_Framing)->Arg(4096);
BENCHMARK(BM_Stage_Extract)->Arg(4096);
BENCHMARK(BM_Stage_Estimate)->Arg(4096);
BENCHMARK(BM_Stage_EstimatePerField)->Arg(4096);
BENCHMARK(BM_Stage_EstimateOneCall)->Arg(4096)->Arg(65536);
BENCHMARK(BM_Stage_Classify)->Arg(4096);
BENCHMARK(BM_Stage_Prefix)->Arg(4096);

}  // namespace

BENCHMARK_MAIN();
