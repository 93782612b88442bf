// lib/tokens micro benchmarks: each classification kernel (scalar / AVX2 / AVX-512) and the whole
// estimate() per kernel, on 1 KiB, 4 KiB, 64 KiB and 1 MiB of mixed real text (English, German,
// Spanish, Russian and Chinese fortunes and C headers from Debian packages on this machine).
// Every kernel's output is checked against the scalar reference before timing.
//
//   tokens_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Calibration: $TLB_TOKENS_CALIB, else conf/tokenizers/fortunes-bpe8k.toml, else the builtin model.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tokens/model.hpp"
#include "tokens/tokens.hpp"

using namespace tlb::tokens;

namespace {

std::string slurp(const std::string& path, size_t max) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    if (s.size() > max) s.resize(max);
    return s;
}

const std::string& corpus() {
    static const std::string text = [] {
        const char* files[] = {
            "/usr/share/games/fortunes/fortunes", "/usr/share/games/fortunes/de/witze",
            "/usr/share/games/fortunes/es/refranes.fortunes", "/usr/share/games/fortunes/ru/computer",
            "/usr/share/games/fortunes/chinese", "/usr/include/stdio.h", "/usr/include/stdlib.h",
            "/usr/share/games/fortunes/computers", "/usr/include/unistd.h",
        };
        std::vector<std::string> parts;
        for (const char* f : files) {
            std::string s = slurp(f, 256 * 1024);
            if (!s.empty()) parts.push_back(s);
        }
        if (parts.empty()) parts.push_back("The quick brown fox jumps over the lazy dog. Über straße. Привет мир. 中文测试。\n");
        // Interleave 2 KiB slices of each source so every input size sees a mix.
        std::string out;
        size_t off = 0;
        while (out.size() < (2u << 20)) {
            for (const auto& p : parts) {
                const size_t o = off % p.size();
                out += p.substr(o, 2048);
            }
            off += 2048;
        }
        return out;
    }();
    return text;
}

const Estimator& estimator() {
    static const Estimator e = [] {
        const char* env = std::getenv("TLB_TOKENS_CALIB");
        std::string path = env ? env : "conf/tokenizers/fortunes-bpe8k.toml";
        try {
            return Estimator::from_file(path);
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "tokens_bench: %s; using the builtin model\n", ex.what());
            return Estimator::builtin();
        }
    }();
    return e;
}

std::vector<uint64_t> classify_all(ClassifyFn fn, const uint8_t* p, size_t n) {
    std::vector<uint64_t> out((n + 63) / 64 + 1);
    KernelState st;
    for (size_t off = 0; off < n; off += CHUNK) {
        const size_t len = std::min(CHUNK, n - off);
        fn(p + off, len, off + len < n ? int(p[off + len]) : -1, st, out.data() + off / 64);
    }
    return out;
}

void BM_classify(benchmark::State& state, Isa isa) {
    if (!isa_supported(isa)) {
        state.SkipWithError("ISA not supported on this CPU");
        return;
    }
    const size_t n = size_t(state.range(0));
    const auto* p = reinterpret_cast<const uint8_t*>(corpus().data());
    if (classify_all(classify_fn(isa), p, n) != classify_all(classify_scalar, p, n)) {
        state.SkipWithError("kernel output differs from the scalar reference");
        return;
    }
    const ClassifyFn fn = classify_fn(isa);
    std::vector<uint64_t> out((n + 63) / 64 + 1);
    for (auto _ : state) {
        KernelState st;
        for (size_t off = 0; off < n; off += CHUNK) {
            const size_t len = std::min(CHUNK, n - off);
            fn(p + off, len, off + len < n ? int(p[off + len]) : -1, st, out.data() + off / 64);
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

void BM_estimate(benchmark::State& state, Isa isa) {
    if (!isa_supported(isa)) {
        state.SkipWithError("ISA not supported on this CPU");
        return;
    }
    const size_t n = size_t(state.range(0));
    const Estimator& e = estimator();
    const char* p = corpus().data();
    const uint32_t ref = e.estimate(p, n, Isa::Scalar);
    if (e.estimate(p, n, isa) != ref) {
        state.SkipWithError("estimate differs from the scalar reference");
        return;
    }
    for (auto _ : state) benchmark::DoNotOptimize(e.estimate(p, n, isa));
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
    state.counters["tokens"] = ref;
}

void BM_prefix_fingerprint(benchmark::State& state) {
    const size_t n = size_t(state.range(0));
    const std::string& c = corpus();
    TextSpan spans[2] = {{c.data(), 400, Role::System}, {c.data() + 400, n - 400, Role::User}};
    uint64_t out[4096];
    for (auto _ : state) benchmark::DoNotOptimize(prefix_fingerprint(spans, 2, out, 4096, 256));
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

void sizes(benchmark::internal::Benchmark* b) {
    for (int64_t n : {1024, 4096, 65536, 1 << 20}) b->Arg(n);
}

}  // namespace

BENCHMARK_CAPTURE(BM_classify, scalar, Isa::Scalar)->Apply(sizes);
BENCHMARK_CAPTURE(BM_classify, avx2, Isa::Avx2)->Apply(sizes);
BENCHMARK_CAPTURE(BM_classify, avx512, Isa::Avx512)->Apply(sizes);
BENCHMARK_CAPTURE(BM_estimate, scalar, Isa::Scalar)->Apply(sizes);
BENCHMARK_CAPTURE(BM_estimate, avx2, Isa::Avx2)->Apply(sizes);
BENCHMARK_CAPTURE(BM_estimate, avx512, Isa::Avx512)->Apply(sizes);
BENCHMARK(BM_prefix_fingerprint)->Arg(4096)->Arg(65536);

BENCHMARK_MAIN();
