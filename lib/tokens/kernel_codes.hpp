// Internal to the lib/tokens segmentation kernels: the 8-bit class codes every kernel's first pass
// writes, and the codes that stand for the bytes before a chunk. Everything here has internal
// linkage (anonymous namespace): each kernel file is compiled with its own -m flags, and a shared
// out-of-line copy could be the one the linker keeps for a CPU without those instructions.
//
// Code layout: bit 7 = continuation byte, bit 6 = does not take an attached space (SP, CTRL,
// DIGIT, CONT, none), bit 0 = 0 only for CTRL/DIGIT ("forced"), so comparing a code with
// (resolved previous | 1) is never equal for a forced byte. CTRL and DIGIT share a code: both
// always start a segment, and neither equals any other class.
#pragma once

#include <cstdint>

#include "tokens/model.hpp"

namespace tlb::tokens {
namespace {

constexpr uint8_t K_LATIN = 0x01, K_PUNCT = 0x03, K_CYR = 0x05, K_GREEK = 0x07, K_HAN = 0x09,
                  K_OTHER = 0x0B, K_SP = 0x41, K_FORCED = 0x42, K_CONT = 0xC1, K_NONE = 0x45;

constexpr uint8_t code_of(uint8_t cls) {
    switch (cls) {
        case BC_SP: return K_SP;
        case BC_CTRL:
        case BC_DIGIT: return K_FORCED;
        case BC_LATIN: return K_LATIN;
        case BC_PUNCT: return K_PUNCT;
        case BC_CYR: return K_CYR;
        case BC_GREEK: return K_GREEK;
        case BC_HAN: return K_HAN;
        case BC_OTHER: return K_OTHER;
        case BC_CONT: return K_CONT;
        default: return K_NONE;  // 0xFF: before the text
    }
}

// Code of every byte value.
struct alignas(64) CodeTable {
    uint8_t b[256];
};
constexpr CodeTable make_codes() {
    CodeTable t{};
    for (int i = 0; i < 256; ++i) t.b[i] = code_of(BYTE_CLASS[i]);
    return t;
}
constexpr CodeTable CODES = make_codes();

// Four codes standing for the bytes before the chunk. The state keeps r, c1 and c2 of the last
// bytes rather than the bytes; these codes give the same resolved classes to the first four bytes
// of the chunk (the first non-continuation code among them is the one the state resolves to).
inline void write_prefix(const KernelState& st, uint8_t* pre) {
    pre[0] = pre[1] = pre[2] = K_NONE;
    pre[3] = code_of(st.r1);
    if (st.r1 != BC_CONT) return;
    pre[2] = code_of(st.c1_1);
    if (st.c1_1 != BC_CONT) return;
    pre[1] = code_of(st.c1_2);
    if (st.c1_2 != BC_CONT) return;
    pre[0] = code_of(st.c2_1);
}

}  // namespace
}  // namespace tlb::tokens
