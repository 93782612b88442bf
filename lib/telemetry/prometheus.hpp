// Prometheus text exposition format 0.0.4: a writer (our /metrics) and a parser (backends'
// /metrics, for the scraper).
//
// Writer rules (https://prometheus.io/docs/instrumenting/exposition_formats/ and the naming
// guide): every family gets `# HELP` and `# TYPE` once, its samples are contiguous, counters end
// in `_total`, units are base units in the name (`_seconds`, `_bytes`), histograms are cumulative
// `_bucket{le=...}` series ending with `le="+Inf"` plus `_sum` and `_count`. Label values escape
// `\`, `"` and newline; HELP escapes `\` and newline. Names are sanitised to
// [a-zA-Z_:][a-zA-Z0-9_:]*. The writer runs on the control plane (allocation is fine there).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "telemetry/histogram.hpp"

namespace tlb::telemetry {

constexpr const char* METRIC_PREFIX = "tokenlb_";
constexpr const char* EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { Counter, Gauge, Histogram };

struct Label {
    std::string_view name;
    std::string_view value;
};

class Writer {
public:
    explicit Writer(std::string prefix = METRIC_PREFIX) : _prefix(std::move(prefix)) {}

    // Starts a family `<prefix><name>`. Starting the same family twice is a programming error:
    // the second call is ignored and counted (duplicate_families()), samples still go out under
    // the first header, which keeps the output parseable only if they are contiguous.
    void family(std::string_view name, std::string_view help, MetricType type);
    void sample(std::initializer_list<Label> labels, double value) { sample(labels.begin(), labels.size(), value); }
    void sample(const Label* labels, size_t n, double value);
    void sample_u64(std::initializer_list<Label> labels, uint64_t value) { sample_u64(labels.begin(), labels.size(), value); }
    void sample_u64(const Label* labels, size_t n, uint64_t value);
    // For a Histogram family: the cumulative buckets, _sum and _count of one label set.
    void histogram(std::initializer_list<Label> labels, const HistogramSum& h) { histogram(labels.begin(), labels.size(), h); }
    void histogram(const Label* labels, size_t n, const HistogramSum& h);

    const std::string& text() const { return _out; }
    std::string take() { return std::move(_out); }
    uint32_t duplicate_families() const { return _dups; }

private:
    void series(std::string_view suffix, const Label* labels, size_t n, const Label* extra);
    std::string _prefix;
    std::string _out;
    std::string _family;  // full name of the current family
    std::vector<std::string> _seen;
    uint32_t _dups = 0;
};

// Formatting helpers (exposed for tests and for other writers).
void append_escaped_label_value(std::string& out, std::string_view v);
void append_escaped_help(std::string& out, std::string_view v);
void append_value(std::string& out, double v);  // shortest round-trip, +Inf/-Inf/NaN
std::string sanitize_name(std::string_view s);  // invalid characters -> '_', leading digit -> '_'

// ---- parser (text format 0.0.4; also accepts the OpenMetrics subset vLLM emits) ----
struct ParsedSample {
    std::string_view name;
    std::vector<std::pair<std::string, std::string>> labels;  // unescaped
    double value = 0;
    const std::string* label(std::string_view n) const {
        for (const auto& l : labels)
            if (l.first == n) return &l.second;
        return nullptr;
    }
};

struct ParseStats {
    uint32_t samples = 0;
    uint32_t bad_lines = 0;  // malformed lines are skipped, not fatal
};

// Calls fn for every sample line; comments and blank lines are skipped. Never throws.
ParseStats parse_exposition(std::string_view text, const std::function<void(const ParsedSample&)>& fn);

}  // namespace tlb::telemetry
