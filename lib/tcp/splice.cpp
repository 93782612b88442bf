#include "tcp/splice.hpp"

#include <cstring>

namespace tlb::tcp {

namespace {

inline uint32_t ld32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline uint16_t ld16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline void st32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void st16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Rewrites fields in memory order, keeping both checksums right incrementally (RFC 1624).
struct Rewriter {
    uint8_t* iph;
    uint8_t* tcph;
    uint16_t ip_csum;
    uint16_t tcp_csum;
    Rewriter(uint8_t* ip, uint8_t* tcp)
        : iph(ip), tcph(tcp), ip_csum(ld16(ip + 10)), tcp_csum(ld16(tcp + 16)) {}
    // An address is in the IP header and in the TCP pseudo header.
    void addr(size_t off, uint32_t nv) {
        uint32_t ov = ld32(iph + off);
        if (ov == nv) return;
        ip_csum = net::csum_update32(ip_csum, ov, nv);
        tcp_csum = net::csum_update32(tcp_csum, ov, nv);
        st32(iph + off, nv);
    }
    void ip16(size_t off, uint16_t nv) {
        uint16_t ov = ld16(iph + off);
        if (ov == nv) return;
        ip_csum = net::csum_update16(ip_csum, ov, nv);
        st16(iph + off, nv);
    }
    void tcp16(size_t off, uint16_t nv) {
        uint16_t ov = ld16(tcph + off);
        if (ov == nv) return;
        tcp_csum = net::csum_update16(tcp_csum, ov, nv);
        st16(tcph + off, nv);
    }
    void tcp32(size_t off, uint32_t nv) {
        uint32_t ov = ld32(tcph + off);
        if (ov == nv) return;
        tcp_csum = net::csum_update32(tcp_csum, ov, nv);
        st32(tcph + off, nv);
    }
    void finish() {
        st16(iph + 10, ip_csum);
        st16(tcph + 16, tcp_csum);
    }
};

// The 16-bit word at TCP offset 12 is (data offset << 12 | flags) in network order.
inline uint16_t flags_word(const uint8_t* tcph, uint8_t new_flags) {
    uint8_t b[2] = {tcph[12], new_flags};
    uint16_t v;
    std::memcpy(&v, b, 2);
    return v;
}
inline uint16_t ttl_word(const uint8_t* iph, uint8_t ttl) {
    uint8_t b[2] = {ttl, iph[9]};
    uint16_t v;
    std::memcpy(&v, b, 2);
    return v;
}

}  // namespace

bool SpliceBinding::set_insert(uint32_t at_b, const uint8_t* bytes, uint32_t len) {
    if (len > MAX_INSERT) return false;
    ins_at_b = at_b;
    ins_len = len;
    std::memcpy(ins, bytes, len);
    return true;
}

bool splice_b2c_in_place(uint8_t* frame, const net::Ipv4Info& ip, const net::TcpInfo& th,
                         SpliceBinding& b, uint32_t ack, uint16_t win) {
    bool fin = (th.flags & net::TCP_FIN) && b.forward_fin;
    if (th.payload_len == 0 && !fin) return false;
    uint8_t flags = fin ? th.flags : uint8_t(th.flags & ~net::TCP_FIN);
    flags &= uint8_t(~net::TCP_RST & ~net::TCP_SYN);
    flags |= net::TCP_ACK;
    uint32_t cseq = b.map_seq(th.seq);
    Rewriter rw(frame + ip.l3_off, frame + ip.l4_off);
    rw.addr(12, b.client.local_ip_be);
    rw.addr(16, b.client.remote_ip_be);
    rw.ip16(8, ttl_word(frame + ip.l3_off, net::DEFAULT_TTL));
    rw.tcp16(0, b.client.local_port_be);
    rw.tcp16(2, b.client.remote_port_be);
    rw.tcp32(4, rte_cpu_to_be_32(cseq));
    rw.tcp32(8, rte_cpu_to_be_32(ack));
    rw.tcp16(12, flags_word(frame + ip.l4_off, flags));
    rw.tcp16(14, rte_cpu_to_be_16(win));
    rw.finish();
    uint32_t end = cseq + th.payload_len + (fin ? 1 : 0);
    if (seq_gt(end, b.sent_max_c)) b.sent_max_c = end;
    return true;
}

int splice_b2c_rebuild(const uint8_t* frame, const net::Ipv4Info& ip, const net::TcpInfo& th,
                       SpliceBinding& b, uint32_t ack, uint16_t win, rte_mempool* mp,
                       rte_mbuf** out, int max_out) {
    (void)ip;
    bool fin = (th.flags & net::TCP_FIN) && b.forward_fin;
    const uint8_t* payload = frame + th.payload_off;
    uint32_t len = th.payload_len;
    bool has_ins = b.ins_len && len && seq_leq(th.seq, b.ins_at_b) && seq_gt(th.seq + len, b.ins_at_b);
    uint32_t split = has_ins ? b.ins_at_b - th.seq : len;  // payload bytes before the insertion
    uint32_t total = len + (has_ins ? b.ins_len : 0);
    uint32_t cseq = has_ins ? th.seq + b.delta : b.map_seq(th.seq);
    uint32_t mss = b.client_mss ? b.client_mss : 536;
    int need = total == 0 ? 1 : int((total + mss - 1) / mss);
    if (need > max_out) return 0;
    // Byte i of the output stream.
    auto src_span = [&](uint32_t i, uint32_t n, uint8_t* dst) {
        while (n) {
            uint32_t k;
            if (i < split) {
                k = split - i < n ? split - i : n;
                std::memcpy(dst, payload + i, k);
            } else if (has_ins && i < split + b.ins_len) {
                uint32_t o = i - split;
                k = b.ins_len - o < n ? b.ins_len - o : n;
                std::memcpy(dst, b.ins + o, k);
            } else {
                uint32_t o = i - (has_ins ? b.ins_len : 0);
                k = n;
                std::memcpy(dst, payload + o, k);
            }
            dst += k;
            i += k;
            n -= k;
        }
    };
    net::TcpSegmentSpec s;
    std::memcpy(&s.dst_mac, frame, 6);
    std::memcpy(&s.src_mac, frame + 6, 6);
    s.src_ip_be = b.client.local_ip_be;
    s.dst_ip_be = b.client.remote_ip_be;
    s.src_port_be = b.client.local_port_be;
    s.dst_port_be = b.client.remote_port_be;
    s.ack = ack;
    s.window = win;
    int n = 0;
    uint32_t done = 0;
    do {
        uint32_t piece = total - done < mss ? total - done : mss;
        rte_mbuf* m = rte_pktmbuf_alloc(mp);
        if (!m) break;
        s.seq = cseq + done;
        bool last = done + piece == total;
        s.flags = uint8_t(net::TCP_ACK | (last ? (th.flags & net::TCP_PSH) : 0) |
                          (last && fin ? net::TCP_FIN : 0));
        size_t flen = net::ETH_HDR_LEN + net::IPV4_MIN_HDR_LEN + net::TCP_MIN_HDR_LEN + piece;
        uint8_t* dst = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(flen)));
        if (!dst) {
            rte_pktmbuf_free(m);
            break;
        }
        uint8_t* pl = dst + flen - piece;
        src_span(done, piece, pl);
        s.payload = pl;  // build_tcp_segment copies payload to the same place: memmove-safe
        s.payload_len = uint16_t(piece);
        // Build into a scratch header area then the payload is already in place.
        uint8_t hdr[net::ETH_HDR_LEN + net::IPV4_MIN_HDR_LEN + net::TCP_MIN_HDR_LEN];
        net::TcpSegmentSpec hs = s;
        hs.payload = nullptr;
        hs.payload_len = 0;
        net::build_tcp_segment(hdr, sizeof(hdr), hs, net::CsumMode::SOFTWARE);
        std::memcpy(dst, hdr, sizeof(hdr));
        // Fix the lengths and checksums for the payload.
        rte_ipv4_hdr* iph = reinterpret_cast<rte_ipv4_hdr*>(dst + net::ETH_HDR_LEN);
        iph->total_length = rte_cpu_to_be_16(uint16_t(net::IPV4_MIN_HDR_LEN + net::TCP_MIN_HDR_LEN + piece));
        iph->hdr_checksum = 0;
        iph->hdr_checksum = net::ipv4_header_checksum(iph);
        rte_tcp_hdr* tcph = reinterpret_cast<rte_tcp_hdr*>(dst + net::ETH_HDR_LEN + net::IPV4_MIN_HDR_LEN);
        tcph->cksum = 0;
        tcph->cksum = net::ipv4_l4_checksum(s.src_ip_be, s.dst_ip_be, IPPROTO_TCP, tcph,
                                            net::TCP_MIN_HDR_LEN + piece);
        m->l2_len = net::ETH_HDR_LEN;
        m->l3_len = net::IPV4_MIN_HDR_LEN;
        m->l4_len = net::TCP_MIN_HDR_LEN;
        out[n++] = m;
        done += piece;
    } while (done < total);
    if (done < total || n == 0) {
        for (int i = 0; i < n; i++) rte_pktmbuf_free(out[i]);
        return 0;
    }
    uint32_t end = cseq + total + (fin ? 1 : 0);
    if (seq_gt(end, b.sent_max_c)) b.sent_max_c = end;
    return n;
}

bool splice_c2b_ack_in_place(uint8_t* frame, const net::Ipv4Info& ip, const net::TcpInfo& th,
                             SpliceBinding& b, uint32_t seq_b) {
    if (th.payload_len != 0) return false;
    uint32_t ack_b;
    uint16_t win_b;
    splice_c2b_values(b, th.ack, th.window, &ack_b, &win_b);
    uint8_t flags = uint8_t((th.flags & ~(net::TCP_FIN | net::TCP_PSH | net::TCP_SYN | net::TCP_RST)) |
                            net::TCP_ACK);
    Rewriter rw(frame + ip.l3_off, frame + ip.l4_off);
    rw.addr(12, b.backend.local_ip_be);
    rw.addr(16, b.backend.remote_ip_be);
    rw.ip16(8, ttl_word(frame + ip.l3_off, net::DEFAULT_TTL));
    rw.tcp16(0, b.backend.local_port_be);
    rw.tcp16(2, b.backend.remote_port_be);
    rw.tcp32(4, rte_cpu_to_be_32(seq_b));
    rw.tcp32(8, rte_cpu_to_be_32(ack_b));
    rw.tcp16(12, flags_word(frame + ip.l4_off, flags));
    rw.tcp16(14, rte_cpu_to_be_16(win_b));
    rw.finish();
    return true;
}

}  // namespace tlb::tcp
