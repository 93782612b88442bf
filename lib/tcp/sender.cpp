#include "tcp/sender.hpp"

namespace tlb::tcp {

void SendState::reset(uint32_t iss, uint16_t mss, uint32_t peer_wnd, const SenderConfig& cfg) {
    _cfg = cfg;
    _mss = mss ? mss : 536;
    _peer_wnd = peer_wnd;
    _base = _una = _nxt = _end = _max_sent = iss + 1;
    _cwnd = cfg.initial_cwnd_segments * uint32_t(_mss);
    _ssthresh = 0xffffffffu;
    _srtt_us = _rttvar_us = 0;
    _rto_us = cfg.rto_initial_us;
    _rtt_running = false;
    _retries = 0;
    _dupacks = 0;
    _fin_queued = _fin_sent = _fin_acked = false;
    _probe = _fast_rtx = false;
}

void SendState::resync(uint32_t seq) {
    _base = _una = _nxt = _end = _max_sent = seq;
    _rtt_running = false;
    _retries = 0;
    _dupacks = 0;
    _probe = _fast_rtx = false;
}

bool SendState::next(Segment* out) {
    if (_fast_rtx) {
        _fast_rtx = false;
        uint32_t data_flight = seq_gt(_max_sent, _end) ? _end - _una : _max_sent - _una;
        uint32_t len = data_flight < _mss ? data_flight : _mss;
        bool fin = _fin_sent && _una + len == _end && !_fin_acked;
        if (len > 0 || fin) {
            *out = Segment{_una, len, fin, true};
            _rtt_running = false;  // Karn
            return true;
        }
    }
    if (seq_lt(_nxt, _end)) {
        uint32_t allowed = _peer_wnd < _cwnd ? _peer_wnd : _cwnd;
        uint32_t edge = _una + allowed;
        uint32_t avail = seq_gt(edge, _nxt) ? edge - _nxt : 0;
        if (avail == 0 && _probe && _nxt == _una) {
            avail = 1;  // zero-window probe
            _probe = false;
        }
        if (avail == 0) return false;
        uint32_t len = _end - _nxt;
        if (len > _mss) len = _mss;
        if (len > avail) len = avail;
        Segment s{_nxt, len, false, seq_lt(_nxt, _max_sent)};
        _nxt += len;
        if (_fin_queued && _nxt == _end) {
            s.fin = true;
            _nxt++;
            _fin_sent = true;
        }
        _max_sent = seq_max(_max_sent, _nxt);
        *out = s;
        return true;
    }
    if (_fin_queued && _nxt == _end && !_fin_acked) {
        *out = Segment{_nxt, 0, true, _fin_sent};
        _nxt++;
        _fin_sent = true;
        _max_sent = seq_max(_max_sent, _nxt);
        return true;
    }
    return false;
}

void SendState::on_sent(const Segment& s, uint64_t now_us) {
    if (s.retransmit) {
        if (_rtt_running && seq_gt(_rtt_seq, s.seq)) _rtt_running = false;  // Karn
        return;
    }
    if (!_rtt_running && (s.len > 0 || s.fin)) {
        _rtt_running = true;
        _rtt_seq = s.seq + s.len + (s.fin ? 1 : 0);
        _rtt_start = now_us;
    }
}

void SendState::rtt_sample(uint32_t r) {
    if (r == 0) r = 1;
    if (_srtt_us == 0) {
        _srtt_us = r;
        _rttvar_us = r / 2;
    } else {
        uint32_t err = _srtt_us > r ? _srtt_us - r : r - _srtt_us;
        _rttvar_us = (3 * _rttvar_us + err) / 4;
        _srtt_us = (7 * _srtt_us + r) / 8;
    }
    uint32_t var4 = 4 * _rttvar_us;
    const uint32_t granularity = 1000;  // the timer wheel's tick
    uint64_t rto = uint64_t(_srtt_us) + (var4 > granularity ? var4 : granularity);
    if (rto < _cfg.rto_min_us) rto = _cfg.rto_min_us;
    if (rto > _cfg.rto_max_us) rto = _cfg.rto_max_us;
    _rto_us = uint32_t(rto);
}

SendState::AckResult SendState::on_ack(uint32_t ack, uint32_t wnd, uint64_t now_us) {
    AckResult r;
    if (seq_gt(ack, _max_sent)) {
        r.invalid = true;
        return r;
    }
    if (seq_lt(ack, _una)) {
        r.old = true;
        return r;
    }
    if (ack == _una) {
        bool dup = _max_sent != _una && wnd == _peer_wnd;
        if (wnd > _peer_wnd) {
            r.window_opened = true;
            if (wnd > 0) _probe = false;
        }
        _peer_wnd = wnd;
        if (dup) {
            r.duplicate = true;
            if (++_dupacks == 3) {
                r.fast_retransmit = true;
                _fast_rtx = true;
                uint32_t flight = _max_sent - _una;
                _ssthresh = flight / 2 > 2u * _mss ? flight / 2 : 2u * _mss;
                _cwnd = _ssthresh;
            }
        }
        return r;
    }
    uint32_t n = ack - _una;
    if (_fin_sent && ack == _end + 1) {
        r.fin_acked = !_fin_acked;
        _fin_acked = true;
        n--;
    }
    r.acked = n;
    _una = ack;
    if (seq_lt(_nxt, _una)) _nxt = _una;
    if (wnd > _peer_wnd) r.window_opened = true;
    _peer_wnd = wnd;
    _dupacks = 0;
    _retries = 0;
    _probe = false;
    if (_rtt_running && seq_geq(ack, _rtt_seq)) {
        _rtt_running = false;
        rtt_sample(uint32_t(now_us - _rtt_start));
    }
    if (_cwnd < _ssthresh) {
        _cwnd += n < _mss ? n : _mss;  // slow start, RFC 3465 L = 1 SMSS
    } else if (_cwnd > 0) {
        uint32_t inc = uint32_t(uint64_t(_mss) * _mss / _cwnd);
        _cwnd += inc ? inc : 1;
    }
    return r;
}

bool SendState::on_timeout() {
    bool fin_pending = _fin_queued && !_fin_acked;
    if (_una == _max_sent && _nxt == _end && !fin_pending) return true;  // nothing outstanding
    if (++_retries > _cfg.max_retries) return false;
    uint64_t rto = uint64_t(_rto_us) * 2;
    _rto_us = uint32_t(rto > _cfg.rto_max_us ? _cfg.rto_max_us : rto);
    _rtt_running = false;
    _dupacks = 0;
    if (_max_sent == _una && _peer_wnd == 0) {
        _probe = true;  // persist: nothing in flight, zero window, data waiting
        return true;
    }
    uint32_t flight = _max_sent - _una;
    _ssthresh = flight / 2 > 2u * _mss ? flight / 2 : 2u * _mss;
    _cwnd = _mss;
    _nxt = _una;  // go-back-N
    if (_peer_wnd == 0) _probe = true;
    return true;
}

bool SendState::timer_needed() const {
    if (_max_sent != _una) return true;
    bool waiting = seq_lt(_nxt, _end) || (_fin_queued && !_fin_acked);
    return waiting && _peer_wnd == 0;
}

}  // namespace tlb::tcp
