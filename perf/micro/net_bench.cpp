// lib/net micro benchmarks. Each benchmark first checks its result against a reference (DPDK's
// own inline checksum helpers, or a known value) and aborts the run on a mismatch, so a fast
// wrong answer is never reported. Report medians:
//   build-x/perf/micro/net_bench --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
#include "net/net.hpp"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using namespace tlb::net;

namespace {

void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "net_bench: reference check failed: %s\n", what);
        std::abort();
    }
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> b(n);
    for (auto& x : b) x = uint8_t(rng());
    return b;
}

// A full-size TCP data segment (1448 payload bytes, timestamps) built by our builder.
std::vector<uint8_t> make_segment(size_t payload_len) {
    static std::vector<uint8_t> payload = random_bytes(1500, 1);
    TcpOptions o;
    o.has_timestamps = true;
    o.ts_val = 123456;
    o.ts_ecr = 654321;
    uint8_t opts[40];
    TcpSegmentSpec s;
    s.src_mac = {{2, 0, 0, 0, 0, 1}};
    s.dst_mac = {{2, 0, 0, 0, 0, 2}};
    s.src_ip_be = ipv4_be(10, 20, 0, 1);
    s.dst_ip_be = ipv4_be(10, 20, 0, 11);
    s.src_port_be = rte_cpu_to_be_16(40001);
    s.dst_port_be = rte_cpu_to_be_16(8000);
    s.seq = 1000;
    s.ack = 2000;
    s.flags = TCP_ACK | TCP_PSH;
    s.window = 512;
    s.options = opts;
    s.options_len = uint8_t(write_tcp_options(o, opts, sizeof opts));
    s.payload = payload.data();
    s.payload_len = uint16_t(payload_len);
    std::vector<uint8_t> f(tcp_segment_len(s));
    require(build_tcp_segment(f.data(), f.size(), s) == f.size(), "build");
    return f;
}

void BM_csum_partial(benchmark::State& st) {
    size_t n = size_t(st.range(0));
    auto b = random_bytes(n, 7);
    require(uint16_t(~csum_fold(csum_partial(b.data(), n))) == rte_raw_cksum(b.data(), n),
            "csum_partial vs rte_raw_cksum");
    for (auto _ : st) benchmark::DoNotOptimize(csum_partial(b.data(), n));
    st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(n));
}
BENCHMARK(BM_csum_partial)->Arg(20)->Arg(64)->Arg(576)->Arg(1460);

// DPDK's scalar reference on the same buffers, for comparison.
void BM_rte_raw_cksum(benchmark::State& st) {
    size_t n = size_t(st.range(0));
    auto b = random_bytes(n, 7);
    for (auto _ : st) benchmark::DoNotOptimize(rte_raw_cksum(b.data(), n));
    st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(n));
}
BENCHMARK(BM_rte_raw_cksum)->Arg(20)->Arg(64)->Arg(576)->Arg(1460);

void BM_ipv4_header_checksum(benchmark::State& st) {
    auto f = make_segment(1448);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + ETH_HDR_LEN);
    require(ipv4_header_checksum(ip) == ip->hdr_checksum, "ip checksum vs built frame");
    uint16_t stored = ip->hdr_checksum;
    ip->hdr_checksum = 0;
    require(rte_ipv4_cksum(ip) == stored, "ip checksum vs rte_ipv4_cksum");
    ip->hdr_checksum = stored;
    for (auto _ : st) benchmark::DoNotOptimize(ipv4_header_checksum(ip));
}
BENCHMARK(BM_ipv4_header_checksum);

void BM_tcp_checksum_full(benchmark::State& st) {
    auto f = make_segment(size_t(st.range(0)));
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + ETH_HDR_LEN);
    uint8_t* l4 = f.data() + ETH_HDR_LEN + IPV4_MIN_HDR_LEN;
    size_t l4_len = f.size() - ETH_HDR_LEN - IPV4_MIN_HDR_LEN;
    auto* tcp = reinterpret_cast<rte_tcp_hdr*>(l4);
    uint16_t stored = tcp->cksum;
    tcp->cksum = 0;
    require(rte_ipv4_udptcp_cksum(ip, l4) == stored, "tcp checksum vs rte_ipv4_udptcp_cksum");
    tcp->cksum = stored;
    for (auto _ : st)
        benchmark::DoNotOptimize(
            ipv4_l4_checksum(ip->src_addr, ip->dst_addr, IPPROTO_TCP, l4, l4_len));
    st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(l4_len));
}
BENCHMARK(BM_tcp_checksum_full)->Arg(0)->Arg(1448);

// What splice does per forwarded segment: rewrite addresses, ports, seq, ack; update incrementally.
void BM_tcp_rewrite_incremental(benchmark::State& st) {
    auto f = make_segment(1448);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + ETH_HDR_LEN);
    auto* tcp = reinterpret_cast<rte_tcp_hdr*>(f.data() + ETH_HDR_LEN + IPV4_MIN_HDR_LEN);
    size_t l4_len = f.size() - ETH_HDR_LEN - IPV4_MIN_HDR_LEN;
    auto rewrite = [&](uint32_t nsrc, uint32_t ndst, uint16_t nport, uint32_t delta) {
        uint32_t osrc = ip->src_addr, odst = ip->dst_addr;
        uint16_t oport = tcp->dst_port;
        uint32_t oseq = tcp->sent_seq, oack = tcp->recv_ack;
        uint32_t nseq = rte_cpu_to_be_32(rte_be_to_cpu_32(oseq) + delta);
        uint32_t nack = rte_cpu_to_be_32(rte_be_to_cpu_32(oack) - delta);
        uint16_t ipc = csum_update32(ip->hdr_checksum, osrc, nsrc);
        ip->hdr_checksum = csum_update32(ipc, odst, ndst);
        uint16_t c = csum_update32(tcp->cksum, osrc, nsrc);
        c = csum_update32(c, odst, ndst);
        c = csum_update16(c, oport, nport);
        c = csum_update32(c, oseq, nseq);
        tcp->cksum = csum_update32(c, oack, nack);
        ip->src_addr = nsrc;
        ip->dst_addr = ndst;
        tcp->dst_port = nport;
        tcp->sent_seq = nseq;
        tcp->recv_ack = nack;
    };
    rewrite(ipv4_be(10, 10, 0, 1), ipv4_be(10, 10, 0, 2), rte_cpu_to_be_16(51000), 77777);
    require(ipv4_header_checksum_ok(ip), "incremental ip checksum");
    require(ipv4_l4_checksum_ok(ip->src_addr, ip->dst_addr, IPPROTO_TCP, tcp, l4_len),
            "incremental tcp checksum");
    uint32_t a = ipv4_be(10, 10, 0, 1), b = ipv4_be(10, 20, 0, 1);
    for (auto _ : st) {
        rewrite(b, a, tcp->src_port, 1);
        std::swap(a, b);
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_tcp_rewrite_incremental);

void BM_parse_ipv4_tcp(benchmark::State& st) {
    auto f = make_segment(1448);
    Ipv4Info ip;
    TcpInfo t;
    require(parse_ipv4(f.data(), f.size(), ip) == DropReason::NONE, "parse ip");
    require(parse_tcp(f.data(), ip, t, true) == DropReason::NONE && t.payload_len == 1448,
            "parse tcp");
    bool verify = st.range(0) != 0;  // 1: software checksum verification included
    for (auto _ : st) {
        DropReason r = parse_ipv4(f.data(), f.size(), ip, !verify);
        r = r == DropReason::NONE ? parse_tcp(f.data(), ip, t, !verify) : r;
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(t);
    }
}
BENCHMARK(BM_parse_ipv4_tcp)->Arg(0)->Arg(1);

void BM_parse_tcp_options(benchmark::State& st) {
    // SYN layout (MSS, SACK-permitted, TS, NOP, WS) or a data segment's TS + 3 SACK blocks.
    TcpOptions in;
    if (st.range(0) == 0) {
        in.has_mss = true;
        in.mss = 1460;
        in.sack_permitted = true;
        in.has_timestamps = true;
        in.ts_val = 1;
        in.has_wscale = true;
        in.wscale = 7;
    } else {
        in.has_timestamps = true;
        in.ts_val = 5;
        in.ts_ecr = 6;
        in.sack_count = 3;
        for (int i = 0; i < 3; ++i) in.sack[i] = {uint32_t(i * 100), uint32_t(i * 100 + 50)};
    }
    uint8_t buf[40];
    int n = write_tcp_options(in, buf, sizeof buf);
    require(n > 0, "write options");
    TcpOptions out;
    require(parse_tcp_options(buf, size_t(n), out) == OptError::OK &&
                out.has_timestamps == in.has_timestamps && out.sack_count == in.sack_count &&
                out.mss == in.mss,
            "options round trip");
    for (auto _ : st) {
        benchmark::DoNotOptimize(parse_tcp_options(buf, size_t(n), out));
        benchmark::DoNotOptimize(out);
    }
}
BENCHMARK(BM_parse_tcp_options)->Arg(0)->Arg(1);

void BM_build_tcp_segment(benchmark::State& st) {
    auto ref = make_segment(size_t(st.range(0)));
    static std::vector<uint8_t> payload = random_bytes(1500, 1);
    TcpSegmentSpec s;
    Ipv4Info ip;
    TcpInfo t;
    require(parse_ipv4(ref.data(), ref.size(), ip) == DropReason::NONE, "ref ip");
    require(parse_tcp(ref.data(), ip, t) == DropReason::NONE, "ref tcp");
    std::memcpy(&s.src_mac, ref.data() + 6, 6);
    std::memcpy(&s.dst_mac, ref.data(), 6);
    s.src_ip_be = ip.src_be;
    s.dst_ip_be = ip.dst_be;
    s.src_port_be = t.src_port_be;
    s.dst_port_be = t.dst_port_be;
    s.seq = t.seq;
    s.ack = t.ack;
    s.flags = t.flags;
    s.window = t.window;
    s.options = ref.data() + t.opt_off;
    s.options_len = t.opt_len;
    s.payload = ref.data() + t.payload_off;
    s.payload_len = t.payload_len;
    std::vector<uint8_t> out(2048);
    CsumMode mode = st.range(1) ? CsumMode::OFFLOAD_ALL : CsumMode::SOFTWARE;
    require(build_tcp_segment(out.data(), out.size(), s) == ref.size() &&
                std::memcmp(out.data(), ref.data(), ref.size()) == 0,
            "rebuilt segment equals reference");
    for (auto _ : st) {
        benchmark::DoNotOptimize(build_tcp_segment(out.data(), out.size(), s, mode));
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_build_tcp_segment)->Args({0, 0})->Args({1448, 0})->Args({1448, 1});

void BM_neighbor_lookup(benchmark::State& st) {
    NeighborTable t(1024);
    MacAddr mac = {{2, 0, 0, 0, 0, 9}};
    std::vector<uint32_t> ips;
    for (uint32_t i = 1; i <= 500; ++i) {
        uint32_t ip = ipv4_be(10, 20, uint8_t(i >> 8), uint8_t(i));
        t.learn(ip, mac, 0, i);
        ips.push_back(ip);
    }
    MacAddr out;
    require(t.lookup(ips[0], out) && mac_equal(out, mac), "lookup learned");
    size_t i = 0;
    for (auto _ : st) {
        benchmark::DoNotOptimize(t.lookup(ips[i], out));
        i = (i + 1) % ips.size();
    }
}
BENCHMARK(BM_neighbor_lookup);

}  // namespace

BENCHMARK_MAIN();
