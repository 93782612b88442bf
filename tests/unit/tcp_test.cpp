// Unit tests for lib/tcp. Pure pieces run on crafted byte buffers; the mbuf pieces (MbufQueue,
// zero-copy data segments, splice rebuild) initialise EAL once with --no-huge.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "net/net.hpp"
#include "tcp/tcp.hpp"

using namespace tlb;
using namespace tlb::tcp;

namespace {

// ------------------------------------------------------------------------------------------
// Frame helpers.

struct Frame {
    std::vector<uint8_t> bytes;
    net::Ipv4Info ip;
    net::TcpInfo th;
    bool parse() {
        if (net::parse_ipv4(bytes.data(), bytes.size(), ip) != net::DropReason::NONE) return false;
        return net::parse_tcp(bytes.data(), ip, th) == net::DropReason::NONE;
    }
    // Full recomputation of both checksums (independent of the incremental updates).
    bool checksums_ok() const {
        auto* iph = reinterpret_cast<const rte_ipv4_hdr*>(bytes.data() + ip.l3_off);
        if (!net::ipv4_header_checksum_ok(iph)) return false;
        uint16_t l4len = uint16_t(rte_be_to_cpu_16(iph->total_length) - ip.l3_len);
        if (!net::ipv4_l4_checksum_ok(iph->src_addr, iph->dst_addr, IPPROTO_TCP,
                                      bytes.data() + ip.l4_off, l4len))
            return false;
        // And against DPDK's own implementation.
        auto* tcph = reinterpret_cast<const rte_tcp_hdr*>(bytes.data() + ip.l4_off);
        std::vector<uint8_t> copy(bytes.begin() + ip.l4_off, bytes.begin() + ip.l4_off + l4len);
        reinterpret_cast<rte_tcp_hdr*>(copy.data())->cksum = 0;
        (void)tcph;
        std::vector<uint8_t> whole(bytes.begin() + ip.l3_off, bytes.end());
        auto* wi = reinterpret_cast<rte_ipv4_hdr*>(whole.data());
        auto* wt = reinterpret_cast<rte_tcp_hdr*>(whole.data() + ip.l3_len);
        uint16_t stored = wt->cksum;
        wt->cksum = 0;
        return rte_ipv4_udptcp_cksum(wi, wt) == stored;
    }
    std::string payload() const {
        return std::string(reinterpret_cast<const char*>(bytes.data() + th.payload_off),
                           th.payload_len);
    }
};

constexpr uint32_t CLIENT_IP = net::ipv4_be(10, 10, 0, 2);
constexpr uint32_t VIP = net::ipv4_be(10, 10, 0, 1);
constexpr uint32_t LOCAL_IP = net::ipv4_be(10, 20, 0, 1);
constexpr uint32_t BACKEND_IP = net::ipv4_be(10, 20, 0, 11);
constexpr uint32_t BACKEND2_IP = net::ipv4_be(10, 20, 0, 12);
const uint16_t CLIENT_PORT = rte_cpu_to_be_16(40000);
const uint16_t VIP_PORT = rte_cpu_to_be_16(80);
const uint16_t BACKEND_PORT = rte_cpu_to_be_16(8000);

Frame make_frame(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
                 uint32_t ack, uint8_t flags, uint16_t win, const std::string& payload,
                 const std::vector<uint8_t>& opts = {}) {
    net::TcpSegmentSpec s;
    s.src_mac = {{2, 0, 0, 0, 0, 1}};
    s.dst_mac = {{2, 0, 0, 0, 0, 2}};
    s.src_ip_be = src;
    s.dst_ip_be = dst;
    s.src_port_be = sport;
    s.dst_port_be = dport;
    s.seq = seq;
    s.ack = ack;
    s.flags = flags;
    s.window = win;
    s.options = opts.empty() ? nullptr : opts.data();
    s.options_len = uint8_t(opts.size());
    s.payload = reinterpret_cast<const uint8_t*>(payload.data());
    s.payload_len = uint16_t(payload.size());
    Frame f;
    f.bytes.resize(net::tcp_segment_len(s));
    size_t n = net::build_tcp_segment(f.bytes.data(), f.bytes.size(), s);
    EXPECT_EQ(n, f.bytes.size());
    EXPECT_TRUE(f.parse());
    return f;
}

net::TcpInfo info(uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, uint16_t len) {
    net::TcpInfo t;
    t.seq = seq;
    t.ack = ack;
    t.flags = flags;
    t.window = win;
    t.payload_len = len;
    return t;
}

// ------------------------------------------------------------------------------------------
// EAL for the mbuf tests.

rte_mempool* g_pool = nullptr;
bool g_eal = false;

class EalEnv : public ::testing::Environment {
public:
    void SetUp() override {
        const char* argv[] = {"tcp_test", "--no-huge", "--no-pci", "-m", "256", "--no-shconf",
                              "--log-level=lib.eal:error", "--no-telemetry"};
        int argc = int(sizeof(argv) / sizeof(argv[0]));
        if (rte_eal_init(argc, const_cast<char**>(argv)) < 0) return;
        g_pool = rte_pktmbuf_pool_create("tcp_test", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                         SOCKET_ID_ANY);
        g_eal = g_pool != nullptr;
    }
};
[[maybe_unused]] auto* g_env = ::testing::AddGlobalTestEnvironment(new EalEnv);

#define NEED_EAL() \
    if (!g_eal) GTEST_SKIP() << "EAL could not be initialised"

rte_mbuf* mbuf_with(const std::string& s) {
    rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
    char* p = rte_pktmbuf_append(m, uint16_t(s.size()));
    memcpy(p, s.data(), s.size());
    return m;
}

std::string queue_string(const MbufQueue& q) {
    std::string out(q.bytes(), '\0');
    EXPECT_EQ(q.copy_out(0, q.bytes(), reinterpret_cast<uint8_t*>(out.data())), q.bytes());
    return out;
}

std::string chain_string(const rte_mbuf* m, uint32_t off = 0) {
    std::string out;
    for (; m; m = m->next) {
        const char* p = rte_pktmbuf_mtod(m, const char*);
        uint32_t dl = m->data_len;
        if (off >= dl) {
            off -= dl;
            continue;
        }
        out.append(p + off, dl - off);
        off = 0;
    }
    return out;
}

std::string random_text(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, ' ');
    for (auto& c : s) c = char('a' + rng() % 26);
    return s;
}

}  // namespace

// ==========================================================================================
// Sequence arithmetic.

TEST(Seq, CompareAcrossWraparound) {
    EXPECT_TRUE(seq_lt(0xfffffff0u, 0x10u));
    EXPECT_TRUE(seq_gt(0x10u, 0xfffffff0u));
    EXPECT_TRUE(seq_leq(5, 5));
    EXPECT_FALSE(seq_lt(5, 5));
    EXPECT_EQ(seq_diff(0x5u, 0xfffffffbu), 10);
    EXPECT_EQ(seq_max(0xffffffffu, 1u), 1u);
    EXPECT_EQ(seq_min(0xffffffffu, 1u), 0xffffffffu);
    EXPECT_TRUE(seq_in(0x2u, 0xfffffffeu, 0x10u));
    EXPECT_FALSE(seq_in(0x10u, 0xfffffffeu, 0x10u));
    EXPECT_FALSE(seq_in(0xfffffffdu, 0xfffffffeu, 0x10u));
    // 2^31 - 1 apart is still ordered.
    EXPECT_TRUE(seq_lt(0u, 0x7fffffffu));
}

TEST(Seq, Acceptability) {
    // RFC 9293 table: zero-length segments.
    EXPECT_TRUE(seq_acceptable(100, 0, 100, 0));
    EXPECT_FALSE(seq_acceptable(101, 0, 100, 0));
    EXPECT_TRUE(seq_acceptable(150, 0, 100, 100));
    EXPECT_FALSE(seq_acceptable(200, 0, 100, 100));
    // Data into a zero window is never acceptable.
    EXPECT_FALSE(seq_acceptable(100, 10, 100, 0));
    // Overlap at either end.
    EXPECT_TRUE(seq_acceptable(90, 20, 100, 100));   // old start, new tail
    EXPECT_TRUE(seq_acceptable(195, 20, 100, 100));  // starts inside
    EXPECT_FALSE(seq_acceptable(80, 20, 100, 100));  // entirely old
    EXPECT_FALSE(seq_acceptable(200, 5, 100, 100));  // entirely beyond
    // Across wraparound.
    EXPECT_TRUE(seq_acceptable(0x5, 10, 0xfffffff0u, 0x100));
}

// ==========================================================================================
// SipHash and SYN cookies.

TEST(SipHash, ReferenceVector) {
    // Aumasson & Bernstein, Appendix A: key 00..0f, message 00..0e.
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++) key[i] = uint8_t(i);
    for (int i = 0; i < 64; i++) msg[i] = uint8_t(i);
    uint64_t k0 = 0, k1 = 0;
    for (int i = 7; i >= 0; i--) k0 = (k0 << 8) | key[i];
    for (int i = 15; i >= 8; i--) k1 = (k1 << 8) | key[i];
    EXPECT_EQ(siphash24(k0, k1, msg, 15), 0xa129ca6149be45e5ULL);
    EXPECT_EQ(siphash24(k0, k1, msg, 0), 0x726fdb47dd0e0e31ULL);
    // The three-word fast path equals the general function on 24 bytes.
    uint64_t w[3];
    memcpy(w, msg, 24);
    EXPECT_EQ(siphash24_3w(k0, k1, w[0], w[1], w[2]), siphash24(k0, k1, msg, 24));
    EXPECT_NE(siphash24_3w(k0, k1, w[0], w[1], w[2] ^ 1), siphash24(k0, k1, msg, 24));
}

TEST(SynCookie, RoundTripEveryMssAndWscale) {
    SynCookies sc(0x1234, 0x5678, 64);
    sc.set_time(1000);
    int n = 0;
    for (uint16_t mss : {0, 100, 536, 1000, 1200, 1359, 1360, 1460, 1500, 9000, 65535}) {
        for (int ws = -1; ws <= 16; ws++) {
            uint32_t isn = 0x9abc0000u + uint32_t(n++);
            CookieOptions made;
            uint32_t c = sc.make(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, isn, mss, ws, &made);
            CookieOptions got;
            ASSERT_TRUE(sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, isn, c, &got));
            EXPECT_EQ(got.mss, made.mss);
            EXPECT_EQ(got.wscale, made.wscale);
            // MSS rounds down to the table (536 when absent or below the minimum).
            uint16_t expect = 536;
            for (uint16_t t : SynCookies::MSS_TABLE)
                if (t <= mss) expect = t;
            EXPECT_EQ(got.mss, expect) << mss;
            EXPECT_EQ(got.wscale, ws < 0 ? -1 : std::min(ws, 14));
        }
    }
}

TEST(SynCookie, AnyChangeFails) {
    SynCookies sc(11, 22, 64);
    sc.set_time(5000);
    uint32_t isn = 777;
    uint32_t c = sc.make(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, isn, 1460, 7);
    CookieOptions o;
    EXPECT_TRUE(sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, isn, c, &o));
    EXPECT_FALSE(sc.check(CLIENT_IP ^ 0x01000000, VIP, CLIENT_PORT, VIP_PORT, isn, c, &o));
    EXPECT_FALSE(sc.check(CLIENT_IP, VIP, uint16_t(CLIENT_PORT + 1), VIP_PORT, isn, c, &o));
    EXPECT_FALSE(sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, isn + 1, c, &o));
    for (int bit = 0; bit < 32; bit++)
        EXPECT_FALSE(sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, isn, c ^ (1u << bit), &o))
            << "bit " << bit;
}

TEST(SynCookie, RotationCurrentAndPreviousEpoch) {
    SynCookies sc(1, 2, 64);
    sc.set_time(64 * 100);
    uint32_t c = sc.make(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 42, 1460, 7);
    CookieOptions o;
    sc.set_time(64 * 100 + 63);  // same epoch
    EXPECT_TRUE(sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 42, c, &o));
    sc.set_time(64 * 101);       // next epoch: previous secret still accepted
    EXPECT_TRUE(sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 42, c, &o));
    // A cookie made now is also valid.
    uint32_t c2 = sc.make(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 42, 1460, 7);
    EXPECT_NE(c, c2);
    sc.set_time(64 * 102);       // two epochs later: the old cookie expired
    EXPECT_FALSE(sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 42, c, &o));
    EXPECT_TRUE(sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 42, c2, &o));
    // Jumping many epochs derives both keys afresh.
    sc.set_time(64 * 1000);
    EXPECT_FALSE(sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 42, c2, &o));
    // Another worker with the same master agrees (cookies are valid on any worker).
    SynCookies other(1, 2, 64);
    other.set_time(64 * 1000);
    uint32_t c3 = sc.make(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 43, 1460, -1);
    EXPECT_TRUE(other.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 43, c3, &o));
    EXPECT_EQ(o.wscale, -1);
    // Replacing the master invalidates cookies in flight.
    other.set_master(9, 9);
    EXPECT_FALSE(other.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 43, c3, &o));
}

TEST(SynCookie, BlindForgeryRate) {
    SynCookies sc(0xdead, 0xbeef, 64);
    sc.set_time(12345);
    std::mt19937 rng(7);
    int accepted = 0;
    CookieOptions o;
    for (int i = 0; i < 200000; i++)
        accepted += sc.check(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 1000, rng(), &o);
    // Expected 200000 / 2^23 (two epochs accepted) = 0.024.
    EXPECT_LE(accepted, 1);
}

TEST(SynCookie, SynAckAndBadCookieRst) {
    TcpConfig cfg;
    SynCookies sc(3, 4, 64);
    sc.set_time(100);
    // SYN with MSS 1400 and wscale 8.
    std::vector<uint8_t> opts(40);
    net::TcpOptions so;
    so.has_mss = true;
    so.mss = 1400;
    so.has_wscale = true;
    so.wscale = 8;
    opts.resize(size_t(net::write_tcp_options(so, opts.data(), 40)));
    Frame syn = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 5000, 0, net::TCP_SYN, 64240, "",
                           opts);
    net::TcpOptions parsed;
    ASSERT_EQ(net::parse_tcp_options(syn.bytes.data() + syn.th.opt_off, syn.th.opt_len, parsed),
              net::OptError::OK);
    CookieOptions co;
    uint32_t cookie = sc.make(syn.ip.src_be, syn.ip.dst_be, syn.th.src_port_be, syn.th.dst_port_be,
                              syn.th.seq, parsed.mss, parsed.has_wscale ? parsed.wscale : -1, &co);
    uint8_t ob[40];
    net::TcpSegmentSpec sa;
    fill_syn_ack(syn.ip, syn.th, cookie, co, cfg, ob, sa);
    EXPECT_EQ(sa.src_ip_be, VIP);
    EXPECT_EQ(sa.dst_port_be, CLIENT_PORT);
    EXPECT_EQ(sa.seq, cookie);
    EXPECT_EQ(sa.ack, 5001u);
    EXPECT_EQ(sa.flags, net::TCP_SYN | net::TCP_ACK);
    net::TcpOptions sao;
    ASSERT_EQ(net::parse_tcp_options(sa.options, sa.options_len, sao), net::OptError::OK);
    EXPECT_TRUE(sao.has_mss);
    EXPECT_TRUE(sao.has_wscale);
    EXPECT_EQ(sao.wscale, cfg.our_wscale);
    EXPECT_FALSE(sao.sack_permitted);
    EXPECT_FALSE(sao.has_timestamps);

    // Final ACK: valid.
    Frame ack = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 5001, cookie + 1, net::TCP_ACK,
                           502, "");
    CookieOptions got;
    ASSERT_TRUE(sc.check(ack.ip.src_be, ack.ip.dst_be, ack.th.src_port_be, ack.th.dst_port_be,
                         ack.th.seq - 1, ack.th.ack - 1, &got));
    EXPECT_EQ(got.mss, 1400);
    EXPECT_EQ(got.wscale, 8);
    TcpCb cb;
    FlowKey key{CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT};
    open_from_cookie(cb, key, ack.th, got, cfg);
    EXPECT_EQ(cb.state, TcpState::ESTABLISHED);
    EXPECT_EQ(cb.rx.rcv_nxt(), 5001u);
    EXPECT_EQ(cb.tx.nxt(), cookie + 1);
    EXPECT_EQ(cb.tx.peer_wnd(), 502u << 8);
    EXPECT_EQ(cb.tx.mss(), 1400);

    // Bad cookie: RST with seq = SEG.ACK.
    Frame bad = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, 5001, cookie + 2, net::TCP_ACK,
                           502, "");
    EXPECT_FALSE(sc.check(bad.ip.src_be, bad.ip.dst_be, bad.th.src_port_be, bad.th.dst_port_be,
                          bad.th.seq - 1, bad.th.ack - 1, &got));
    net::TcpSegmentSpec rst;
    fill_rst_reply(bad.ip, bad.th, rst);
    EXPECT_EQ(rst.flags, net::TCP_RST);
    EXPECT_EQ(rst.seq, cookie + 2);
    EXPECT_EQ(rst.src_ip_be, VIP);
    EXPECT_EQ(rst.dst_ip_be, CLIENT_IP);
    EXPECT_EQ(rst.dst_port_be, CLIENT_PORT);
}

// ==========================================================================================
// Flow table and object pool.

namespace {
FlowKey rand_key(std::mt19937& rng) {
    return FlowKey{uint32_t(rng()), uint32_t(rng() & 0xff), uint16_t(rng()), uint16_t(80)};
}
struct KeyHash {
    size_t operator()(const FlowKey& k) const {
        return std::hash<uint64_t>()((uint64_t(k.remote_ip_be) << 32) ^ k.local_ip_be ^
                                     (uint64_t(k.remote_port_be) << 16) ^ k.local_port_be);
    }
};
}  // namespace

TEST(FlowTable, MatchesReferenceUnderChurn) {
    FlowTable ft(5000, 0x1234);
    EXPECT_GE(ft.capacity(), 10000u);
    std::unordered_map<FlowKey, uint32_t, KeyHash> ref;
    std::vector<FlowKey> keys;
    std::mt19937 rng(1);
    for (int round = 0; round < 200000; round++) {
        int op = int(rng() % 3);
        if (op < 2 && ref.size() < 5000) {
            FlowKey k = rand_key(rng);
            uint32_t v = rng() & 0x7fffffff;
            int rc = ft.insert(k, v);
            if (ref.count(k)) {
                EXPECT_EQ(rc, -2);
            } else {
                ASSERT_EQ(rc, 0);
                ref[k] = v;
                keys.push_back(k);
            }
        } else if (!keys.empty()) {
            size_t i = rng() % keys.size();
            FlowKey k = keys[i];
            keys[i] = keys.back();
            keys.pop_back();
            ASSERT_TRUE(ft.erase(k));
            ref.erase(k);
            EXPECT_EQ(ft.lookup(k), FlowTable::NOT_FOUND);
            EXPECT_FALSE(ft.erase(k));
        }
        if (round % 1000 == 0) {
            for (auto& [k, v] : ref) ASSERT_EQ(ft.lookup(k), v);
        }
    }
    EXPECT_EQ(ft.size(), ref.size());
    for (auto& [k, v] : ref) ASSERT_EQ(ft.lookup(k), v);
    // Backward-shift deletion keeps clusters short at load <= 0.5.
    EXPECT_LT(ft.mean_probe(), 2.5);
}

TEST(FlowTable, FullAndDuplicate) {
    FlowTable ft(10);
    std::mt19937 rng(2);
    std::vector<FlowKey> ks;
    for (int i = 0; i < 10; i++) {
        ks.push_back(rand_key(rng));
        ASSERT_EQ(ft.insert(ks.back(), uint32_t(i)), 0);
    }
    EXPECT_EQ(ft.insert(rand_key(rng), 99), -1);
    EXPECT_EQ(ft.insert(ks[3], 99), -2);
    EXPECT_EQ(ft.lookup(ks[3]), 3u);
    EXPECT_TRUE(ft.erase(ks[3]));
    EXPECT_EQ(ft.insert(ks[3], 33), 0);
    EXPECT_EQ(ft.lookup(ks[3]), 33u);
    // Seeds change the hash (flooding defence).
    FlowTable a(10, 1), b(10, 2);
    int same = 0;
    for (auto& k : ks) same += a.hash(k) == b.hash(k);
    EXPECT_LT(same, 3);
}

TEST(ObjectPool, AllocFreeExhaust) {
    ObjectPool<ClientConn> p(3);
    ClientConn* a = p.alloc();
    ClientConn* b = p.alloc();
    ClientConn* c = p.alloc();
    EXPECT_EQ(p.alloc(), nullptr);
    EXPECT_EQ(p.in_use(), 3u);
    EXPECT_EQ(p.index(a), 0u);
    EXPECT_EQ(p.index(c), 2u);
    p.free(b);
    EXPECT_EQ(p.alloc(), b);  // LIFO: the warm one comes back
    p.free(a);
    p.free(b);
    p.free(c);
    EXPECT_EQ(p.in_use(), 0u);
}

// ==========================================================================================
// Timer wheel.

TEST(TimerWheel, FiresNeverEarlyInOrder) {
    TimerWheel w(64, 1000, 0);
    Timer t[5];
    uint64_t when[5] = {500, 2000, 2001, 63000, 200000};  // distinct ticks: same-tick order is unspecified  // the last is beyond one revolution
    for (int i = 0; i < 5; i++) {
        t[i].owner = uint32_t(i);
        w.arm(&t[i], when[i]);
    }
    EXPECT_EQ(w.armed_count(), 5u);
    std::vector<std::pair<uint32_t, uint64_t>> fired;
    for (uint64_t now = 0; now <= 300000; now += 250)
        w.advance(now, [&](Timer* x) { fired.push_back({x->owner, now}); });
    ASSERT_EQ(fired.size(), 5u);
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ(fired[size_t(i)].first, uint32_t(i));
        EXPECT_GE(fired[size_t(i)].second, when[i]);             // never early
        EXPECT_LE(fired[size_t(i)].second, when[i] + 2000);      // at most a tick + a poll late
    }
    EXPECT_EQ(w.armed_count(), 0u);
}

TEST(TimerWheel, CancelRearmAndRearmFromCallback) {
    TimerWheel w(16, 1000, 0);
    Timer a, b, c;
    a.owner = 1;
    b.owner = 2;
    c.owner = 3;
    w.arm(&a, 5000);
    w.arm(&b, 5000);
    w.arm(&c, 3000);
    w.cancel(&b);
    EXPECT_FALSE(b.armed());
    w.arm(&c, 9000);  // move
    int a_fired = 0, c_fired = 0;
    uint64_t a_last = 0;
    auto fire = [&](Timer* t) {
        if (t->owner == 1) {
            a_fired++;
            if (a_fired < 3) w.arm(&a, a_last + 5000);  // periodic from the callback
        }
        if (t->owner == 3) c_fired++;
        EXPECT_NE(t->owner, 2u);
    };
    for (uint64_t now = 0; now <= 40000; now += 1000) {
        a_last = now;
        w.advance(now, fire);
        if (now == 4000) {
            EXPECT_EQ(a_fired, 0);
        }
        if (now == 8000) {
            EXPECT_EQ(c_fired, 0);
        }
    }
    EXPECT_EQ(a_fired, 3);
    EXPECT_EQ(c_fired, 1);
    EXPECT_EQ(w.armed_count(), 0u);
}

TEST(TimerWheel, LargeJumpFiresOnlyDue) {
    TimerWheel w(8, 1000, 0);
    Timer t[20];
    for (int i = 0; i < 20; i++) w.arm(&t[i], uint64_t(i + 1) * 7000);
    int n = 0;
    w.advance(70000, [&](Timer*) { n++; });  // far more than a revolution at once
    EXPECT_EQ(n, 10);
    w.advance(1000000, [&](Timer*) { n++; });
    EXPECT_EQ(n, 20);
    // Past expiry fires on the next tick.
    Timer late;
    w.arm(&late, 0);
    int m = 0;
    w.advance(1001000, [&](Timer*) { m++; });
    EXPECT_EQ(m, 1);
}

// ==========================================================================================
// Reassembly.

namespace {
// Fake handles: index into a table of segments of a known stream.
struct RxHarness {
    std::string stream;
    struct Seg {
        uint32_t seq;
        uint32_t len;
    };
    std::vector<Seg> segs;
    std::string got;
    std::multiset<uintptr_t> delivered, dropped;
    Counters c;
    Reassembly r;
    uint32_t isn = 0;
    void* add(uint32_t off, uint32_t len) {
        segs.push_back({off, len});
        return reinterpret_cast<void*>(uintptr_t(segs.size()));
    }
    Reassembly::Result feed(uint32_t off, uint32_t len, uint32_t wnd = 1 << 20) {
        void* h = add(off, len);
        // The handle's payload starts at byte 7 of its "buffer" (like an L2-L4 header).
        return r.receive(isn + off, len, h, 7, wnd, c,
                         [&](void* hh, uint32_t o, uint32_t l) {
                             auto i = reinterpret_cast<uintptr_t>(hh);
                             const Seg& s = segs[i - 1];
                             EXPECT_GE(o, 7u);
                             EXPECT_LE(o - 7 + l, s.len);
                             got += stream.substr(s.seq + (o - 7), l);
                             delivered.insert(i);
                         },
                         [&](void* hh) { dropped.insert(reinterpret_cast<uintptr_t>(hh)); });
    }
};
}  // namespace

TEST(Reassembly, InOrderOooOverlapDuplicates) {
    RxHarness h;
    h.stream = random_text(100, 3);
    h.isn = 0xfffffff0u;  // crosses the wraparound
    h.r.reset(h.isn, 16);
    auto r = h.feed(0, 10);
    EXPECT_EQ(r.delivered, 10u);
    EXPECT_FALSE(r.ack_now);
    r = h.feed(30, 10);  // hole 10..30
    EXPECT_EQ(r.delivered, 0u);
    EXPECT_TRUE(r.ack_now);
    EXPECT_EQ(h.r.held_segments(), 1u);
    r = h.feed(35, 10);  // overlaps the held one
    EXPECT_EQ(h.r.held_segments(), 2u);
    r = h.feed(32, 5);   // entirely inside a held one: duplicate
    EXPECT_EQ(h.c.rx_duplicate, 1u);
    r = h.feed(5, 5);    // entirely old
    EXPECT_EQ(h.c.rx_duplicate, 2u);
    EXPECT_TRUE(r.ack_now);
    r = h.feed(8, 24);   // overlaps delivered data and fills the hole, reaching into held data
    EXPECT_EQ(r.delivered, 45u - 10u);
    EXPECT_EQ(h.r.rcv_nxt(), h.isn + 45);
    EXPECT_EQ(h.r.held_segments(), 0u);
    EXPECT_EQ(h.got, h.stream.substr(0, 45));
    // Every handle went exactly once to deliver or drop.
    for (uintptr_t i = 1; i <= h.segs.size(); i++)
        EXPECT_EQ(h.delivered.count(i) + h.dropped.count(i), 1u) << i;
}

TEST(Reassembly, BoundExceededIsDroppedAndCounted) {
    RxHarness h;
    h.stream = random_text(200, 4);
    h.r.reset(0, 3);
    for (uint32_t i = 0; i < 5; i++) h.feed(20 + 10 * i, 5);
    EXPECT_EQ(h.r.held_segments(), 3u);
    EXPECT_EQ(h.c.rx_ooo_held, 3u);
    EXPECT_EQ(h.c.rx_ooo_overflow, 2u);
    EXPECT_EQ(h.dropped.size(), 2u);
    // A segment that supersedes a held one replaces it instead of counting against the bound.
    h.feed(18, 10);
    EXPECT_EQ(h.r.held_segments(), 3u);
    // clear() releases what is held.
    h.r.clear([&](void* p) { h.dropped.insert(reinterpret_cast<uintptr_t>(p)); });
    EXPECT_EQ(h.r.held_segments(), 0u);
    for (uintptr_t i = 1; i <= h.segs.size(); i++)
        EXPECT_EQ(h.delivered.count(i) + h.dropped.count(i), 1u) << i;
}

TEST(Reassembly, WindowTrim) {
    RxHarness h;
    h.stream = random_text(100, 5);
    h.r.reset(1000, 16);
    h.isn = 1000;
    auto r = h.feed(0, 50, 20);  // only 20 bytes of window
    EXPECT_EQ(r.delivered, 20u);
    EXPECT_TRUE(r.ack_now);
    EXPECT_EQ(h.c.rx_beyond_window, 1u);
    r = h.feed(40, 10, 10);      // entirely beyond the window
    EXPECT_EQ(r.delivered, 0u);
    EXPECT_EQ(h.c.rx_beyond_window, 2u);
    EXPECT_EQ(h.got, h.stream.substr(0, 20));
}

TEST(Reassembly, RandomReorderingAndDuplicationReconstructsStream) {
    for (uint32_t seed = 0; seed < 50; seed++) {
        RxHarness h;
        std::mt19937 rng(seed);
        h.stream = random_text(5000, seed);
        h.isn = rng();
        h.r.reset(h.isn, Reassembly::MAX_OOO);
        std::vector<std::pair<uint32_t, uint32_t>> segs;
        for (uint32_t off = 0; off < h.stream.size();) {
            uint32_t len = std::min<uint32_t>(1 + rng() % 300, uint32_t(h.stream.size()) - off);
            segs.push_back({off, len});
            if (rng() % 4 == 0) segs.push_back({off, len});  // duplicate
            if (rng() % 5 == 0 && off > 50) segs.push_back({off - 50, len + 50});  // overlap
            off += len;
        }
        // Local reordering (like a network), then retransmit everything the receiver lacks
        // until done (a bounded hold means some segments are dropped).
        for (size_t i = 0; i + 1 < segs.size(); i++)
            if (rng() % 3 == 0) std::swap(segs[i], segs[std::min(segs.size() - 1, i + 1 + rng() % 4)]);
        for (int pass = 0; pass < 100 && h.got.size() < h.stream.size(); pass++)
            for (auto& [o, l] : segs) h.feed(o, l);
        ASSERT_EQ(h.got, h.stream) << seed;
        h.r.clear([&](void* p) { h.dropped.insert(reinterpret_cast<uintptr_t>(p)); });
        for (uintptr_t i = 1; i <= h.segs.size(); i++)
            ASSERT_EQ(h.delivered.count(i) + h.dropped.count(i), 1u) << seed << " " << i;
    }
}

// ==========================================================================================
// Sender.

namespace {
SenderConfig scfg() {
    SenderConfig c;
    c.rto_initial_us = 1000000;
    c.rto_min_us = 200000;
    c.rto_max_us = 60000000;
    c.max_retries = 4;
    c.initial_cwnd_segments = 10;
    return c;
}
std::vector<SendState::Segment> drain(SendState& s, uint64_t now = 0) {
    std::vector<SendState::Segment> v;
    SendState::Segment seg;
    while (s.next(&seg)) {
        s.on_sent(seg, now);
        v.push_back(seg);
    }
    return v;
}
}  // namespace

TEST(Sender, RespectsPeerWindowAndCwnd) {
    SendState s;
    s.reset(0xfffffff0u, 1000, 3500, scfg());  // data crosses the wraparound
    s.push(20000);
    auto v = drain(s);
    ASSERT_EQ(v.size(), 4u);  // 1000+1000+1000+500 = the peer window
    EXPECT_EQ(v[0].seq, 0xfffffff1u);
    EXPECT_EQ(v[3].len, 500u);
    EXPECT_EQ(s.in_flight(), 3500u);
    // Window opens to 100000: cwnd (10 MSS) limits.
    auto r = s.on_ack(0xfffffff1u + 3500, 100000, 1000);
    EXPECT_EQ(r.acked, 3500u);
    v = drain(s, 1000);
    uint32_t sent = 0;
    for (auto& x : v) sent += x.len;
    EXPECT_EQ(sent, s.cwnd());
    EXPECT_GE(s.cwnd(), 10000u);  // slow start grew it
    // Nothing beyond una + min(wnd, cwnd).
    EXPECT_LE(s.in_flight(), std::min(s.peer_wnd(), s.cwnd()));
}

TEST(Sender, RttEstimateAndRto) {
    SendState s;
    s.reset(100, 1000, 1 << 20, scfg());
    s.push(1000);
    drain(s, 0);
    EXPECT_EQ(s.rto_us(), 1000000u);  // initial
    s.on_ack(101 + 1000, 1 << 20, 300000);  // 300 ms sample
    EXPECT_EQ(s.srtt_us(), 300000u);
    // RTO = SRTT + 4 * RTTVAR = 300 + 4 * 150 ms.
    EXPECT_EQ(s.rto_us(), 900000u);
    s.push(1000);
    drain(s, 400000);
    s.on_ack(101 + 2000, 1 << 20, 500000);  // 100 ms sample
    // RTTVAR = 3/4*150 + 1/4*200 = 162.5; SRTT = 7/8*300 + 1/8*100 = 275.
    EXPECT_EQ(s.srtt_us(), 275000u);
    EXPECT_NEAR(double(s.rto_us()), 275000.0 + 4 * 162500.0, 2.0);
    // Fast samples clamp at rto_min.
    for (int i = 0; i < 50; i++) {
        s.push(10);
        drain(s, 1000000 + uint64_t(i) * 1000);
        s.on_ack(s.nxt(), 1 << 20, 1000000 + uint64_t(i) * 1000 + 50);
    }
    EXPECT_EQ(s.rto_us(), 200000u);
}

TEST(Sender, TimeoutBacksOffGoesBackAndGivesUp) {
    SendState s;
    s.reset(0, 1000, 1 << 20, scfg());
    s.push(5000);
    auto v = drain(s);
    EXPECT_EQ(v.size(), 5u);
    EXPECT_TRUE(s.timer_needed());
    s.on_ack(1 + 2000, 1 << 20, 10);  // two segments acked, no RTT sample ends yet? it does
    uint32_t rto0 = s.rto_us();
    ASSERT_TRUE(s.on_timeout());
    EXPECT_EQ(s.rto_us(), std::min(rto0 * 2, 60000000u));
    EXPECT_EQ(s.cwnd(), 1000u);   // one segment after an RTO
    v = drain(s);
    ASSERT_EQ(v.size(), 1u);      // go-back-N from snd_una, one segment of cwnd
    EXPECT_EQ(v[0].seq, 2001u);
    EXPECT_TRUE(v[0].retransmit);
    uint32_t prev = s.rto_us();
    for (int i = 0; i < 3; i++) {
        ASSERT_TRUE(s.on_timeout());
        EXPECT_EQ(s.rto_us(), std::min(prev * 2, 60000000u));
        prev = s.rto_us();
        drain(s);
    }
    EXPECT_FALSE(s.on_timeout());  // max_retries = 4 consecutive timeouts
    // Karn: the retransmitted segment's ACK gives no RTT sample.
    SendState k;
    k.reset(0, 1000, 1 << 20, scfg());
    k.push(1000);
    drain(k, 0);
    k.on_timeout();
    drain(k, 2000000);
    k.on_ack(1001, 1 << 20, 2000100);
    EXPECT_EQ(k.srtt_us(), 0u);
}

TEST(Sender, ZeroWindowProbe) {
    SendState s;
    s.reset(0, 1000, 0, scfg());
    s.push(3000);
    EXPECT_TRUE(drain(s).empty());
    EXPECT_TRUE(s.timer_needed());  // persist timer
    ASSERT_TRUE(s.on_timeout());
    auto v = drain(s);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].len, 1u);  // one-byte probe
    // The peer opens its window with the probe's ACK.
    auto r = s.on_ack(2, 1500, 100);
    EXPECT_EQ(r.acked, 1u);
    v = drain(s);
    uint32_t sent = 0;
    for (auto& x : v) sent += x.len;
    EXPECT_EQ(sent, 1500u);
}

TEST(Sender, FastRetransmitOnThreeDupAcks) {
    SendState s;
    s.reset(0, 1000, 1 << 20, scfg());
    s.push(8000);
    drain(s);
    EXPECT_FALSE(s.on_ack(1001, 1 << 20, 1).duplicate);
    EXPECT_TRUE(s.on_ack(1001, 1 << 20, 2).duplicate);
    EXPECT_TRUE(s.on_ack(1001, 1 << 20, 3).duplicate);
    auto r = s.on_ack(1001, 1 << 20, 4);
    EXPECT_TRUE(r.fast_retransmit);
    SendState::Segment seg;
    ASSERT_TRUE(s.next(&seg));
    EXPECT_EQ(seg.seq, 1001u);
    EXPECT_EQ(seg.len, 1000u);
    EXPECT_TRUE(seg.retransmit);
    // A window update is not a duplicate.
    EXPECT_FALSE(s.on_ack(1001, (1 << 20) + 100, 5).duplicate);
    // ACK beyond anything sent is invalid.
    EXPECT_TRUE(s.on_ack(99999, 1 << 20, 6).invalid);
    EXPECT_TRUE(s.on_ack(500, 1 << 20, 6).old);
}

TEST(Sender, FinSequencing) {
    SendState s;
    s.reset(10, 1000, 1 << 20, scfg());
    s.push(1500);
    s.push_fin();
    auto v = drain(s);
    ASSERT_EQ(v.size(), 2u);
    EXPECT_TRUE(v[1].fin);
    EXPECT_FALSE(v[0].fin);
    EXPECT_EQ(s.nxt(), 11u + 1500 + 1);
    auto r = s.on_ack(11 + 1500, 1 << 20, 5);
    EXPECT_EQ(r.acked, 1500u);
    EXPECT_FALSE(r.fin_acked);
    EXPECT_FALSE(s.all_acked());
    // FIN lost: the timeout resends the FIN alone.
    ASSERT_TRUE(s.on_timeout());
    v = drain(s);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_TRUE(v[0].fin);
    EXPECT_EQ(v[0].len, 0u);
    EXPECT_EQ(v[0].seq, 11u + 1500);
    r = s.on_ack(11 + 1501, 1 << 20, 6);
    EXPECT_TRUE(r.fin_acked);
    EXPECT_EQ(r.acked, 0u);
    EXPECT_TRUE(s.all_acked());
    EXPECT_FALSE(s.timer_needed());
}

// ==========================================================================================
// Splice translation (pure, in place on crafted frames).

namespace {
const uint16_t LPORT1 = rte_cpu_to_be_16(10001);
const uint16_t LPORT2 = rte_cpu_to_be_16(10002);
FlowKey client_key() { return FlowKey{CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT}; }
FlowKey backend_key(uint32_t ip, uint16_t lport) { return FlowKey{ip, LOCAL_IP, BACKEND_PORT, lport}; }
}  // namespace

TEST(Splice, WindowRescale) {
    EXPECT_EQ(rescale_window(100, 8, 7), 200);
    EXPECT_EQ(rescale_window(0xffff, 14, 7), 0xffff);  // saturates
    EXPECT_EQ(rescale_window(1, 0, 7), 0);             // rounds down: never over-advertise
    EXPECT_EQ(rescale_window(256, 0, 7), 2);
    EXPECT_EQ(rescale_window(600, 7, 0), 0xffff);  // 76800 bytes
    EXPECT_EQ(rescale_window(300, 0, 0), 300);
    SpliceBinding b;
    b.bind(FlowKey{}, FlowKey{}, 0, 0, 8, 7, 1460);
    EXPECT_EQ(b.backend_window(25600), 200);
    EXPECT_EQ(b.backend_window(100u << 20), 0xffff);
    EXPECT_EQ(b.backend_window(127), 0);
}

TEST(Splice, RoundTripAcrossWraparoundAndRebinding) {
    const uint32_t C0 = 0xfffffc00u;  // client-leg snd_nxt: the response crosses 2^32
    const uint32_t B0 = 0x12345678u;  // backend 1 rcv_nxt
    const uint32_t CLIENT_RCV_NXT = 777000;
    SpliceBinding b;
    b.bind(client_key(), backend_key(BACKEND_IP, LPORT1), C0, B0, 8, 7, 1460);
    std::string p1 = random_text(1000, 11), p2 = random_text(1200, 12);
    uint32_t c_expect = C0;
    uint32_t b_seq = B0;
    for (const std::string& p : {p1, p2}) {
        Frame f = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, LPORT1, b_seq, 4242,
                             net::TCP_ACK | net::TCP_PSH, 501, p);
        ASSERT_FALSE(b.needs_rebuild(f.th.seq, f.th.payload_len));
        ASSERT_TRUE(splice_b2c_in_place(f.bytes.data(), f.ip, f.th, b, CLIENT_RCV_NXT, 123));
        ASSERT_TRUE(f.parse());
        EXPECT_TRUE(f.checksums_ok());
        EXPECT_EQ(f.ip.src_be, VIP);
        EXPECT_EQ(f.ip.dst_be, CLIENT_IP);
        EXPECT_EQ(f.ip.ttl, net::DEFAULT_TTL);
        EXPECT_EQ(f.th.src_port_be, VIP_PORT);
        EXPECT_EQ(f.th.dst_port_be, CLIENT_PORT);
        EXPECT_EQ(f.th.seq, c_expect);
        EXPECT_EQ(f.th.ack, CLIENT_RCV_NXT);
        EXPECT_EQ(f.th.window, 123);
        EXPECT_EQ(f.th.flags, net::TCP_ACK | net::TCP_PSH);
        EXPECT_EQ(f.payload(), p);
        c_expect += uint32_t(p.size());
        b_seq += uint32_t(p.size());
    }
    EXPECT_EQ(b.sent_max_c, C0 + 2200);
    EXPECT_LT(b.sent_max_c, C0);  // it wrapped

    // Client ACKs part of it with window 100 (x 2^8 bytes): backend sees ack/window translated.
    const uint32_t SEQ_B = 0x0badf00du;  // our snd_nxt on the backend leg
    Frame ack = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, CLIENT_RCV_NXT, C0 + 1500,
                           net::TCP_ACK, 100, "");
    ASSERT_TRUE(splice_c2b_ack_in_place(ack.bytes.data(), ack.ip, ack.th, b, SEQ_B));
    ASSERT_TRUE(ack.parse());
    EXPECT_TRUE(ack.checksums_ok());
    EXPECT_EQ(ack.ip.src_be, LOCAL_IP);
    EXPECT_EQ(ack.ip.dst_be, BACKEND_IP);
    EXPECT_EQ(ack.th.src_port_be, LPORT1);
    EXPECT_EQ(ack.th.dst_port_be, BACKEND_PORT);
    EXPECT_EQ(ack.th.seq, SEQ_B);
    EXPECT_EQ(ack.th.ack, B0 + 1500);
    EXPECT_EQ(ack.th.window, 200);  // 100 << 8 >> 7
    EXPECT_EQ(b.client_max_b, B0 + 1500);
    // The response framing finds the end; the client ACKs everything: unbind.
    b.end_known = true;
    b.resp_end_b = B0 + 2200;
    EXPECT_FALSE(b.done());
    Frame ack2 = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, CLIENT_RCV_NXT, C0 + 2200,
                            net::TCP_ACK, 100, "");
    ASSERT_TRUE(splice_c2b_ack_in_place(ack2.bytes.data(), ack2.ip, ack2.th, b, SEQ_B));
    EXPECT_TRUE(b.done());
    uint32_t next_c = b.client_end();
    EXPECT_EQ(next_c, C0 + 2200);
    // Segments with payload are not rewritten in place (the caller consumes the data).
    Frame withdata = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, CLIENT_RCV_NXT, C0 + 2200,
                                net::TCP_ACK, 100, "GET / HTTP/1.1\r\n");
    std::vector<uint8_t> before = withdata.bytes;
    EXPECT_FALSE(splice_c2b_ack_in_place(withdata.bytes.data(), withdata.ip, withdata.th, b, SEQ_B));
    EXPECT_EQ(withdata.bytes, before);

    // Rebind the same client connection to another backend connection for the next request.
    const uint32_t B1 = 0xffffff00u;  // backend 2's seq space wraps too
    SpliceBinding b2;
    b2.bind(client_key(), backend_key(BACKEND2_IP, LPORT2), next_c, B1, 8, 7, 1460);
    std::string p3 = random_text(600, 13);
    Frame f3 = make_frame(BACKEND2_IP, LOCAL_IP, BACKEND_PORT, LPORT2, B1, 1, net::TCP_ACK, 501, p3);
    ASSERT_TRUE(splice_b2c_in_place(f3.bytes.data(), f3.ip, f3.th, b2, CLIENT_RCV_NXT + 50, 99));
    ASSERT_TRUE(f3.parse());
    EXPECT_TRUE(f3.checksums_ok());
    EXPECT_EQ(f3.th.seq, next_c);  // the client's sequence space continues
    EXPECT_EQ(f3.ip.src_be, VIP);
    EXPECT_EQ(f3.payload(), p3);
    Frame ack3 = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, CLIENT_RCV_NXT + 50, next_c + 600,
                            net::TCP_ACK, 7, "");
    ASSERT_TRUE(splice_c2b_ack_in_place(ack3.bytes.data(), ack3.ip, ack3.th, b2, 5));
    ASSERT_TRUE(ack3.parse());
    EXPECT_TRUE(ack3.checksums_ok());
    EXPECT_EQ(ack3.ip.dst_be, BACKEND2_IP);
    EXPECT_EQ(ack3.th.src_port_be, LPORT2);
    EXPECT_EQ(ack3.th.ack, B1 + 600);  // wrapped in backend 2's space
    EXPECT_EQ(ack3.th.window, 14);
}

TEST(Splice, FinHandling) {
    SpliceBinding b;
    b.bind(client_key(), backend_key(BACKEND_IP, LPORT1), 1000, 5000, 0, 0, 1460);
    // A FIN alone is not forwarded unless the response is framed by close.
    Frame fin = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, LPORT1, 5000, 1,
                           net::TCP_ACK | net::TCP_FIN, 100, "");
    EXPECT_FALSE(splice_b2c_in_place(fin.bytes.data(), fin.ip, fin.th, b, 1, 1));
    // Data + FIN: the FIN is stripped.
    Frame dfin = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, LPORT1, 5000, 1,
                            net::TCP_ACK | net::TCP_FIN, 100, "bye");
    ASSERT_TRUE(splice_b2c_in_place(dfin.bytes.data(), dfin.ip, dfin.th, b, 1, 1));
    ASSERT_TRUE(dfin.parse());
    EXPECT_TRUE(dfin.checksums_ok());
    EXPECT_EQ(dfin.th.flags & net::TCP_FIN, 0);
    EXPECT_EQ(b.sent_max_c, 1003u);
    // Framed by close: forwarded.
    b.forward_fin = true;
    Frame dfin2 = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, LPORT1, 5000, 1,
                             net::TCP_ACK | net::TCP_FIN, 100, "bye");
    ASSERT_TRUE(splice_b2c_in_place(dfin2.bytes.data(), dfin2.ip, dfin2.th, b, 1, 1));
    ASSERT_TRUE(dfin2.parse());
    EXPECT_TRUE(dfin2.checksums_ok());
    EXPECT_NE(dfin2.th.flags & net::TCP_FIN, 0);
    EXPECT_EQ(b.sent_max_c, 1004u);
}

TEST(Splice, InsertionMapping) {
    SpliceBinding b;
    b.bind(client_key(), backend_key(BACKEND_IP, LPORT1), 0xfffffff0u, 100, 0, 0, 1460);
    const std::string ins = "x-tokenlb-backend: gpu-1\r\n";
    ASSERT_TRUE(b.set_insert(117, reinterpret_cast<const uint8_t*>(ins.data()), uint32_t(ins.size())));
    uint32_t K = uint32_t(ins.size());
    EXPECT_EQ(b.map_seq(100), 0xfffffff0u);
    EXPECT_EQ(b.map_seq(117), 0xfffffff0u + 17);      // the insertion goes before byte 117
    EXPECT_EQ(b.map_seq(118), 0xfffffff0u + 18 + K);
    EXPECT_EQ(b.map_ack(0xfffffff0u + 17), 117u);
    EXPECT_EQ(b.map_ack(0xfffffff0u + 17 + 5), 117u);  // inside the inserted bytes
    EXPECT_EQ(b.map_ack(0xfffffff0u + 17 + K), 117u);
    EXPECT_EQ(b.map_ack(0xfffffff0u + 18 + K), 118u);
    EXPECT_TRUE(b.needs_rebuild(100, 50));
    EXPECT_TRUE(b.needs_rebuild(117, 1));
    EXPECT_FALSE(b.needs_rebuild(100, 17));
    EXPECT_FALSE(b.needs_rebuild(118, 100));
    EXPECT_TRUE(b.needs_rebuild(118, 1461));  // larger than the client MSS
    std::vector<uint8_t> too_long(SpliceBinding::MAX_INSERT + 1, 'a');
    EXPECT_FALSE(b.set_insert(117, too_long.data(), uint32_t(too_long.size())));
}

// ==========================================================================================
// mbuf pieces (EAL).

namespace {
Frame frame_from_mbuf(const rte_mbuf* m) {
    Frame f;
    std::string s = chain_string(m);
    f.bytes.assign(s.begin(), s.end());
    EXPECT_EQ(f.bytes.size(), m->pkt_len);
    EXPECT_TRUE(f.parse());
    return f;
}
}  // namespace

TEST(MbufQueue, AppendConsumeCloneRefcounts) {
    NEED_EAL();
    unsigned avail0 = rte_mempool_avail_count(g_pool);
    {
        MbufQueue q;
        q.append(mbuf_with("hello "));
        rte_mbuf* hdr_and_payload = mbuf_with("HDRHDRworld, ");
        q.append_range(hdr_and_payload, 6, 7);  // strip a 6-byte "header"
        q.append(mbuf_with("this is tcp"));
        q.append(mbuf_with(""));                // empty: freed, not queued
        EXPECT_EQ(q.segments(), 3u);
        EXPECT_EQ(queue_string(q), "hello world, this is tcp");
        // Clone a range spanning all three mbufs: refcounts, not copies.
        rte_mbuf* c = q.clone_range(3, 15, g_pool);
        ASSERT_NE(c, nullptr);
        EXPECT_EQ(c->nb_segs, 3);
        EXPECT_EQ(c->pkt_len, 15u);
        EXPECT_EQ(chain_string(c), "lo world, this ");
        EXPECT_TRUE(RTE_MBUF_CLONED(c));
        EXPECT_EQ(rte_mbuf_refcnt_read(q.head()), 2);
        EXPECT_EQ(q.clone_range(20, 10, g_pool), nullptr);  // beyond the end
        // Consuming the queue while the clone is "in a tx ring" is safe.
        q.consume(8);
        EXPECT_EQ(queue_string(q), "rld, this is tcp");
        EXPECT_EQ(q.segments(), 2u);
        EXPECT_EQ(chain_string(c), "lo world, this ");
        rte_pktmbuf_free(c);
        q.clear();
        EXPECT_EQ(q.bytes(), 0u);
        EXPECT_TRUE(q.empty());
    }
    EXPECT_EQ(rte_mempool_avail_count(g_pool), avail0);  // nothing leaked
}

TEST(DataSegment, ZeroCopyAndCopyBuildValidSegments) {
    NEED_EAL();
    unsigned avail0 = rte_mempool_avail_count(g_pool);
    TcpConfig cfg;
    TcpCb cb;
    open_active(cb, backend_key(BACKEND_IP, LPORT1), 0xfffffff0u, cfg);
    net::TcpOptions o;
    o.has_mss = true;
    o.mss = 1000;
    net::TcpInfo synack = info(9000, 0xfffffff1u, net::TCP_SYN | net::TCP_ACK, 65535, 0);
    Counters c;
    ASSERT_EQ(input_syn_sent(cb, synack, o, cfg, c), 1);
    MbufQueue q;
    std::string body = random_text(2501, 21);
    // Odd-sized pieces so segments straddle mbufs at odd offsets (checksum byte-swap path).
    size_t cuts[] = {0, 7, 20, 1033, 1999, body.size()};
    for (int i = 0; i + 1 < 6; i++) q.append(mbuf_with(body.substr(cuts[i], cuts[i + 1] - cuts[i])));
    cb.tx.push(q.bytes());
    cb.tx.push_fin();
    net::MacAddr src{{2, 0, 0, 0, 0, 9}}, dst{{2, 0, 0, 0, 0, 8}};
    std::string got_clone, got_copy;
    SendState::Segment seg;
    std::vector<SendState::Segment> segs;
    while (cb.tx.next(&seg)) segs.push_back(seg);
    ASSERT_EQ(segs.size(), 3u);
    EXPECT_TRUE(segs.back().fin);
    for (auto& s : segs) {
        for (int mode = 0; mode < 2; mode++) {
            rte_mbuf* h = rte_pktmbuf_alloc(g_pool);
            ASSERT_EQ(build_data_segment(h, cb, s, q, cb.tx.data_base(), 0, mode ? nullptr : g_pool,
                                         src, dst), 0);
            if (mode == 0) {
                EXPECT_EQ(h->nb_segs > 1, true);
            }
            Frame f = frame_from_mbuf(h);
            EXPECT_TRUE(f.checksums_ok()) << "mode " << mode << " seq " << s.seq;
            EXPECT_EQ(f.th.seq, s.seq);
            EXPECT_EQ(f.th.ack, 9001u);
            EXPECT_EQ(f.ip.src_be, LOCAL_IP);
            EXPECT_EQ(f.ip.dst_be, BACKEND_IP);
            EXPECT_EQ(f.th.dst_port_be, BACKEND_PORT);
            EXPECT_EQ((f.th.flags & net::TCP_FIN) != 0, s.fin);
            (mode ? got_copy : got_clone) += f.payload();
            rte_pktmbuf_free(h);
        }
    }
    EXPECT_EQ(got_clone, body);
    EXPECT_EQ(got_copy, body);
    q.clear();
    EXPECT_EQ(rte_mempool_avail_count(g_pool), avail0);
}

TEST(Splice, RebuildWithInsertionAndMssSplit) {
    NEED_EAL();
    unsigned avail0 = rte_mempool_avail_count(g_pool);
    const uint32_t C0 = 0xffffffe0u, B0 = 5000;
    SpliceBinding b;
    b.bind(client_key(), backend_key(BACKEND_IP, LPORT1), C0, B0, 0, 0, 536);
    std::string status = "HTTP/1.1 200 OK\r\n";
    std::string rest = "content-type: application/json\r\ncontent-length: 2000\r\n\r\n" +
                       random_text(2000, 31);
    std::string resp = status + rest;  // 17 + 953 bytes
    std::string ins = "x-tokenlb-backend: gpu-7\r\n";
    ASSERT_TRUE(b.set_insert(B0 + uint32_t(status.size()), reinterpret_cast<const uint8_t*>(ins.data()),
                             uint32_t(ins.size())));
    std::string first = resp.substr(0, 1200), second = resp.substr(1200);
    // Segment 1 contains the insertion point and exceeds the client's MSS of 536.
    Frame f1 = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, LPORT1, B0, 1, net::TCP_ACK, 100, first);
    ASSERT_TRUE(b.needs_rebuild(f1.th.seq, f1.th.payload_len));
    rte_mbuf* out[8];
    int n = splice_b2c_rebuild(f1.bytes.data(), f1.ip, f1.th, b, 4321, 77, g_pool, out, 8);
    ASSERT_EQ(n, 3);  // 1200 + 26 bytes in pieces of <= 536
    std::string client_stream;
    uint32_t expect_seq = C0;
    for (int i = 0; i < n; i++) {
        Frame f = frame_from_mbuf(out[i]);
        EXPECT_TRUE(f.checksums_ok());
        EXPECT_LE(f.th.payload_len, 536);
        EXPECT_EQ(f.th.seq, expect_seq);
        EXPECT_EQ(f.th.ack, 4321u);
        EXPECT_EQ(f.th.window, 77);
        EXPECT_EQ(f.ip.src_be, VIP);
        EXPECT_EQ(f.th.dst_port_be, CLIENT_PORT);
        expect_seq += f.th.payload_len;
        client_stream += f.payload();
        rte_pktmbuf_free(out[i]);
    }
    // Segment 2 (after the insertion point, fits the MSS) goes through the fast path.
    Frame f2 = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, LPORT1, B0 + 1200, 1, net::TCP_ACK,
                          100, second.substr(0, 500));
    ASSERT_FALSE(b.needs_rebuild(f2.th.seq, f2.th.payload_len));
    ASSERT_TRUE(splice_b2c_in_place(f2.bytes.data(), f2.ip, f2.th, b, 4321, 77));
    ASSERT_TRUE(f2.parse());
    EXPECT_TRUE(f2.checksums_ok());
    EXPECT_EQ(f2.th.seq, expect_seq);
    expect_seq += f2.th.payload_len;
    client_stream += f2.payload();
    EXPECT_EQ(client_stream, status + ins + rest.substr(0, 1200 - status.size() + 500));
    // The backend retransmits segment 1: rebuilt identically (same seqs, insertion again).
    int n2 = splice_b2c_rebuild(f1.bytes.data(), f1.ip, f1.th, b, 4321, 77, g_pool, out, 8);
    ASSERT_EQ(n2, 3);
    Frame r0 = frame_from_mbuf(out[0]);
    EXPECT_EQ(r0.th.seq, C0);
    for (int i = 0; i < n2; i++) rte_pktmbuf_free(out[i]);
    // Too many pieces for out[]: nothing built, nothing leaked.
    EXPECT_EQ(splice_b2c_rebuild(f1.bytes.data(), f1.ip, f1.th, b, 4321, 77, g_pool, out, 2), 0);
    // Client ACK of everything so far maps back through the insertion.
    uint32_t ack_b;
    uint16_t win_b;
    splice_c2b_values(b, expect_seq, 10, &ack_b, &win_b);
    EXPECT_EQ(ack_b, B0 + 1700);
    EXPECT_EQ(rte_mempool_avail_count(g_pool), avail0);
}

// ==========================================================================================
// Connection input (state machine) and the backend pool.

namespace {
struct ClientHarness {
    TcpConfig cfg;
    TcpCb cb;
    Counters c;
    std::string got;
    int drops = 0;
    std::map<uintptr_t, std::string> data;
    uintptr_t next_h = 1;
    ClientHarness() {
        CookieOptions co;
        co.mss = 1460;
        co.wscale = 7;
        net::TcpInfo ack = info(1001, 50001, net::TCP_ACK, 1000, 0);
        open_from_cookie(cb, client_key(), ack, co, cfg);
    }
    InputResult in(uint32_t seq, uint32_t ack, uint8_t flags, const std::string& payload = "",
                   uint16_t win = 1000, uint64_t now = 0) {
        net::TcpInfo t = info(seq, ack, flags, win, uint16_t(payload.size()));
        uintptr_t h = next_h++;
        data[h] = payload;
        return input(cb, t, reinterpret_cast<void*>(h), 0, 0, now, c, true,
                     [&](void* hh, uint32_t off, uint32_t len) {
                         got += data[reinterpret_cast<uintptr_t>(hh)].substr(off, len);
                     },
                     [&](void*) { drops++; });
    }
};
}  // namespace

TEST(ConnInput, DataFinAndPassiveClose) {
    ClientHarness h;
    EXPECT_EQ(h.cb.tx.peer_wnd(), 1000u << 7);
    auto r = h.in(1001, 50001, net::TCP_ACK | net::TCP_PSH, "GET / HTTP/1.1\r\n");
    EXPECT_EQ(r.delivered, 16u);
    EXPECT_TRUE(r.ack_now);
    EXPECT_EQ(h.got, "GET / HTTP/1.1\r\n");
    r = h.in(1017, 50001, net::TCP_ACK | net::TCP_FIN, "\r\n");
    EXPECT_TRUE(r.fin);
    EXPECT_EQ(h.cb.state, TcpState::CLOSE_WAIT);
    EXPECT_EQ(h.cb.rx.rcv_nxt(), 1020u);  // 2 bytes + FIN
    // Data after FIN is refused.
    r = h.in(1020, 50001, net::TCP_ACK, "x");
    EXPECT_EQ(h.c.rx_data_after_fin + h.c.seg_out_of_window, 1u);
    // We answer and close: LAST_ACK, then CLOSED when our FIN is acked.
    h.cb.tx.push(100);
    close(h.cb);
    EXPECT_EQ(h.cb.state, TcpState::LAST_ACK);
    SendState::Segment s;
    while (h.cb.tx.next(&s)) {
    }
    r = h.in(1020, 50001 + 101, net::TCP_ACK);
    EXPECT_TRUE(r.closed);
    EXPECT_EQ(r.acked, 100u);
    EXPECT_EQ(h.cb.state, TcpState::CLOSED);
}

TEST(ConnInput, ActiveCloseFinWaitToTimeWait) {
    ClientHarness h;
    close(h.cb);
    EXPECT_EQ(h.cb.state, TcpState::FIN_WAIT_1);
    SendState::Segment s;
    ASSERT_TRUE(h.cb.tx.next(&s));
    EXPECT_TRUE(s.fin);
    auto r = h.in(1001, 50002, net::TCP_ACK);
    EXPECT_EQ(h.cb.state, TcpState::FIN_WAIT_2);
    r = h.in(1001, 50002, net::TCP_ACK | net::TCP_FIN);
    EXPECT_TRUE(r.fin);
    EXPECT_TRUE(r.closed);
    EXPECT_TRUE(r.ack_now);
    EXPECT_EQ(h.cb.state, TcpState::TIME_WAIT);
}

TEST(ConnInput, RstSynAndWindowChecks) {
    ClientHarness h;
    // RST not exactly at rcv_nxt but in window: challenge ACK (RFC 5961).
    auto r = h.in(1500, 0, net::TCP_RST);
    EXPECT_FALSE(r.rst);
    EXPECT_TRUE(r.ack_now);
    EXPECT_EQ(h.c.rst_challenged, 1u);
    // Outside the window: ignored.
    r = h.in(1001 + 10000000, 0, net::TCP_RST);
    EXPECT_FALSE(r.rst);
    EXPECT_FALSE(r.ack_now);
    EXPECT_EQ(h.c.rst_out_of_window, 1u);
    // SYN on an established connection: challenge ACK.
    r = h.in(1001, 50001, net::TCP_SYN | net::TCP_ACK);
    EXPECT_TRUE(r.ack_now);
    EXPECT_EQ(h.c.seg_syn_in_window, 1u);
    // Segment entirely out of window: ACK and drop; its handle is released.
    int d0 = h.drops;
    r = h.in(1001 + 10000000, 50001, net::TCP_ACK, "zzz");
    EXPECT_TRUE(r.ack_now);
    EXPECT_EQ(h.c.seg_out_of_window, 1u);
    EXPECT_EQ(h.drops, d0 + 1);
    // ACK of data never sent: dropped with an ACK.
    r = h.in(1001, 60000, net::TCP_ACK, "abc");
    EXPECT_TRUE(r.drop);
    EXPECT_EQ(h.c.seg_ack_unsent, 1u);
    EXPECT_EQ(h.got, "");
    // Exact RST: the connection is gone.
    r = h.in(1001, 0, net::TCP_RST);
    EXPECT_TRUE(r.rst);
    EXPECT_EQ(h.cb.state, TcpState::CLOSED);
    EXPECT_EQ(h.c.rst_rcvd, 1u);
}

TEST(ConnInput, BackendHandshakeAndSpliceMode) {
    TcpConfig cfg;
    Counters c;
    TcpCb cb;
    open_active(cb, backend_key(BACKEND_IP, LPORT1), 1000, cfg);
    EXPECT_EQ(cb.state, TcpState::SYN_SENT);
    uint8_t ob[40];
    net::TcpSegmentSpec syn;
    fill_syn(cb, cfg, ob, syn);
    EXPECT_EQ(syn.seq, 1000u);
    EXPECT_EQ(syn.flags, net::TCP_SYN);
    net::TcpOptions so;
    ASSERT_EQ(net::parse_tcp_options(syn.options, syn.options_len, so), net::OptError::OK);
    EXPECT_EQ(so.mss, cfg.backend_mss);
    EXPECT_TRUE(so.has_wscale);
    EXPECT_FALSE(so.sack_permitted);
    EXPECT_FALSE(so.has_timestamps);
    net::TcpOptions o;
    o.has_mss = true;
    o.mss = 1460;
    o.has_wscale = true;
    o.wscale = 9;
    // Wrong ACK: RST it; RST with the right ACK: refused.
    EXPECT_EQ(input_syn_sent(cb, info(7, 5, net::TCP_SYN | net::TCP_ACK, 100, 0), o, cfg, c), -2);
    TcpCb refused = cb;
    EXPECT_EQ(input_syn_sent(refused, info(0, 1001, net::TCP_RST | net::TCP_ACK, 0, 0), o, cfg, c), -1);
    EXPECT_EQ(c.backend_connect_fail, 1u);
    ASSERT_EQ(input_syn_sent(cb, info(70000, 1001, net::TCP_SYN | net::TCP_ACK, 29200, 0), o, cfg, c), 1);
    EXPECT_EQ(cb.state, TcpState::ESTABLISHED);
    EXPECT_EQ(cb.rcv_wscale, 9);
    EXPECT_EQ(cb.snd_wscale, cfg.our_wscale);
    EXPECT_EQ(cb.rx.rcv_nxt(), 70001u);
    EXPECT_EQ(cb.tx.peer_wnd(), 29200u);  // SYN-ACK windows are never scaled
    // Send a request, then the backend's response arrives in splice mode: the payload is left
    // to the caller, the ACK of our request is processed.
    cb.tx.push(300);
    SendState::Segment s;
    ASSERT_TRUE(cb.tx.next(&s));
    net::TcpInfo resp = info(70001, 1301, net::TCP_ACK, 100, 1000);
    bool touched = false;
    auto r = input(cb, resp, nullptr, 0, 0, 0, c, false,
                   [&](void*, uint32_t, uint32_t) { touched = true; }, [&](void*) { touched = true; });
    EXPECT_TRUE(r.data);
    EXPECT_EQ(r.acked, 300u);
    EXPECT_FALSE(touched);
    EXPECT_EQ(cb.tx.peer_wnd(), 100u << 9);
    // Backend RST ahead of what the client acknowledged is accepted on the backend leg.
    r = input(cb, info(71001, 1301, net::TCP_RST | net::TCP_ACK, 0, 0), nullptr, 0, 0, 0, c, false,
              [](void*, uint32_t, uint32_t) {}, [](void*) {});
    EXPECT_TRUE(r.rst);
}

TEST(BackendPool, OpenAcquireReleaseCloseAndPorts) {
    FlowTable flows(64);
    TimerWheel wheel(256, 1000, 0);
    Counters c;
    PoolConfig pc;
    pc.max_conns = 8;
    pc.max_per_backend = 3;
    pc.local_ip_be = LOCAL_IP;
    pc.port_lo = 10000;
    pc.port_hi = 10006;
    pc.connect_timeout_us = 1000000;
    pc.idle_timeout_us = 5000000;
    TcpConfig tc;
    BackendPool pool(pc, tc, 2, flows, wheel, c);
    pool.set_backend(0, BACKEND_IP, BACKEND_PORT);
    pool.set_backend(1, BACKEND2_IP, BACKEND_PORT);
    EXPECT_EQ(pool.acquire(0), nullptr);
    BackendConn* a = pool.open(0, 0);
    BackendConn* b = pool.open(0, 0);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->phase, BackendPhase::CONNECTING);
    EXPECT_EQ(rte_be_to_cpu_16(a->cb.key.local_port_be), 10000);
    EXPECT_EQ(rte_be_to_cpu_16(b->cb.key.local_port_be), 10001);
    EXPECT_EQ(flows.lookup(a->cb.key), pool.handle(a));
    EXPECT_TRUE(handle_is_backend(pool.handle(a)));
    EXPECT_NE(a->cb.iss, b->cb.iss);
    EXPECT_EQ(pool.connecting(0), 2u);
    // max_per_backend.
    BackendConn* x = pool.open(0, 0);
    ASSERT_NE(x, nullptr);
    EXPECT_EQ(pool.open(0, 0), nullptr);
    // Connect timeout fires for the ones that do not connect.
    pool.connected(a);
    pool.connected(b);
    EXPECT_EQ(a->phase, BackendPhase::BUSY);
    std::vector<std::pair<uint32_t, uint8_t>> fired;
    wheel.advance(1500000, [&](Timer* t) { fired.push_back({t->owner, t->kind}); });
    ASSERT_EQ(fired.size(), 1u);
    EXPECT_EQ(fired[0].first, pool.handle(x));
    EXPECT_EQ(fired[0].second, TIMER_CONNECT);
    pool.close(x);
    EXPECT_EQ(flows.lookup(x->cb.key), FlowTable::NOT_FOUND);
    // Release to the idle list: LIFO reuse.
    pool.release(a, 2000000);
    pool.release(b, 2000000);
    EXPECT_EQ(pool.idle(0), 2u);
    EXPECT_EQ(pool.acquire(0), b);
    EXPECT_EQ(pool.acquire(1), nullptr);  // other backend has none
    EXPECT_EQ(pool.idle(0), 1u);
    // Idle timeout for the parked one.
    fired.clear();
    wheel.advance(8000000, [&](Timer* t) { fired.push_back({t->owner, t->kind}); });
    ASSERT_EQ(fired.size(), 1u);
    EXPECT_EQ(fired[0].first, pool.handle(a));
    EXPECT_EQ(fired[0].second, TIMER_BACKEND_IDLE);
    pool.close(a);
    EXPECT_EQ(pool.idle(0), 0u);
    // Local ports come back FIFO: the next open does not reuse the port just freed.
    BackendConn* y = pool.open(1, 9000000);
    ASSERT_NE(y, nullptr);
    EXPECT_EQ(rte_be_to_cpu_16(y->cb.key.local_port_be), 10003);
    pool.close(b);
    pool.close(y);
    EXPECT_EQ(pool.in_use(), 0u);
    EXPECT_EQ(flows.size(), 0u);
    EXPECT_EQ(pool.free_ports(), 6u);
    EXPECT_EQ(wheel.armed_count(), 0u);
    // Port exhaustion is counted.
    FlowTable flows2(64);
    pc.port_lo = 20000;
    pc.port_hi = 20002;
    BackendPool small(pc, tc, 1, flows2, wheel, c);
    small.set_backend(0, BACKEND_IP, BACKEND_PORT);
    ASSERT_NE(small.open(0, 0), nullptr);
    ASSERT_NE(small.open(0, 0), nullptr);
    EXPECT_EQ(small.open(0, 0), nullptr);
    EXPECT_EQ(c.backend_port_exhausted, 1u);
}

TEST(Counters, NamesMatchStruct) {
    const char* const* names = counter_names();
    EXPECT_STREQ(names[0], "syn_rcvd");
    EXPECT_STREQ(names[COUNTER_COUNT - 1], "timer_fired");
    std::set<std::string> uniq;
    for (size_t i = 0; i < COUNTER_COUNT; i++) uniq.insert(names[i]);
    EXPECT_EQ(uniq.size(), COUNTER_COUNT);
}

// ==========================================================================================
// Sender + reassembly over a lossy, reordering, duplicating channel with a slow reader (zero
// windows): everything arrives once, in order, and the sender ends with everything acked.

TEST(SenderReassembly, LossyChannelDeliversEverything) {
    for (uint32_t seed = 1; seed <= 6; seed++) {
        std::mt19937 rng(seed);
        const uint32_t N = 150000, CAP = 16000;
        const std::string stream = random_text(N, seed);
        SenderConfig cfg = scfg();
        cfg.max_retries = 30;
        SendState s;
        const uint32_t iss = 0xffff0000u + seed * 1000;  // crosses the wraparound
        s.reset(iss, 1000, CAP, cfg);
        s.push(N);
        s.push_fin();
        Reassembly r;
        r.reset(iss + 1, 8);
        Counters c;
        std::string got;
        uint32_t buffered = 0;
        bool fin_rcvd = false;
        struct Pkt {
            uint64_t at;
            bool data;
            uint32_t seq, len, ack, wnd;
            bool fin;
        };
        std::vector<Pkt> net;
        auto lossy_send = [&](Pkt p, uint64_t now) {
            if (rng() % 10 == 0) return;                    // 10% loss
            p.at = now + 5000 + rng() % 3000;               // jitter reorders
            net.push_back(p);
            if (rng() % 20 == 0) net.push_back(p);          // 5% duplicated
        };
        bool armed = false;
        uint64_t deadline = 0;
        uint64_t now = 0;
        for (; now < 600000000; now += 1000) {
            buffered = buffered > 300 ? buffered - 300 : 0;  // the reader drains 300 B/ms
            std::vector<Pkt> due;
            for (size_t i = 0; i < net.size();) {
                if (net[i].at <= now) {
                    due.push_back(net[i]);
                    net[i] = net.back();
                    net.pop_back();
                } else {
                    i++;
                }
            }
            for (const Pkt& p : due) {
                if (p.data) {
                    uint32_t wnd = CAP > buffered ? CAP - buffered : 0;
                    if (p.len) {
                        auto rr = r.receive(p.seq, p.len,
                                            reinterpret_cast<void*>(uintptr_t(p.seq - iss - 1) + 1), 0, wnd, c,
                                            [&](void* h, uint32_t off, uint32_t len) {
                                                got += stream.substr(reinterpret_cast<uintptr_t>(h) - 1 + off, len);
                                                buffered += len;
                                            },
                                            [](void*) {});
                        (void)rr;
                    }
                    if (p.fin && !fin_rcvd && p.seq + p.len == r.rcv_nxt()) {
                        r.advance_fin();
                        fin_rcvd = true;
                    }
                    lossy_send(Pkt{0, false, 0, 0, r.rcv_nxt(), CAP > buffered ? CAP - buffered : 0, false}, now);
                } else {
                    auto ar = s.on_ack(p.ack, p.wnd, now);
                    ASSERT_FALSE(ar.invalid);
                    if (ar.acked || ar.fin_acked) armed = false;  // restart the timer below
                }
            }
            SendState::Segment seg;
            while (s.next(&seg)) {
                s.on_sent(seg, now);
                lossy_send(Pkt{0, true, seg.seq, seg.len, 0, 0, seg.fin}, now);
            }
            if (s.timer_needed()) {
                if (!armed) {
                    armed = true;
                    deadline = now + s.rto_us();
                } else if (now >= deadline) {
                    ASSERT_TRUE(s.on_timeout()) << "gave up, seed " << seed;
                    deadline = now + s.rto_us();
                }
            } else {
                armed = false;
            }
            if (s.all_acked() && fin_rcvd) break;
        }
        ASSERT_EQ(got.size(), stream.size()) << seed;
        ASSERT_TRUE(got == stream) << seed;
        EXPECT_TRUE(s.all_acked());
        EXPECT_TRUE(fin_rcvd);
        EXPECT_LT(now, 600000000u);
        // The channel really was hostile: reordering/loss and duplicates were seen.
        EXPECT_GT(c.rx_ooo_held, 0u);
        EXPECT_GT(c.rx_duplicate, 0u);
        EXPECT_GT(now, uint64_t(N) / 300 * 1000);  // bounded by the slow reader
    }
}

// ==========================================================================================
// End to end, in the order docs/tcp.md §6 gives: cookie handshake, request assembly, backend
// connect, request sent by our sender, response spliced (with the header insertion), client ACKs
// translated, unbind, the next request on the same client connection rebound to another backend
// connection, an appliance-made response on the client leg, and a passive close.

namespace {
Frame spec_frame(const net::TcpSegmentSpec& s) {
    Frame f;
    f.bytes.resize(net::tcp_segment_len(s));
    EXPECT_EQ(net::build_tcp_segment(f.bytes.data(), f.bytes.size(), s), f.bytes.size());
    EXPECT_TRUE(f.parse());
    return f;
}
}  // namespace

TEST(EndToEnd, HandshakeRequestSpliceRebindLocalResponseClose) {
    NEED_EAL();
    TcpConfig cfg;
    Counters c;
    SynCookies sc(77, 88, 64);
    sc.set_time(1000);
    FlowTable flows(64, 9);
    TimerWheel wheel(1024, 1000, 0);
    ObjectPool<ClientConn> clients(4);
    PoolConfig pc;
    pc.local_ip_be = LOCAL_IP;
    pc.port_lo = 30000;
    pc.port_hi = 30100;
    BackendPool pool(pc, cfg, 2, flows, wheel, c);
    pool.set_backend(0, BACKEND_IP, BACKEND_PORT);
    pool.set_backend(1, BACKEND2_IP, BACKEND_PORT);
    const uint32_t CISN = 0xfffffff0u;  // the client's request stream wraps

    // 1. SYN: answered with a cookie, no state.
    std::vector<uint8_t> synopt(40);
    net::TcpOptions so;
    so.has_mss = true;
    so.mss = 1460;
    so.has_wscale = true;
    so.wscale = 6;
    synopt.resize(size_t(net::write_tcp_options(so, synopt.data(), 40)));
    Frame syn = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, CISN, 0, net::TCP_SYN, 64240, "", synopt);
    FlowKey ck{syn.ip.src_be, syn.ip.dst_be, syn.th.src_port_be, syn.th.dst_port_be};
    ASSERT_EQ(flows.lookup(ck), FlowTable::NOT_FOUND);
    net::TcpOptions po;
    ASSERT_EQ(net::parse_tcp_options(syn.bytes.data() + syn.th.opt_off, syn.th.opt_len, po), net::OptError::OK);
    CookieOptions co;
    uint32_t cookie = sc.make(ck.remote_ip_be, ck.local_ip_be, ck.remote_port_be, ck.local_port_be,
                              syn.th.seq, po.mss, po.wscale, &co);
    uint8_t ob[40];
    net::TcpSegmentSpec ss;
    fill_syn_ack(syn.ip, syn.th, cookie, co, cfg, ob, ss);
    Frame synack = spec_frame(ss);
    EXPECT_TRUE(synack.checksums_ok());
    EXPECT_EQ(flows.size(), 0u);

    // 2. Final ACK carrying the first request bytes.
    const std::string req1 = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}";
    Frame ack = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, CISN + 1, cookie + 1, net::TCP_ACK,
                           1000, req1);
    CookieOptions got;
    ASSERT_TRUE(sc.check(ck.remote_ip_be, ck.local_ip_be, ck.remote_port_be, ck.local_port_be,
                         ack.th.seq - 1, ack.th.ack - 1, &got));
    ClientConn* cc = clients.alloc();
    uint32_t ci = clients.index(cc);
    ASSERT_EQ(flows.insert(ck, handle_client(ci)), 0);
    open_from_cookie(cc->cb, ck, ack.th, got, cfg);
    cc->opts = got;
    std::string request;
    auto deliver = [&](void* h, uint32_t off, uint32_t len) {
        request += static_cast<Frame*>(h)->payload().substr(off - static_cast<Frame*>(h)->th.payload_off, len);
    };
    auto nodrop = [](void*) {};
    InputResult r = input(cc->cb, ack.th, &ack, ack.th.payload_off, 0, 0, c, true, deliver, nodrop);
    EXPECT_EQ(r.delivered, req1.size());
    EXPECT_TRUE(r.ack_now);
    EXPECT_EQ(request, req1);
    net::TcpSegmentSpec as;
    fill_spec(cc->cb, net::TCP_ACK, uint32_t(request.size()), as);
    EXPECT_EQ(as.ack, CISN + 1 + uint32_t(req1.size()));
    EXPECT_EQ(as.seq, cookie + 1);

    // 3. Route to backend 0: no idle connection, open one.
    EXPECT_EQ(pool.acquire(0), nullptr);
    BackendConn* b = pool.open(0, 0);
    ASSERT_NE(b, nullptr);
    net::TcpSegmentSpec bs;
    fill_syn(b->cb, cfg, ob, bs);
    Frame bsyn = spec_frame(bs);
    EXPECT_EQ(bsyn.ip.dst_be, BACKEND_IP);
    const uint32_t BISN = 0x7ffffff0u;
    std::vector<uint8_t> saopt(40);
    net::TcpOptions sao;
    sao.has_mss = true;
    sao.mss = 1460;
    sao.has_wscale = true;
    sao.wscale = 7;
    saopt.resize(size_t(net::write_tcp_options(sao, saopt.data(), 40)));
    Frame bsa = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, bsyn.th.src_port_be, BISN, bsyn.th.seq + 1,
                           net::TCP_SYN | net::TCP_ACK, 65160, "", saopt);
    FlowKey bk{bsa.ip.src_be, bsa.ip.dst_be, bsa.th.src_port_be, bsa.th.dst_port_be};
    ASSERT_EQ(flows.lookup(bk), pool.handle(b));
    net::TcpOptions bpo;
    ASSERT_EQ(net::parse_tcp_options(bsa.bytes.data() + bsa.th.opt_off, bsa.th.opt_len, bpo), net::OptError::OK);
    ASSERT_EQ(input_syn_sent(b->cb, bsa.th, bpo, cfg, c), 1);
    pool.connected(b);

    // 4. Bind and send the request with our sender.
    auto bind_and_send = [&](BackendConn* be, const std::string& req) {
        cc->bind.bind(cc->cb.key, be->cb.key, cc->cb.tx.nxt(), be->cb.rx.rcv_nxt(), cc->cb.rcv_wscale,
                      be->cb.snd_wscale, cc->opts.mss);
        be->client = handle_client(ci);
        uint32_t base = be->cb.tx.end();
        be->cb.tx.push(uint32_t(req.size()));
        std::string sent;
        SendState::Segment seg;
        while (be->cb.tx.next(&seg)) {
            net::TcpSegmentSpec ds;
            fill_spec(be->cb, uint8_t(net::TCP_ACK | net::TCP_PSH), 0, ds);
            ds.seq = seg.seq;
            ds.payload = reinterpret_cast<const uint8_t*>(req.data()) + (seg.seq - base);
            ds.payload_len = uint16_t(seg.len);
            Frame df = spec_frame(ds);
            EXPECT_TRUE(df.checksums_ok());
            EXPECT_EQ(df.ip.dst_be, be->cb.key.remote_ip_be);
            sent += df.payload();
            be->cb.tx.on_sent(seg, 0);
        }
        EXPECT_EQ(sent, req);
        return base;
    };
    bind_and_send(b, request);
    const uint32_t C_RESP0 = cookie + 1;
    EXPECT_EQ(cc->bind.map_seq(BISN + 1), C_RESP0);

    // 5. The response: ACKs our request, status line in the first segment; the header is inserted.
    const std::string status = "HTTP/1.1 200 OK\r\n";
    const std::string resp1 = status + "content-length: 11\r\n\r\nhello world";
    const std::string ins = "x-tokenlb-backend: gpu-a\r\n";
    ASSERT_TRUE(cc->bind.set_insert(BISN + 1 + uint32_t(status.size()),
                                    reinterpret_cast<const uint8_t*>(ins.data()), uint32_t(ins.size())));
    std::string client_view;
    auto backend_segment = [&](BackendConn* be, const Frame& in, uint32_t& client_seq_out) {
        Frame f = in;
        InputResult br = input(be->cb, f.th, nullptr, 0, 0, 1000, c, false,
                               [](void*, uint32_t, uint32_t) {}, [](void*) {});
        EXPECT_TRUE(br.data);
        uint32_t ack_c = cc->cb.rx.rcv_nxt();
        uint16_t win_c = cc->cb.advertise(0);
        if (cc->bind.needs_rebuild(f.th.seq, f.th.payload_len)) {
            rte_mbuf* out[4];
            int n = splice_b2c_rebuild(f.bytes.data(), f.ip, f.th, cc->bind, ack_c, win_c, g_pool, out, 4);
            EXPECT_GT(n, 0);
            for (int i = 0; i < n; i++) {
                Frame o = frame_from_mbuf(out[i]);
                EXPECT_TRUE(o.checksums_ok());
                if (i == 0) client_seq_out = o.th.seq;
                client_view += o.payload();
                rte_pktmbuf_free(out[i]);
            }
        } else {
            EXPECT_TRUE(splice_b2c_in_place(f.bytes.data(), f.ip, f.th, cc->bind, ack_c, win_c));
            EXPECT_TRUE(f.parse());
            EXPECT_TRUE(f.checksums_ok());
            EXPECT_EQ(f.ip.src_be, VIP);
            EXPECT_EQ(f.ip.dst_be, CLIENT_IP);
            EXPECT_EQ(f.th.ack, ack_c);
            client_seq_out = f.th.seq;
            client_view += f.payload();
        }
        return br;
    };
    uint32_t cseq = 0;
    Frame r1a = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, bk.local_port_be, BISN + 1,
                           b->cb.tx.nxt(), net::TCP_ACK, 500, resp1.substr(0, 30));
    InputResult br = backend_segment(b, r1a, cseq);
    EXPECT_EQ(br.acked, request.size());
    EXPECT_EQ(cseq, C_RESP0);
    Frame r1b = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, bk.local_port_be, BISN + 31,
                           b->cb.tx.nxt(), net::TCP_ACK | net::TCP_PSH, 500, resp1.substr(30));
    backend_segment(b, r1b, cseq);
    EXPECT_EQ(cseq, C_RESP0 + 30 + uint32_t(ins.size()));
    EXPECT_EQ(client_view, status + ins + resp1.substr(status.size()));
    // Framing found the end.
    cc->bind.end_known = true;
    cc->bind.resp_end_b = BISN + 1 + uint32_t(resp1.size());

    // 6. The client ACKs everything (while splicing, the client-leg sender is resynced first).
    const uint32_t client_all = C_RESP0 + uint32_t(resp1.size() + ins.size());
    EXPECT_EQ(cc->bind.sent_max_c, client_all);
    if (cc->cb.tx.all_acked()) cc->cb.tx.resync(cc->bind.sent_max_c);
    Frame cack = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, cc->cb.rx.rcv_nxt(), client_all,
                            net::TCP_ACK, 900, "");
    r = input(cc->cb, cack.th, &cack, cack.th.payload_off, 0, 2000, c, true, deliver, nodrop);
    EXPECT_FALSE(r.drop);
    ASSERT_TRUE(splice_c2b_ack_in_place(cack.bytes.data(), cack.ip, cack.th, cc->bind, b->cb.tx.nxt()));
    ASSERT_TRUE(cack.parse());
    EXPECT_TRUE(cack.checksums_ok());
    EXPECT_EQ(cack.th.ack, BISN + 1 + uint32_t(resp1.size()));  // the insertion is invisible to the backend
    EXPECT_EQ(cack.th.window, rescale_window(900, 6, 7));
    EXPECT_EQ(cack.ip.dst_be, BACKEND_IP);
    b->cb.rx.set_rcv_nxt(cc->bind.client_max_b);
    ASSERT_TRUE(cc->bind.done());

    // 7. Unbind: the backend connection returns to the pool, the client stream continues.
    cc->cb.tx.resync(cc->bind.client_end());
    EXPECT_EQ(cc->cb.tx.nxt(), client_all);
    pool.release(b, 3000);
    EXPECT_EQ(pool.idle(0), 1u);

    // 8. The next request on the same connection goes to backend 1 (a new connection).
    const std::string req2 = "GET /v1/x HTTP/1.1\r\n\r\n";
    Frame rq2 = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, cc->cb.rx.rcv_nxt(), client_all,
                           net::TCP_ACK | net::TCP_PSH, 900, req2);
    request.clear();
    r = input(cc->cb, rq2.th, &rq2, rq2.th.payload_off, 0, 4000, c, true, deliver, nodrop);
    EXPECT_EQ(request, req2);
    BackendConn* b2 = pool.open(1, 4000);
    ASSERT_NE(b2, nullptr);
    EXPECT_NE(b2->cb.key.local_port_be, b->cb.key.local_port_be);
    const uint32_t B2ISN = 0xfffffffau;  // backend 2's response stream wraps
    Frame b2sa = make_frame(BACKEND2_IP, LOCAL_IP, BACKEND_PORT, b2->cb.key.local_port_be, B2ISN,
                            b2->cb.iss + 1, net::TCP_SYN | net::TCP_ACK, 65160, "", saopt);
    ASSERT_EQ(input_syn_sent(b2->cb, b2sa.th, bpo, cfg, c), 1);
    pool.connected(b2);
    bind_and_send(b2, request);
    const std::string resp2 = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    client_view.clear();
    Frame r2 = make_frame(BACKEND2_IP, LOCAL_IP, BACKEND_PORT, b2->cb.key.local_port_be, B2ISN + 1,
                          b2->cb.tx.nxt(), net::TCP_ACK | net::TCP_PSH, 500, resp2);
    backend_segment(b2, r2, cseq);
    EXPECT_EQ(cseq, client_all);  // seq continues where response 1 ended
    EXPECT_EQ(client_view, resp2);
    cc->bind.end_known = true;
    cc->bind.resp_end_b = B2ISN + 1 + uint32_t(resp2.size());
    if (cc->cb.tx.all_acked()) cc->cb.tx.resync(cc->bind.sent_max_c);
    Frame cack2 = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, cc->cb.rx.rcv_nxt(),
                             client_all + uint32_t(resp2.size()), net::TCP_ACK, 900, "");
    r = input(cc->cb, cack2.th, &cack2, cack2.th.payload_off, 0, 5000, c, true, deliver, nodrop);
    ASSERT_TRUE(splice_c2b_ack_in_place(cack2.bytes.data(), cack2.ip, cack2.th, cc->bind, b2->cb.tx.nxt()));
    ASSERT_TRUE(cack2.parse());
    EXPECT_TRUE(cack2.checksums_ok());
    EXPECT_EQ(cack2.ip.dst_be, BACKEND2_IP);
    EXPECT_EQ(cack2.th.ack, B2ISN + 1 + uint32_t(resp2.size()));
    ASSERT_TRUE(cc->bind.done());
    cc->cb.tx.resync(cc->bind.client_end());
    pool.release(b2, 5000);

    // 9. An appliance-made response on the client leg, then the client closes.
    const std::string local = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    uint32_t lbase = cc->cb.tx.end();
    cc->cb.tx.push(uint32_t(local.size()));
    SendState::Segment seg;
    ASSERT_TRUE(cc->cb.tx.next(&seg));
    EXPECT_EQ(seg.seq, client_all + uint32_t(resp2.size()));
    EXPECT_EQ(seg.seq, lbase);
    EXPECT_EQ(seg.len, local.size());
    cc->cb.tx.on_sent(seg, 6000);
    Frame cfin = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, cc->cb.rx.rcv_nxt(),
                            seg.seq + seg.len, net::TCP_ACK | net::TCP_FIN, 900, "");
    r = input(cc->cb, cfin.th, &cfin, cfin.th.payload_off, 0, 7000, c, true, deliver, nodrop);
    EXPECT_EQ(r.acked, local.size());
    EXPECT_TRUE(r.fin);
    EXPECT_EQ(cc->cb.state, TcpState::CLOSE_WAIT);
    close(cc->cb);
    ASSERT_TRUE(cc->cb.tx.next(&seg));
    EXPECT_TRUE(seg.fin);
    Frame lastack = make_frame(CLIENT_IP, VIP, CLIENT_PORT, VIP_PORT, cc->cb.rx.rcv_nxt(), seg.seq + 1,
                               net::TCP_ACK, 900, "");
    r = input(cc->cb, lastack.th, &lastack, lastack.th.payload_off, 0, 8000, c, true, deliver, nodrop);
    EXPECT_TRUE(r.closed);
    flows.erase(cc->cb.key);
    clients.free(cc);
    // Idle backend connections stay pooled until their idle timer.
    EXPECT_EQ(pool.idle(0) + pool.idle(1), 2u);
    pool.close(pool.acquire(0));
    pool.close(pool.acquire(1));
    EXPECT_EQ(flows.size(), 0u);
    EXPECT_EQ(pool.in_use(), 0u);
    EXPECT_EQ(clients.in_use(), 0u);
    EXPECT_EQ(wheel.armed_count(), 0u);
}

// Hostile input: random flags, sequence and ack numbers, lengths and windows on an established
// client connection. Nothing crashes, every payload handle is released exactly once, rcv_nxt
// never moves backwards and the delivered bytes are exactly the bytes between the initial and the
// final rcv_nxt.
TEST(ConnInput, RandomHostileSegmentsKeepInvariants) {
    uint64_t total_delivered = 0, total_challenges = 0, total_ooo = 0;
    for (uint32_t seed = 0; seed < 20; seed++) {
        std::mt19937 rng(seed);
        TcpConfig cfg;
        cfg.ooo_limit = 4;
        cfg.rcv_wnd_max = 20000;
        TcpCb cb;
        CookieOptions co;
        co.mss = 1460;
        co.wscale = int8_t(rng() % 15);
        const uint32_t irs = rng(), iss = rng();
        open_from_cookie(cb, client_key(), info(irs, iss + 1, net::TCP_ACK, 100, 0), co, cfg);
        cb.tx.push(5000);  // we have something in flight so ACKs matter
        SendState::Segment s;
        while (cb.tx.next(&s)) cb.tx.on_sent(s, 0);
        Counters c;
        std::map<uintptr_t, int> released;
        uint64_t delivered = 0;
        uint32_t last_rcv = cb.rx.rcv_nxt();
        uintptr_t next = 1;
        for (int i = 0; i < 3000 && cb.state != TcpState::CLOSED; i++) {
            uint8_t flags = uint8_t(rng() & 0x3f & ~(net::TCP_SYN | net::TCP_RST));
            if (rng() % 4) flags |= net::TCP_ACK;
            if (rng() % 50 == 0) flags |= net::TCP_SYN;
            if (rng() % 200 == 0) flags |= net::TCP_RST;
            if (rng() % 30 != 0) flags = uint8_t(flags & ~net::TCP_FIN);
            uint32_t seq = rng() % 3 ? cb.rx.rcv_nxt() + uint32_t(int32_t(rng() % 40000) - 10000) : rng();
            uint32_t ack = rng() % 3 ? cb.tx.una() + rng() % 6000 : rng();
            uint16_t len = uint16_t(rng() % 4 ? rng() % 1500 : 0);
            uintptr_t h = next++;
            InputResult r = input(cb, info(seq, ack, flags, uint16_t(rng()), len),
                                  reinterpret_cast<void*>(h), 54, uint32_t(rng() % 30000), i, c, true,
                                  [&](void* hh, uint32_t off, uint32_t l) {
                                      released[reinterpret_cast<uintptr_t>(hh)]++;
                                      EXPECT_GE(off, 54u);
                                      delivered += l;
                                  },
                                  [&](void* hh) { released[reinterpret_cast<uintptr_t>(hh)]++; });
            (void)r;
            ASSERT_TRUE(seq_geq(cb.rx.rcv_nxt(), last_rcv)) << seed << " " << i;
            last_rcv = cb.rx.rcv_nxt();
            if (len == 0 || (flags & net::TCP_RST)) {
                // Not handed over (no payload), or RST: released by input() when it had payload.
            }
        }
        cb.rx.clear([&](void* hh) { released[reinterpret_cast<uintptr_t>(hh)]++; });
        for (auto& [h, n] : released) ASSERT_EQ(n, 1) << "seed " << seed << " handle " << h;
        // FIN consumed one sequence number beyond the data when it was accepted.
        uint64_t span = uint32_t(cb.rx.rcv_nxt() - irs);
        bool fin_seen = cb.state == TcpState::CLOSE_WAIT || cb.state == TcpState::LAST_ACK ||
                        cb.state == TcpState::CLOSING || cb.state == TcpState::TIME_WAIT ||
                        (cb.state == TcpState::CLOSED && false);
        if (cb.state != TcpState::CLOSED) {
            EXPECT_EQ(delivered + (fin_seen ? 1 : 0), span) << seed;
        }
        total_delivered += delivered;
        total_challenges += c.rst_challenged + c.seg_syn_in_window;
        total_ooo += c.rx_ooo_held + c.rx_ooo_overflow;
    }
    // The random walk really exercised delivery, out-of-order holding and challenges.
    EXPECT_GT(total_delivered, 20000u);
    EXPECT_GT(total_ooo, 100u);
    EXPECT_GT(total_challenges, 10u);
}

// Property: for random bindings (deltas across 2^32, insertion anywhere, small client MSS), a
// backend response cut into random segments — with retransmissions of random earlier ranges —
// reaches the client as exactly one consistent byte stream (backend bytes with the insertion),
// every translated segment has valid checksums, and mapped ACKs invert to backend positions.
TEST(Splice, RandomSegmentationReconstructsClientStream) {
    NEED_EAL();
    unsigned avail0 = rte_mempool_avail_count(g_pool);
    for (uint32_t seed = 0; seed < 30; seed++) {
        std::mt19937 rng(seed);
        const uint32_t C0 = rng(), B0 = rng();
        const uint16_t mss = uint16_t(536 + rng() % 1000);
        SpliceBinding b;
        b.bind(client_key(), backend_key(BACKEND_IP, LPORT1), C0, B0, 7, 7, mss);
        const std::string resp = random_text(6000 + rng() % 4000, seed + 100);
        std::string ins;
        uint32_t ins_off = 0;
        if (rng() % 4 != 0) {
            ins = "x-tokenlb-backend: " + random_text(1 + rng() % 40, seed) + "\r\n";
            ins_off = 1 + rng() % 200;
            ASSERT_TRUE(b.set_insert(B0 + ins_off, reinterpret_cast<const uint8_t*>(ins.data()),
                                     uint32_t(ins.size())));
        }
        const std::string expect = ins.empty() ? resp : resp.substr(0, ins_off) + ins + resp.substr(ins_off);
        std::string client(expect.size(), '\0');
        std::vector<bool> seen(expect.size(), false);
        auto place = [&](const Frame& f) {
            ASSERT_TRUE(f.checksums_ok());
            ASSERT_LE(f.th.payload_len, mss);
            uint32_t off = f.th.seq - C0;
            ASSERT_LE(uint64_t(off) + f.th.payload_len, expect.size());
            std::string p = f.payload();
            for (size_t i = 0; i < p.size(); i++) {
                if (seen[off + i]) {
                    ASSERT_EQ(client[off + i], p[i]);  // retransmissions agree
                }
                client[off + i] = p[i];
                seen[off + i] = true;
            }
        };
        auto send = [&](uint32_t off, uint32_t len) {
            Frame f = make_frame(BACKEND_IP, LOCAL_IP, BACKEND_PORT, LPORT1, B0 + off, 1, net::TCP_ACK, 100,
                                 resp.substr(off, len));
            if (b.needs_rebuild(f.th.seq, f.th.payload_len)) {
                rte_mbuf* out[16];
                int n = splice_b2c_rebuild(f.bytes.data(), f.ip, f.th, b, 1, 1, g_pool, out, 16);
                ASSERT_GT(n, 0);
                for (int i = 0; i < n; i++) {
                    place(frame_from_mbuf(out[i]));
                    rte_pktmbuf_free(out[i]);
                }
            } else {
                ASSERT_TRUE(splice_b2c_in_place(f.bytes.data(), f.ip, f.th, b, 1, 1));
                ASSERT_TRUE(f.parse());
                place(f);
            }
        };
        for (uint32_t off = 0; off < resp.size();) {
            uint32_t len = std::min<uint32_t>(1 + rng() % 1460, uint32_t(resp.size()) - off);
            send(off, len);
            if (rng() % 5 == 0 && off > 0) {  // the backend retransmits an older range
                uint32_t r0 = rng() % off;
                send(r0, std::min<uint32_t>(1 + rng() % 1460, off - r0));
            }
            off += len;
        }
        ASSERT_TRUE(std::all_of(seen.begin(), seen.end(), [](bool x) { return x; })) << seed;
        ASSERT_EQ(client, expect) << seed;
        ASSERT_EQ(b.sent_max_c, C0 + uint32_t(expect.size()));
        // ACK mapping: client positions map back to backend positions, the inserted range to
        // the insertion point.
        for (int k = 0; k < 200; k++) {
            uint32_t coff = rng() % uint32_t(expect.size() + 1);
            uint32_t bo = b.map_ack(C0 + coff) - B0;
            if (ins.empty() || coff <= ins_off) {
                ASSERT_EQ(bo, coff);
            } else if (coff <= ins_off + ins.size()) {
                ASSERT_EQ(bo, ins_off);
            } else {
                ASSERT_EQ(bo, coff - ins.size());
            }
        }
    }
    EXPECT_EQ(rte_mempool_avail_count(g_pool), avail0);
}
