// SYN cookies for the VIP: the appliance keeps no state for a connection until the final ACK of
// the handshake carries a valid cookie (RFC 4987 §3.6; Linux net/ipv4/syncookies.c; DPVS
// SYNPROXY).
//
// Cookie layout (our ISN, 32 bits):
//     bits 31..8  MAC: 24 bits of SipHash-2-4(key[epoch & 1], saddr, daddr, sport, dport,
//                 client ISN, epoch, low byte of the cookie)
//     bits  7..5  index into MSS_TABLE (largest entry <= the client's MSS)
//     bits  4..1  the client's window-scale shift 0..14, or 15 = client sent no window scale
//     bit      0  epoch parity
// The MAC covers every other bit, so neither the MSS/wscale nor the epoch can be altered. A blind
// forger needs 2^24 tries per accepted connection on average (Linux's cookies are comparable);
// the rate of bad cookies is counted so an operator can see an attack.
//
// Why SipHash: it is a keyed PRF designed for short inputs (hash-flooding defence), ~30 ns for our
// 24 bytes, and needs no crypto library. A non-keyed or linear hash (CRC, Toeplitz) would let an
// attacker who saw a few cookies compute valid ones.
//
// Secret rotation: time is cut into epochs of `period_s` seconds. key[e & 1] =
// SipHash(master, e), derived on the worker when the epoch advances (no syscalls, no
// coordination between workers: all workers derive the same keys from the same master, so a
// cookie minted by one is valid on any). A cookie minted in epoch e is accepted during e and e+1
// (the current and the previous secret), i.e. for period_s..2*period_s. A leaked epoch key does
// not reveal other epochs' keys (PRF), and the master can be replaced at run time by the control
// plane (set_master) — cookies in flight then fail once, which the client sees as a lost SYN.
//
// Options decision (see docs/tcp.md): the cookie SYN-ACK offers MSS and window scale only. No
// SACK-permitted and no timestamps, on either leg: the response is spliced from backend
// connections that change per request, so the client's timestamps would have to be rewritten
// per binding (PAWS breaks across rebinding) and SACK blocks translated in both directions; with
// neither negotiated, nothing needs translating and no bits of the cookie are spent on them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tlb::tcp {

// SipHash-2-4 (Aumasson & Bernstein), reference behaviour: 64-bit output.
uint64_t siphash24(uint64_t k0, uint64_t k1, const void* data, size_t len);
// The same function for exactly 24 bytes given as three little-endian 64-bit words (the cookie's
// input, without the byte loop).
uint64_t siphash24_3w(uint64_t k0, uint64_t k1, uint64_t a, uint64_t b, uint64_t c);

struct CookieOptions {
    uint16_t mss = 536;       // MSS the client may receive (from MSS_TABLE)
    int8_t wscale = -1;       // client's window-scale shift 0..14, -1 = no scaling on this conn
};

class SynCookies {
public:
    // Values chosen to round down common client MSS well: 536 (minimum), 1200 (QUIC-ish/IPv6
    // tunnels), 1360/1400/1440 (VPNs, PPPoE-ish), 1452 (PPPoE), 1460 (Ethernet), 8960 (jumbo).
    static constexpr uint16_t MSS_TABLE[8] = {536, 1200, 1360, 1400, 1440, 1452, 1460, 8960};
    static constexpr int8_t NO_WSCALE = -1;

    // master key: 128 random bits from the control plane (getrandom at start-up).
    SynCookies(uint64_t master_k0 = 0, uint64_t master_k1 = 0, uint32_t period_s = 64);

    // Advance the epoch from the current time in seconds (monotonic). Cheap when unchanged;
    // derives the new key when the epoch changes. Call from the worker's timer tick.
    void set_time(uint64_t now_s);
    void set_master(uint64_t k0, uint64_t k1);  // re-derives both keys
    uint64_t epoch() const { return _epoch; }

    // The cookie (our ISN) for a SYN from saddr:sport to daddr:dport (network order) with the
    // client's ISN and options (mss 0 = absent → 536; wscale -1 = absent). `out` receives the
    // values the SYN-ACK must announce-consistent state for (the MSS rounded down to the table).
    uint32_t make(uint32_t saddr_be, uint32_t daddr_be, uint16_t sport_be, uint16_t dport_be,
                  uint32_t client_isn, uint16_t client_mss, int client_wscale,
                  CookieOptions* out = nullptr) const;

    // Check the final ACK: client_isn = SEG.SEQ - 1, cookie = SEG.ACK - 1. true and `out` filled
    // when valid in the current or previous epoch.
    bool check(uint32_t saddr_be, uint32_t daddr_be, uint16_t sport_be, uint16_t dport_be,
               uint32_t client_isn, uint32_t cookie, CookieOptions* out) const;

    static uint8_t mss_index(uint16_t mss);  // largest table entry <= mss (0 when mss < 536)

private:
    uint32_t mac24(uint64_t epoch, uint32_t saddr_be, uint32_t daddr_be, uint16_t sport_be,
                   uint16_t dport_be, uint32_t client_isn, uint8_t low) const;
    void derive(uint64_t e);

    uint64_t _master[2];
    uint64_t _key[2][2] = {};  // [epoch & 1][k0,k1]
    uint64_t _epoch = 0;
    uint32_t _period_s;
};

}  // namespace tlb::tcp
