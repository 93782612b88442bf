// lib/tokens micro benchmarks: each classification kernel (scalar / AVX2 / AVX-512), each memo
// pass and the whole estimate() per ISA, on 1 KiB, 4 KiB, 64 KiB and 1 MiB of mixed real text
// (English, German, Spanish, Russian and Chinese fortunes and C headers from Debian packages on
// this machine).
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

// The memo pass alone (the part of estimate() that Isa::Avx2/Avx512 replace), on the segments of
// the first n bytes, CHUNK segments per call as in estimate(). "scalar" is the estimator's scalar
// loop (hash, probe, branch-free miss list). Every kernel's total and miss list are checked against
// it before timing. items_per_second = segments per second.
uint64_t memo_scalar(const MemoTable& mt, const uint8_t* p, size_t, const uint32_t* begins, const uint32_t* ends,
                     uint32_t ns, uint32_t* miss_b, uint32_t* miss_e, uint32_t* n_miss) {
    uint64_t total = 0;
    uint32_t nm = *n_miss;
    for (uint32_t i = 0; i < ns; ++i) {
        const size_t b = begins[i], e = ends[i], l = e - b;
        // 32 readable bytes: the corpus is longer than the largest n.
        const uint64_t hv = memo_hash(p + b, l < MEMO_KEY_MAX ? l : MEMO_KEY_MAX);
        const uint64_t bk = mt.buckets[uint32_t(hv >> 32) & mt.bucket_mask];
        const __m128i v = _mm_cvtsi64_si128(int64_t(bk));
        const __m128i eq = _mm_cmpeq_epi16(_mm_and_si128(v, _mm_set1_epi16(short(0xFFF0))),
                                           _mm_set1_epi16(short(hv & 0xFFF0)));
        const __m128i c = _mm_sad_epu8(_mm_and_si128(_mm_and_si128(v, eq), _mm_set1_epi16(15)),
                                       _mm_setzero_si128());
        const bool hit = (_mm_movemask_epi8(eq) & 0xFF) != 0 && l <= MEMO_KEY_MAX;
        total += hit ? uint32_t(_mm_cvtsi128_si32(c)) * FIX : 0;
        miss_b[nm] = uint32_t(b);
        miss_e[nm] = uint32_t(e);
        nm += !hit;
    }
    *n_miss = nm;
    return total;
}

struct MemoRun {
    uint64_t total = 0;
    std::vector<uint32_t> miss_b, miss_e;
    bool operator==(const MemoRun&) const = default;
};

// Segment bounds of p[0..n): starts from the scalar kernel, then n.
std::vector<uint32_t> segment_bounds(const uint8_t* p, size_t n) {
    const std::vector<uint64_t> starts = classify_all(classify_scalar, p, n);
    std::vector<uint32_t> b{0};
    for (size_t w = 0; w < (n + 63) / 64; ++w)
        for (uint64_t bits = starts[w] & (w ? ~uint64_t(0) : ~uint64_t(1)); bits; bits &= bits - 1)
            b.push_back(uint32_t(w * 64 + size_t(__builtin_ctzll(bits))));
    b.push_back(uint32_t(n));
    return b;
}

MemoRun memo_all(MemoFn fn, const MemoTable& mt, const uint8_t* p, size_t n,
                 const std::vector<uint32_t>& bnds, uint32_t* mb, uint32_t* me) {
    MemoRun r;
    const uint32_t segs = uint32_t(bnds.size() - 1);
    for (uint32_t i = 0; i < segs; i += uint32_t(CHUNK)) {
        uint32_t nm = 0;
        const uint32_t ns = std::min<uint32_t>(uint32_t(CHUNK), segs - i);
        r.total += fn(mt, p, n, bnds.data() + i, bnds.data() + i + 1, ns, mb, me, &nm);
        r.miss_b.insert(r.miss_b.end(), mb, mb + nm);
        r.miss_e.insert(r.miss_e.end(), me, me + nm);
    }
    return r;
}

void BM_memo(benchmark::State& state, Isa isa) {
    if (!isa_supported(isa) || (isa == Isa::Avx512 && !memo_avx512_supported())) {
        state.SkipWithError("ISA not supported on this CPU");
        return;
    }
    const MemoTable& mt = estimator().model().memo;
    if (mt.empty()) {
        state.SkipWithError("calibration without a memo");
        return;
    }
    const MemoFn fn =
        isa == Isa::Scalar ? memo_scalar : isa == Isa::Avx2 ? memo_avx2 : memo_avx512;
    const size_t n = size_t(state.range(0));
    const auto* p = reinterpret_cast<const uint8_t*>(corpus().data());
    const std::vector<uint32_t> bnds = segment_bounds(p, n);
    std::vector<uint32_t> mb(CHUNK + 10), me(CHUNK + 10);
    if (memo_all(fn, mt, p, n, bnds, mb.data(), me.data()) !=
        memo_all(memo_scalar, mt, p, n, bnds, mb.data(), me.data())) {
        state.SkipWithError("memo pass differs from the scalar loop");
        return;
    }
    const uint32_t segs = uint32_t(bnds.size() - 1);
    for (auto _ : state) {
        uint64_t total = 0;
        for (uint32_t i = 0; i < segs; i += uint32_t(CHUNK)) {
            uint32_t nm = 0;
            const uint32_t ns = std::min<uint32_t>(uint32_t(CHUNK), segs - i);
            total += fn(mt, p, n, bnds.data() + i, bnds.data() + i + 1, ns, mb.data(), me.data(), &nm);
            benchmark::DoNotOptimize(nm);
        }
        benchmark::DoNotOptimize(total);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(segs));
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
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
BENCHMARK_CAPTURE(BM_memo, scalar, Isa::Scalar)->Arg(65536)->Arg(1 << 20);
BENCHMARK_CAPTURE(BM_memo, avx2, Isa::Avx2)->Arg(65536)->Arg(1 << 20);
BENCHMARK_CAPTURE(BM_memo, avx512, Isa::Avx512)->Arg(65536)->Arg(1 << 20);
BENCHMARK(BM_prefix_fingerprint)->Arg(4096)->Arg(65536);

BENCHMARK_MAIN();
