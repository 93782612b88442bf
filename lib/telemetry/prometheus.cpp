#include "telemetry/prometheus.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace tlb::telemetry {

// 5 ms .. 5 min: TTFT of a short prompt on an idle GPU is tens of ms, end-to-end of a long
// generation under load is minutes.
static const double LATENCY_BOUNDS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                        5,     10,   20,    30,   60,  120, 300};
// Symmetric around 0 with fine steps near 0: a calibrated estimator sits within +-5 %.
static const double REL_ERROR_BOUNDS[] = {-0.5, -0.25, -0.1, -0.05, -0.02, -0.01, 0,
                                          0.01, 0.02,  0.05, 0.1,   0.25,  0.5,   1};
const Buckets LATENCY_SECONDS{LATENCY_BOUNDS, sizeof LATENCY_BOUNDS / sizeof(double)};
const Buckets RELATIVE_ERROR{REL_ERROR_BOUNDS, sizeof REL_ERROR_BOUNDS / sizeof(double)};
static_assert(sizeof LATENCY_BOUNDS / sizeof(double) <= MAX_BUCKETS);
static_assert(sizeof REL_ERROR_BOUNDS / sizeof(double) <= MAX_BUCKETS);

double HistogramSum::quantile(double q) const {
    if (!b || count == 0) return 0;
    double rank = q * double(count);
    uint64_t cum = 0;
    for (uint32_t i = 0; i <= b->n; ++i) {
        uint64_t prev = cum;
        cum += counts[i];
        if (double(cum) >= rank && counts[i] > 0) {
            if (i == b->n) return b->upper[b->n - 1];  // +Inf bucket: the highest finite bound
            double lo = i == 0 ? std::min(0.0, b->upper[0]) : b->upper[i - 1];
            double hi = b->upper[i];
            return lo + (hi - lo) * (rank - double(prev)) / double(counts[i]);
        }
    }
    return b->upper[b->n - 1];
}

void append_escaped_label_value(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
}

void append_escaped_help(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
}

void append_value(std::string& out, double v) {
    if (std::isnan(v)) { out += "NaN"; return; }
    if (std::isinf(v)) { out += v > 0 ? "+Inf" : "-Inf"; return; }
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

static void append_u64(std::string& out, uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

std::string sanitize_name(std::string_view s) {
    std::string r;
    r.reserve(s.size() + 1);
    for (char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == ':';
        r += ok ? c : '_';
    }
    if (r.empty() || (r[0] >= '0' && r[0] <= '9')) r.insert(r.begin(), '_');
    return r;
}

void Writer::family(std::string_view name, std::string_view help, MetricType type) {
    std::string full = sanitize_name(_prefix + std::string(name));
    if (std::find(_seen.begin(), _seen.end(), full) != _seen.end()) {
        ++_dups;
        _family = full;
        return;
    }
    _seen.push_back(full);
    _family = full;
    _out += "# HELP ";
    _out += full;
    _out += ' ';
    append_escaped_help(_out, help);
    _out += "\n# TYPE ";
    _out += full;
    _out += type == MetricType::Counter ? " counter\n" : type == MetricType::Gauge ? " gauge\n" : " histogram\n";
}

void Writer::series(std::string_view suffix, const Label* labels, size_t n, const Label* extra) {
    _out += _family;
    _out += suffix;
    if (n || extra) {
        _out += '{';
        bool first = true;
        auto one = [&](const Label& l) {
            if (!first) _out += ',';
            first = false;
            _out += sanitize_name(l.name);
            _out += "=\"";
            append_escaped_label_value(_out, l.value);
            _out += '"';
        };
        for (size_t i = 0; i < n; ++i) one(labels[i]);
        if (extra) one(*extra);
        _out += '}';
    }
    _out += ' ';
}

void Writer::sample(const Label* labels, size_t n, double value) {
    series("", labels, n, nullptr);
    append_value(_out, value);
    _out += '\n';
}

void Writer::sample_u64(const Label* labels, size_t n, uint64_t value) {
    series("", labels, n, nullptr);
    append_u64(_out, value);
    _out += '\n';
}

void Writer::histogram(const Label* labels, size_t n, const HistogramSum& h) {
    uint64_t cum = 0;
    uint32_t nb = h.b ? h.b->n : 0;
    for (uint32_t i = 0; i <= nb; ++i) {
        cum += h.counts[i];
        std::string le;
        if (i == nb) le = "+Inf";
        else append_value(le, h.b->upper[i]);
        Label l{"le", le};
        series("_bucket", labels, n, &l);
        append_u64(_out, cum);
        _out += '\n';
    }
    series("_sum", labels, n, nullptr);
    append_value(_out, h.sum);
    _out += '\n';
    series("_count", labels, n, nullptr);
    append_u64(_out, cum);
    _out += '\n';
}

// ---- parser ----

static bool is_name_char(char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static bool parse_double(std::string_view s, double& out) {
    if (s == "+Inf" || s == "Inf" || s == "+inf" || s == "inf") { out = HUGE_VAL; return true; }
    if (s == "-Inf" || s == "-inf") { out = -HUGE_VAL; return true; }
    if (s == "NaN" || s == "nan") { out = NAN; return true; }
    if (s.empty() || s.size() > 63) return false;
    char buf[64];
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = 0;
    char* end = nullptr;
    out = std::strtod(buf, &end);
    return end == buf + s.size();
}

// One sample line: name [{labels}] value [timestamp]. Returns false when malformed.
static bool parse_line(std::string_view line, ParsedSample& s) {
    size_t i = 0, n = line.size();
    if (i >= n || !is_name_char(line[i], true)) return false;
    while (i < n && is_name_char(line[i], false)) ++i;
    s.name = line.substr(0, i);
    s.labels.clear();
    if (i < n && line[i] == '{') {
        ++i;
        for (;;) {
            while (i < n && (line[i] == ' ' || line[i] == ',')) ++i;
            if (i < n && line[i] == '}') { ++i; break; }
            size_t k0 = i;
            if (i >= n || !is_name_char(line[i], true)) return false;
            while (i < n && is_name_char(line[i], false)) ++i;
            std::string key(line.substr(k0, i - k0));
            while (i < n && line[i] == ' ') ++i;
            if (i >= n || line[i] != '=') return false;
            ++i;
            while (i < n && line[i] == ' ') ++i;
            if (i >= n || line[i] != '"') return false;
            ++i;
            std::string val;
            bool closed = false;
            while (i < n) {
                char c = line[i++];
                if (c == '"') { closed = true; break; }
                if (c == '\\' && i < n) {
                    char e = line[i++];
                    val += e == 'n' ? '\n' : e;
                } else {
                    val += c;
                }
            }
            if (!closed) return false;
            s.labels.emplace_back(std::move(key), std::move(val));
        }
    }
    while (i < n && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t v0 = i;
    while (i < n && line[i] != ' ' && line[i] != '\t') ++i;
    if (!parse_double(line.substr(v0, i - v0), s.value)) return false;
    // An optional timestamp may follow; anything else is malformed.
    while (i < n && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i < n) {
        size_t t0 = i;
        if (line[i] == '-') ++i;
        while (i < n && line[i] >= '0' && line[i] <= '9') ++i;
        if (i == t0 || i != n) return false;
    }
    return true;
}

ParseStats parse_exposition(std::string_view text, const std::function<void(const ParsedSample&)>& fn) {
    ParseStats st;
    ParsedSample s;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        std::string_view line = text.substr(pos, eol - pos);
        pos = eol + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        size_t a = 0;
        while (a < line.size() && (line[a] == ' ' || line[a] == '\t')) ++a;
        line.remove_prefix(a);
        if (line.empty() || line[0] == '#') continue;
        if (parse_line(line, s)) {
            ++st.samples;
            fn(s);
        } else {
            ++st.bad_lines;
        }
    }
    return st;
}

}  // namespace tlb::telemetry
