#include "tcp/conn.hpp"

#include <cstring>

namespace tlb::tcp {

const char* state_name(TcpState s) {
    switch (s) {
    case TcpState::CLOSED: return "CLOSED";
    case TcpState::SYN_SENT: return "SYN_SENT";
    case TcpState::ESTABLISHED: return "ESTABLISHED";
    case TcpState::FIN_WAIT_1: return "FIN_WAIT_1";
    case TcpState::FIN_WAIT_2: return "FIN_WAIT_2";
    case TcpState::CLOSING: return "CLOSING";
    case TcpState::TIME_WAIT: return "TIME_WAIT";
    case TcpState::CLOSE_WAIT: return "CLOSE_WAIT";
    case TcpState::LAST_ACK: return "LAST_ACK";
    }
    return "?";
}

namespace {
inline uint16_t syn_window(const TcpConfig& cfg) {
    return cfg.rcv_wnd_max > 0xffff ? 0xffff : uint16_t(cfg.rcv_wnd_max);
}
}  // namespace

void open_from_cookie(TcpCb& cb, const FlowKey& key, const net::TcpInfo& th,
                      const CookieOptions& co, const TcpConfig& cfg) {
    cb.key = key;
    cb.state = TcpState::ESTABLISHED;
    cb.iss = th.ack - 1;
    if (co.wscale >= 0) {
        cb.rcv_wscale = uint8_t(co.wscale);
        cb.snd_wscale = cfg.our_wscale;
    } else {
        cb.rcv_wscale = cb.snd_wscale = 0;
    }
    cb.rcv_wnd_max = cfg.rcv_wnd_max;
    cb.rx.reset(th.seq, cfg.ooo_limit);
    cb.rcv_adv = th.seq + syn_window(cfg);
    uint16_t mss = co.mss < cfg.client_mss_cap ? co.mss : cfg.client_mss_cap;
    cb.tx.reset(cb.iss, mss, uint32_t(th.window) << cb.rcv_wscale, cfg.sender);
}

void open_active(TcpCb& cb, const FlowKey& key, uint32_t iss, const TcpConfig& cfg) {
    cb.key = key;
    cb.state = TcpState::SYN_SENT;
    cb.iss = iss;
    cb.rcv_wscale = cb.snd_wscale = 0;
    cb.rcv_wnd_max = cfg.rcv_wnd_max;
    cb.rx.reset(0, cfg.ooo_limit);
    cb.rcv_adv = 0;
    cb.tx.reset(iss, cfg.backend_mss, 0, cfg.sender);
}

int input_syn_sent(TcpCb& cb, const net::TcpInfo& th, const net::TcpOptions& opts,
                   const TcpConfig& cfg, Counters& c) {
    if (th.flags & net::TCP_ACK) {
        if (th.ack != cb.iss + 1) return (th.flags & net::TCP_RST) ? 0 : -2;
        if (th.flags & net::TCP_RST) {
            cb.state = TcpState::CLOSED;
            c.backend_connect_fail++;
            return -1;
        }
    } else {
        return 0;  // RST without ACK, or simultaneous open: ignore
    }
    if (!(th.flags & net::TCP_SYN)) return 0;
    cb.rx.reset(th.seq + 1, cfg.ooo_limit);
    if (opts.has_wscale) {
        cb.rcv_wscale = opts.wscale > 14 ? 14 : opts.wscale;
        cb.snd_wscale = cfg.our_wscale;
    } else {
        cb.rcv_wscale = cb.snd_wscale = 0;
    }
    uint16_t mss = opts.has_mss && opts.mss >= 64 ? opts.mss : 536;
    cb.tx.reset(cb.iss, mss, th.window /* never scaled in a SYN */, cfg.sender);
    cb.rcv_adv = cb.rx.rcv_nxt() + syn_window(cfg);
    cb.state = TcpState::ESTABLISHED;
    c.backend_connected++;
    return 1;
}

void close(TcpCb& cb) {
    switch (cb.state) {
    case TcpState::ESTABLISHED:
        cb.tx.push_fin();
        cb.state = TcpState::FIN_WAIT_1;
        break;
    case TcpState::CLOSE_WAIT:
        cb.tx.push_fin();
        cb.state = TcpState::LAST_ACK;
        break;
    default: break;
    }
}

void fill_spec(TcpCb& cb, uint8_t flags, uint32_t buffered, net::TcpSegmentSpec& s) {
    s.src_ip_be = cb.key.local_ip_be;
    s.dst_ip_be = cb.key.remote_ip_be;
    s.src_port_be = cb.key.local_port_be;
    s.dst_port_be = cb.key.remote_port_be;
    s.seq = cb.tx.nxt();
    s.ack = cb.rx.rcv_nxt();
    s.flags = flags;
    s.window = (flags & net::TCP_RST) ? 0 : cb.advertise(buffered);
    s.options = nullptr;
    s.options_len = 0;
    s.payload = nullptr;
    s.payload_len = 0;
}

void fill_rst_reply(const net::Ipv4Info& ip, const net::TcpInfo& th, net::TcpSegmentSpec& s) {
    s.src_ip_be = ip.dst_be;
    s.dst_ip_be = ip.src_be;
    s.src_port_be = th.dst_port_be;
    s.dst_port_be = th.src_port_be;
    if (th.flags & net::TCP_ACK) {
        s.seq = th.ack;
        s.ack = 0;
        s.flags = net::TCP_RST;
    } else {
        s.seq = 0;
        s.ack = th.seq + th.payload_len + ((th.flags & net::TCP_SYN) ? 1 : 0) +
                ((th.flags & net::TCP_FIN) ? 1 : 0);
        s.flags = net::TCP_RST | net::TCP_ACK;
    }
    s.window = 0;
    s.options = nullptr;
    s.options_len = 0;
    s.payload = nullptr;
    s.payload_len = 0;
}

void fill_syn_ack(const net::Ipv4Info& ip, const net::TcpInfo& th, uint32_t cookie,
                  const CookieOptions& co, const TcpConfig& cfg, uint8_t* opt_buf,
                  net::TcpSegmentSpec& s) {
    s.src_ip_be = ip.dst_be;
    s.dst_ip_be = ip.src_be;
    s.src_port_be = th.dst_port_be;
    s.dst_port_be = th.src_port_be;
    s.seq = cookie;
    s.ack = th.seq + 1;
    s.flags = net::TCP_SYN | net::TCP_ACK;
    s.window = syn_window(cfg);
    net::TcpOptions o;
    o.has_mss = true;
    o.mss = cfg.client_mss_cap;
    if (co.wscale >= 0) {
        o.has_wscale = true;
        o.wscale = cfg.our_wscale;
    }
    int n = net::write_tcp_options(o, opt_buf, 40);
    s.options = opt_buf;
    s.options_len = uint8_t(n > 0 ? n : 0);
    s.payload = nullptr;
    s.payload_len = 0;
}

void fill_syn(const TcpCb& cb, const TcpConfig& cfg, uint8_t* opt_buf, net::TcpSegmentSpec& s) {
    s.src_ip_be = cb.key.local_ip_be;
    s.dst_ip_be = cb.key.remote_ip_be;
    s.src_port_be = cb.key.local_port_be;
    s.dst_port_be = cb.key.remote_port_be;
    s.seq = cb.iss;
    s.ack = 0;
    s.flags = net::TCP_SYN;
    s.window = syn_window(cfg);
    net::TcpOptions o;
    o.has_mss = true;
    o.mss = cfg.backend_mss;
    o.has_wscale = true;
    o.wscale = cfg.our_wscale;
    int n = net::write_tcp_options(o, opt_buf, 40);
    s.options = opt_buf;
    s.options_len = uint8_t(n > 0 ? n : 0);
    s.payload = nullptr;
    s.payload_len = 0;
}

int build_data_segment(rte_mbuf* hdr, TcpCb& cb, const SendState::Segment& seg,
                       const MbufQueue& q, uint32_t base_seq, uint32_t buffered,
                       rte_mempool* clone_pool, const net::MacAddr& src_mac,
                       const net::MacAddr& dst_mac) {
    net::TcpSegmentSpec s;
    fill_spec(cb, uint8_t(net::TCP_ACK | (seg.len ? net::TCP_PSH : 0) | (seg.fin ? net::TCP_FIN : 0)),
              buffered, s);
    s.src_mac = src_mac;
    s.dst_mac = dst_mac;
    s.seq = seg.seq;
    uint32_t off = seg.seq - base_seq;
    net::TxOffloads none;
    if (seg.len == 0) return net::build_tcp_segment_mbuf(hdr, s, none);
    if (!clone_pool) {
        uint8_t buf[9216];
        if (seg.len > sizeof(buf) || q.copy_out(off, seg.len, buf) != seg.len) return -1;
        s.payload = buf;
        s.payload_len = uint16_t(seg.len);
        return net::build_tcp_segment_mbuf(hdr, s, none);
    }
    rte_mbuf* data = q.clone_range(off, seg.len, clone_pool);
    if (!data) return -1;
    if (net::build_tcp_segment_mbuf(hdr, s, none) != 0) {
        rte_pktmbuf_free(data);
        return -1;
    }
    uint32_t hlen = hdr->data_len;
    hdr->next = data;
    hdr->nb_segs = uint16_t(1 + data->nb_segs);
    hdr->pkt_len = hlen + data->pkt_len;
    auto* iph = rte_pktmbuf_mtod_offset(hdr, rte_ipv4_hdr*, net::ETH_HDR_LEN);
    iph->total_length = rte_cpu_to_be_16(uint16_t(hdr->pkt_len - net::ETH_HDR_LEN));
    iph->hdr_checksum = 0;
    iph->hdr_checksum = net::ipv4_header_checksum(iph);
    uint16_t l4_off = uint16_t(net::ETH_HDR_LEN + (iph->version_ihl & 0xf) * 4);
    auto* tcph = rte_pktmbuf_mtod_offset(hdr, rte_tcp_hdr*, l4_off);
    tcph->cksum = 0;
    // Sum the chain; a segment that starts at an odd offset contributes its sum byte-swapped.
    uint32_t sum = net::ipv4_pseudo_sum(iph->src_addr, iph->dst_addr, IPPROTO_TCP,
                                        uint16_t(hdr->pkt_len - l4_off));
    uint32_t pos = 0;
    for (rte_mbuf* m = hdr; m; m = m->next) {
        uint32_t skip = m == hdr ? l4_off : 0;
        uint32_t len = m->data_len - skip;
        uint32_t part = net::csum_partial(rte_pktmbuf_mtod_offset(m, const uint8_t*, skip), len, 0);
        part = (part & 0xffff) + (part >> 16);
        part = (part & 0xffff) + (part >> 16);
        if (pos & 1) part = ((part & 0xff) << 8) | (part >> 8);
        sum += part;
        pos += len;
    }
    tcph->cksum = net::csum_fold(sum);
    hdr->ol_flags &= ~(RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM);
    return 0;
}

}  // namespace tlb::tcp
