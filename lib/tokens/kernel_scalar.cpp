// Scalar reference kernel: the definition every SIMD kernel must reproduce bit for bit.
//
//   r[i]  = BYTE_CLASS[p[i]]
//   c1[i] = r[i]  == CONT ? r[i-1]  : r[i]      continuation bytes take their lead's class:
//   c2[i] = c1[i] == CONT ? c1[i-2] : c1[i]     two steps resolve sequences of up to 4 bytes
//   attach[i] = r[i] == SP && attaches_space(r[i+1])
//   start[i]  = (r[i] != CONT && (c2[i] != c2[i-1] || r[i] == CTRL || r[i] == DIGIT) || attach[i])
//               && !attach[i-1]
// Values before the text are 0xFF (no class), after it "no byte" (never attaches).
#include "tokens/model.hpp"

namespace tlb::tokens {

void classify_scalar(const uint8_t* p, size_t n, int next, KernelState& st, uint64_t* starts) {
    const size_t words = (n + 63) / 64;
    for (size_t w = 0; w < words; ++w) starts[w] = 0;
    uint8_t r1 = st.r1, c1_1 = st.c1_1, c1_2 = st.c1_2, c2_1 = st.c2_1;
    bool attach1 = st.attach1;
    for (size_t i = 0; i < n; ++i) {
        const uint8_t r = BYTE_CLASS[p[i]];
        const uint8_t c1 = r == BC_CONT ? r1 : r;
        const uint8_t c2 = c1 == BC_CONT ? c1_2 : c1;
        uint8_t rn = 0xFF;
        if (i + 1 < n) rn = BYTE_CLASS[p[i + 1]];
        else if (next >= 0) rn = BYTE_CLASS[uint8_t(next)];
        const bool attach = r == BC_SP && attaches_space(rn);
        bool start = (r != BC_CONT && (c2 != c2_1 || r == BC_CTRL || r == BC_DIGIT)) || attach;
        start = start && !attach1;
        if (start) starts[i >> 6] |= uint64_t(1) << (i & 63);
        r1 = r;
        c1_2 = c1_1;
        c1_1 = c1;
        c2_1 = c2;
        attach1 = attach;
    }
    st.r1 = r1;
    st.c1_1 = c1_1;
    st.c1_2 = c1_2;
    st.c2_1 = c2_1;
    st.attach1 = attach1;
}

}  // namespace tlb::tokens
