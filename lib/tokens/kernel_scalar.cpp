// Scalar kernel; its definition is the one every SIMD kernel must reproduce bit for bit.
//
//   r[i]  = BYTE_CLASS[p[i]]
//   c1[i] = r[i]  == CONT ? r[i-1]  : r[i]      continuation bytes take their lead's class:
//   c2[i] = c1[i] == CONT ? c1[i-2] : c1[i]     two steps resolve sequences of up to 4 bytes
//   attach[i] = r[i] == SP && attaches_space(r[i+1])
//   start[i]  = (r[i] != CONT && (c2[i] != c2[i-1] || r[i] == CTRL || r[i] == DIGIT) || attach[i])
//               && !attach[i-1]
// Values before the text are 0xFF (no class), after it "no byte" (never attaches).
//
// Equivalent form used by every kernel (scalar, AVX2, AVX-512): c2[i-1] is the class of the first
// non-continuation byte among i-1, i-2, i-3, else r[i-4]; for a non-continuation byte c2[i] = r[i].
// So a kernel maps bytes to class codes (pass 1, a 256-entry table here), then compares each code
// with the first non-continuation code of the four before it (pass 2, eight bytes per step in
// 64-bit words here, no branches on the data). Code layout, shared with the SIMD kernels: bit 7 =
// continuation, bit 6 = takes no attached space (SP, CTRL, DIGIT, CONT, none), bit 0 = 0 only for
// CTRL/DIGIT, which share a code (both always start; neither equals another class), so a code
// never equals (resolved previous | 1) when it is forced.
#include "tokens/kernel_codes.hpp"
#include "tokens/model.hpp"

namespace tlb::tokens {

namespace {

constexpr uint64_t H = 0x8080808080808080ULL, L7 = 0x7F7F7F7F7F7F7F7FULL, ONES = 0x0101010101010101ULL;

inline uint64_t load8(const uint8_t* q) {
    uint64_t x;
    std::memcpy(&x, q, 8);
    return x;  // little-endian: byte k of the word is q[k]
}
// 0xFF in every byte whose bit 7 is set, else 0.
inline uint64_t sel(uint64_t x) { return ((x & H) >> 7) * 0xFF; }
// Bit 7 of each byte set iff that byte is non-zero.
inline uint64_t nonzero(uint64_t x) { return (((x & L7) + L7) | x) & H; }
// Bit 7 of byte k -> bit k.
inline unsigned gather(uint64_t x) { return unsigned(((x & H) >> 7) * 0x0102040810204080ULL >> 56); }

constexpr size_t PRE = 8;  // codes of the chunk start at buf + PRE

}  // namespace

void classify_scalar(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts) {
    uint8_t buf[PRE + CHUNK + 72];
    uint8_t* const b = buf + PRE;
    write_prefix(st, b - 4);

    // Pass 1: codes, then "none" up to the end of the last 64-byte word (and one past it).
    for (size_t i = 0; i < n; ++i) b[i] = CODES.b[p[i]];
    const size_t end = (n + 63) & ~size_t(63);
    std::memset(b + n, K_NONE, end + 8 - n);
    b[n] = next >= 0 ? CODES.b[uint8_t(next)] : K_NONE;

    // Pass 2: eight bytes per step.
    const uint64_t sp = K_SP * ONES;
    uint64_t attach_carry = st.attach1 ? 1 : 0;
    for (size_t j = 0; j < n; j += 64) {
        uint64_t not_start = 0, attach = 0;
        for (unsigned k = 0; k < 64; k += 8) {
            const uint8_t* q = b + j + k;
            const uint64_t c0 = load8(q), p1 = load8(q - 1), n1 = load8(q + 1);
            // Resolved class of the previous byte: first non-continuation code of p1..p3, else p4
            // (just p1 when none of the eight previous bytes is a continuation byte: ASCII text).
            uint64_t t = p1;
            if (p1 & H) {
                const uint64_t p2 = load8(q - 2), p3 = load8(q - 3), p4 = load8(q - 4);
                t = p3 ^ ((p3 ^ p4) & sel(p3));
                t = p2 ^ ((p2 ^ t) & sel(p2));
                t = p1 ^ ((p1 ^ t) & sel(p1));
            }
            // Not a class start: a continuation byte, or the same class as the previous byte.
            not_start |= uint64_t(gather(~nonzero(c0 ^ (t | ONES)) | c0)) << k;
            // A space followed by a byte that takes it (bit 6 of its code clear).
            attach |= uint64_t(gather(~nonzero(c0 ^ sp) & ~(n1 << 1))) << k;
        }
        const uint64_t s = (~not_start | attach) & ~((attach << 1) | attach_carry);
        attach_carry = attach >> 63;
        starts[j >> 6] = n - j < 64 ? s & ((uint64_t(1) << (n - j)) - 1) : s;
    }
    replay_state(p, n, next, st);
}

}  // namespace tlb::tokens
