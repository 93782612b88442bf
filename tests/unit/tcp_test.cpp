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
        if (now == 4000) EXPECT_EQ(a_fired, 0);
        if (now == 8000) EXPECT_EQ(c_fired, 0);
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
