// Fixed-bucket histograms recorded on a worker lcore without locks or allocation.
//
// Prometheus histograms are cumulative (`le` buckets, `_sum`, `_count`). Like Envoy's per-worker
// histograms and HAProxy's per-thread counters, each worker owns its own bucket array (single
// writer: a relaxed load + store, no lock prefix) and the scrape thread sums the workers' arrays.
// A reader can see a bucket one observation ahead of `_sum`; Prometheus tolerates that and it
// never tears a value (aligned 64-bit atomics). Bucket layouts are static so every worker and the
// exporter agree on the bounds without coordination.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

namespace tlb::telemetry {

constexpr uint32_t MAX_BUCKETS = 24;  // finite upper bounds; +Inf is implicit

struct Buckets {
    const double* upper;  // ascending finite upper bounds (inclusive, like Prometheus `le`)
    uint32_t n;
};

// Latency in seconds: TTFT and end-to-end times of LLM requests span 5 ms .. minutes.
extern const Buckets LATENCY_SECONDS;
// Relative error of the prompt-token estimate: (estimated - actual) / actual.
extern const Buckets RELATIVE_ERROR;

class Histogram {
public:
    explicit Histogram(const Buckets& b = LATENCY_SECONDS) : _b(&b) {}

    const Buckets& buckets() const { return *_b; }
    // Control plane, before the worker starts: choose the layout of a preallocated histogram.
    void set_buckets(const Buckets& b) { _b = &b; }

    // Single writer (the owning worker). Binary search over <= 24 bounds, three relaxed stores.
    void observe(double v) {
        uint32_t lo = 0, hi = _b->n;  // first bound >= v, n = +Inf
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (v <= _b->upper[mid]) hi = mid;
            else lo = mid + 1;
        }
        bump(_counts[lo], 1);
        double s;
        uint64_t bits = _sum_bits.load(std::memory_order_relaxed);
        std::memcpy(&s, &bits, sizeof s);
        s += v;
        std::memcpy(&bits, &s, sizeof s);
        _sum_bits.store(bits, std::memory_order_relaxed);
    }

    // Readers (any thread).
    uint64_t bucket(uint32_t i) const { return _counts[i].load(std::memory_order_relaxed); }  // non-cumulative, i <= n
    double sum() const {
        uint64_t bits = _sum_bits.load(std::memory_order_relaxed);
        double s;
        std::memcpy(&s, &bits, sizeof s);
        return s;
    }
    uint64_t count() const {
        uint64_t c = 0;
        for (uint32_t i = 0; i <= _b->n; ++i) c += bucket(i);
        return c;
    }

private:
    static void bump(std::atomic<uint64_t>& a, uint64_t d) {
        a.store(a.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    }
    const Buckets* _b;
    std::atomic<uint64_t> _counts[MAX_BUCKETS + 1] = {};
    std::atomic<uint64_t> _sum_bits{0};  // double as bits: std::atomic<double> has no portable relaxed add
};

// Reader-side sum of several workers' histograms with the same layout.
struct HistogramSum {
    const Buckets* b = nullptr;
    uint64_t counts[MAX_BUCKETS + 1] = {};  // non-cumulative
    double sum = 0;
    uint64_t count = 0;

    void add(const Histogram& h) {
        b = &h.buckets();
        for (uint32_t i = 0; i <= b->n; ++i) {
            uint64_t c = h.bucket(i);
            counts[i] += c;
            count += c;
        }
        sum += h.sum();
    }
    // Value at quantile q (0..1), interpolated linearly inside the bucket (as histogram_quantile).
    double quantile(double q) const;
};

}  // namespace tlb::telemetry
