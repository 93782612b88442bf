// lib/net unit tests on crafted packets. The expected frames below were produced once by an
// independent Python implementation (struct + RFC 1071 checksum) and are hard-coded, so these
// tests compare our code against known-good bytes, not against itself.
#include "net/net.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace tlb::net;

namespace {

// ARP who-has 10.10.0.1 tell 10.10.0.2 (02:00:00:00:00:02) and the reply from 02:00:00:00:00:01.
// ICMP echo request 10.10.0.2 -> 10.10.0.1 (id 0x1234, seq 7, 56 bytes, TTL 63) and its reply.
// TCP SYN 10.10.0.2:40000 -> 10.10.0.1:80 with MSS 1460, SACK-permitted, TS, NOP, WS 7.
// TCP PSH|ACK 10.10.0.1:80 -> 10.10.0.2:40000, NOP NOP TS, 17 payload bytes (odd length).
const uint8_t ARP_REQUEST[42] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x02, 0x0a, 0x0a, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x0a, 0x0a, 0x00, 0x01,
};

const uint8_t ARP_REPLY[42] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x0a, 0x0a, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x02, 0x0a, 0x0a, 0x00, 0x02,
};

const uint8_t ECHO_REQUEST[98] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x08, 0x00, 0x45, 0x00, 0x00, 0x54, 0xbe, 0xef, 0x40, 0x00, 0x3f, 0x01,
    0x68, 0xa3, 0x0a, 0x0a, 0x00, 0x02, 0x0a, 0x0a, 0x00, 0x01, 0x08, 0x00,
    0x2c, 0xf0, 0x12, 0x34, 0x00, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
    0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21,
    0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d,
    0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
    0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45,
    0x46, 0x47,
};

const uint8_t ECHO_REPLY[98] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x00, 0x45, 0x00, 0x00, 0x54, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x01,
    0x67, 0xa3, 0x0a, 0x0a, 0x00, 0x01, 0x0a, 0x0a, 0x00, 0x02, 0x00, 0x00,
    0x34, 0xf0, 0x12, 0x34, 0x00, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
    0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21,
    0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d,
    0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
    0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45,
    0x46, 0x47,
};

const uint8_t SYN_FRAME[74] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x08, 0x00, 0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06,
    0x0a, 0x60, 0x0a, 0x0a, 0x00, 0x02, 0x0a, 0x0a, 0x00, 0x01, 0x9c, 0x40,
    0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
    0xfa, 0xf0, 0x20, 0xc9, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
    0x08, 0x0a, 0xaa, 0xbb, 0xcc, 0xdd, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03,
    0x03, 0x07,
};

const uint8_t DATA_FRAME[83] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x00, 0x45, 0x00, 0x00, 0x45, 0x00, 0x42, 0x40, 0x00, 0x40, 0x06,
    0x26, 0x5b, 0x0a, 0x0a, 0x00, 0x01, 0x0a, 0x0a, 0x00, 0x02, 0x00, 0x50,
    0x9c, 0x40, 0x7f, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x80, 0x18,
    0x01, 0xf6, 0xc5, 0x39, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x11, 0x22,
    0x33, 0x44, 0xaa, 0xbb, 0xcc, 0xdd, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31,
    0x2e, 0x31, 0x20, 0x32, 0x30, 0x30, 0x20, 0x4f, 0x4b, 0x0d, 0x0a,
};

// ip csum syn 0x0a60 tcp csum syn 0x20c9 data ip 0x265b tcp 0xc539


const MacAddr MAC_A = {{0x02, 0, 0, 0, 0, 0x01}};  // appliance
const MacAddr MAC_C = {{0x02, 0, 0, 0, 0, 0x02}};  // client
constexpr uint32_t IP_A = ipv4_be(10, 10, 0, 1);
constexpr uint32_t IP_C = ipv4_be(10, 10, 0, 2);

template <size_t N>
std::vector<uint8_t> vec(const uint8_t (&a)[N]) {
    return std::vector<uint8_t>(a, a + N);
}
uint16_t rd16(const std::vector<uint8_t>& f, size_t off) {
    uint16_t v;
    std::memcpy(&v, f.data() + off, 2);
    return v;
}
void wr16(std::vector<uint8_t>& f, size_t off, uint16_t v) { std::memcpy(f.data() + off, &v, 2); }
uint32_t rd32(const std::vector<uint8_t>& f, size_t off) {
    uint32_t v;
    std::memcpy(&v, f.data() + off, 4);
    return v;
}
void wr32(std::vector<uint8_t>& f, size_t off, uint32_t v) { std::memcpy(f.data() + off, &v, 4); }

constexpr size_t IP_OFF = 14, IP_CSUM = 24, IP_SRC = 26, IP_DST = 30, TCP_OFF = 34,
                 TCP_SEQ_OFF = 38, TCP_ACK_OFF = 42, TCP_WIN = 48, TCP_CSUM = 50;

const rte_ipv4_hdr* iph(const std::vector<uint8_t>& f) {
    return reinterpret_cast<const rte_ipv4_hdr*>(f.data() + IP_OFF);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Checksums

TEST(Checksum, Ipv4HeaderTextbookExample) {
    // The classic worked example (RFC 1071 style): checksum 0xb861.
    const uint8_t hdr[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                             0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(hdr);
    EXPECT_EQ(rte_be_to_cpu_16(ipv4_header_checksum(ip)), 0xb861);
    EXPECT_TRUE(ipv4_header_checksum_ok(ip));
    uint8_t bad[20];
    std::memcpy(bad, hdr, 20);
    bad[15] ^= 0x01;
    EXPECT_FALSE(ipv4_header_checksum_ok(reinterpret_cast<const rte_ipv4_hdr*>(bad)));
}

TEST(Checksum, CapturedFramesIpAndTcp) {
    for (auto f : {vec(SYN_FRAME), vec(DATA_FRAME)}) {
        const auto* ip = iph(f);
        EXPECT_EQ(ipv4_header_checksum(ip), rd16(f, IP_CSUM));
        EXPECT_TRUE(ipv4_header_checksum_ok(ip));
        size_t l4_len = f.size() - TCP_OFF;
        EXPECT_EQ(ipv4_l4_checksum(ip->src_addr, ip->dst_addr, IPPROTO_TCP, f.data() + TCP_OFF, l4_len),
                  rd16(f, TCP_CSUM));
        EXPECT_TRUE(ipv4_l4_checksum_ok(ip->src_addr, ip->dst_addr, IPPROTO_TCP, f.data() + TCP_OFF,
                                        l4_len));
        // DPDK's own inline helper agrees (it wants the checksum field zeroed first).
        auto z = f;
        wr16(z, TCP_CSUM, 0);
        EXPECT_EQ(rte_ipv4_udptcp_cksum(iph(z), z.data() + TCP_OFF), rd16(f, TCP_CSUM));
        EXPECT_EQ(rte_ipv4_udptcp_cksum(ip, f.data() + TCP_OFF), 0);  // sums to zero when valid
        // Any single-bit flip in the segment is detected.
        for (size_t i = TCP_OFF; i < f.size(); ++i) {
            auto g = f;
            g[i] ^= 0x10;
            EXPECT_FALSE(ipv4_l4_checksum_ok(ip->src_addr, ip->dst_addr, IPPROTO_TCP,
                                             g.data() + TCP_OFF, l4_len))
                << "byte " << i;
        }
    }
    EXPECT_EQ(rte_be_to_cpu_16(rd16(vec(SYN_FRAME), IP_CSUM)), 0x0a60);
    EXPECT_EQ(rte_be_to_cpu_16(rd16(vec(SYN_FRAME), TCP_CSUM)), 0x20c9);
    EXPECT_EQ(rte_be_to_cpu_16(rd16(vec(DATA_FRAME), TCP_CSUM)), 0xc539);
}

TEST(Checksum, PartialChainsAndOddLengths) {
    std::vector<uint8_t> b(1501);
    std::mt19937 rng(7);
    for (auto& x : b) x = uint8_t(rng());
    for (size_t len : {0u, 1u, 2u, 3u, 7u, 8u, 9u, 15u, 16u, 17u, 1499u, 1500u, 1501u}) {
        uint16_t ref = rte_raw_cksum(b.data(), len);  // folded, not complemented
        EXPECT_EQ(uint16_t(~csum_fold(csum_partial(b.data(), len))), ref) << len;
        // Chaining at an even split gives the same result.
        size_t split = (len / 2) & ~size_t(1);
        uint32_t s = csum_partial(b.data(), split);
        s = csum_partial(b.data() + split, len - split, s);
        EXPECT_EQ(csum_fold(s), csum_fold(csum_partial(b.data(), len))) << len;
    }
}

TEST(Checksum, PseudoHeaderSeedMatchesDpdk) {
    auto f = vec(DATA_FRAME);
    const auto* ip = iph(f);
    EXPECT_EQ(ipv4_pseudo_header_seed(ip->src_addr, ip->dst_addr, IPPROTO_TCP,
                                      uint16_t(f.size() - TCP_OFF)),
              rte_ipv4_phdr_cksum(ip, 0));
}

TEST(Checksum, IncrementalEqualsFullRecompute) {
    std::mt19937 rng(12345);
    auto f = vec(DATA_FRAME);
    for (int iter = 0; iter < 5000; ++iter) {
        auto g = f;
        size_t l4_len = g.size() - TCP_OFF;
        uint16_t ipc = rd16(g, IP_CSUM), tcpc = rd16(g, TCP_CSUM);
        // Rewrite a 32-bit address (IP header + pseudo header), seq, ack, a port and the window:
        // the NAT / splice rewrites the tcp component will do.
        uint32_t new_dst = uint32_t(rng()), new_seq = uint32_t(rng()), new_ack = uint32_t(rng());
        uint16_t new_port = uint16_t(rng()), new_win = uint16_t(rng());
        if (iter % 7 == 0) new_win = rd16(g, TCP_WIN);  // unchanged field
        if (iter % 11 == 0) new_dst = 0xffffffffu;
        if (iter % 13 == 0) new_seq = 0;
        ipc = csum_update32(ipc, rd32(g, IP_DST), new_dst);
        tcpc = csum_update32(tcpc, rd32(g, IP_DST), new_dst);
        tcpc = csum_update32(tcpc, rd32(g, TCP_SEQ_OFF), new_seq);
        tcpc = csum_update32(tcpc, rd32(g, TCP_ACK_OFF), new_ack);
        tcpc = csum_update16(tcpc, rd16(g, TCP_OFF + 2), new_port);
        tcpc = csum_update16(tcpc, rd16(g, TCP_WIN), new_win);
        wr32(g, IP_DST, new_dst);
        wr32(g, TCP_SEQ_OFF, new_seq);
        wr32(g, TCP_ACK_OFF, new_ack);
        wr16(g, TCP_OFF + 2, new_port);
        wr16(g, TCP_WIN, new_win);
        const auto* ip = iph(g);
        uint16_t full_ip = ipv4_header_checksum(ip);
        uint16_t full_tcp =
            ipv4_l4_checksum(ip->src_addr, ip->dst_addr, IPPROTO_TCP, g.data() + TCP_OFF, l4_len);
        // One's complement has two zeros; RFC 1624's eqn. 3 never produces 0xffff from a
        // non-zero sum, so the values must be bit-identical.
        ASSERT_EQ(ipc, full_ip) << iter;
        ASSERT_EQ(tcpc, full_tcp) << iter;
        wr16(g, IP_CSUM, ipc);
        wr16(g, TCP_CSUM, tcpc);
        ASSERT_TRUE(ipv4_header_checksum_ok(ip));
        ASSERT_TRUE(ipv4_l4_checksum_ok(ip->src_addr, ip->dst_addr, IPPROTO_TCP, g.data() + TCP_OFF,
                                        l4_len));
    }
}

TEST(Checksum, SeedUpdateForOffloadedSegments) {
    std::mt19937 rng(3);
    for (int i = 0; i < 1000; ++i) {
        uint32_t s = uint32_t(rng()), d = uint32_t(rng()), d2 = uint32_t(rng());
        uint16_t len = uint16_t(20 + rng() % 1460);
        uint16_t seed = ipv4_pseudo_header_seed(s, d, IPPROTO_TCP, len);
        EXPECT_EQ(seed_update32(seed, d, d2), ipv4_pseudo_header_seed(s, d2, IPPROTO_TCP, len));
        uint16_t len2 = uint16_t(20 + rng() % 1460);
        EXPECT_EQ(seed_update16(seed, rte_cpu_to_be_16(len), rte_cpu_to_be_16(len2)),
                  ipv4_pseudo_header_seed(s, d, IPPROTO_TCP, len2));
    }
}

// ---------------------------------------------------------------------------------------------
// ARP

TEST(Arp, ParseRequest) {
    auto f = vec(ARP_REQUEST);
    EXPECT_EQ(parse_ether(f.data(), f.size()), RTE_ETHER_TYPE_ARP);
    ArpInfo a;
    ASSERT_EQ(parse_arp(f.data(), f.size(), a), DropReason::NONE);
    EXPECT_EQ(a.op, RTE_ARP_OP_REQUEST);
    EXPECT_TRUE(mac_equal(a.sha, MAC_C));
    EXPECT_EQ(a.spa_be, IP_C);
    EXPECT_EQ(a.tpa_be, IP_A);
    EXPECT_TRUE(mac_is_zero(a.tha));
}

TEST(Arp, RequestToReplyMatchesCapture) {
    auto f = vec(ARP_REQUEST);
    ArpInfo a;
    ASSERT_EQ(parse_arp(f.data(), f.size(), a), DropReason::NONE);
    uint8_t out[64];
    ASSERT_EQ(write_arp_reply(out, sizeof out, a, MAC_A, IP_A), ARP_FRAME_LEN);
    EXPECT_EQ(std::vector<uint8_t>(out, out + ARP_FRAME_LEN), vec(ARP_REPLY));
    // In place, with Ethernet padding after the ARP payload (as NICs deliver 60-byte frames).
    f.resize(60, 0xee);
    ASSERT_TRUE(arp_reply_in_place(f.data(), f.size(), MAC_A, IP_A));
    EXPECT_EQ(std::vector<uint8_t>(f.begin(), f.begin() + ARP_FRAME_LEN), vec(ARP_REPLY));
    // A reply is not turned into anything.
    auto r = vec(ARP_REPLY);
    EXPECT_FALSE(arp_reply_in_place(r.data(), r.size(), MAC_A, IP_A));
    ArpInfo ri;
    EXPECT_EQ(parse_arp(r.data(), r.size(), ri), DropReason::NONE);
    EXPECT_EQ(ri.op, RTE_ARP_OP_REPLY);
}

TEST(Arp, RequestBuilder) {
    uint8_t out[ARP_FRAME_LEN];
    ASSERT_EQ(write_arp_request(out, sizeof out, MAC_C, IP_C, IP_A), ARP_FRAME_LEN);
    EXPECT_EQ(std::vector<uint8_t>(out, out + ARP_FRAME_LEN), vec(ARP_REQUEST));
    EXPECT_EQ(write_arp_request(out, ARP_FRAME_LEN - 1, MAC_C, IP_C, IP_A), 0u);
}

TEST(Arp, Malformed) {
    ArpInfo a;
    auto f = vec(ARP_REQUEST);
    EXPECT_EQ(parse_arp(f.data(), 41, a), DropReason::ARP_MALFORMED);
    EXPECT_EQ(parse_arp(f.data(), 0, a), DropReason::ARP_MALFORMED);
    auto g = f;
    g[14 + 4] = 8;  // hlen
    EXPECT_EQ(parse_arp(g.data(), g.size(), a), DropReason::ARP_MALFORMED);
    g = f;
    g[14 + 3] = 0xdd;  // protocol 0x08dd
    EXPECT_EQ(parse_arp(g.data(), g.size(), a), DropReason::ARP_MALFORMED);
    g = f;
    g[14 + 7] = 3;  // RARP request
    EXPECT_EQ(parse_arp(g.data(), g.size(), a), DropReason::ARP_OP);
    EXPECT_FALSE(arp_reply_in_place(g.data(), g.size(), MAC_A, IP_A));
}

// ---------------------------------------------------------------------------------------------
// IPv4 / ICMP

TEST(Icmp, EchoRequestToReplyMatchesCapture) {
    auto f = vec(ECHO_REQUEST);
    EXPECT_EQ(parse_ether(f.data(), f.size()), RTE_ETHER_TYPE_IPV4);
    Ipv4Info ip;
    ASSERT_EQ(parse_ipv4(f.data(), f.size(), ip), DropReason::NONE);
    EXPECT_EQ(ip.proto, IPPROTO_ICMP);
    EXPECT_EQ(ip.src_be, IP_C);
    EXPECT_EQ(ip.dst_be, IP_A);
    EXPECT_EQ(ip.l4_off, 34);
    EXPECT_EQ(ip.l4_len, 64);
    EXPECT_EQ(ip.ttl, 63);
    ASSERT_EQ(icmp_echo_reply_in_place(f.data(), f.size(), ip, MAC_A), f.size());
    EXPECT_EQ(f, vec(ECHO_REPLY));
}

TEST(Icmp, PaddingIsTrimmed) {
    auto f = vec(ECHO_REQUEST);
    f.resize(f.size() + 6, 0x55);
    Ipv4Info ip;
    ASSERT_EQ(parse_ipv4(f.data(), f.size(), ip), DropReason::NONE);
    ASSERT_EQ(icmp_echo_reply_in_place(f.data(), f.size(), ip, MAC_A), sizeof(ECHO_REPLY));
    EXPECT_EQ(std::vector<uint8_t>(f.begin(), f.begin() + sizeof(ECHO_REPLY)), vec(ECHO_REPLY));
}

TEST(Icmp, RejectsBadChecksumAndOtherTypes) {
    Ipv4Info ip;
    auto f = vec(ECHO_REQUEST);
    f[f.size() - 1] ^= 0xff;  // payload corrupted, ICMP checksum now wrong
    ASSERT_EQ(parse_ipv4(f.data(), f.size(), ip), DropReason::NONE);
    EXPECT_EQ(icmp_echo_reply_in_place(f.data(), f.size(), ip, MAC_A), 0u);
    auto r = vec(ECHO_REPLY);  // a reply is not answered
    ASSERT_EQ(parse_ipv4(r.data(), r.size(), ip), DropReason::NONE);
    EXPECT_EQ(icmp_echo_reply_in_place(r.data(), r.size(), ip, MAC_A), 0u);
    EXPECT_EQ(r, vec(ECHO_REPLY));  // untouched
    // ICMP shorter than its header.
    Ipv4Info tiny = ip;
    tiny.l4_len = 4;
    EXPECT_EQ(icmp_echo_reply_in_place(r.data(), r.size(), tiny, MAC_A), 0u);
}

TEST(Ipv4, ParseErrors) {
    Ipv4Info ip;
    auto f = vec(ECHO_REQUEST);
    EXPECT_EQ(parse_ipv4(f.data(), 33, ip), DropReason::IPV4_TRUNCATED);
    auto g = f;
    g[IP_OFF] = 0x65;  // version 6
    EXPECT_EQ(parse_ipv4(g.data(), g.size(), ip), DropReason::IPV4_VERSION);
    g = f;
    g[IP_OFF] = 0x44;  // IHL 4
    EXPECT_EQ(parse_ipv4(g.data(), g.size(), ip), DropReason::IPV4_HDR_LEN);
    g = f;
    g[IP_OFF] = 0x4f;  // IHL 15 = 60 bytes, checksum now wrong too but length checked first
    EXPECT_EQ(parse_ipv4(g.data(), 14 + 40, ip), DropReason::IPV4_TRUNCATED);
    EXPECT_EQ(parse_ipv4(f.data(), f.size() - 1, ip), DropReason::IPV4_TRUNCATED);  // total_len
    g = f;
    g[IP_OFF + 8] = 1;  // TTL changed, checksum stale
    EXPECT_EQ(parse_ipv4(g.data(), g.size(), ip), DropReason::IPV4_CHECKSUM);
    EXPECT_EQ(parse_ipv4(g.data(), g.size(), ip, /*csum_verified=*/true), DropReason::NONE);

    auto refix = [](std::vector<uint8_t>& x) {
        wr16(x, IP_CSUM, ipv4_header_checksum(iph(x)));
    };
    g = f;
    g[IP_OFF + 6] |= 0x20;  // MF
    refix(g);
    EXPECT_EQ(parse_ipv4(g.data(), g.size(), ip), DropReason::IPV4_FRAGMENT);
    g = f;
    g[IP_OFF + 7] = 0x08;  // fragment offset
    refix(g);
    EXPECT_EQ(parse_ipv4(g.data(), g.size(), ip), DropReason::IPV4_FRAGMENT);
    g = f;
    wr32(g, IP_SRC, ipv4_be(224, 0, 0, 1));
    refix(g);
    EXPECT_EQ(parse_ipv4(g.data(), g.size(), ip), DropReason::IPV4_SRC_INVALID);
    g = f;
    wr32(g, IP_SRC, 0);
    refix(g);
    EXPECT_EQ(parse_ipv4(g.data(), g.size(), ip), DropReason::IPV4_SRC_INVALID);
}

// ---------------------------------------------------------------------------------------------
// TCP header and options

TEST(Tcp, ParseSyn) {
    auto f = vec(SYN_FRAME);
    Ipv4Info ip;
    ASSERT_EQ(parse_ipv4(f.data(), f.size(), ip), DropReason::NONE);
    ASSERT_EQ(ip.proto, IPPROTO_TCP);
    TcpInfo t;
    ASSERT_EQ(parse_tcp(f.data(), ip, t), DropReason::NONE);
    EXPECT_EQ(t.src_port_be, rte_cpu_to_be_16(40000));
    EXPECT_EQ(t.dst_port_be, rte_cpu_to_be_16(80));
    EXPECT_EQ(t.seq, 0x01020304u);
    EXPECT_EQ(t.flags, TCP_SYN);
    EXPECT_EQ(t.window, 64240);
    EXPECT_EQ(t.hdr_len, 40);
    EXPECT_EQ(t.opt_len, 20);
    EXPECT_EQ(t.payload_len, 0);
    TcpOptions o;
    ASSERT_EQ(parse_tcp_options(f.data() + t.opt_off, t.opt_len, o), OptError::OK);
    EXPECT_TRUE(o.has_mss);
    EXPECT_EQ(o.mss, 1460);
    EXPECT_TRUE(o.sack_permitted);
    EXPECT_TRUE(o.has_timestamps);
    EXPECT_EQ(o.ts_val, 0xaabbccddu);
    EXPECT_EQ(o.ts_ecr, 0u);
    EXPECT_TRUE(o.has_wscale);
    EXPECT_EQ(o.wscale, 7);
    EXPECT_EQ(o.sack_count, 0);
}

TEST(Tcp, ParseDataAndErrors) {
    auto f = vec(DATA_FRAME);
    Ipv4Info ip;
    ASSERT_EQ(parse_ipv4(f.data(), f.size(), ip), DropReason::NONE);
    TcpInfo t;
    ASSERT_EQ(parse_tcp(f.data(), ip, t), DropReason::NONE);
    EXPECT_EQ(t.flags, TCP_PSH | TCP_ACK);
    EXPECT_EQ(t.payload_len, 17);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data() + t.payload_off), t.payload_len),
              "HTTP/1.1 200 OK\r\n");
    auto g = f;
    g[f.size() - 3] ^= 1;
    EXPECT_EQ(parse_tcp(g.data(), ip, t), DropReason::TCP_CHECKSUM);
    EXPECT_EQ(parse_tcp(g.data(), ip, t, /*csum_verified=*/true), DropReason::NONE);
    g = f;
    g[TCP_OFF + 12] = 0x40;  // data offset 4 words
    EXPECT_EQ(parse_tcp(g.data(), ip, t), DropReason::TCP_MALFORMED);
    g = f;
    g[TCP_OFF + 12] = 0xf0;  // 60 bytes > 49 available
    EXPECT_EQ(parse_tcp(g.data(), ip, t), DropReason::TCP_MALFORMED);
    Ipv4Info shortip = ip;
    shortip.l4_len = 19;
    EXPECT_EQ(parse_tcp(f.data(), shortip, t), DropReason::TCP_MALFORMED);
}

TEST(TcpOptions, MalformedAreErrors) {
    TcpOptions o;
    auto parse = [&](std::vector<uint8_t> b) { return parse_tcp_options(b.data(), b.size(), o); };
    EXPECT_EQ(parse({2, 0, 5, 0xb4}), OptError::BAD_LENGTH);   // length 0
    EXPECT_EQ(parse({30, 0}), OptError::BAD_LENGTH);           // unknown kind, length 0
    EXPECT_EQ(parse({30, 1, 1, 1}), OptError::BAD_LENGTH);     // length 1
    EXPECT_EQ(parse({2, 4, 5}), OptError::OVERRUN);            // MSS cut short
    EXPECT_EQ(parse({1, 1, 8, 10, 0, 0, 0, 1}), OptError::OVERRUN);
    EXPECT_EQ(parse({30, 40, 0, 0}), OptError::OVERRUN);
    EXPECT_EQ(parse({1, 1, 1, 2}), OptError::TRUNCATED);       // kind without length byte
    EXPECT_EQ(parse({3}), OptError::TRUNCATED);
    EXPECT_EQ(parse({2, 3, 5, 1}), OptError::BAD_LENGTH);      // MSS length 3
    EXPECT_EQ(parse({3, 4, 7, 0}), OptError::BAD_LENGTH);      // WS length 4
    EXPECT_EQ(parse({4, 3, 0, 1}), OptError::BAD_LENGTH);      // SACK-permitted length 3
    EXPECT_EQ(parse({8, 8, 0, 0, 0, 0, 0, 0}), OptError::BAD_LENGTH);  // TS length 8
    EXPECT_EQ(parse({5, 2, 1, 1}), OptError::BAD_LENGTH);      // SACK with no block
    EXPECT_EQ(parse({5, 9, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1}), OptError::BAD_LENGTH);  // 7-byte block
    EXPECT_EQ(parse({2, 4, 5, 0xb4, 2, 4, 5, 0xb4}), OptError::DUPLICATE);
    EXPECT_EQ(parse(std::vector<uint8_t>(44, 1)), OptError::TOO_LONG);
}

TEST(TcpOptions, SkipsUnknownAndStopsAtEol) {
    TcpOptions o;
    std::vector<uint8_t> b = {30, 4, 0xde, 0xad, 2, 4, 0x05, 0xb4, 0, 0xff, 0xff, 0xff};
    ASSERT_EQ(parse_tcp_options(b.data(), b.size(), o), OptError::OK);
    EXPECT_TRUE(o.has_mss);
    EXPECT_EQ(o.mss, 1460);
    EXPECT_EQ(parse_tcp_options(b.data(), 0, o), OptError::OK);
    EXPECT_FALSE(o.has_mss);  // reset on each call
}

TEST(TcpOptions, SackBlocks) {
    TcpOptions in;
    in.has_timestamps = true;
    in.ts_val = 1;
    in.ts_ecr = 2;
    for (int n = 1; n <= 4; ++n) {
        in.sack_count = uint8_t(n);
        for (int b = 0; b < n; ++b) in.sack[b] = {uint32_t(1000 * b + 1), uint32_t(1000 * b + 500)};
        uint8_t buf[40];
        int w = write_tcp_options(in, buf, sizeof buf);
        if (n == 4) {  // 12 (TS) + 4 + 32 = 48 > 40
            EXPECT_EQ(w, -1);
            continue;
        }
        ASSERT_GT(w, 0);
        EXPECT_EQ(w % 4, 0);
        TcpOptions out;
        ASSERT_EQ(parse_tcp_options(buf, size_t(w), out), OptError::OK);
        ASSERT_EQ(out.sack_count, n);
        for (int b = 0; b < n; ++b) {
            EXPECT_EQ(out.sack[b].left, in.sack[b].left);
            EXPECT_EQ(out.sack[b].right, in.sack[b].right);
        }
        EXPECT_TRUE(out.has_timestamps);
        EXPECT_EQ(out.ts_ecr, 2u);
    }
    in.has_timestamps = false;
    in.sack_count = 4;
    uint8_t buf[40];
    ASSERT_EQ(write_tcp_options(in, buf, sizeof buf), 36);
    TcpOptions out;
    ASSERT_EQ(parse_tcp_options(buf, 36, out), OptError::OK);
    EXPECT_EQ(out.sack_count, 4);
    EXPECT_EQ(out.sack[3].right, 3500u);
    EXPECT_EQ(write_tcp_options(in, buf, 35), -1);  // capacity
}

TEST(TcpOptions, WriteSynLayoutMatchesCapture) {
    TcpOptions o;
    o.has_mss = true;
    o.mss = 1460;
    o.sack_permitted = true;
    o.has_timestamps = true;
    o.ts_val = 0xaabbccdd;
    o.has_wscale = true;
    o.wscale = 7;
    uint8_t buf[40];
    ASSERT_EQ(write_tcp_options(o, buf, sizeof buf), 20);
    EXPECT_EQ(0, std::memcmp(buf, SYN_FRAME + TCP_OFF + 20, 20));
    // The data segment's NOP NOP TS layout.
    TcpOptions d;
    d.has_timestamps = true;
    d.ts_val = 0x11223344;
    d.ts_ecr = 0xaabbccdd;
    ASSERT_EQ(write_tcp_options(d, buf, sizeof buf), 12);
    EXPECT_EQ(0, std::memcmp(buf, DATA_FRAME + TCP_OFF + 20, 12));
    // SACK-permitted alone, MSS + WS.
    TcpOptions s;
    s.sack_permitted = true;
    ASSERT_EQ(write_tcp_options(s, buf, sizeof buf), 4);
    TcpOptions back;
    ASSERT_EQ(parse_tcp_options(buf, 4, back), OptError::OK);
    EXPECT_TRUE(back.sack_permitted);
    EXPECT_EQ(write_tcp_options(TcpOptions{}, buf, 0), 0);
}

TEST(TcpOptions, RandomBytesNeverCrash) {
    // Hostile option bytes: every outcome is OK or a defined negative error, and an OK result is
    // self-consistent.
    std::mt19937 rng(99);
    std::set<int> seen;
    uint8_t b[40];
    for (int i = 0; i < 200000; ++i) {
        size_t len = rng() % 41;
        for (size_t j = 0; j < len; ++j) {
            uint32_t r = rng();
            // Bias towards small kinds/lengths so known options are exercised.
            b[j] = (r & 0x300) ? uint8_t(r % 12) : uint8_t(r);
        }
        TcpOptions o;
        OptError e = parse_tcp_options(b, len, o);
        int v = int(e);
        ASSERT_TRUE(v <= 0 && v >= -5);
        seen.insert(v);
        if (e == OptError::OK) {
            ASSERT_LE(o.sack_count, 4);
        }
    }
    EXPECT_GE(seen.size(), 4u);  // the generator really reached error paths and OK
}

// ---------------------------------------------------------------------------------------------
// TCP segment builder

namespace {
TcpSegmentSpec data_spec(uint8_t* opts) {
    TcpOptions d;
    d.has_timestamps = true;
    d.ts_val = 0x11223344;
    d.ts_ecr = 0xaabbccdd;
    int n = write_tcp_options(d, opts, 40);
    static const char PAYLOAD[] = "HTTP/1.1 200 OK\r\n";
    TcpSegmentSpec s;
    s.src_mac = MAC_A;
    s.dst_mac = MAC_C;
    s.src_ip_be = IP_A;
    s.dst_ip_be = IP_C;
    s.src_port_be = rte_cpu_to_be_16(80);
    s.dst_port_be = rte_cpu_to_be_16(40000);
    s.seq = 0x7f000001;
    s.ack = 0x01020305;
    s.flags = TCP_PSH | TCP_ACK;
    s.window = 502;
    s.options = opts;
    s.options_len = uint8_t(n);
    s.payload = reinterpret_cast<const uint8_t*>(PAYLOAD);
    s.payload_len = 17;
    s.ip_id = 0x0042;
    return s;
}
}  // namespace

TEST(TcpBuilder, SoftwareChecksumsMatchCapture) {
    uint8_t opts[40];
    auto s = data_spec(opts);
    std::vector<uint8_t> out(200);
    ASSERT_EQ(build_tcp_segment(out.data(), out.size(), s), sizeof(DATA_FRAME));
    out.resize(sizeof(DATA_FRAME));
    EXPECT_EQ(out, vec(DATA_FRAME));
}

TEST(TcpBuilder, SynMatchesCapture) {
    TcpOptions o;
    o.has_mss = true;
    o.mss = 1460;
    o.sack_permitted = true;
    o.has_timestamps = true;
    o.ts_val = 0xaabbccdd;
    o.has_wscale = true;
    o.wscale = 7;
    uint8_t opts[40];
    TcpSegmentSpec s;
    s.src_mac = MAC_C;
    s.dst_mac = MAC_A;
    s.src_ip_be = IP_C;
    s.dst_ip_be = IP_A;
    s.src_port_be = rte_cpu_to_be_16(40000);
    s.dst_port_be = rte_cpu_to_be_16(80);
    s.seq = 0x01020304;
    s.flags = TCP_SYN;
    s.window = 64240;
    s.options = opts;
    s.options_len = uint8_t(write_tcp_options(o, opts, sizeof opts));
    s.ip_id = 0x1c46;
    uint8_t out[128];
    ASSERT_EQ(build_tcp_segment(out, sizeof out, s), sizeof(SYN_FRAME));
    EXPECT_EQ(0, std::memcmp(out, SYN_FRAME, sizeof(SYN_FRAME)));
}

TEST(TcpBuilder, OffloadModesAndBadSpecs) {
    uint8_t opts[40];
    auto s = data_spec(opts);
    std::vector<uint8_t> out(200);
    ASSERT_EQ(build_tcp_segment(out.data(), out.size(), s, CsumMode::OFFLOAD_L4), sizeof(DATA_FRAME));
    out.resize(sizeof(DATA_FRAME));
    EXPECT_EQ(rd16(out, IP_CSUM), rd16(vec(DATA_FRAME), IP_CSUM));
    EXPECT_EQ(rd16(out, TCP_CSUM), rte_ipv4_phdr_cksum(iph(out), 0));
    out.assign(200, 0);
    ASSERT_EQ(build_tcp_segment(out.data(), out.size(), s, CsumMode::OFFLOAD_ALL), sizeof(DATA_FRAME));
    EXPECT_EQ(rd16(out, IP_CSUM), 0);
    EXPECT_EQ(build_tcp_segment(out.data(), sizeof(DATA_FRAME) - 1, s), 0u);  // no room
    auto bad = s;
    bad.options_len = 3;
    EXPECT_EQ(build_tcp_segment(out.data(), out.size(), bad), 0u);
    bad = s;
    bad.options_len = 44;
    EXPECT_EQ(build_tcp_segment(out.data(), out.size(), bad), 0u);
    bad = s;
    bad.payload = nullptr;
    EXPECT_EQ(build_tcp_segment(out.data(), out.size(), bad), 0u);
}

// An mbuf laid out by hand over a local buffer: the mbuf helpers need no EAL or mempool.
struct FakeMbuf {
    alignas(64) rte_mbuf m{};
    alignas(64) uint8_t buf[2048 + RTE_PKTMBUF_HEADROOM]{};
    FakeMbuf() {
        m.buf_addr = buf;
        m.buf_len = sizeof buf;
        m.data_off = RTE_PKTMBUF_HEADROOM;
        m.nb_segs = 1;
        m.next = nullptr;
        m.pkt_len = 0;
        m.data_len = 0;
    }
};

TEST(TcpBuilder, IntoMbufWithAndWithoutOffloads) {
    uint8_t opts[40];
    auto s = data_spec(opts);
    {
        FakeMbuf fm;
        ASSERT_EQ(build_tcp_segment_mbuf(&fm.m, s, TxOffloads{}), 0);
        ASSERT_EQ(rte_pktmbuf_pkt_len(&fm.m), sizeof(DATA_FRAME));
        EXPECT_EQ(0, std::memcmp(mbuf_data(&fm.m), DATA_FRAME, sizeof(DATA_FRAME)));
        EXPECT_EQ(fm.m.l2_len, 14u);
        EXPECT_EQ(fm.m.l3_len, 20u);
        EXPECT_EQ(fm.m.l4_len, 32u);
        EXPECT_EQ(fm.m.ol_flags & RTE_MBUF_F_TX_L4_MASK, 0u);
        EXPECT_EQ(fm.m.ol_flags & RTE_MBUF_F_TX_IP_CKSUM, 0u);
        // Not empty any more: refused, unchanged.
        EXPECT_EQ(build_tcp_segment_mbuf(&fm.m, s, TxOffloads{}), -1);
        EXPECT_EQ(rte_pktmbuf_pkt_len(&fm.m), sizeof(DATA_FRAME));
    }
    {
        FakeMbuf fm;
        TxOffloads off;
        off.ipv4_cksum = true;
        off.tcp_cksum = true;
        ASSERT_EQ(build_tcp_segment_mbuf(&fm.m, s, off), 0);
        EXPECT_EQ(fm.m.ol_flags & RTE_MBUF_F_TX_L4_MASK, RTE_MBUF_F_TX_TCP_CKSUM);
        EXPECT_NE(fm.m.ol_flags & RTE_MBUF_F_TX_IP_CKSUM, 0u);
        EXPECT_NE(fm.m.ol_flags & RTE_MBUF_F_TX_IPV4, 0u);
    }
    {
        FakeMbuf fm;
        fm.m.buf_len = uint16_t(RTE_PKTMBUF_HEADROOM + 60);  // too small for the 83-byte frame
        EXPECT_EQ(build_tcp_segment_mbuf(&fm.m, s, TxOffloads{}), -1);
        EXPECT_EQ(rte_pktmbuf_pkt_len(&fm.m), 0u);
    }
}

// ---------------------------------------------------------------------------------------------
// Neighbour table

TEST(Neighbor, LearnLookupRefresh) {
    NeighborTable t(100);
    EXPECT_EQ(t.capacity(), 128u);
    MacAddr m;
    EXPECT_FALSE(t.lookup(IP_C, m));
    EXPECT_TRUE(t.learn(IP_C, MAC_C, 1, 10));
    EXPECT_EQ(t.size(), 1u);
    uint16_t port = 9;
    ASSERT_TRUE(t.lookup(IP_C, m, &port));
    EXPECT_TRUE(mac_equal(m, MAC_C));
    EXPECT_EQ(port, 1);
    EXPECT_TRUE(t.learn(IP_C, MAC_A, 0, 20));  // MAC moved: refreshed, not duplicated
    EXPECT_EQ(t.size(), 1u);
    ASSERT_TRUE(t.lookup(IP_C, m));
    EXPECT_TRUE(mac_equal(m, MAC_A));
    EXPECT_FALSE(t.learn(0, MAC_A, 0, 20));
    EXPECT_EQ(t.find(0), nullptr);
    EXPECT_TRUE(t.remove(IP_C));
    EXPECT_FALSE(t.remove(IP_C));
    EXPECT_EQ(t.size(), 0u);
}

TEST(Neighbor, FullSetEvictsOldest) {
    NeighborTable t(8);  // one set of 8 ways
    ASSERT_EQ(t.capacity(), 8u);
    for (uint32_t i = 1; i <= 8; ++i) t.learn(ipv4_be(10, 0, 0, uint8_t(i)), MAC_C, 0, 100 + i);
    EXPECT_EQ(t.size(), 8u);
    t.learn(ipv4_be(10, 0, 0, 1), MAC_C, 0, 500);  // refresh .1, so .2 is now the oldest
    t.learn(ipv4_be(10, 0, 0, 9), MAC_A, 0, 501);
    EXPECT_EQ(t.size(), 8u);
    EXPECT_EQ(t.evictions(), 1u);
    MacAddr m;
    EXPECT_FALSE(t.lookup(ipv4_be(10, 0, 0, 2), m));
    EXPECT_TRUE(t.lookup(ipv4_be(10, 0, 0, 1), m));
    EXPECT_TRUE(t.lookup(ipv4_be(10, 0, 0, 9), m));
}

TEST(Neighbor, AgeRemovesOnlyStale) {
    NeighborTable t(1024);
    for (uint32_t i = 0; i < 500; ++i) t.learn(ipv4_be(10, 20, uint8_t(i >> 8), uint8_t(i)) | 0, MAC_C, 0, i);
    // 10.20.0.0 is a valid neighbour key (only 0.0.0.0 is reserved).
    EXPECT_EQ(t.size() + t.evictions(), 500u);
    uint32_t before = t.size();
    uint32_t removed = t.age(/*now=*/600, /*max_age=*/300);  // entries updated before t=300 go
    EXPECT_EQ(t.size(), before - removed);
    MacAddr m;
    for (uint32_t i = 0; i < 500; ++i) {
        bool present = t.lookup(ipv4_be(10, 20, uint8_t(i >> 8), uint8_t(i)), m);
        if (i < 300) {
            EXPECT_FALSE(present) << i;
        }
    }
    EXPECT_TRUE(t.lookup(ipv4_be(10, 20, 1, 0xf3), m) || t.evictions() > 0);  // i = 499
    EXPECT_GE(removed, 250u);
}

TEST(DropReasons, NamesAreDistinct) {
    std::set<std::string> names;
    for (size_t i = 0; i < DROP_REASON_COUNT; ++i) {
        const char* n = drop_reason_name(DropReason(i));
        ASSERT_NE(n, nullptr);
        names.insert(n);
    }
    EXPECT_EQ(names.size(), DROP_REASON_COUNT);
    EXPECT_STREQ(drop_reason_name(DropReason::IPV4_CHECKSUM), "ip_checksum");
    EXPECT_STREQ(drop_reason_name(DropReason::COUNT_), "unknown");
}
