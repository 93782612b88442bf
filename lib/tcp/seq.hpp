// TCP sequence-number arithmetic (RFC 9293 §3.4): 32-bit modular compare, valid while the two
// numbers are less than 2^31 apart, which TCP's windows guarantee.
#pragma once

#include <cstdint>

namespace tlb::tcp {

constexpr int32_t seq_diff(uint32_t a, uint32_t b) { return int32_t(a - b); }
constexpr bool seq_lt(uint32_t a, uint32_t b) { return seq_diff(a, b) < 0; }
constexpr bool seq_leq(uint32_t a, uint32_t b) { return seq_diff(a, b) <= 0; }
constexpr bool seq_gt(uint32_t a, uint32_t b) { return seq_diff(a, b) > 0; }
constexpr bool seq_geq(uint32_t a, uint32_t b) { return seq_diff(a, b) >= 0; }
constexpr uint32_t seq_max(uint32_t a, uint32_t b) { return seq_gt(a, b) ? a : b; }
constexpr uint32_t seq_min(uint32_t a, uint32_t b) { return seq_lt(a, b) ? a : b; }
// lo <= x < hi (a half-open window that may wrap).
constexpr bool seq_in(uint32_t x, uint32_t lo, uint32_t hi) { return seq_geq(x, lo) && seq_lt(x, hi); }
// Does [s, s+len) overlap the window [lo, lo+wnd)? RFC 9293's acceptability test, including the
// zero-length and zero-window cases.
constexpr bool seq_acceptable(uint32_t s, uint32_t len, uint32_t lo, uint32_t wnd) {
    if (len == 0) return wnd == 0 ? s == lo : seq_in(s, lo, lo + wnd);
    if (wnd == 0) return false;
    return seq_in(s, lo, lo + wnd) || seq_in(s + len - 1, lo, lo + wnd);
}

}  // namespace tlb::tcp
