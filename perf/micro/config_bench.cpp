// Config loading cost: parse + validate of the lab config, and the effective-config writer.
// Control-plane only (start-up and reload); measured to keep reloads of large backend catalogs
// cheap. Each benchmark checks its result before timing.
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "config/config.hpp"

namespace {

std::string lab_text() {
    std::ifstream in("conf/lab.toml");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A config with n backends (the scoreboard holds at most config::MAX_BACKENDS).
std::string big_text(int n) {
    std::string s =
        "[[ports]]\nname = \"c\"\ndevice = \"net_ring0\"\nrole = \"client\"\naddress = \"10.10.0.1/24\"\n"
        "[[ports]]\nname = \"b\"\ndevice = \"net_ring1\"\nrole = \"backend\"\naddress = \"10.20.0.1/16\"\n"
        "[vip]\naddress = \"10.10.0.1\"\n";
    for (int i = 0; i < n; ++i)
        s += "[[backends]]\nname = \"gpu-" + std::to_string(i) + "\"\naddress = \"10.20." + std::to_string(1 + i / 200) +
             "." + std::to_string(10 + i % 200) + ":8000\"\nmodels = [\"llama-3-8b\", \"llama-3-70b\"]\n"
             "tags = [\"code\"]\n[backends.profile]\nprefill_tokens_per_s = 9000.0\ndecode_tokens_per_s = 45.0\n";
    return s;
}

void BM_LoadLab(benchmark::State& state) {
    const std::string text = lab_text();
    if (tlb::config::load_string(text, "lab.toml").backends.size() != 4) {
        state.SkipWithError("conf/lab.toml did not load 4 backends (run from the repository root)");
        return;
    }
    for (auto _ : state) benchmark::DoNotOptimize(tlb::config::load_string(text, "lab.toml"));
}
BENCHMARK(BM_LoadLab);

void BM_Load64Backends(benchmark::State& state) {
    const std::string text = big_text(64);
    if (tlb::config::load_string(text, "big.toml").backends.size() != 64) {
        state.SkipWithError("big config did not load");
        return;
    }
    for (auto _ : state) benchmark::DoNotOptimize(tlb::config::load_string(text, "big.toml"));
    state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_Load64Backends);

void BM_ToToml64Backends(benchmark::State& state) {
    const tlb::config::Config cfg = tlb::config::load_string(big_text(64), "big.toml");
    if (!(tlb::config::load_string(tlb::config::to_toml(cfg), "big.toml") == cfg)) {
        state.SkipWithError("to_toml does not round-trip");
        return;
    }
    for (auto _ : state) benchmark::DoNotOptimize(tlb::config::to_toml(cfg));
}
BENCHMARK(BM_ToToml64Backends);

}  // namespace

BENCHMARK_MAIN();
