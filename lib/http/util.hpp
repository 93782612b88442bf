// Small byte helpers shared by the http parsers and builders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/request.hpp"

namespace tlb::http {

inline uint8_t ascii_lower(uint8_t c) noexcept { return (c >= 'A' && c <= 'Z') ? c | 0x20 : c; }

// Case-insensitive compare of n bytes at p with an all-lowercase name.
inline bool iequals(const uint8_t* p, size_t n, std::string_view lower) noexcept {
    if (n != lower.size()) return false;
    for (size_t i = 0; i < n; ++i)
        if (ascii_lower(p[i]) != static_cast<uint8_t>(lower[i])) return false;
    return true;
}

inline Span trim(const uint8_t* b, Span s) noexcept {
    while (s.len > 0 && (b[s.off] == ' ' || b[s.off] == '\t')) { ++s.off; --s.len; }
    while (s.len > 0 && (b[s.off + s.len - 1] == ' ' || b[s.off + s.len - 1] == '\t')) --s.len;
    return s;
}

}  // namespace tlb::http
