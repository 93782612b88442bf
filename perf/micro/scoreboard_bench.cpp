// Scoreboard hot-path cost: the three worker hooks of one request (on_route, on_first_byte,
// on_complete), and a full snapshot (64 backends x 4 workers) as a worker refreshes its View.
// Results are checked before timing: after the hook cycle every gauge is back to zero, and the
// snapshot sums the gauges the setup wrote.
//
//   perf/micro/scoreboard_bench --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <string>

#include "scoreboard/scoreboard.hpp"

using namespace tlb::scoreboard;

namespace {

std::unique_ptr<Scoreboard> make(uint32_t backends, uint32_t workers) {
    auto sb = Scoreboard::create_private(workers);
    std::string err;
    for (uint32_t i = 0; i < backends; ++i) {
        BackendSpec s;
        s.name = "gpu";
        s.name += std::to_string(i);
        s.models = {"m"};
        sb->add_backend(s, &err);
    }
    return sb;
}

void BM_hooks_cycle(benchmark::State& state) {
    auto sb = make(64, 4);
    {
        Ticket t = sb->on_route(2, 5, 1000, 100);
        sb->on_first_byte(t);
        sb->on_complete(t, 1000, 90);
        int64_t o, q, r, d;
        sb->read_load(5, o, q, r, d);
        if (o || q || r || d) { state.SkipWithError("gauges not balanced"); return; }
    }
    uint32_t b = 0;
    for (auto _ : state) {
        Ticket t = sb->on_route(1, b, 1000, 100);
        sb->on_first_byte(t);
        sb->on_complete(t, 1000, 90);
        b = (b + 1) & 63;
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_hooks_cycle);

void BM_snapshot(benchmark::State& state) {
    const uint32_t workers = static_cast<uint32_t>(state.range(0));
    auto sb = make(64, workers);
    for (uint32_t w = 0; w < workers; ++w)
        for (uint32_t b = 0; b < 64; ++b) sb->on_route(w, b, 100 * (b + 1), 10);
    View v;
    sb->snapshot(v, 0);
    if (v.n != 64 || v.b[63].queued_prompt_tokens != 6400.0f * workers || v.b[0].outstanding != workers) {
        state.SkipWithError("snapshot sums wrong");
        return;
    }
    for (auto _ : state) {
        sb->snapshot(v, 0);
        benchmark::DoNotOptimize(v.b[17].outstanding);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_snapshot)->Arg(1)->Arg(4);

}  // namespace

BENCHMARK_MAIN();
