// tokenlb lib/net implementation. See net.hpp for the conventions (byte order, purity).
#include "net/net.hpp"

#include <algorithm>

namespace tlb::net {

namespace {

inline uint16_t load16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

constexpr const char* DROP_NAMES[DROP_REASON_COUNT] = {
    "none",
    "too_short",
    "not_for_us_l2",
    "ethertype",
    "arp_malformed",
    "arp_not_for_us",
    "arp_reply",
    "arp_op",
    "ip_truncated",
    "ip_version",
    "ip_hdr_len",
    "ip_checksum",
    "ip_fragment",
    "ip_not_for_us",
    "ip_src_invalid",
    "ip_proto",
    "icmp_malformed",
    "icmp_type",
    "tcp_malformed",
    "tcp_checksum",
    "tcp_options",
    "tcp_no_flow",
    "tx_full",
    "no_mbuf",
};

}  // namespace

const char* drop_reason_name(DropReason r) {
    size_t i = size_t(r);
    return i < DROP_REASON_COUNT ? DROP_NAMES[i] : "unknown";
}

// ---------------------------------------------------------------------------------------------
// Checksums

uint32_t csum_partial(const void* data, size_t len, uint32_t sum) {
    // 64-bit accumulator: no carry handling inside the loop, folded once at the end. Frames are
    // < 64 KiB so this cannot overflow.
    const uint8_t* p = static_cast<const uint8_t*>(data);
    uint64_t acc = sum;
    while (len >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        acc += (w & 0xffffffffu) + (w >> 32);
        p += 8;
        len -= 8;
    }
    while (len >= 2) {
        acc += load16(p);
        p += 2;
        len -= 2;
    }
    if (len) {
        uint8_t last[2] = {*p, 0};
        acc += load16(last);
    }
    // Fold 64 -> 32 bits keeping end-around carries.
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    return uint32_t(acc);
}

uint16_t ipv4_header_checksum(const rte_ipv4_hdr* ip) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(ip);
    size_t hl = size_t(ip->version_ihl & 0x0f) * 4;
    if (hl < IPV4_MIN_HDR_LEN) hl = IPV4_MIN_HDR_LEN;
    // Skip the checksum field (bytes 10..11) instead of requiring it zeroed.
    uint32_t s = csum_partial(p, 10);
    s = csum_partial(p + 12, hl - 12, s);
    return csum_fold(s);
}

bool ipv4_header_checksum_ok(const rte_ipv4_hdr* ip) {
    size_t hl = size_t(ip->version_ihl & 0x0f) * 4;
    if (hl < IPV4_MIN_HDR_LEN) return false;
    return csum_fold(csum_partial(ip, hl)) == 0;
}

uint32_t ipv4_pseudo_sum(uint32_t src_be, uint32_t dst_be, uint8_t proto, uint16_t l4_len) {
    uint32_t s = (src_be & 0xffff) + (src_be >> 16) + (dst_be & 0xffff) + (dst_be >> 16);
    s += rte_cpu_to_be_16(uint16_t(proto));
    s += rte_cpu_to_be_16(l4_len);
    return s;
}

uint16_t ipv4_pseudo_header_seed(uint32_t src_be, uint32_t dst_be, uint8_t proto,
                                 uint16_t l4_len) {
    return uint16_t(~csum_fold(ipv4_pseudo_sum(src_be, dst_be, proto, l4_len)));
}

uint16_t ipv4_l4_checksum(uint32_t src_be, uint32_t dst_be, uint8_t proto, const void* l4,
                          size_t l4_len) {
    const uint8_t* p = static_cast<const uint8_t*>(l4);
    uint32_t s = ipv4_pseudo_sum(src_be, dst_be, proto, uint16_t(l4_len));
    size_t off = proto == IPPROTO_TCP ? 16 : proto == IPPROTO_UDP ? 6 : SIZE_MAX;
    if (off != SIZE_MAX && l4_len >= off + 2) {
        s = csum_partial(p, off, s);
        s = csum_partial(p + off + 2, l4_len - off - 2, s);
    } else {
        s = csum_partial(p, l4_len, s);
    }
    return csum_fold(s);
}

bool ipv4_l4_checksum_ok(uint32_t src_be, uint32_t dst_be, uint8_t proto, const void* l4,
                         size_t l4_len) {
    uint32_t s = ipv4_pseudo_sum(src_be, dst_be, proto, uint16_t(l4_len));
    return csum_fold(csum_partial(l4, l4_len, s)) == 0;
}

// ---------------------------------------------------------------------------------------------
// Parsing

uint16_t parse_ether(const uint8_t* frame, size_t len) {
    if (len < ETH_HDR_LEN) return 0;
    return rte_be_to_cpu_16(load16(frame + 12));
}

DropReason parse_arp(const uint8_t* frame, size_t len, ArpInfo& out) {
    if (len < ARP_FRAME_LEN) return DropReason::ARP_MALFORMED;
    const auto* a = reinterpret_cast<const rte_arp_hdr*>(frame + ETH_HDR_LEN);
    if (a->arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) ||
        a->arp_protocol != RTE_BE16(RTE_ETHER_TYPE_IPV4) || a->arp_hlen != 6 || a->arp_plen != 4)
        return DropReason::ARP_MALFORMED;
    out.op = rte_be_to_cpu_16(a->arp_opcode);
    out.sha = a->arp_data.arp_sha;
    out.tha = a->arp_data.arp_tha;
    std::memcpy(&out.spa_be, &a->arp_data.arp_sip, 4);
    std::memcpy(&out.tpa_be, &a->arp_data.arp_tip, 4);
    if (out.op != RTE_ARP_OP_REQUEST && out.op != RTE_ARP_OP_REPLY) return DropReason::ARP_OP;
    return DropReason::NONE;
}

DropReason parse_ipv4(const uint8_t* frame, size_t len, Ipv4Info& out, bool csum_verified) {
    if (len < ETH_HDR_LEN + IPV4_MIN_HDR_LEN) return DropReason::IPV4_TRUNCATED;
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(frame + ETH_HDR_LEN);
    if ((ip->version_ihl >> 4) != 4) return DropReason::IPV4_VERSION;
    size_t hl = size_t(ip->version_ihl & 0x0f) * 4;
    if (hl < IPV4_MIN_HDR_LEN) return DropReason::IPV4_HDR_LEN;
    size_t avail = len - ETH_HDR_LEN;
    size_t total = rte_be_to_cpu_16(ip->total_length);
    // Frames may carry Ethernet padding beyond total_length, never fewer bytes.
    if (hl > avail || total < hl || total > avail) return DropReason::IPV4_TRUNCATED;
    if (!csum_verified && !ipv4_header_checksum_ok(ip)) return DropReason::IPV4_CHECKSUM;
    uint16_t frag = rte_be_to_cpu_16(ip->fragment_offset);
    if (frag & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) return DropReason::IPV4_FRAGMENT;
    uint32_t src_h = rte_be_to_cpu_32(ip->src_addr);
    if (src_h == 0 || src_h == 0xffffffffu || (src_h >> 28) == 0xe)
        return DropReason::IPV4_SRC_INVALID;
    out.l3_off = uint16_t(ETH_HDR_LEN);
    out.l3_len = uint16_t(hl);
    out.total_len = uint16_t(total);
    out.proto = ip->next_proto_id;
    out.ttl = ip->time_to_live;
    out.src_be = ip->src_addr;
    out.dst_be = ip->dst_addr;
    out.l4_off = uint16_t(ETH_HDR_LEN + hl);
    out.l4_len = uint16_t(total - hl);
    return DropReason::NONE;
}

DropReason parse_tcp(const uint8_t* frame, const Ipv4Info& ip, TcpInfo& out, bool csum_verified) {
    if (ip.l4_len < TCP_MIN_HDR_LEN) return DropReason::TCP_MALFORMED;
    const uint8_t* l4 = frame + ip.l4_off;
    const auto* t = reinterpret_cast<const rte_tcp_hdr*>(l4);
    size_t hl = size_t(t->data_off >> 4) * 4;
    if (hl < TCP_MIN_HDR_LEN || hl > ip.l4_len) return DropReason::TCP_MALFORMED;
    if (!csum_verified && !ipv4_l4_checksum_ok(ip.src_be, ip.dst_be, IPPROTO_TCP, l4, ip.l4_len))
        return DropReason::TCP_CHECKSUM;
    out.src_port_be = t->src_port;
    out.dst_port_be = t->dst_port;
    out.seq = rte_be_to_cpu_32(t->sent_seq);
    out.ack = rte_be_to_cpu_32(t->recv_ack);
    out.window = rte_be_to_cpu_16(t->rx_win);
    out.flags = t->tcp_flags;
    out.hdr_len = uint8_t(hl);
    out.opt_off = uint16_t(ip.l4_off + TCP_MIN_HDR_LEN);
    out.opt_len = uint8_t(hl - TCP_MIN_HDR_LEN);
    out.payload_off = uint16_t(ip.l4_off + hl);
    out.payload_len = uint16_t(ip.l4_len - hl);
    return DropReason::NONE;
}

// ---------------------------------------------------------------------------------------------
// TCP options

namespace {
constexpr uint8_t OPT_EOL = 0, OPT_NOP = 1, OPT_MSS = 2, OPT_WS = 3, OPT_SACK_PERM = 4,
                  OPT_SACK = 5, OPT_TS = 8;

inline uint32_t load_be32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return rte_be_to_cpu_32(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
    v = rte_cpu_to_be_32(v);
    std::memcpy(p, &v, 4);
}
}  // namespace

OptError parse_tcp_options(const uint8_t* opts, size_t len, TcpOptions& out) {
    out = TcpOptions{};
    if (len > TCP_MAX_OPT_LEN) return OptError::TOO_LONG;
    size_t i = 0;
    while (i < len) {
        uint8_t kind = opts[i];
        if (kind == OPT_EOL) break;
        if (kind == OPT_NOP) {
            ++i;
            continue;
        }
        if (i + 1 >= len) return OptError::TRUNCATED;
        size_t olen = opts[i + 1];
        if (olen < 2) return OptError::BAD_LENGTH;
        if (i + olen > len) return OptError::OVERRUN;
        const uint8_t* v = opts + i + 2;
        switch (kind) {
        case OPT_MSS:
            if (olen != 4) return OptError::BAD_LENGTH;
            if (out.has_mss) return OptError::DUPLICATE;
            out.has_mss = true;
            out.mss = uint16_t((v[0] << 8) | v[1]);
            break;
        case OPT_WS:
            if (olen != 3) return OptError::BAD_LENGTH;
            if (out.has_wscale) return OptError::DUPLICATE;
            out.has_wscale = true;
            out.wscale = v[0];
            break;
        case OPT_SACK_PERM:
            if (olen != 2) return OptError::BAD_LENGTH;
            if (out.sack_permitted) return OptError::DUPLICATE;
            out.sack_permitted = true;
            break;
        case OPT_SACK: {
            if (olen < 10 || (olen - 2) % 8 != 0) return OptError::BAD_LENGTH;
            if (out.sack_count) return OptError::DUPLICATE;
            size_t n = (olen - 2) / 8;  // <= 4 because len <= 40
            for (size_t b = 0; b < n; ++b) {
                out.sack[b].left = load_be32(v + b * 8);
                out.sack[b].right = load_be32(v + b * 8 + 4);
            }
            out.sack_count = uint8_t(n);
            break;
        }
        case OPT_TS:
            if (olen != 10) return OptError::BAD_LENGTH;
            if (out.has_timestamps) return OptError::DUPLICATE;
            out.has_timestamps = true;
            out.ts_val = load_be32(v);
            out.ts_ecr = load_be32(v + 4);
            break;
        default:
            break;  // unknown option with a sane length: skip (RFC 9293 §3.1)
        }
        i += olen;
    }
    return OptError::OK;
}

int write_tcp_options(const TcpOptions& o, uint8_t* out, size_t cap) {
    size_t need = 0;
    if (o.has_mss) need += 4;
    if (o.sack_permitted || o.has_timestamps) need += o.has_timestamps ? 12 : 4;
    if (o.has_wscale) need += 4;
    size_t nsack = std::min<size_t>(o.sack_count, TcpOptions::MAX_SACK);
    if (o.sack_count > TcpOptions::MAX_SACK) return -1;
    if (nsack) need += 4 + 8 * nsack;
    if (need > TCP_MAX_OPT_LEN || need > cap) return -1;
    uint8_t* p = out;
    if (o.has_mss) {
        *p++ = OPT_MSS;
        *p++ = 4;
        *p++ = uint8_t(o.mss >> 8);
        *p++ = uint8_t(o.mss);
    }
    if (o.has_timestamps) {
        if (o.sack_permitted) {
            *p++ = OPT_SACK_PERM;
            *p++ = 2;
        } else {
            *p++ = OPT_NOP;
            *p++ = OPT_NOP;
        }
        *p++ = OPT_TS;
        *p++ = 10;
        store_be32(p, o.ts_val);
        store_be32(p + 4, o.ts_ecr);
        p += 8;
    } else if (o.sack_permitted) {
        *p++ = OPT_NOP;
        *p++ = OPT_NOP;
        *p++ = OPT_SACK_PERM;
        *p++ = 2;
    }
    if (o.has_wscale) {
        *p++ = OPT_NOP;
        *p++ = OPT_WS;
        *p++ = 3;
        *p++ = o.wscale;
    }
    if (nsack) {
        *p++ = OPT_NOP;
        *p++ = OPT_NOP;
        *p++ = OPT_SACK;
        *p++ = uint8_t(2 + 8 * nsack);
        for (size_t b = 0; b < nsack; ++b) {
            store_be32(p, o.sack[b].left);
            store_be32(p + 4, o.sack[b].right);
            p += 8;
        }
    }
    return int(p - out);
}

// ---------------------------------------------------------------------------------------------
// Neighbour table

NeighborTable::NeighborTable(uint32_t capacity) {
    uint32_t sets = 1;
    while (sets * WAYS < capacity && sets < (1u << 24)) sets <<= 1;
    _sets = sets;
    _slots = std::make_unique<Entry[]>(size_t(_sets) * WAYS);
}

uint32_t NeighborTable::set_of(uint32_t ip_be) const {
    // Fibonacci hashing: the low octet varies most inside a subnet, the multiply spreads it.
    return uint32_t((uint64_t(ip_be) * 0x9E3779B97F4A7C15ull) >> 40) & (_sets - 1);
}

bool NeighborTable::learn(uint32_t ip_be, const MacAddr& mac, uint16_t port, uint64_t now) {
    if (ip_be == 0) return false;
    Entry* set = &_slots[size_t(set_of(ip_be)) * WAYS];
    Entry* empty = nullptr;
    Entry* oldest = &set[0];
    for (uint32_t w = 0; w < WAYS; ++w) {
        Entry& e = set[w];
        if (e.ip_be == ip_be) {
            e.mac = mac;
            e.port = port;
            e.updated = now;
            return true;
        }
        if (e.ip_be == 0) {
            if (!empty) empty = &e;
        } else if (e.updated < oldest->updated || oldest->ip_be == 0) {
            oldest = &e;
        }
    }
    Entry* dst = empty;
    if (!dst) {
        dst = oldest;
        ++_evictions;
    } else {
        ++_size;
    }
    dst->ip_be = ip_be;
    dst->mac = mac;
    dst->port = port;
    dst->updated = now;
    return true;
}

const NeighborTable::Entry* NeighborTable::find(uint32_t ip_be) const {
    if (ip_be == 0) return nullptr;
    const Entry* set = &_slots[size_t(set_of(ip_be)) * WAYS];
    for (uint32_t w = 0; w < WAYS; ++w)
        if (set[w].ip_be == ip_be) return &set[w];
    return nullptr;
}

bool NeighborTable::lookup(uint32_t ip_be, MacAddr& mac, uint16_t* port) const {
    const Entry* e = find(ip_be);
    if (!e) return false;
    mac = e->mac;
    if (port) *port = e->port;
    return true;
}

bool NeighborTable::remove(uint32_t ip_be) {
    Entry* e = const_cast<Entry*>(find(ip_be));
    if (!e) return false;
    *e = Entry{};
    --_size;
    return true;
}

uint32_t NeighborTable::age(uint64_t now, uint64_t max_age) {
    uint32_t removed = 0;
    size_t n = size_t(_sets) * WAYS;
    for (size_t i = 0; i < n; ++i) {
        Entry& e = _slots[i];
        if (e.ip_be != 0 && now > e.updated && now - e.updated > max_age) {
            e = Entry{};
            ++removed;
        }
    }
    _size -= removed;
    return removed;
}

// ---------------------------------------------------------------------------------------------
// Builders

size_t write_arp(uint8_t* buf, size_t cap, uint16_t op, const MacAddr& eth_dst, const MacAddr& sha,
                 uint32_t spa_be, const MacAddr& tha, uint32_t tpa_be) {
    if (cap < ARP_FRAME_LEN) return 0;
    auto* eth = reinterpret_cast<rte_ether_hdr*>(buf);
    eth->dst_addr = eth_dst;
    eth->src_addr = sha;
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_ARP);
    auto* a = reinterpret_cast<rte_arp_hdr*>(buf + ETH_HDR_LEN);
    a->arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER);
    a->arp_protocol = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    a->arp_hlen = 6;
    a->arp_plen = 4;
    a->arp_opcode = rte_cpu_to_be_16(op);
    a->arp_data.arp_sha = sha;
    std::memcpy(&a->arp_data.arp_sip, &spa_be, 4);
    a->arp_data.arp_tha = tha;
    std::memcpy(&a->arp_data.arp_tip, &tpa_be, 4);
    return ARP_FRAME_LEN;
}

bool arp_reply_in_place(uint8_t* frame, size_t len, const MacAddr& our_mac, uint32_t our_ip_be) {
    ArpInfo req;
    if (parse_arp(frame, len, req) != DropReason::NONE || req.op != RTE_ARP_OP_REQUEST)
        return false;
    write_arp(frame, len, RTE_ARP_OP_REPLY, req.sha, our_mac, our_ip_be, req.sha, req.spa_be);
    return true;
}

size_t icmp_echo_reply_in_place(uint8_t* frame, size_t len, const Ipv4Info& ip,
                                const MacAddr& our_mac) {
    if (ip.l4_len < ICMP_HDR_LEN || size_t(ip.l4_off) + ip.l4_len > len) return 0;
    uint8_t* l4 = frame + ip.l4_off;
    auto* icmp = reinterpret_cast<rte_icmp_hdr*>(l4);
    if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0) return 0;
    if (csum_fold(csum_partial(l4, ip.l4_len)) != 0) return 0;

    uint16_t old_word = load16(l4);
    icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
    icmp->icmp_cksum = csum_update16(icmp->icmp_cksum, old_word, load16(l4));

    auto* iph = reinterpret_cast<rte_ipv4_hdr*>(frame + ip.l3_off);
    // Swapping addresses leaves the header sum unchanged; the TTL change is folded in with a full
    // recompute, which also covers headers with options.
    uint32_t src = iph->src_addr;
    iph->src_addr = iph->dst_addr;
    iph->dst_addr = src;
    iph->time_to_live = DEFAULT_TTL;
    iph->hdr_checksum = ipv4_header_checksum(iph);

    auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
    eth->dst_addr = eth->src_addr;
    eth->src_addr = our_mac;
    return size_t(ip.l3_off) + ip.total_len;
}

size_t build_tcp_segment(uint8_t* buf, size_t cap, const TcpSegmentSpec& s, CsumMode mode) {
    if (s.options_len > TCP_MAX_OPT_LEN || s.options_len % 4 != 0) return 0;
    if (s.options_len && !s.options) return 0;
    if (s.payload_len && !s.payload) return 0;
    size_t frame_len = tcp_segment_len(s);
    if (frame_len > cap || frame_len - ETH_HDR_LEN > 0xffff) return 0;

    auto* eth = reinterpret_cast<rte_ether_hdr*>(buf);
    eth->dst_addr = s.dst_mac;
    eth->src_addr = s.src_mac;
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);

    uint16_t tcp_len = uint16_t(TCP_MIN_HDR_LEN + s.options_len + s.payload_len);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(buf + ETH_HDR_LEN);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = 0;
    ip->total_length = rte_cpu_to_be_16(uint16_t(IPV4_MIN_HDR_LEN + tcp_len));
    ip->packet_id = rte_cpu_to_be_16(s.ip_id);
    ip->fragment_offset = s.dont_fragment ? RTE_BE16(RTE_IPV4_HDR_DF_FLAG) : 0;
    ip->time_to_live = s.ttl;
    ip->next_proto_id = IPPROTO_TCP;
    ip->hdr_checksum = 0;
    ip->src_addr = s.src_ip_be;
    ip->dst_addr = s.dst_ip_be;

    uint8_t* l4 = buf + ETH_HDR_LEN + IPV4_MIN_HDR_LEN;
    auto* t = reinterpret_cast<rte_tcp_hdr*>(l4);
    t->src_port = s.src_port_be;
    t->dst_port = s.dst_port_be;
    t->sent_seq = rte_cpu_to_be_32(s.seq);
    t->recv_ack = rte_cpu_to_be_32(s.ack);
    t->data_off = uint8_t(((TCP_MIN_HDR_LEN + s.options_len) / 4) << 4);
    t->tcp_flags = s.flags;
    t->rx_win = rte_cpu_to_be_16(s.window);
    t->cksum = 0;
    t->tcp_urp = 0;
    if (s.options_len) std::memcpy(l4 + TCP_MIN_HDR_LEN, s.options, s.options_len);
    if (s.payload_len)
        std::memcpy(l4 + TCP_MIN_HDR_LEN + s.options_len, s.payload, s.payload_len);

    switch (mode) {
    case CsumMode::SOFTWARE:
        ip->hdr_checksum = ipv4_header_checksum(ip);
        t->cksum = ipv4_l4_checksum(s.src_ip_be, s.dst_ip_be, IPPROTO_TCP, l4, tcp_len);
        break;
    case CsumMode::OFFLOAD_L4:
        ip->hdr_checksum = ipv4_header_checksum(ip);
        t->cksum = ipv4_pseudo_header_seed(s.src_ip_be, s.dst_ip_be, IPPROTO_TCP, tcp_len);
        break;
    case CsumMode::OFFLOAD_ALL:
        t->cksum = ipv4_pseudo_header_seed(s.src_ip_be, s.dst_ip_be, IPPROTO_TCP, tcp_len);
        break;
    }
    return frame_len;
}

int build_tcp_segment_mbuf(rte_mbuf* m, const TcpSegmentSpec& s, const TxOffloads& off) {
    if (m->pkt_len != 0 || m->data_len != 0) return -1;
    size_t len = tcp_segment_len(s);
    if (len > rte_pktmbuf_tailroom(m)) return -1;
    CsumMode mode = csum_mode_for(off);
    size_t n = build_tcp_segment(mbuf_data(m), rte_pktmbuf_tailroom(m), s, mode);
    if (n == 0) return -1;
    mbuf_set_len(m, uint16_t(n));
    m->l2_len = ETH_HDR_LEN;
    m->l3_len = IPV4_MIN_HDR_LEN;
    m->l4_len = uint16_t(TCP_MIN_HDR_LEN + s.options_len);
    uint64_t fl = RTE_MBUF_F_TX_IPV4;
    if (mode == CsumMode::OFFLOAD_ALL) fl |= RTE_MBUF_F_TX_IP_CKSUM;
    if (mode != CsumMode::SOFTWARE) fl |= RTE_MBUF_F_TX_TCP_CKSUM;
    m->ol_flags = (m->ol_flags & ~(RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM |
                                   RTE_MBUF_F_TX_L4_MASK)) |
                  fl;
    return 0;
}

}  // namespace tlb::net
