// lib/classify: Hyperscan tag scan over prose, code, mixed, CJK and chat text of 1, 4 and 64 KB, and
// the SIMD script-counting pass with the default rules' gate table (scalar reference, AVX2,
// AVX-512). Results are checked before timing.
//   build/perf/micro/classify_bench --benchmark_repetitions=9 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "classify/classify.hpp"

using namespace tlb::classify;

namespace {

const char* PROSE =
    "The quarterly report shows that revenue grew by twelve percent while costs stayed flat, which "
    "means the team can finally hire the two engineers it has been asking for since spring. Could you "
    "summarise the main arguments of the article in three bullet points and suggest a title? In the "
    "meantime, please double-check the delivery dates with the supplier; last time the shipment "
    "arrived a week late and nobody noticed until the customer called. ";
const char* CODE =
    "```python\ndef moving_average(values, window):\n    if window <= 0:\n        raise ValueError(\"window "
    "must be positive\")\n    out = []\n    total = 0.0\n    for i, v in enumerate(values):\n        total "
    "+= v\n        if i >= window:\n            total -= values[i - window]\n        out.append(total / "
    "min(i + 1, window))\n    return out\n```\n#include <stdio.h>\nint main(void) {\n    printf(\"%d\\n\", "
    "42);\n    return 0;\n}\n";
const char* CJK = "人工智能是计算机科学的一个分支，它企图了解智能的实质，并生产出一种新的能以人类智能相似的方式做出反应的智能机器。";
// A chat turn like the understand benchmark's: English with some Spanish, German and Russian, and a
// fenced Python block.
const char* CHAT =
    "We measured the latency at the 99th percentile over a full day of traffic, and the tail is dominated "
    "by a handful of very long prompts rather than by queueing. El informe final estará listo la próxima "
    "semana, después de revisar todos los comentarios. Die Besprechung wurde auf Donnerstag verschoben. "
    "Спасибо за подробный ответ, теперь всё стало намного понятнее. What are the trade-offs between a "
    "write-ahead log and copy-on-write pages for a small embedded database that must survive power loss?\n";
const char* CHAT_CODE =
    "Here is my code:\n```python\ndef moving_average(values, window):\n    out = []\n    total = 0.0\n"
    "    for i, v in enumerate(values):\n        total += v\n        out.append(total / min(i + 1, window))\n"
    "    return out\n```\n";

std::string fill(size_t n, const char* a, const char* b = nullptr) {
    std::string s;
    while (s.size() < n) {
        s += a;
        if (b && s.size() < n) s += b;
    }
    s.resize(n);
    // Drop a code point cut in half at the end.
    size_t start = s.size();
    while (start > 0 && (static_cast<unsigned char>(s[start - 1]) & 0xC0) == 0x80) --start;
    if (start > 0) {
        const unsigned char lead = static_cast<unsigned char>(s[start - 1]);
        const size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (s.size() - (start - 1) < want) s.resize(start - 1);
    }
    return s;
}

std::string rules_dir() {
    if (const char* e = std::getenv("TLB_RULES_DIR")) return e;
    if (std::filesystem::is_directory("conf/rules")) return "conf/rules";
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const auto d = exe.parent_path().parent_path().parent_path().parent_path() / "conf" / "rules";
        if (std::filesystem::is_directory(d)) return d.string();
    }
    return "conf/rules";
}

const Classifier& classifier() {
    static std::unique_ptr<Classifier> c = [] {
        std::string err;
        auto p = Classifier::load_dir(rules_dir(), &err);
        if (!p) {
            std::fprintf(stderr, "rules: %s\n", err.c_str());
            std::exit(1);
        }
        return p;
    }();
    return *c;
}

// kind: 0 prose, 1 code, 2 mixed (prose with a code block every ~1 KB), 3 CJK, 4 chat (prose in
// four languages with a fenced block every ~1.7 KB)
std::string text(int kind, size_t n) {
    switch (kind) {
        case 0: return fill(n, PROSE);
        case 1: return fill(n, CODE);
        case 2: return fill(n, PROSE, CODE);
        case 3: return fill(n, CJK, "。");
        default: return fill(n, (std::string(CHAT) + CHAT_CODE).c_str(), (std::string(CHAT) + CHAT).c_str());
    }
}
const char* EXPECT[] = {"", "code", "code", "cjk", "code"};
const char* LABEL[] = {"prose", "code", "mixed", "cjk", "chat"};

void BM_Scan(benchmark::State& state) {
    const Classifier& c = classifier();
    const int kind = static_cast<int>(state.range(0));
    const std::string t = text(kind, static_cast<size_t>(state.range(1)));
    Scanner s(c);
    const std::string got = c.format(s.scan(t));
    if (got != EXPECT[kind]) {
        state.SkipWithError(("unexpected tags: " + got).c_str());
        return;
    }
    for (auto _ : state) benchmark::DoNotOptimize(s.scan(t));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * t.size()));
    state.SetLabel(LABEL[kind]);
}
BENCHMARK(BM_Scan)->ArgsProduct({{0, 1, 2, 3, 4}, {1024, 4096, 65536}});

// The SIMD pass alone, as the scanner runs it (with the default rules' gate table).
// range(0): 0 scalar, 1 AVX2, 2 AVX-512.
void BM_ScriptCount(benchmark::State& state) {
    using Fn = void (*)(const uint8_t*, size_t, ScriptCounts&, const GateTable*) noexcept;
    const int k = static_cast<int>(state.range(0));
    const Fn fn = k == 0 ? &count_scripts_scalar : k == 1 ? &count_scripts_avx2 : &count_scripts_avx512;
    if ((k == 1 && !avx2_supported()) || (k == 2 && !avx512_supported())) {
        state.SkipWithError("kernel not supported on this CPU");
        return;
    }
    const GateTable* gt = classifier().gate_table();
    const std::string t = fill(static_cast<size_t>(state.range(1)), PROSE, CJK);
    const auto* p = reinterpret_cast<const uint8_t*>(t.data());
    ScriptCounts ref, got;
    count_scripts_scalar(p, t.size(), ref, gt);
    fn(p, t.size(), got, gt);
    if (!(ref == got)) {
        state.SkipWithError("kernel and scalar counts differ");
        return;
    }
    for (auto _ : state) {
        ScriptCounts c;
        fn(p, t.size(), c, gt);
        benchmark::DoNotOptimize(c);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * t.size()));
    state.SetLabel(k == 0 ? "scalar" : k == 1 ? "avx2" : "avx512");
}
BENCHMARK(BM_ScriptCount)->ArgsProduct({{0, 1, 2}, {4096, 65536}});

}  // namespace

BENCHMARK_MAIN();
