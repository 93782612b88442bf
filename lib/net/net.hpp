// tokenlb lib/net: Ethernet / ARP / IPv4 / ICMP / TCP header helpers, Internet checksums, TCP
// options, a neighbour (ARP) table and packet builders.
//
// Decisions (see docs/net.md for the longer version):
// - Wire structs are DPDK's (rte_ether_hdr, rte_arp_hdr, rte_ipv4_hdr, rte_icmp_hdr, rte_tcp_hdr);
//   they are packed, so access through them is alignment-safe. We only add validation and builders,
//   as DPDK's l3fwd / DPVS / Seastar do on top of the same structs.
// - Byte order: IPv4 addresses and L4 ports are NETWORK byte order everywhere in this API
//   (`uint32_t ..._be`, `uint16_t ..._be`), exactly as they sit in packets and as flow keys store
//   them (DPVS does the same), so the hot path never converts. Sequence/ack numbers, windows, MSS,
//   lengths are HOST byte order. Checksums are the 16-bit value as stored in the header
//   (memory order); the one's-complement sum is byte-order independent (RFC 1071 §2(B)), so the
//   checksum helpers load 16-bit words natively, as rte_raw_cksum does.
// - Everything here that takes a byte buffer is a pure function (no EAL, no mbuf), so unit tests
//   and fuzzers run without DPDK initialised. mbuf helpers live at the end of this header and
//   only touch the mbuf fields (no EAL calls either).
// - Worker-path rules: no exceptions, no allocation (NeighborTable allocates once in its
//   constructor), hostile input returns an error / DropReason, never asserts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

namespace tlb::net {

using MacAddr = rte_ether_addr;

constexpr size_t ETH_HDR_LEN = sizeof(rte_ether_hdr);   // 14, no VLAN
constexpr size_t ARP_LEN = sizeof(rte_arp_hdr);          // 28
constexpr size_t IPV4_MIN_HDR_LEN = sizeof(rte_ipv4_hdr);  // 20
constexpr size_t IPV4_MAX_HDR_LEN = 60;
constexpr size_t ICMP_HDR_LEN = sizeof(rte_icmp_hdr);    // 8
constexpr size_t TCP_MIN_HDR_LEN = sizeof(rte_tcp_hdr);  // 20
constexpr size_t TCP_MAX_OPT_LEN = 40;
constexpr size_t ARP_FRAME_LEN = ETH_HDR_LEN + ARP_LEN;  // 42
constexpr uint8_t DEFAULT_TTL = 64;

constexpr uint8_t TCP_FIN = RTE_TCP_FIN_FLAG;
constexpr uint8_t TCP_SYN = RTE_TCP_SYN_FLAG;
constexpr uint8_t TCP_RST = RTE_TCP_RST_FLAG;
constexpr uint8_t TCP_PSH = RTE_TCP_PSH_FLAG;
constexpr uint8_t TCP_ACK = RTE_TCP_ACK_FLAG;
constexpr uint8_t TCP_URG = RTE_TCP_URG_FLAG;
constexpr uint8_t TCP_ECE = RTE_TCP_ECE_FLAG;
constexpr uint8_t TCP_CWR = RTE_TCP_CWR_FLAG;

// Network-order IPv4 from dotted parts, usable in constexpr contexts and tests.
constexpr uint32_t ipv4_be(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return RTE_BE32((uint32_t(a) << 24) | (uint32_t(b) << 16) | (uint32_t(c) << 8) | uint32_t(d));
}
inline bool mac_equal(const MacAddr& a, const MacAddr& b) { return std::memcmp(&a, &b, 6) == 0; }
inline bool mac_is_broadcast(const MacAddr& a) {
    static constexpr uint8_t BC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    return std::memcmp(&a, BC, 6) == 0;
}
inline bool mac_is_zero(const MacAddr& a) {
    static constexpr uint8_t Z[6] = {};
    return std::memcmp(&a, Z, 6) == 0;
}
inline constexpr MacAddr MAC_BROADCAST = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
inline constexpr MacAddr MAC_ZERO = {{0, 0, 0, 0, 0, 0}};

// ---------------------------------------------------------------------------------------------
// Drop reasons: every packet the worker does not consume is counted under exactly one of these.
// Kept here (not in the app) so tcp / dataplane extend the same enumeration and telemetry can
// name them all.
enum class DropReason : uint8_t {
    NONE = 0,
    TOO_SHORT,           // frame shorter than the Ethernet header
    NOT_FOR_US_L2,       // unicast to another MAC
    ETHERTYPE,           // not IPv4 / ARP (IPv6, VLAN, LLDP, ...)
    ARP_MALFORMED,       // wrong hw/proto type or lengths, truncated
    ARP_NOT_FOR_US,      // request for an address we do not own (learned, then dropped)
    ARP_REPLY,           // replies are consumed by learning, counted here
    ARP_OP,              // unsupported ARP opcode
    IPV4_TRUNCATED,        // fewer bytes than the IPv4 header / total_length claims
    IPV4_VERSION,          // not version 4
    IPV4_HDR_LEN,          // IHL < 5
    IPV4_CHECKSUM,         // bad header checksum
    IPV4_FRAGMENT,         // fragments are not reassembled (LLM front doors never need it)
    IPV4_NOT_FOR_US,       // destination is not one of the appliance's addresses
    IPV4_SRC_INVALID,      // broadcast/multicast/zero source
    IPV4_PROTO,            // not ICMP / TCP
    ICMP_MALFORMED,      // truncated or bad checksum
    ICMP_TYPE,           // ICMP other than echo request
    TCP_MALFORMED,       // data offset out of range, truncated
    TCP_CHECKSUM,        // bad TCP checksum
    TCP_OPTIONS,         // malformed TCP options
    TCP_NO_FLOW,         // TCP with nothing to deliver it to (first slice: all TCP)
    TX_FULL,             // reply could not be transmitted (tx ring full)
    NO_MBUF,             // could not allocate an mbuf for a reply
    COUNT_
};
constexpr size_t DROP_REASON_COUNT = size_t(DropReason::COUNT_);
// Stable snake_case names ("ip_checksum", ...) for counters and metrics.
const char* drop_reason_name(DropReason r);

// ---------------------------------------------------------------------------------------------
// Checksums (RFC 1071, RFC 1624).

// 32-bit accumulation of 16-bit words in memory order; an odd trailing byte is padded with zero.
// Chain calls by passing the previous sum. Not folded, not complemented.
uint32_t csum_partial(const void* data, size_t len, uint32_t sum = 0);
// Fold a 32-bit accumulator to 16 bits and complement: the value to store in a header.
inline uint16_t csum_fold(uint32_t sum) {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum & 0xffff);
}
// IPv4 header checksum over ihl*4 bytes with the checksum field taken as zero (the header is not
// modified). `ip` must have at least ihl*4 readable bytes.
uint16_t ipv4_header_checksum(const rte_ipv4_hdr* ip);
// True when the stored header checksum is right (the sum over the header folds to 0).
bool ipv4_header_checksum_ok(const rte_ipv4_hdr* ip);
// Unfolded sum of the IPv4 pseudo header (src, dst, zero, proto, l4_len).
uint32_t ipv4_pseudo_sum(uint32_t src_be, uint32_t dst_be, uint8_t proto, uint16_t l4_len);
// What a NIC with TCP/UDP tx checksum offload expects in the L4 checksum field: the folded,
// NOT complemented pseudo-header sum (same as rte_ipv4_phdr_cksum without TSO).
uint16_t ipv4_pseudo_header_seed(uint32_t src_be, uint32_t dst_be, uint8_t proto, uint16_t l4_len);
// Full TCP/UDP checksum: pseudo header + l4 bytes, with the l4 checksum field taken as zero.
// For UDP the caller maps a result of 0 to 0xffff.
uint16_t ipv4_l4_checksum(uint32_t src_be, uint32_t dst_be, uint8_t proto, const void* l4,
                          size_t l4_len);
// Verify a received TCP/UDP checksum (the sum over pseudo header + segment folds to 0).
bool ipv4_l4_checksum_ok(uint32_t src_be, uint32_t dst_be, uint8_t proto, const void* l4,
                         size_t l4_len);

// Incremental update, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). `csum` is the stored checksum,
// old/new are the field values as stored in the packet (memory order). Correct for any field at
// an even offset within the summed region; for a 32-bit field (address, seq) use csum_update32.
inline uint16_t csum_update16(uint16_t csum, uint16_t old_val, uint16_t new_val) {
    uint32_t s = uint32_t(uint16_t(~csum)) + uint16_t(~old_val) + new_val;
    return csum_fold(s);
}
inline uint16_t csum_update32(uint16_t csum, uint32_t old_val, uint32_t new_val) {
    uint32_t s = uint32_t(uint16_t(~csum)) + uint16_t(~old_val & 0xffff) + uint16_t(~old_val >> 16) +
                 (new_val & 0xffff) + (new_val >> 16);
    return csum_fold(s);
}
// Pseudo-header seeds (offload mode) are not complemented: update them with these.
inline uint16_t seed_update16(uint16_t seed, uint16_t old_val, uint16_t new_val) {
    return uint16_t(~csum_update16(uint16_t(~seed), old_val, new_val));
}
inline uint16_t seed_update32(uint16_t seed, uint32_t old_val, uint32_t new_val) {
    return uint16_t(~csum_update32(uint16_t(~seed), old_val, new_val));
}

// ---------------------------------------------------------------------------------------------
// Parsing. All offsets are from the start of the frame (Ethernet header).

struct ArpInfo {
    uint16_t op = 0;        // host order (1 request, 2 reply)
    MacAddr sha{};          // sender hardware address
    uint32_t spa_be = 0;    // sender protocol address
    MacAddr tha{};
    uint32_t tpa_be = 0;
};

struct Ipv4Info {
    uint16_t l3_off = 0;     // = ETH_HDR_LEN
    uint16_t l3_len = 0;     // ihl*4
    uint16_t total_len = 0;  // IPv4 total_length (host order); frame may carry padding beyond it
    uint8_t proto = 0;
    uint8_t ttl = 0;
    uint32_t src_be = 0;
    uint32_t dst_be = 0;
    uint16_t l4_off = 0;     // l3_off + l3_len
    uint16_t l4_len = 0;     // total_len - l3_len
};

struct TcpInfo {
    uint16_t src_port_be = 0;
    uint16_t dst_port_be = 0;
    uint32_t seq = 0;        // host order
    uint32_t ack = 0;        // host order
    uint16_t window = 0;     // host order, unscaled (as on the wire)
    uint8_t flags = 0;
    uint8_t hdr_len = 0;     // data offset * 4
    uint16_t opt_off = 0;    // frame offset of the options (= tcp offset + 20)
    uint8_t opt_len = 0;
    uint16_t payload_off = 0;
    uint16_t payload_len = 0;
};

// Ethernet: returns the ether type (host order) or 0 when shorter than a header.
uint16_t parse_ether(const uint8_t* frame, size_t len);
// ARP (Ethernet/IPv4 only). NONE or ARP_MALFORMED / ARP_OP.
DropReason parse_arp(const uint8_t* frame, size_t len, ArpInfo& out);
// IPv4 after an Ethernet header. Checks version, IHL, lengths, fragments (options are skipped,
// not honoured); verifies the header checksum unless `csum_verified` (the NIC reported
// RTE_MBUF_F_RX_IP_CKSUM_GOOD).
DropReason parse_ipv4(const uint8_t* frame, size_t len, Ipv4Info& out, bool csum_verified = false);
// TCP header after parse_ipv4. Checks data offset; verifies the checksum unless `csum_verified`.
// Options are not parsed here (parse_tcp_options on frame + opt_off when needed).
DropReason parse_tcp(const uint8_t* frame, const Ipv4Info& ip, TcpInfo& out,
                     bool csum_verified = false);

// ---------------------------------------------------------------------------------------------
// TCP options (RFC 9293, 7323, 2018).

struct SackBlock {
    uint32_t left = 0;   // host order
    uint32_t right = 0;
};

struct TcpOptions {
    static constexpr int MAX_SACK = 4;
    bool has_mss = false;
    bool has_wscale = false;
    bool sack_permitted = false;
    bool has_timestamps = false;
    uint16_t mss = 0;
    uint8_t wscale = 0;   // as received; RFC 7323 says use 14 when >14 (the caller decides)
    uint32_t ts_val = 0;
    uint32_t ts_ecr = 0;
    uint8_t sack_count = 0;
    SackBlock sack[MAX_SACK];
};

enum class OptError : int {
    OK = 0,
    TRUNCATED = -1,    // kind byte present but no length byte
    BAD_LENGTH = -2,   // length < 2 or a known option with the wrong length
    OVERRUN = -3,      // length runs past the end of the option space
    TOO_LONG = -4,     // option space > 40 bytes (parse) or does not fit (write)
    DUPLICATE = -5,    // the same known option twice
};

// Parse `len` bytes of TCP options. Returns OptError::OK (0) or a negative OptError; on error
// `out` holds whatever was parsed before the error and must not be used. Unknown options with a
// valid length are skipped; EOL ends parsing.
OptError parse_tcp_options(const uint8_t* opts, size_t len, TcpOptions& out);

// Write the options that are set in `o` in Linux's layout (SYN: MSS, SACK-permitted+TS, NOP+WS;
// otherwise NOP NOP TS, NOP NOP SACK), padded with NOPs to a multiple of 4. Returns the number of
// bytes written (0..40) or -1 when they do not fit in `cap` or in 40 bytes (at most 3 SACK
// blocks with timestamps, 4 without).
int write_tcp_options(const TcpOptions& o, uint8_t* out, size_t cap);

// ---------------------------------------------------------------------------------------------
// Neighbour (ARP) table: set-associative (8 ways per set), fixed size, allocated once by the
// constructor; learn/lookup/age never allocate, lock or call the OS. One table per worker (each
// worker answers and learns ARP on its own queues), so it is single-threaded. `now` is any
// monotonic clock the caller uses consistently (TSC cycles, ms).
class NeighborTable {
public:
    static constexpr uint32_t WAYS = 8;
    struct Entry {
        uint32_t ip_be = 0;      // 0 = empty slot (0.0.0.0 is never a neighbour)
        MacAddr mac{};
        uint16_t port = 0;
        uint64_t updated = 0;
    };
    // `capacity` is rounded up to a power of two and at least WAYS.
    explicit NeighborTable(uint32_t capacity = 1024);

    // Insert or refresh. When the set is full the least recently updated entry is replaced
    // (counted in evictions()). Returns false only for ip 0 (never stored).
    bool learn(uint32_t ip_be, const MacAddr& mac, uint16_t port, uint64_t now);
    // Copy the MAC out; false when unknown.
    bool lookup(uint32_t ip_be, MacAddr& mac, uint16_t* port = nullptr) const;
    const Entry* find(uint32_t ip_be) const;
    bool remove(uint32_t ip_be);
    // Forget entries not updated within `max_age` of `now`; returns how many were removed.
    uint32_t age(uint64_t now, uint64_t max_age);

    uint32_t size() const { return _size; }
    uint32_t capacity() const { return _sets * WAYS; }
    uint64_t evictions() const { return _evictions; }

private:
    uint32_t set_of(uint32_t ip_be) const;
    std::unique_ptr<Entry[]> _slots;
    uint32_t _sets = 0;
    uint32_t _size = 0;
    uint64_t _evictions = 0;
};

// ---------------------------------------------------------------------------------------------
// Builders on byte buffers. They return the frame length written, or 0 / negative when `cap` is
// too small or the input is not what they expect.

// Ethernet + ARP. For a request pass dst_mac = MAC_BROADCAST and tha = MAC_ZERO.
size_t write_arp(uint8_t* buf, size_t cap, uint16_t op, const MacAddr& eth_dst, const MacAddr& sha,
                 uint32_t spa_be, const MacAddr& tha, uint32_t tpa_be);
inline size_t write_arp_request(uint8_t* buf, size_t cap, const MacAddr& our_mac,
                                uint32_t our_ip_be, uint32_t target_ip_be) {
    return write_arp(buf, cap, RTE_ARP_OP_REQUEST, MAC_BROADCAST, our_mac, our_ip_be, MAC_ZERO,
                     target_ip_be);
}
// Reply to a parsed request: "our_ip is at our_mac", unicast to the requester.
inline size_t write_arp_reply(uint8_t* buf, size_t cap, const ArpInfo& req, const MacAddr& our_mac,
                              uint32_t our_ip_be) {
    return write_arp(buf, cap, RTE_ARP_OP_REPLY, req.sha, our_mac, our_ip_be, req.sha, req.spa_be);
}
// Turn an ARP request frame into the reply in place (same length). false when `frame` is not a
// well-formed request.
bool arp_reply_in_place(uint8_t* frame, size_t len, const MacAddr& our_mac, uint32_t our_ip_be);

// Turn a parsed ICMP echo request into the echo reply in place: MACs and addresses swapped,
// type 0, TTL reset, both checksums updated incrementally. Verifies the ICMP checksum first.
// Returns the reply's frame length (IPv4 total length + Ethernet: Ethernet padding is trimmed),
// or 0 when the request is malformed (the caller counts ICMP_MALFORMED / ICMP_TYPE).
size_t icmp_echo_reply_in_place(uint8_t* frame, size_t len, const Ipv4Info& ip,
                                const MacAddr& our_mac);

// How checksums are produced by the TCP builders.
enum class CsumMode : uint8_t {
    SOFTWARE,     // IP and TCP checksums computed here
    OFFLOAD_L4,   // IP checksum here, TCP field holds the pseudo-header seed (NIC finishes it)
    OFFLOAD_ALL,  // IP checksum 0 and TCP seed: NIC does both
};

struct TcpSegmentSpec {
    MacAddr src_mac{};
    MacAddr dst_mac{};
    uint32_t src_ip_be = 0;
    uint32_t dst_ip_be = 0;
    uint16_t src_port_be = 0;
    uint16_t dst_port_be = 0;
    uint32_t seq = 0;              // host order
    uint32_t ack = 0;              // host order
    uint8_t flags = 0;             // TCP_* bits
    uint16_t window = 0;           // host order, already scaled down for the wire
    const uint8_t* options = nullptr;  // raw option bytes (write_tcp_options); length % 4 == 0
    uint8_t options_len = 0;           // <= 40
    const uint8_t* payload = nullptr;
    uint16_t payload_len = 0;
    uint16_t ip_id = 0;            // host order
    uint8_t ttl = DEFAULT_TTL;
    bool dont_fragment = true;
};

// Size of the frame build_tcp_segment writes for `s`.
inline size_t tcp_segment_len(const TcpSegmentSpec& s) {
    return ETH_HDR_LEN + IPV4_MIN_HDR_LEN + TCP_MIN_HDR_LEN + s.options_len + s.payload_len;
}
// Ethernet + IPv4 (no options) + TCP (+options, +payload). Returns the frame length, or 0 when
// `cap` is too small or options_len is not a multiple of 4 / > 40.
size_t build_tcp_segment(uint8_t* buf, size_t cap, const TcpSegmentSpec& s,
                         CsumMode mode = CsumMode::SOFTWARE);

// ---------------------------------------------------------------------------------------------
// mbuf helpers. They only touch mbuf fields (no EAL calls), so they work on any mbuf — from a
// mempool or, in tests, laid out by hand over a local buffer.

// What the port can finish for us on transmit (filled by drivers/ from the device's tx offload
// capabilities, used to pick a CsumMode and the ol_flags).
struct TxOffloads {
    bool ipv4_cksum = false;
    bool tcp_cksum = false;
    bool udp_cksum = false;
};
inline CsumMode csum_mode_for(const TxOffloads& o) {
    if (o.ipv4_cksum && o.tcp_cksum) return CsumMode::OFFLOAD_ALL;
    if (o.tcp_cksum) return CsumMode::OFFLOAD_L4;
    return CsumMode::SOFTWARE;
}

// Data pointer/length of a single-segment mbuf (the first segment for chains).
inline uint8_t* mbuf_data(rte_mbuf* m) { return rte_pktmbuf_mtod(m, uint8_t*); }
inline uint16_t mbuf_len(const rte_mbuf* m) { return rte_pktmbuf_data_len(m); }

// Build a TCP segment into an empty mbuf (appending; must fit in its first segment's tailroom),
// set l2/l3/l4 lengths and the tx checksum offload flags matching `off`. Returns 0 or -1 (no room,
// bad spec); on -1 the mbuf is unchanged.
int build_tcp_segment_mbuf(rte_mbuf* m, const TcpSegmentSpec& s, const TxOffloads& off);

// Set the mbuf's length to `len` (for in-place replies that shrink a frame); single segment only.
inline void mbuf_set_len(rte_mbuf* m, uint16_t len) {
    m->data_len = len;
    m->pkt_len = len;
}

}  // namespace tlb::net
