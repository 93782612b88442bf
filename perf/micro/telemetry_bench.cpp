// lib/telemetry micro-benchmarks: the worker-side costs (histogram observe, request_done with and
// without the access-log ring, SPSC push/pop) and the control-plane costs (rendering /metrics for
// 64 backends, parsing a vLLM /metrics body). Each benchmark checks its result against a
// reference before timing. Run with --benchmark_repetitions=5 and read the medians.
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <string>

#include "policy/policy.hpp"
#include "scoreboard/scoreboard.hpp"
#include "telemetry/exporter.hpp"
#include "telemetry/prometheus.hpp"
#include "telemetry/ring.hpp"
#include "telemetry/scraper.hpp"
#include "telemetry/worker_telemetry.hpp"

using namespace tlb::telemetry;

static void BM_HistogramObserve(benchmark::State& state) {
    Histogram h(LATENCY_SECONDS);
    // Reference: 0.3 s lands in (0.25, 0.5].
    h.observe(0.3);
    if (h.bucket(6) != 1 || LATENCY_SECONDS.upper[6] != 0.5) state.SkipWithError("bucket mismatch");
    double v = 0.001;
    for (auto _ : state) {
        h.observe(v);
        v = v * 1.7 > 400 ? 0.001 : v * 1.7;
    }
    benchmark::DoNotOptimize(h.sum());
}
BENCHMARK(BM_HistogramObserve);

static AccessRecord sample_record(uint16_t backend) {
    AccessRecord r;
    r.status = 200;
    r.model = 0;
    r.backend = backend;
    r.estimated_prompt_tokens = 900;
    r.prompt_tokens = 870;
    r.completion_tokens = 120;
    r.ttft_us = 85000;
    r.e2e_us = 2300000;
    r.attempts = 1;
    r.flags = AccessRecord::FLAG_USAGE | AccessRecord::FLAG_ROUTED;
    return r;
}

static void BM_RequestDone(benchmark::State& state) {
    bool log = state.range(0) != 0;
    auto w = std::make_unique<WorkerTelemetry>();
    w->enable_access_log(log);
    w->request_done(sample_record(3));
    if (w->ttft(3).count() != 1 || w->log_ring().size() != (log ? 1u : 0u)) state.SkipWithError("reference");
    AccessRecord out[256];
    uint32_t i = 0;
    for (auto _ : state) {
        w->request_done(sample_record(uint16_t(i & 15)));
        if (!log) ++i;
        // The control plane drains concurrently in the real system; here every 256 requests
        // (included in the time: a pop is a copy of the same bytes).
        if (log && (++i & 255) == 0) w->log_ring().pop(out, 256);
    }
    if (w->log_ring().dropped()) state.SkipWithError("ring dropped records");
    state.SetLabel(log ? "access log on" : "access log off");
}
BENCHMARK(BM_RequestDone)->Arg(0)->Arg(1);

static void BM_RingPushPop(benchmark::State& state) {
    auto r = std::make_unique<SpscRing<AccessRecord, 1024>>();
    AccessRecord rec = sample_record(1), out[32];
    for (int k = 0; k < 32; ++k) r->try_push(rec);
    if (r->pop(out, 32) != 32 || out[31].ttft_us != rec.ttft_us) state.SkipWithError("reference");
    for (auto _ : state) {
        for (int k = 0; k < 32; ++k) r->try_push(rec);
        benchmark::DoNotOptimize(r->pop(out, 32));
    }
    state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_RingPushPop);

static void BM_CollectMetrics64Backends(benchmark::State& state) {
    auto sb = tlb::scoreboard::Scoreboard::create_private(1);
    for (int b = 0; b < 64; ++b) {
        tlb::scoreboard::BackendSpec s;
        s.name = "gpu" + std::to_string(b);
        s.models = {"llama-3-8b"};
        std::string err;
        sb->add_backend(s, &err);
    }
    auto w = std::make_unique<WorkerTelemetry>();
    for (int i = 0; i < 10000; ++i) w->request_done(sample_record(uint16_t(i % 64)));
    Sample s;
    WorkerSample ws;
    for (int i = 0; i < 40; ++i) ws.dataplane.push_back({"c", uint64_t(i)});
    for (int i = 0; i < 48; ++i) ws.tcp.push_back({"t", uint64_t(i)});
    ws.pool.resize(64);
    s.workers.push_back(ws);
    s.ports.push_back({"client", 1, 2, 3, 4, 0, 0, 0, 0});
    const WorkerTelemetry* wp[1] = {w.get()};
    double busy[1] = {0.1};
    ExportContext ctx;
    ctx.scoreboard = sb.get();
    ctx.workers = wp;
    ctx.n_workers = 1;
    ctx.busy_ratio = busy;
    {
        Writer wr;
        collect(wr, s, ctx);
        if (wr.text().find("tokenlb_request_ttft_seconds_count{backend=\"gpu63\"} 156\n") == std::string::npos)
            state.SkipWithError("reference");
    }
    size_t bytes = 0;
    for (auto _ : state) {
        Writer wr;
        collect(wr, s, ctx);
        bytes = wr.text().size();
        benchmark::DoNotOptimize(bytes);
    }
    state.counters["bytes"] = double(bytes);
    state.SetBytesProcessed(int64_t(state.iterations() * bytes));
}
BENCHMARK(BM_CollectMetrics64Backends)->Unit(benchmark::kMicrosecond);

static void BM_ParseVllmMetrics(benchmark::State& state) {
    // A vLLM-sized body: ~60 families, histograms with 20 buckets, 2 engines.
    std::string body;
    for (int e = 0; e < 2; ++e) {
        body += "vllm:num_requests_running{engine=\"" + std::to_string(e) + "\",model_name=\"m\"} 7.0\n";
        body += "vllm:num_requests_waiting{engine=\"" + std::to_string(e) + "\",model_name=\"m\"} 3.0\n";
        body += "vllm:kv_cache_usage_perc{engine=\"" + std::to_string(e) + "\",model_name=\"m\"} 0.5\n";
        for (int f = 0; f < 30; ++f)
            for (int b = 0; b < 20; ++b)
                body += "vllm:hist_" + std::to_string(f) + "_bucket{engine=\"" + std::to_string(e) +
                        "\",le=\"" + std::to_string(b) + ".0\",model_name=\"m\"} " + std::to_string(b * 10) + ".0\n";
    }
    BackendMetrics m;
    if (!extract_vllm_metrics(body, m) || m.running != 14 || m.waiting != 6 || std::fabs(m.kv_usage - 0.5f) > 1e-6)
        state.SkipWithError("reference");
    for (auto _ : state) {
        extract_vllm_metrics(body, m);
        benchmark::DoNotOptimize(m);
    }
    state.SetBytesProcessed(int64_t(state.iterations() * body.size()));
    state.counters["bytes"] = double(body.size());
}
BENCHMARK(BM_ParseVllmMetrics)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
