// lib/tcp micro-benchmarks: SYN-cookie make/check, flow-table lookup, splice translation per
// segment (both directions), timer arm/cancel. Each benchmark checks its result against a
// reference before timing. Run with --benchmark_repetitions=N --benchmark_report_aggregates_only
// and read the medians.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "net/net.hpp"
#include "tcp/tcp.hpp"

using namespace tlb;
using namespace tlb::tcp;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "tcp_bench: reference check failed: %s\n", what);
    std::abort();
}

struct Tuple {
    uint32_t saddr, daddr;
    uint16_t sport, dport;
    uint32_t isn;
};

std::vector<Tuple> tuples(size_t n) {
    std::mt19937 rng(42);
    std::vector<Tuple> v(n);
    for (auto& t : v) t = {uint32_t(rng()), net::ipv4_be(10, 10, 0, 1), uint16_t(rng()),
                           rte_cpu_to_be_16(80), uint32_t(rng())};
    return v;
}

void BM_CookieMake(benchmark::State& st) {
    SynCookies sc(1, 2, 64);
    sc.set_time(1000);
    auto v = tuples(1024);
    size_t i = 0;
    for (auto _ : st) {
        const Tuple& t = v[i++ & 1023];
        benchmark::DoNotOptimize(sc.make(t.saddr, t.daddr, t.sport, t.dport, t.isn, 1460, 7));
    }
}
BENCHMARK(BM_CookieMake);

void BM_CookieCheck(benchmark::State& st) {
    SynCookies sc(1, 2, 64);
    sc.set_time(1000);
    auto v = tuples(1024);
    std::vector<uint32_t> cookies;
    for (auto& t : v) cookies.push_back(sc.make(t.saddr, t.daddr, t.sport, t.dport, t.isn, 1460, 7));
    CookieOptions o;
    for (size_t k = 0; k < v.size(); k++)
        if (!sc.check(v[k].saddr, v[k].daddr, v[k].sport, v[k].dport, v[k].isn, cookies[k], &o) ||
            o.mss != 1460 || o.wscale != 7)
            fail("cookie check");
    size_t i = 0;
    for (auto _ : st) {
        size_t k = i++ & 1023;
        const Tuple& t = v[k];
        benchmark::DoNotOptimize(sc.check(t.saddr, t.daddr, t.sport, t.dport, t.isn, cookies[k], &o));
    }
}
BENCHMARK(BM_CookieCheck);

void BM_FlowLookupHit(benchmark::State& st) {
    const uint32_t n = uint32_t(st.range(0));
    FlowTable ft(n, 0x5eed);
    std::mt19937 rng(3);
    std::vector<FlowKey> keys;
    while (keys.size() < n) {
        FlowKey k{uint32_t(rng()), net::ipv4_be(10, 10, 0, 1), uint16_t(rng()), rte_cpu_to_be_16(80)};
        if (ft.insert(k, uint32_t(keys.size())) == 0) keys.push_back(k);
    }
    for (uint32_t i = 0; i < n; i++)
        if (ft.lookup(keys[i]) != i) fail("flow lookup");
    std::vector<uint32_t> order(n);
    for (uint32_t i = 0; i < n; i++) order[i] = uint32_t(rng() % n);
    uint32_t i = 0;
    for (auto _ : st) {
        benchmark::DoNotOptimize(ft.lookup(keys[order[i]]));
        if (++i == n) i = 0;
    }
    st.counters["mean_probe"] = ft.mean_probe();
}
BENCHMARK(BM_FlowLookupHit)->Arg(1024)->Arg(65536)->Arg(1 << 20);

// A burst of 32 lookups with the home slots prefetched first (how an rx burst does it); time per
// lookup.
void BM_FlowLookupBurstPrefetch(benchmark::State& st) {
    const uint32_t n = uint32_t(st.range(0));
    FlowTable ft(n, 0x5eed);
    std::mt19937 rng(3);
    std::vector<FlowKey> keys;
    while (keys.size() < n) {
        FlowKey k{uint32_t(rng()), net::ipv4_be(10, 10, 0, 1), uint16_t(rng()), rte_cpu_to_be_16(80)};
        if (ft.insert(k, uint32_t(keys.size())) == 0) keys.push_back(k);
    }
    std::vector<uint32_t> order(n);
    for (uint32_t i = 0; i < n; i++) order[i] = uint32_t(rng() % n);
    uint32_t sum_ref = 0;
    for (uint32_t i = 0; i + 32 <= n; i += 32)
        for (uint32_t j = 0; j < 32; j++) sum_ref += ft.lookup(keys[order[i + j]]);
    uint32_t sum = 0;
    for (uint32_t i = 0; i + 32 <= n; i += 32) {
        for (uint32_t j = 0; j < 32; j++) ft.prefetch(keys[order[i + j]]);
        for (uint32_t j = 0; j < 32; j++) sum += ft.lookup(keys[order[i + j]]);
    }
    if (sum != sum_ref) fail("burst lookup");
    uint32_t i = 0;
    for (auto _ : st) {
        for (uint32_t j = 0; j < 32; j++) ft.prefetch(keys[order[i + j]]);
        for (uint32_t j = 0; j < 32; j++) benchmark::DoNotOptimize(ft.lookup(keys[order[i + j]]));
        i += 32;
        if (i + 32 > n) i = 0;
    }
    st.SetItemsProcessed(int64_t(st.iterations()) * 32);
}
BENCHMARK(BM_FlowLookupBurstPrefetch)->Arg(65536)->Arg(1 << 20);

void BM_FlowLookupMiss(benchmark::State& st) {
    const uint32_t n = 65536;
    FlowTable ft(n, 0x5eed);
    std::mt19937 rng(4);
    for (uint32_t i = 0; i < n; i++)
        ft.insert(FlowKey{uint32_t(rng()), 1, uint16_t(rng()), 80}, i);
    std::vector<FlowKey> miss;
    for (int i = 0; i < 4096; i++) miss.push_back(FlowKey{uint32_t(rng()), 2, uint16_t(rng()), 81});
    for (auto& k : miss)
        if (ft.lookup(k) != FlowTable::NOT_FOUND) fail("flow miss");
    size_t i = 0;
    for (auto _ : st) benchmark::DoNotOptimize(ft.lookup(miss[i++ & 4095]));
}
BENCHMARK(BM_FlowLookupMiss);

struct SpliceFixture {
    std::vector<uint8_t> frame;
    net::Ipv4Info ip;
    net::TcpInfo th;
    SpliceBinding b[2];
    explicit SpliceFixture(uint16_t payload_len, bool from_backend) {
        net::TcpSegmentSpec s;
        std::vector<uint8_t> payload(payload_len, 'x');
        if (from_backend) {
            s.src_ip_be = net::ipv4_be(10, 20, 0, 11);
            s.dst_ip_be = net::ipv4_be(10, 20, 0, 1);
            s.src_port_be = rte_cpu_to_be_16(8000);
            s.dst_port_be = rte_cpu_to_be_16(10001);
        } else {
            s.src_ip_be = net::ipv4_be(10, 10, 0, 2);
            s.dst_ip_be = net::ipv4_be(10, 10, 0, 1);
            s.src_port_be = rte_cpu_to_be_16(40000);
            s.dst_port_be = rte_cpu_to_be_16(80);
        }
        s.seq = 0x10000;
        s.ack = 0x20000;
        s.flags = net::TCP_ACK;
        s.window = 500;
        s.payload = payload.data();
        s.payload_len = payload_len;
        frame.resize(net::tcp_segment_len(s));
        net::build_tcp_segment(frame.data(), frame.size(), s);
        if (net::parse_ipv4(frame.data(), frame.size(), ip) != net::DropReason::NONE ||
            net::parse_tcp(frame.data(), ip, th) != net::DropReason::NONE)
            fail("fixture parse");
        // Two bindings with different addresses and deltas, used alternately, so every field
        // really changes on every call (as it does for a fresh segment).
        for (int k = 0; k < 2; k++) {
            FlowKey ck{net::ipv4_be(10, 10, 0, uint8_t(2 + k)), net::ipv4_be(10, 10, 0, 1),
                       rte_cpu_to_be_16(uint16_t(40000 + k)), rte_cpu_to_be_16(80)};
            FlowKey bk{net::ipv4_be(10, 20, 0, uint8_t(11 + k)), net::ipv4_be(10, 20, 0, 1),
                       rte_cpu_to_be_16(8000), rte_cpu_to_be_16(uint16_t(10001 + k))};
            b[k].bind(ck, bk, 0xfffff000u + uint32_t(k) * 77777, 0x10000, 7, 7, 1460);
        }
    }
    bool checksums_ok() const {
        auto* iph = reinterpret_cast<const rte_ipv4_hdr*>(frame.data() + ip.l3_off);
        return net::ipv4_header_checksum_ok(iph) &&
               net::ipv4_l4_checksum_ok(iph->src_addr, iph->dst_addr, IPPROTO_TCP,
                                        frame.data() + ip.l4_off, ip.l4_len);
    }
};

void BM_SpliceB2C(benchmark::State& st) {
    SpliceFixture f(uint16_t(st.range(0)), true);
    for (int k = 0; k < 2; k++) {
        if (!splice_b2c_in_place(f.frame.data(), f.ip, f.th, f.b[k], 1234, 99) || !f.checksums_ok())
            fail("b2c checksum");
        net::Ipv4Info ip2;  // the addresses changed: parse afresh
        net::TcpInfo t;
        if (net::parse_ipv4(f.frame.data(), f.frame.size(), ip2) != net::DropReason::NONE ||
            net::parse_tcp(f.frame.data(), ip2, t) != net::DropReason::NONE ||
            t.seq != f.b[k].map_seq(0x10000))
            fail("b2c seq");
    }
    uint32_t i = 0;
    for (auto _ : st) {
        splice_b2c_in_place(f.frame.data(), f.ip, f.th, f.b[i & 1], 1234 + i, 99);
        benchmark::ClobberMemory();
        i++;
    }
    if (!f.checksums_ok()) fail("b2c checksum after timing");
}
BENCHMARK(BM_SpliceB2C)->Arg(1460)->Arg(64);

void BM_SpliceC2BAck(benchmark::State& st) {
    SpliceFixture f(0, false);
    for (int k = 0; k < 2; k++) {
        if (!splice_c2b_ack_in_place(f.frame.data(), f.ip, f.th, f.b[k], 0xabc) || !f.checksums_ok())
            fail("c2b checksum");
    }
    uint32_t i = 0;
    for (auto _ : st) {
        splice_c2b_ack_in_place(f.frame.data(), f.ip, f.th, f.b[i & 1], 0xabc + i);
        benchmark::ClobberMemory();
        i++;
    }
    if (!f.checksums_ok()) fail("c2b checksum after timing");
}
BENCHMARK(BM_SpliceC2BAck);

void BM_TimerRearm(benchmark::State& st) {
    TimerWheel w(4096, 1000, 0);
    std::vector<Timer> t(4096);
    for (size_t k = 0; k < t.size(); k++) w.arm(&t[k], 1000 + k * 37);
    if (w.armed_count() != t.size()) fail("timer count");
    size_t i = 0;
    uint64_t now = 0;
    for (auto _ : st) {
        // What every ACK does: move the RTO.
        w.arm(&t[i & 4095], now + 200000 + (i & 1023));
        i++;
    }
    benchmark::DoNotOptimize(now);
}
BENCHMARK(BM_TimerRearm);

}  // namespace

BENCHMARK_MAIN();
