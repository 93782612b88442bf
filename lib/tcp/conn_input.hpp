// Template body of tcp::input() (included by conn.hpp; not a public header on its own).
#pragma once

namespace tlb::tcp {

template <class Deliver, class Drop>
InputResult input(TcpCb& cb, const net::TcpInfo& th, void* h, uint32_t off, uint32_t buffered,
                  uint64_t now_us, Counters& c, bool take_data, Deliver&& deliver, Drop&& drop) {
    InputResult r;
    const bool owns_payload = take_data && th.payload_len > 0;
    auto release = [&] {
        if (owns_payload) drop(h);
    };
    const uint32_t rcv_nxt = cb.rx.rcv_nxt();
    const uint32_t wnd = cb.effective_window(buffered);
    const bool fin = (th.flags & net::TCP_FIN) != 0;

    if (th.flags & net::TCP_RST) {
        // RFC 5961 §3.2 on the client leg. On the backend leg while splicing, our rcv_nxt is only
        // what the client acknowledged so far; the backend network is ours, accept in range.
        bool exact = th.seq == rcv_nxt;
        bool in_range = take_data ? seq_in(th.seq, rcv_nxt, rcv_nxt + (wnd ? wnd : 1))
                                  : seq_in(th.seq, rcv_nxt, rcv_nxt + (1u << 30));
        if (exact || (!take_data && in_range)) {
            c.rst_rcvd++;
            cb.state = TcpState::CLOSED;
            r.rst = true;
        } else if (in_range) {
            c.rst_challenged++;
            r.ack_now = true;
            r.drop = true;
        } else {
            c.rst_out_of_window++;
            r.drop = true;
        }
        release();
        return r;
    }

    if (take_data) {
        uint32_t seg_len = th.payload_len + (fin ? 1 : 0);
        bool ok = seq_acceptable(th.seq, seg_len, rcv_nxt, wnd);
        if (!ok && !(wnd == 0 && th.seq == rcv_nxt)) {
            c.seg_out_of_window++;
            r.ack_now = true;
            r.drop = true;
            release();
            return r;
        }
    }
    if (th.flags & net::TCP_SYN) {
        c.seg_syn_in_window++;  // RFC 5961 §4: challenge ACK
        r.ack_now = true;
        r.drop = true;
        release();
        return r;
    }
    if (!(th.flags & net::TCP_ACK)) {
        r.drop = true;
        release();
        return r;
    }

    SendState::AckResult ar = cb.tx.on_ack(th.ack, uint32_t(th.window) << cb.rcv_wscale, now_us);
    if (ar.invalid) {
        c.seg_ack_unsent++;
        r.ack_now = true;
        r.drop = true;
        release();
        return r;
    }
    if (ar.old) c.seg_old_ack++;
    r.acked = ar.acked;
    r.fast_retransmit = ar.fast_retransmit;
    if (ar.fin_acked) {
        switch (cb.state) {
        case TcpState::FIN_WAIT_1: cb.state = TcpState::FIN_WAIT_2; break;
        case TcpState::CLOSING: cb.state = TcpState::TIME_WAIT; r.closed = true; break;
        case TcpState::LAST_ACK: cb.state = TcpState::CLOSED; r.closed = true; break;
        default: break;
        }
    }

    if (th.payload_len > 0) {
        if (!take_data) {
            r.data = true;
        } else if (cb.state == TcpState::ESTABLISHED || cb.state == TcpState::FIN_WAIT_1 ||
                   cb.state == TcpState::FIN_WAIT_2) {
            Reassembly::Result rr = cb.rx.receive(th.seq, th.payload_len, h, off,
                                                  cb.effective_window(buffered), c, deliver, drop);
            r.delivered = rr.delivered;
            r.ack_now |= rr.ack_now || rr.delivered > 0;
        } else {
            c.rx_data_after_fin++;
            r.ack_now = true;
            release();
        }
    }

    if (fin) {
        uint32_t fin_seq = th.seq + th.payload_len;
        if (!take_data) {
            r.fin = true;
            if (cb.state == TcpState::ESTABLISHED) cb.state = TcpState::CLOSE_WAIT;
        } else if (fin_seq == cb.rx.rcv_nxt() &&
                   (cb.state == TcpState::ESTABLISHED || cb.state == TcpState::FIN_WAIT_1 ||
                    cb.state == TcpState::FIN_WAIT_2)) {
            cb.rx.advance_fin();
            r.fin = true;
            r.ack_now = true;
            switch (cb.state) {
            case TcpState::ESTABLISHED: cb.state = TcpState::CLOSE_WAIT; break;
            case TcpState::FIN_WAIT_1: cb.state = TcpState::CLOSING; break;
            case TcpState::FIN_WAIT_2: cb.state = TcpState::TIME_WAIT; r.closed = true; break;
            default: break;
            }
        } else {
            r.ack_now = true;  // FIN out of order or repeated: re-ACK, the peer retransmits
        }
    }
    return r;
}

}  // namespace tlb::tcp
