#include "tcp/syncookie.hpp"

#include <cstring>

namespace tlb::tcp {

namespace {

inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct SipState {
    uint64_t v0, v1, v2, v3;
    SipState(uint64_t k0, uint64_t k1)
        : v0(k0 ^ 0x736f6d6570736575ULL), v1(k1 ^ 0x646f72616e646f6dULL),
          v2(k0 ^ 0x6c7967656e657261ULL), v3(k1 ^ 0x7465646279746573ULL) {}
    inline void round() {
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
    }
    inline void compress(uint64_t m) {
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }
    inline uint64_t finish(uint64_t b) {
        compress(b);
        v2 ^= 0xff;
        round(); round(); round(); round();
        return v0 ^ v1 ^ v2 ^ v3;
    }
};

inline uint64_t load_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

}  // namespace

uint64_t siphash24_3w(uint64_t k0, uint64_t k1, uint64_t a, uint64_t b, uint64_t c) {
    SipState s(k0, k1);
    s.compress(a);
    s.compress(b);
    s.compress(c);
    return s.finish(uint64_t(24) << 56);
}

uint64_t siphash24(uint64_t k0, uint64_t k1, const void* data, size_t len) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    SipState s(k0, k1);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) s.compress(load_le64(p + i));
    uint64_t b = uint64_t(len) << 56;
    for (size_t j = 0; i + j < len; j++) b |= uint64_t(p[i + j]) << (8 * j);
    return s.finish(b);
}

SynCookies::SynCookies(uint64_t k0, uint64_t k1, uint32_t period_s)
    : _master{k0, k1}, _period_s(period_s ? period_s : 64) {
    derive(0);
    derive(1);
    _epoch = 1;
}

void SynCookies::derive(uint64_t e) {
    uint64_t in[2] = {e, 0x636f6f6b6965ULL};
    _key[e & 1][0] = siphash24(_master[0], _master[1], in, sizeof(in));
    in[1] ^= 1;
    _key[e & 1][1] = siphash24(_master[0], _master[1], in, sizeof(in));
}

void SynCookies::set_time(uint64_t now_s) {
    uint64_t e = now_s / _period_s + 1;  // +1: epoch 0 never exists, so e-1 is always valid
    if (e == _epoch) return;
    if (e != _epoch + 1) derive(e - 1);
    derive(e);
    _epoch = e;
}

void SynCookies::set_master(uint64_t k0, uint64_t k1) {
    _master[0] = k0;
    _master[1] = k1;
    derive(_epoch - 1);
    derive(_epoch);
}

uint8_t SynCookies::mss_index(uint16_t mss) {
    uint8_t i = 0;
    for (uint8_t j = 0; j < 8; j++)
        if (MSS_TABLE[j] <= mss) i = j;
    return i;
}

uint32_t SynCookies::mac24(uint64_t e, uint32_t saddr, uint32_t daddr, uint16_t sport,
                           uint16_t dport, uint32_t isn, uint8_t low) const {
    const uint64_t* k = _key[e & 1];
    uint64_t a = uint64_t(saddr) | (uint64_t(daddr) << 32);
    uint64_t b = uint64_t(sport) | (uint64_t(dport) << 16) | (uint64_t(isn) << 32);
    uint64_t c = e ^ (uint64_t(low) << 56);
    return uint32_t(siphash24_3w(k[0], k[1], a, b, c)) & 0xffffffu;
}

uint32_t SynCookies::make(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
                          uint32_t isn, uint16_t client_mss, int client_wscale,
                          CookieOptions* out) const {
    uint8_t mi = mss_index(client_mss ? client_mss : 536);
    uint8_t ws = client_wscale < 0 ? 15 : uint8_t(client_wscale > 14 ? 14 : client_wscale);
    uint8_t low = uint8_t((mi << 5) | (ws << 1) | (_epoch & 1));
    if (out) {
        out->mss = MSS_TABLE[mi];
        out->wscale = ws == 15 ? NO_WSCALE : int8_t(ws);
    }
    return (mac24(_epoch, saddr, daddr, sport, dport, isn, low) << 8) | low;
}

bool SynCookies::check(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
                       uint32_t isn, uint32_t cookie, CookieOptions* out) const {
    uint8_t low = uint8_t(cookie & 0xff);
    uint64_t e = (low & 1) == (_epoch & 1) ? _epoch : _epoch - 1;
    if (mac24(e, saddr, daddr, sport, dport, isn, low) != (cookie >> 8)) return false;
    uint8_t mi = low >> 5, ws = (low >> 1) & 0xf;
    if (out) {
        out->mss = MSS_TABLE[mi];
        out->wscale = ws == 15 ? NO_WSCALE : int8_t(ws);
    }
    return true;
}

}  // namespace tlb::tcp
