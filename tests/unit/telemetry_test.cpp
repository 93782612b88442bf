// lib/telemetry: exposition writer (exact text), histograms, SPSC ring, request counter table,
// access-log JSON, the /metrics parser and HTTP response splitter used by the scraper, the
// /metrics server over a real socket, the scraper against that server, the /tokenlb/ command
// handlers, and the service's drain (access log file + Scoreboard::learn).
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <new>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "policy/policy.hpp"
#include "telemetry/access_log.hpp"
#include "telemetry/dpdk_telemetry.hpp"
#include "telemetry/exporter.hpp"
#include "telemetry/http_server.hpp"
#include "telemetry/prometheus.hpp"
#include "telemetry/ring.hpp"
#include "telemetry/scraper.hpp"
#include "telemetry/service.hpp"
#include "telemetry/worker_telemetry.hpp"

using namespace tlb::telemetry;
using tlb::scoreboard::Scoreboard;

// Counts heap allocations of this thread (worker-path calls must make none).
static thread_local uint64_t t_allocs = 0;
void* operator new(size_t n) {
    ++t_allocs;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](size_t n) {
    ++t_allocs;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
// Pairs with the malloc above; GCC cannot see that and warns about free() on new'd memory.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace {

std::unique_ptr<Scoreboard> make_scoreboard(int n_backends = 2) {
    auto sb = Scoreboard::create_private(1);
    for (int i = 0; i < n_backends; ++i) {
        tlb::scoreboard::BackendSpec s;
        s.name = "gpu" + std::to_string(i);
        s.ipv4 = 0x0a14000b + uint32_t(i);
        s.port = 8000;
        s.models = {"llama-3-8b"};
        s.tags = {"code"};
        std::string err;
        EXPECT_EQ(sb->add_backend(s, &err), i) << err;
    }
    return sb;
}

// Minimal blocking HTTP client: sends raw, returns everything until close.
std::string http_raw(uint16_t port, const std::string& req, int timeout_ms = 3000) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        close(fd);
        return "";
    }
    if (!req.empty()) (void)!send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string out;
    char buf[8192];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) break;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0) break;
        out.append(buf, size_t(r));
    }
    close(fd);
    return out;
}

}  // namespace

// ---------------------------------------------------------------- writer

TEST(Prometheus, ExactExpositionText) {
    Writer w;
    w.family("requests_total", "Finished requests.", MetricType::Counter);
    w.sample_u64({{"status_class", "2xx"}, {"backend", "gpu0"}}, 42);
    w.sample_u64({{"status_class", "5xx"}, {"backend", "gpu1"}}, 0);
    w.family("flows", "Flow table entries.", MetricType::Gauge);
    w.sample({}, 7);
    w.sample({{"worker", "1"}}, 0.25);
    EXPECT_EQ(w.text(),
              "# HELP tokenlb_requests_total Finished requests.\n"
              "# TYPE tokenlb_requests_total counter\n"
              "tokenlb_requests_total{status_class=\"2xx\",backend=\"gpu0\"} 42\n"
              "tokenlb_requests_total{status_class=\"5xx\",backend=\"gpu1\"} 0\n"
              "# HELP tokenlb_flows Flow table entries.\n"
              "# TYPE tokenlb_flows gauge\n"
              "tokenlb_flows 7\n"
              "tokenlb_flows{worker=\"1\"} 0.25\n");
    EXPECT_EQ(w.duplicate_families(), 0u);
}

TEST(Prometheus, EscapingAndNames) {
    Writer w;
    w.family("odd-name.x", "Help with \\ backslash\nand newline \"quotes\" stay.", MetricType::Gauge);
    w.sample({{"model", "a\"b\\c\nd"}, {"bad-label", "v"}}, 1);
    EXPECT_EQ(w.text(),
              "# HELP tokenlb_odd_name_x Help with \\\\ backslash\\nand newline \"quotes\" stay.\n"
              "# TYPE tokenlb_odd_name_x gauge\n"
              "tokenlb_odd_name_x{model=\"a\\\"b\\\\c\\nd\",bad_label=\"v\"} 1\n");
    EXPECT_EQ(sanitize_name("9lives"), "_9lives");
    EXPECT_EQ(sanitize_name("vllm:ok_1"), "vllm:ok_1");
    std::string v;
    append_value(v, HUGE_VAL);
    v += ' ';
    append_value(v, -HUGE_VAL);
    v += ' ';
    append_value(v, NAN);
    v += ' ';
    append_value(v, 0.1);
    v += ' ';
    append_value(v, 1e21);
    EXPECT_EQ(v, "+Inf -Inf NaN 0.1 1e+21");
}

TEST(Prometheus, DuplicateFamilyHeaderOnce) {
    Writer w;
    w.family("x_total", "h", MetricType::Counter);
    w.sample_u64({}, 1);
    w.family("x_total", "h", MetricType::Counter);
    EXPECT_EQ(w.duplicate_families(), 1u);
    EXPECT_EQ(w.text(), "# HELP tokenlb_x_total h\n# TYPE tokenlb_x_total counter\ntokenlb_x_total 1\n");
}

TEST(Prometheus, HistogramExactText) {
    static const double B[] = {0.1, 0.5, 1};
    static const Buckets L{B, 3};
    Histogram h(L);
    h.observe(0.05);
    h.observe(0.1);   // le is inclusive
    h.observe(0.3);
    h.observe(2);     // +Inf
    HistogramSum s;
    s.add(h);
    Writer w;
    w.family("ttft_seconds", "TTFT.", MetricType::Histogram);
    w.histogram({{"backend", "gpu0"}}, s);
    EXPECT_EQ(w.text(),
              "# HELP tokenlb_ttft_seconds TTFT.\n"
              "# TYPE tokenlb_ttft_seconds histogram\n"
              "tokenlb_ttft_seconds_bucket{backend=\"gpu0\",le=\"0.1\"} 2\n"
              "tokenlb_ttft_seconds_bucket{backend=\"gpu0\",le=\"0.5\"} 3\n"
              "tokenlb_ttft_seconds_bucket{backend=\"gpu0\",le=\"1\"} 3\n"
              "tokenlb_ttft_seconds_bucket{backend=\"gpu0\",le=\"+Inf\"} 4\n"
              "tokenlb_ttft_seconds_sum{backend=\"gpu0\"} 2.45\n"
              "tokenlb_ttft_seconds_count{backend=\"gpu0\"} 4\n");
}

// ---------------------------------------------------------------- histograms

TEST(Histogram, BucketsSumCountAndWorkerSum) {
    Histogram a(LATENCY_SECONDS), b(LATENCY_SECONDS);
    for (int i = 0; i < 100; ++i) a.observe(0.004);  // first bucket (0.005)
    for (int i = 0; i < 50; ++i) b.observe(0.7);     // (0.5, 1]
    b.observe(1e6);                                  // +Inf
    EXPECT_EQ(a.bucket(0), 100u);
    EXPECT_EQ(a.count(), 100u);
    EXPECT_NEAR(a.sum(), 0.4, 1e-9);
    HistogramSum s;
    s.add(a);
    s.add(b);
    EXPECT_EQ(s.count, 151u);
    EXPECT_EQ(s.counts[LATENCY_SECONDS.n], 1u);
    uint32_t one = 0;
    while (LATENCY_SECONDS.upper[one] != 1) ++one;
    EXPECT_EQ(s.counts[one], 50u);
    EXPECT_NEAR(s.sum, 0.4 + 35 + 1e6, 1e-6);
    // Median lies in the first bucket, p90 in (0.5, 1].
    EXPECT_LE(s.quantile(0.5), 0.005);
    EXPECT_GT(s.quantile(0.9), 0.5);
    EXPECT_LE(s.quantile(0.9), 1.0);
    EXPECT_EQ(HistogramSum{}.quantile(0.5), 0);
}

TEST(Histogram, RelativeErrorNegativeBuckets) {
    Histogram h(RELATIVE_ERROR);
    h.observe(-0.3);   // (-0.5, -0.25]? no: -0.3 <= -0.25 -> bucket le=-0.25
    h.observe(0.0);    // le=0
    h.observe(-0.9);   // le=-0.5
    h.observe(3.0);    // +Inf
    EXPECT_EQ(h.bucket(0), 1u);  // le -0.5
    EXPECT_EQ(h.bucket(1), 1u);  // le -0.25
    uint32_t zero = 0;
    while (RELATIVE_ERROR.upper[zero] != 0) ++zero;
    EXPECT_EQ(h.bucket(zero), 1u);
    EXPECT_EQ(h.bucket(RELATIVE_ERROR.n), 1u);
    EXPECT_NEAR(h.sum(), 1.8, 1e-12);
}

TEST(Histogram, ConcurrentReaderSeesMonotonicCounts) {
    Histogram h(LATENCY_SECONDS);
    std::atomic<bool> done{false};
    std::thread writer([&] {
        for (int i = 0; i < 200000; ++i) h.observe((i % 100) * 0.01);
        done = true;
    });
    uint64_t last = 0;
    while (!done) {
        uint64_t c = h.count();
        ASSERT_GE(c, last);
        last = c;
    }
    writer.join();
    EXPECT_EQ(h.count(), 200000u);
}

// ---------------------------------------------------------------- ring

TEST(SpscRing, OrderFullAndDropCount) {
    auto r = std::make_unique<SpscRing<uint64_t, 8>>();
    for (uint64_t i = 0; i < 8; ++i) EXPECT_TRUE(r->try_push(i));
    EXPECT_FALSE(r->try_push(99));
    EXPECT_EQ(r->dropped(), 1u);
    EXPECT_EQ(r->size(), 8u);
    uint64_t out[16];
    EXPECT_EQ(r->pop(out, 3), 3u);
    EXPECT_EQ(out[0], 0u);
    EXPECT_EQ(out[2], 2u);
    EXPECT_TRUE(r->try_push(8));
    EXPECT_EQ(r->pop(out, 16), 6u);
    EXPECT_EQ(out[0], 3u);
    EXPECT_EQ(out[5], 8u);
    EXPECT_EQ(r->pop(out, 16), 0u);
}

TEST(SpscRing, TwoThreadsTransferInOrder) {
    auto r = std::make_unique<SpscRing<uint64_t, 1024>>();
    constexpr uint64_t N = 2000000;
    std::thread prod([&] {
        for (uint64_t i = 0; i < N;)
            if (r->try_push(i)) ++i;
    });
    uint64_t expect = 0, buf[64];
    while (expect < N) {
        size_t n = r->pop(buf, 64);
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(buf[i], expect++);
    }
    prod.join();
    EXPECT_EQ(r->pushed(), N);
}

// ---------------------------------------------------------------- worker telemetry

TEST(RequestCounters, KeyRoundTripAndOverflow) {
    uint8_t sc, pol;
    uint16_t m, b;
    RequestCounters::unpack(RequestCounters::key(5, 6, 63, NO_BACKEND), sc, pol, m, b);
    EXPECT_EQ(sc, 5);
    EXPECT_EQ(pol, 6);
    EXPECT_EQ(m, 63);
    EXPECT_EQ(b, NO_BACKEND & 0xfff);
    auto t = std::make_unique<RequestCounters>();
    for (uint32_t i = 0; i < RequestCounters::CAPACITY + 10; ++i) t->add(RequestCounters::key(2, 0, uint16_t(i >> 6), uint16_t(i & 63)), 2);
    t->add(RequestCounters::key(2, 0, 0, 0), 1);
    uint64_t total = 0, slots = 0, first = 0;
    t->for_each([&](uint32_t k, uint64_t v) {
        total += v;
        ++slots;
        if (k == RequestCounters::key(2, 0, 0, 0)) first = v;
    });
    EXPECT_EQ(slots, RequestCounters::CAPACITY);
    EXPECT_EQ(t->overflow(), 20u);
    EXPECT_EQ(total + t->overflow(), 2u * (RequestCounters::CAPACITY + 10) + 1);
    EXPECT_EQ(first, 3u);
}

TEST(WorkerTelemetry, RequestDoneFeedsCountersHistogramsAndLog) {
    auto w = std::make_unique<WorkerTelemetry>();
    AccessRecord r;
    r.status = 200;
    r.model = 0;
    r.backend = 1;
    r.policy = uint8_t(tlb::policy::Kind::TokenAware);
    r.estimated_prompt_tokens = 110;
    r.prompt_tokens = 100;
    r.completion_tokens = 20;
    r.ttft_us = 80000;
    r.e2e_us = 900000;
    r.attempts = 2;
    r.flags = AccessRecord::FLAG_USAGE | AccessRecord::FLAG_ROUTED;
    w->request_done(r);  // access log disabled: nothing queued
    EXPECT_EQ(w->log_ring().size(), 0u);
    w->enable_access_log(true);
    w->request_done(r);
    EXPECT_EQ(w->log_ring().size(), 1u);
    EXPECT_EQ(w->ttft(1).count(), 2u);
    EXPECT_NEAR(w->ttft(1).sum(), 0.16, 1e-12);
    EXPECT_EQ(w->e2e(1).count(), 2u);
    EXPECT_EQ(w->ttft(0).count(), 0u);
    EXPECT_NEAR(w->estimate_error(0).sum(), 0.2, 1e-12);
    EXPECT_EQ(w->estimated_prompt_tokens(), 220u);
    EXPECT_EQ(w->actual_prompt_tokens(), 200u);
    EXPECT_EQ(w->completion_tokens(), 40u);
    EXPECT_EQ(w->retried_requests(), 2u);
    uint64_t n = 0;
    w->requests().for_each([&](uint32_t k, uint64_t v) {
        EXPECT_EQ(k, RequestCounters::key(STATUS_2XX, r.policy, 0, 1));
        n += v;
    });
    EXPECT_EQ(n, 2u);
    // Aborted: TTFT counted, e2e not.
    r.flags |= AccessRecord::FLAG_ABORTED;
    w->request_done(r);
    EXPECT_EQ(w->ttft(1).count(), 3u);
    EXPECT_EQ(w->e2e(1).count(), 2u);
}

TEST(WorkerTelemetry, WorkerPathDoesNotAllocate) {
    auto w = std::make_unique<WorkerTelemetry>();
    w->enable_access_log(true);
    AccessRecord r;
    r.status = 200;
    r.model = 1;
    r.prompt_tokens = 10;
    r.flags = AccessRecord::FLAG_USAGE;
    tlb::scoreboard::Observation o;
    uint64_t before = t_allocs;
    for (uint32_t i = 0; i < 20000; ++i) {  // more than the ring holds: drops must not allocate either
        r.backend = uint16_t(i % 70);        // includes out-of-range backends
        r.ttft_us = i;
        w->request_done(r);
        w->observe(o);
        w->busy.poll(i, i + 10, i & 1);
    }
    EXPECT_EQ(t_allocs - before, 0u);
    EXPECT_EQ(w->log_ring().dropped(), 20000u - WorkerTelemetry::LOG_RING);
    EXPECT_EQ(w->obs_ring().dropped(), 20000u - WorkerTelemetry::OBS_RING);
    EXPECT_EQ(w->busy.total_cycles.load(), 200000u);
    EXPECT_EQ(w->busy.busy_cycles.load(), 100000u);
}

// ---------------------------------------------------------------- access log

TEST(AccessLog, ExactJsonLine) {
    AccessRecord r;
    r.t_request_us = 1000;  // + offset below = 2026-11-23T22:10:00.123456Z
    r.client_ip = htonl(0x0a0a0002);
    r.client_port = htons(41234);
    r.model = 0;
    r.backend = 1;
    r.estimated_prompt_tokens = 812;
    r.prompt_tokens = 798;
    r.completion_tokens = 64;
    r.tags = 0b101;
    r.policy = uint8_t(tlb::policy::Kind::TokenAware);
    r.reason = uint8_t(tlb::policy::Reason::LowestTtft);
    r.attempts = 1;
    r.status = 200;
    r.ttft_us = 81234;
    r.e2e_us = 1502311;
    r.flags = AccessRecord::FLAG_USAGE | AccessRecord::FLAG_ROUTED | AccessRecord::FLAG_STREAM;
    NameTables n;
    n.models = {"llama-3-8b"};
    n.backends = {"gpu0", "gpu\"1"};
    n.tags = {"code", "math", "pii"};
    std::string out;
    format_access_json(out, r, n, 1795471800123456 - 1000);
    EXPECT_EQ(out,
              "{\"time\":\"2026-11-23T22:10:00.123456Z\",\"client\":\"10.10.0.2:41234\",\"worker\":0,"
              "\"model\":\"llama-3-8b\",\"est_prompt_tokens\":812,\"prompt_tokens\":798,"
              "\"completion_tokens\":64,\"tags\":[\"code\",\"pii\"],\"policy\":\"token_aware\","
              "\"backend\":\"gpu\\\"1\",\"reason\":\"" +
                  std::string(tlb::policy::reason_text(tlb::policy::Reason::LowestTtft)) +
                  "\",\"attempts\":1,\"status\":200,\"ttft_s\":0.081234,\"e2e_s\":1.502311,"
                  "\"stream\":true,\"aborted\":false,\"local\":false}\n");
}

TEST(AccessLog, LocalErrorWithoutUsageUsesNulls) {
    AccessRecord r;
    r.status = 404;
    r.attempts = 0;
    r.flags = AccessRecord::FLAG_LOCAL;
    std::string out;
    format_access_json(out, r, NameTables{}, 0);
    EXPECT_NE(out.find("\"model\":null"), std::string::npos);
    EXPECT_NE(out.find("\"prompt_tokens\":null,\"completion_tokens\":null"), std::string::npos);
    EXPECT_NE(out.find("\"backend\":null,\"reason\":null"), std::string::npos);
    EXPECT_NE(out.find("\"status\":404,\"ttft_s\":null,\"e2e_s\":null"), std::string::npos);
    EXPECT_NE(out.find("\"local\":true}"), std::string::npos);
    EXPECT_EQ(out.find("\"time\":\"1970-01-01T00:00:00.000000Z\""), 1u);
    std::string s;
    append_json_string(s, std::string("a\x01\tb", 4));
    EXPECT_EQ(s, "\"a\\u0001\\tb\"");
}

// ---------------------------------------------------------------- parser / scraper pieces

static const char* VLLM_TEXT =
    "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"llama-3-8b\"} 3.0\n"
    "vllm:num_requests_running{engine=\"1\",model_name=\"llama-3-8b\"} 2.0\n"
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"llama-3-8b\"} 7.0 1700000000000\n"
    "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"llama-3-8b\"} 0.42\r\n"
    "vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"llama-3-8b\"} 0.61\n"
    "vllm:prompt_tokens_total{model_name=\"x\\\"y\"} 1e3\n"
    "garbage line without value\n"
    "  \n";

TEST(Parser, SamplesLabelsEscapesAndBadLines) {
    std::vector<std::string> names;
    std::string escaped;
    double kv_sum = 0;
    auto st = parse_exposition(VLLM_TEXT, [&](const ParsedSample& s) {
        names.emplace_back(s.name);
        if (s.name == "vllm:prompt_tokens_total") {
            escaped = *s.label("model_name");
            EXPECT_EQ(s.value, 1000);
        }
        if (s.name == "vllm:kv_cache_usage_perc") kv_sum += s.value;
    });
    EXPECT_EQ(st.samples, 6u);
    EXPECT_EQ(st.bad_lines, 1u);
    EXPECT_EQ(escaped, "x\"y");
    EXPECT_NEAR(kv_sum, 1.03, 1e-12);
    EXPECT_EQ(names.front(), "vllm:num_requests_running");
}

TEST(Parser, RoundTripsOurOwnWriter) {
    Writer w;
    w.family("a_total", "h", MetricType::Counter);
    w.sample_u64({{"k", "v\"\\\n"}}, 12345678901234ull);
    HistogramSum h;
    Histogram hh(LATENCY_SECONDS);
    hh.observe(0.2);
    h.add(hh);
    w.family("lat_seconds", "h", MetricType::Histogram);
    w.histogram({}, h);
    int n = 0;
    auto st = parse_exposition(w.text(), [&](const ParsedSample& s) {
        if (s.name == "tokenlb_a_total") {
            EXPECT_EQ(*s.label("k"), "v\"\\\n");
            EXPECT_EQ(s.value, 12345678901234.0);
        }
        ++n;
    });
    EXPECT_EQ(st.bad_lines, 0u);
    EXPECT_EQ(n, 1 + int(LATENCY_SECONDS.n) + 1 + 2);
}

TEST(Scraper, ExtractVllmMetrics) {
    BackendMetrics m;
    ASSERT_TRUE(extract_vllm_metrics(VLLM_TEXT, m));
    EXPECT_EQ(m.running, 5u);   // summed over engines
    EXPECT_EQ(m.waiting, 7u);
    EXPECT_FLOAT_EQ(m.kv_usage, 0.61f);  // the fullest engine
    ASSERT_TRUE(extract_vllm_metrics("vllm:gpu_cache_usage_perc 0.3\nvllm:num_requests_running 1\n", m));
    EXPECT_TRUE(m.have_kv);
    EXPECT_FLOAT_EQ(m.kv_usage, 0.3f);
    EXPECT_FALSE(m.have_waiting);
    // Newer name wins over the deprecated one.
    ASSERT_TRUE(extract_vllm_metrics("vllm:gpu_cache_usage_perc 0.3\nvllm:kv_cache_usage_perc 0.9\n", m));
    EXPECT_FLOAT_EQ(m.kv_usage, 0.9f);
    EXPECT_FALSE(extract_vllm_metrics("node_load1 3\n# nothing\n", m));
    ASSERT_TRUE(extract_vllm_metrics("vllm:kv_cache_usage_perc 7\nvllm:num_requests_waiting -3\n", m));
    EXPECT_FLOAT_EQ(m.kv_usage, 1.0f);  // clamped
    EXPECT_EQ(m.waiting, 0u);
}

TEST(Scraper, HttpResponseSplitting) {
    std::string body;
    EXPECT_EQ(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello extra", false, body), 200);
    EXPECT_EQ(body, "hello");
    EXPECT_EQ(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", false, body), 0);
    EXPECT_EQ(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", true, body), -1);
    EXPECT_EQ(parse_http_response("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
                                  false, body),
              200);
    EXPECT_EQ(body, "abcde");
    EXPECT_EQ(parse_http_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", false, body), 0);
    EXPECT_EQ(parse_http_response("HTTP/1.0 503 Busy\r\n\r\nclose-delimited", false, body), 0);
    EXPECT_EQ(parse_http_response("HTTP/1.0 503 Busy\r\n\r\nclose-delimited", true, body), 503);
    EXPECT_EQ(body, "close-delimited");
    EXPECT_EQ(parse_http_response("SSH-2.0-OpenSSH\r\n\r\n", true, body), -1);
    EXPECT_EQ(parse_http_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true, body), -1);
}

TEST(Scraper, ParseUrl) {
    Url u;
    std::string err;
    ASSERT_TRUE(parse_url("http://10.20.0.11:8000/metrics", u, &err)) << err;
    EXPECT_EQ(u.ipv4, 0x0a14000bu);
    EXPECT_EQ(u.port, 8000);
    EXPECT_EQ(u.path, "/metrics");
    ASSERT_TRUE(parse_url("http://127.0.0.1", u, &err));
    EXPECT_EQ(u.port, 80);
    EXPECT_EQ(u.path, "/");
    ASSERT_TRUE(parse_url("http://localhost:9/m?x=1", u, &err)) << err;
    EXPECT_EQ(u.ipv4, 0x7f000001u);
    EXPECT_EQ(u.path, "/m?x=1");
    EXPECT_FALSE(parse_url("https://10.0.0.1/metrics", u, &err));
    EXPECT_FALSE(parse_url("http://10.0.0.1:99999/", u, &err));
    EXPECT_FALSE(parse_url("http://:80/", u, &err));
}

// ---------------------------------------------------------------- HTTP server

TEST(HttpServer, ServesPathsAndRejectsBadClients) {
    HttpServer srv;
    srv.header_timeout_ms = 300;
    std::string err;
    ASSERT_TRUE(srv.start(0x7f000001, 0,
                          [](std::string_view path, HttpResponse& r) {
                              if (path == "/metrics") {
                                  r.content_type = EXPOSITION_CONTENT_TYPE;
                                  r.body = std::string(100000, 'x');  // larger than one send
                              } else {
                                  r.status = 404;
                                  r.body = "nf\n";
                              }
                          },
                          &err))
        << err;
    uint16_t port = srv.port();
    ASSERT_NE(port, 0);
    std::string r = http_raw(port, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r.substr(0, 100);
    EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos);
    EXPECT_NE(r.find("Content-Length: 100000\r\n"), std::string::npos);
    EXPECT_EQ(r.size() - r.find("\r\n\r\n") - 4, 100000u);
    r = http_raw(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u);
    EXPECT_EQ(r.size(), r.find("\r\n\r\n") + 4);  // no body
    EXPECT_EQ(http_raw(port, "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
    EXPECT_EQ(http_raw(port, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
    EXPECT_EQ(http_raw(port, "GARBAGE\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
    EXPECT_EQ(http_raw(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a')).rfind("HTTP/1.1 431", 0), 0u);
    // Slowloris: half a request, then silence -> 408 and close.
    EXPECT_EQ(http_raw(port, "GET /metrics HTTP/1.1\r\nHost", 3000).rfind("HTTP/1.1 408", 0), 0u);
    // The server still answers afterwards.
    EXPECT_EQ(http_raw(port, "GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
    EXPECT_GE(srv.stats().timeouts.load(), 1u);
    EXPECT_GE(srv.stats().too_large.load(), 1u);
    srv.stop();
    EXPECT_EQ(http_raw(port, "GET /metrics HTTP/1.1\r\n\r\n"), "");
}

TEST(Scraper, ScrapesALocalEndpointAndReportsFailures) {
    HttpServer srv;
    std::string err;
    ASSERT_TRUE(srv.start(0x7f000001, 0, [](std::string_view, HttpResponse& r) { r.body = VLLM_TEXT; }, &err));
    // A port nobody listens on: bind+close to get one.
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
    uint16_t dead = ntohs(sa.sin_port);
    close(s);
    std::vector<ScrapeTarget> t(2);
    t[0].backend = 5;
    ASSERT_TRUE(parse_url("http://127.0.0.1:" + std::to_string(srv.port()) + "/metrics", t[0].url, &err));
    t[1].backend = 6;
    ASSERT_TRUE(parse_url("http://127.0.0.1:" + std::to_string(dead) + "/metrics", t[1].url, &err));
    std::map<uint32_t, std::pair<bool, BackendMetrics>> got;
    Scraper sc(t, 1000, [&](uint32_t b, bool ok, const BackendMetrics& m) { got[b] = {ok, m}; });
    sc.scrape_round();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_TRUE(got[5].first);
    EXPECT_EQ(got[5].second.running, 5u);
    EXPECT_EQ(got[5].second.waiting, 7u);
    EXPECT_FALSE(got[6].first);
    EXPECT_NE(sc.last_error(1).find("connect"), std::string::npos) << sc.last_error(1);
    EXPECT_EQ(sc.ok(0), 1u);
    EXPECT_EQ(sc.failed(1), 1u);
}

// ---------------------------------------------------------------- commands

struct CommandsFixture : ::testing::Test {
    std::unique_ptr<Scoreboard> sb = make_scoreboard(2);
    ControlWriter writer{sb.get()};
    Controls controls;
    std::unique_ptr<WorkerTelemetry> w = std::make_unique<WorkerTelemetry>();
    const WorkerTelemetry* ws[1] = {w.get()};
    CommandContext ctx;
    void SetUp() override {
        ctx.writer = &writer;
        ctx.controls = &controls;
        ctx.workers = ws;
        ctx.n_workers = 1;
        ctx.sampler = [](Sample& s) {
            WorkerSample x;
            static const tlb::scoreboard::Observation dummy{};
            (void)dummy;
            x.dataplane = {{"requests", 10}, {"retries", 2}, {"no_backend", 1}};
            x.tcp = {{"syn_rcvd", 5}};
            x.flows = 3;
            s.workers.push_back(x);
            s.workers.push_back(x);
            s.ports.push_back({"client-port", 100, 90, 0, 0, 0, 0, 0, 0});
        };
        ctx.busy_ratio = [](uint32_t) { return 0.25; };
    }
    Reply run(std::string_view cmd, std::string_view params = "") {
        Reply r;
        run_command(ctx, cmd, params, r);
        return r;
    }
};

TEST_F(CommandsFixture, DrainUndrainWeight) {
    Reply r = run("/tokenlb/backend_drain", "gpu1");
    EXPECT_EQ(r.find("error"), nullptr) << r.to_json();
    tlb::scoreboard::BackendConfig c;
    sb->read_config(1, c);
    EXPECT_EQ(c.drain, 1);
    sb->read_config(0, c);
    EXPECT_EQ(c.drain, 0);
    tlb::scoreboard::View v;
    sb->snapshot(v, 0);
    EXPECT_EQ(v.available & 2, 0u);  // policies no longer see gpu1
    EXPECT_EQ(v.available & 1, 1u);
    r = run("/tokenlb/backends");
    EXPECT_NE(r.to_json().find("\"drain\":[0,1]"), std::string::npos) << r.to_json();
    run("/tokenlb/backend_undrain", "gpu1");
    sb->read_config(1, c);
    EXPECT_EQ(c.drain, 0);
    r = run("/tokenlb/backend_weight", "gpu0,250");
    EXPECT_EQ(r.find("error"), nullptr) << r.to_json();
    sb->read_config(0, c);
    EXPECT_EQ(c.weight, 250);
    run("/tokenlb/backend_weight", "gpu0 7");
    sb->read_config(0, c);
    EXPECT_EQ(c.weight, 7);
    EXPECT_NE(run("/tokenlb/backend_weight", "gpu0,1001").find("error"), nullptr);
    EXPECT_NE(run("/tokenlb/backend_weight", "gpu0,abc").find("error"), nullptr);
    EXPECT_NE(run("/tokenlb/backend_weight", "gpu0").find("error"), nullptr);
    EXPECT_NE(run("/tokenlb/backend_drain", "nope").find("error"), nullptr);
    EXPECT_NE(run("/tokenlb/backend_drain", "").find("error"), nullptr);
    EXPECT_NE(run("/tokenlb/bogus").find("error"), nullptr);
}

TEST_F(CommandsFixture, PolicySetChangesControls) {
    controls.policy.store(uint8_t(tlb::policy::Kind::RoundRobin));
    Reply r = run("/tokenlb/policy");
    EXPECT_EQ(std::get<std::string>(*r.find("policy")), "round_robin");
    r = run("/tokenlb/policy_set", "least_requests");
    EXPECT_EQ(r.find("error"), nullptr) << r.to_json();
    EXPECT_EQ(controls.policy.load(), uint8_t(tlb::policy::Kind::LeastRequests));
    EXPECT_EQ(controls.policy_changes.load(), 1u);
    r = run("/tokenlb/policy_set", "fastest_please");
    ASSERT_NE(r.find("error"), nullptr);
    EXPECT_NE(std::get<std::string>(*r.find("error")).find("token_aware"), std::string::npos);
    EXPECT_EQ(controls.policy.load(), uint8_t(tlb::policy::Kind::LeastRequests));
}

TEST_F(CommandsFixture, StatusStatsBackends) {
    AccessRecord rec;
    rec.status = 200;
    rec.backend = 0;
    rec.model = 0;
    rec.ttft_us = 100000;
    rec.e2e_us = 200000;
    w->request_done(rec);
    rec.status = 503;
    rec.backend = NO_BACKEND;
    w->request_done(rec);
    sb->set_drain(1, true);
    Reply r = run("/tokenlb/status");
    auto u = [&](const char* k) { return std::get<uint64_t>(*r.find(k)); };
    EXPECT_EQ(u("backends"), 2u);
    EXPECT_EQ(u("backends_available"), 1u);
    EXPECT_EQ(u("backends_draining"), 1u);
    EXPECT_EQ(u("requests_finished"), 2u);
    EXPECT_EQ(u("requests_2xx"), 1u);
    EXPECT_EQ(u("requests_5xx"), 1u);
    EXPECT_EQ(u("requests_framed"), 20u);
    EXPECT_EQ(u("flows"), 6u);
    EXPECT_EQ(u("port_rx_packets"), 100u);
    EXPECT_EQ(std::get<std::vector<uint64_t>>(*r.find("busy_permille")), std::vector<uint64_t>{250});
    r = run("/tokenlb/stats");
    EXPECT_EQ(u("retries"), 4u);
    EXPECT_EQ(u("tcp_syn_rcvd"), 10u);
    EXPECT_EQ(u("port_client_port_ipackets"), 100u);  // '-' sanitised for rte_tel keys
    r = run("/tokenlb/backends");
    EXPECT_EQ(u("count"), 2u);
    auto names = std::get<std::vector<std::string>>(*r.find("name"));
    EXPECT_EQ(names, (std::vector<std::string>{"gpu0", "gpu1"}));
    EXPECT_EQ(std::get<std::vector<std::string>>(*r.find("address"))[1], "10.20.0.12:8000");
    auto p50 = std::get<std::vector<uint64_t>>(*r.find("ttft_p50_ms"));
    EXPECT_GT(p50[0], 50u);
    EXPECT_LE(p50[0], 100u);
    EXPECT_EQ(p50[1], 0u);
    EXPECT_EQ(r.to_json().rfind("{\"count\":2,\"name\":[\"gpu0\",\"gpu1\"],", 0), 0u);
}

// ---------------------------------------------------------------- exporter + service

TEST(Exporter, FamiliesFromSampleAndWorkers) {
    auto sb = make_scoreboard(2);
    auto w = std::make_unique<WorkerTelemetry>();
    AccessRecord rec;
    rec.status = 200;
    rec.backend = 1;
    rec.model = 0;
    rec.policy = uint8_t(tlb::policy::Kind::TokenAware);
    rec.ttft_us = 30000;
    w->request_done(rec);
    Sample s;
    WorkerSample ws;
    ws.dataplane = {{"rx_packets", 9}, {"retries", 3}, {"retry_status", 1}, {"unknown_model", 4},
                    {"requests_sensitive", 6}, {"understood", 8}, {"understand_cycles", 3000},
                    {"classify_cycles", 1000}};
    ws.tsc_hz = 1000000;
    ws.tcp = {{"syn_rcvd", 2}};
    ws.flows = 11;
    ws.pool = {{1, 2}, {0, 4}};
    ws.tagged = {{"code", 5}, {"pii", 2}};
    s.workers.push_back(ws);
    WorkerSample ws2;  // a second worker: tag counts add up
    ws2.id = 1;
    ws2.tagged = {{"code", 1}, {"pii", 0}};
    s.workers.push_back(ws2);
    s.ports.push_back({"client", 5, 6, 7, 8, 0, 0, 0, 0});
    const WorkerTelemetry* wp[1] = {w.get()};
    double busy[1] = {0.5};
    ExportContext ctx;
    ctx.scoreboard = sb.get();
    ctx.workers = wp;
    ctx.n_workers = 1;
    ctx.busy_ratio = busy;
    ctx.policy = "token_aware";
    Writer wr;
    collect(wr, s, ctx);
    const std::string& t = wr.text();
    EXPECT_EQ(wr.duplicate_families(), 0u);
    auto has = [&](const std::string& line) { return t.find(line + "\n") != std::string::npos; };
    EXPECT_TRUE(has("tokenlb_requests_total{status_class=\"2xx\",model=\"llama-3-8b\",backend=\"gpu1\",policy=\"token_aware\"} 1"));
    EXPECT_TRUE(has("tokenlb_request_ttft_seconds_bucket{backend=\"gpu1\",le=\"0.05\"} 1"));
    EXPECT_TRUE(has("tokenlb_request_ttft_seconds_bucket{backend=\"gpu1\",le=\"0.025\"} 0"));
    EXPECT_TRUE(has("tokenlb_request_ttft_seconds_count{backend=\"gpu0\"} 0"));
    EXPECT_TRUE(has("tokenlb_retries_total{cause=\"retry_status\"} 1"));
    EXPECT_TRUE(has("tokenlb_retries_total{cause=\"backend_failure\"} 2"));
    EXPECT_TRUE(has("tokenlb_rejected_requests_total{reason=\"unknown_model\"} 4"));
    EXPECT_TRUE(has("tokenlb_flows{worker=\"0\"} 11"));
    EXPECT_TRUE(has("tokenlb_requests_tagged_total{tag=\"code\"} 6"));
    EXPECT_TRUE(has("tokenlb_requests_tagged_total{tag=\"pii\"} 2"));
    EXPECT_TRUE(has("tokenlb_requests_sensitive_total 6"));
    EXPECT_TRUE(has("tokenlb_understood_requests_total 8"));
    EXPECT_TRUE(has("tokenlb_understand_seconds_total{stage=\"all\"} 0.003"));
    EXPECT_TRUE(has("tokenlb_understand_seconds_total{stage=\"classify\"} 0.001"));
    EXPECT_TRUE(has("tokenlb_backend_pool_connections{backend=\"gpu1\",state=\"total\"} 4"));
    EXPECT_TRUE(has("tokenlb_port_received_packets_total{port=\"client\"} 5"));
    EXPECT_TRUE(has("tokenlb_lcore_busy_ratio{worker=\"0\"} 0.5"));
    EXPECT_TRUE(has("tokenlb_dataplane_rx_packets_total{worker=\"0\"} 9"));
    EXPECT_TRUE(has("tokenlb_tcp_syn_rcvd_total{worker=\"0\"} 2"));
    EXPECT_TRUE(has("tokenlb_backend_up{backend=\"gpu0\"} 1"));
    EXPECT_TRUE(has("# TYPE tokenlb_prompt_tokens_estimate_relative_error histogram"));
    // Every counter family ends in _total; every sample line parses.
    auto st = parse_exposition(t, [&](const ParsedSample&) {});
    EXPECT_EQ(st.bad_lines, 0u);
    std::istringstream in(t);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("# TYPE ", 0) == 0 && line.find(" counter") != std::string::npos) {
            EXPECT_NE(line.find("_total counter"), std::string::npos) << line;
        }
    }
}

TEST(Service, DrainWritesAccessLogAndLearns) {
    auto sb = make_scoreboard(2);
    tlb::config::Config cfg;
    char path[] = "/tmp/tlb-access-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    cfg.telemetry.access_log = path;
    ServiceOptions o;
    o.cfg = &cfg;
    o.scoreboard = sb.get();
    o.serve_metrics = false;
    o.scrape_backends = false;
    o.unix_offset_us = 1795471800000000;
    auto svc = std::make_unique<Service>(o);
    std::string err;
    ASSERT_TRUE(svc->start(&err)) << err;
    EXPECT_EQ(svc->controls().policy.load(), uint8_t(tlb::policy::Kind::TokenAware));
    AccessRecord rec;
    rec.status = 200;
    rec.backend = 0;
    rec.model = 0;
    for (int i = 0; i < 3; ++i) svc->worker(0).request_done(rec);
    tlb::scoreboard::Observation ob;
    ob.backend = 1;
    ob.model = 0;
    ob.ttft_s = 0.2;
    ob.uncached_prompt_tokens = 1000;
    ob.decode_s = 1.0;
    ob.output_tokens = 50;
    svc->worker(0).observe(ob);
    // The service thread drains within tens of ms; wait for it (bounded).
    for (int i = 0; i < 200 && (svc->access_log_written() < 3 || svc->observations_learned() < 1); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(svc->access_log_written(), 3u);
    EXPECT_EQ(svc->observations_learned(), 1u);
    tlb::scoreboard::ControlLive cl;
    sb->read_control(1, cl);
    EXPECT_EQ(cl.samples, 1u);
    EXPECT_GT(cl.ewma_ttft_per_prompt_token_s, 0.f);
    std::string m = svc->metrics_text();
    EXPECT_NE(m.find("tokenlb_access_log_records_total 3\n"), std::string::npos);
    svc->stop();
    std::ifstream f(path);
    std::string line;
    int lines = 0;
    while (std::getline(f, line)) {
        ++lines;
        EXPECT_EQ(line.rfind("{\"time\":\"2026-11-23T22:10:00", 0), 0u) << line;
        EXPECT_NE(line.find("\"backend\":\"gpu0\""), std::string::npos);
    }
    EXPECT_EQ(lines, 3);
    unlink(path);
}

TEST(Service, MetricsEndpointAndScraperMarkStale) {
    // Backend 0's metrics come from a local fake vLLM, backend 1's URL is dead: stale.
    HttpServer fake;
    std::string err;
    ASSERT_TRUE(fake.start(0x7f000001, 0, [](std::string_view, HttpResponse& r) { r.body = VLLM_TEXT; }, &err));
    auto sb = make_scoreboard(2);
    tlb::config::Config cfg;
    cfg.telemetry.metrics_listen = {0x7f000001, 0};
    cfg.telemetry.scrape_interval_ms = 100;
    cfg.backends.resize(2);
    cfg.backends[0].metrics_url = "http://127.0.0.1:" + std::to_string(fake.port()) + "/metrics";
    cfg.backends[1].metrics_url = "http://127.0.0.1:1/metrics";
    ServiceOptions o;
    o.cfg = &cfg;
    o.scoreboard = sb.get();
    Service svc(o);
    svc.set_sampler([](Sample& s) { s.workers.emplace_back(); });
    ASSERT_TRUE(svc.start(&err)) << err;
    tlb::scoreboard::ControlLive c0, c1;
    for (int i = 0; i < 300; ++i) {
        sb->read_control(0, c0);
        sb->read_control(1, c1);
        if (c0.metrics_valid && c1.stale) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(c0.metrics_valid);
    EXPECT_FALSE(c0.stale);
    EXPECT_EQ(c0.running, 5u);
    EXPECT_FLOAT_EQ(c0.kv_usage, 0.61f);
    EXPECT_TRUE(c1.stale);
    std::string r = http_raw(svc.metrics_port(), "GET /metrics HTTP/1.1\r\n\r\n");
    EXPECT_NE(r.find("tokenlb_backend_kv_cache_usage_ratio{backend=\"gpu0\"} 0.61"), std::string::npos);
    EXPECT_NE(r.find("tokenlb_backend_metrics_stale{backend=\"gpu1\"} 1"), std::string::npos);
    EXPECT_NE(r.find("tokenlb_backend_scrapes_total{backend=\"gpu0\",result=\"ok\"}"), std::string::npos);
    EXPECT_EQ(http_raw(svc.metrics_port(), "GET /health HTTP/1.1\r\n\r\n").find("ok\n"),
              http_raw(svc.metrics_port(), "GET /health HTTP/1.1\r\n\r\n").size() - 3);
    svc.stop();
}
