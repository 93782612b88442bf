// Scalar reference of the script-counting pass, and the start-up kernel choice.
// The AVX2 and AVX-512 kernels (script_avx2.cpp, script_avx512.cpp) must give exactly these
// counts; classify_test checks both.
#include "classify/classify.hpp"

namespace tlb::classify {

namespace {

enum : uint8_t { CP = 1, LETTER = 2, CYR = 4, GREEK = 8, ARABIC = 16, CJK = 32, DIGIT = 64, PUNCT = 128 };

struct Table {
    uint8_t cls[256];
    constexpr Table() : cls{} {
        for (int b = 0; b < 256; ++b) {
            uint8_t c = 0;
            if (b < 0x80 || b >= 0xC0) c |= CP;
            if ((b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || b >= 0xC0)
                c |= LETTER;
            if (b >= 0xD0 && b <= 0xD3) c |= CYR;
            if (b >= 0xCE && b <= 0xCF) c |= GREEK;
            if (b >= 0xD8 && b <= 0xDB) c |= ARABIC;
            if (b >= 0xE3 && b <= 0xED) c |= CJK;
            if (b >= '0' && b <= '9') c |= DIGIT;
            if (b == '{' || b == '}' || b == '(' || b == ')' || b == ';' || b == '=') c |= PUNCT;
            cls[b] = c;
        }
    }
};
constexpr Table TABLE;

using CountFn = void (*)(const uint8_t*, size_t, ScriptCounts&) noexcept;

// Decided once, at first use (start-up: the Scanner constructor calls script_kernel_name()).
// A function-local static rather than a namespace-scope one so no static-initialisation order
// can observe it unset.
CountFn kernel() noexcept {
    static const CountFn k = avx512_supported() ? &count_scripts_avx512
                             : avx2_supported()  ? &count_scripts_avx2
                                                 : &count_scripts_scalar;
    return k;
}

}  // namespace

uint64_t ScriptCounts::of(Script s) const noexcept {
    switch (s) {
        case Script::CYRILLIC: return cyrillic;
        case Script::GREEK: return greek;
        case Script::ARABIC: return arabic;
        case Script::CJK: return cjk;
        case Script::NONE: break;
    }
    return 0;
}

bool avx2_supported() noexcept {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
}

bool avx512_supported() noexcept {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("popcnt");
}

const char* script_kernel_name() noexcept {
    const CountFn k = kernel();
    return k == &count_scripts_avx512 ? "avx512" : k == &count_scripts_avx2 ? "avx2" : "scalar";
}

// Digit counts per 32-byte block -> the densest pair of consecutive blocks. Shared by both kernels
// (the AVX2 one passes its per-block counts through it) so they agree exactly.
void digit_window_step(uint32_t block_digits, uint32_t& prev, uint64_t& best) noexcept {
    const uint64_t w = static_cast<uint64_t>(prev) + block_digits;
    if (w > best) best = w;
    prev = block_digits;
}

void count_scripts_scalar(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept {
    uint32_t prev = 0;
    uint64_t best = acc.digit_window;
    for (size_t b = 0; b < n; b += 32) {
        const size_t e = b + 32 < n ? b + 32 : n;
        uint32_t d = 0;
        for (size_t i = b; i < e; ++i) d += (p[i] >= '0' && p[i] <= '9');
        digit_window_step(d, prev, best);
    }
    acc.digit_window = best;
    count_scripts_scalar_flat(p, n, acc);
}

void add_counts(ScriptCounts& acc, const ScriptCounts& part) noexcept {
    acc.code_points += part.code_points;
    acc.letters += part.letters;
    acc.cyrillic += part.cyrillic;
    acc.greek += part.greek;
    acc.arabic += part.arabic;
    acc.cjk += part.cjk;
    acc.digits += part.digits;
    acc.punct += part.punct;
    acc.bytes += part.bytes;
}

void count_scripts_scalar_flat(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept {
    // Separate local counters: the compiler keeps them in registers instead of round-tripping
    // through acc on every byte.
    uint64_t cp = 0, letters = 0, cyr = 0, greek = 0, arabic = 0, cjk = 0, digits = 0, punct = 0;
    for (size_t i = 0; i < n; ++i) {
        const uint8_t c = TABLE.cls[p[i]];
        cp += c & 1;
        letters += (c >> 1) & 1;
        cyr += (c >> 2) & 1;
        greek += (c >> 3) & 1;
        arabic += (c >> 4) & 1;
        cjk += (c >> 5) & 1;
        digits += (c >> 6) & 1;
        punct += (c >> 7) & 1;
    }
    add_counts(acc, ScriptCounts{cp, letters, cyr, greek, arabic, cjk, digits, 0, punct, n});
}

void count_scripts(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept { kernel()(p, n, acc); }

}  // namespace tlb::classify
