// tlb::tokens — prompt-token estimation at GB/s, calibrated against a sentencepiece tokenizer,
// and the prompt-prefix fingerprint used for prefix-cache affinity.
//
// Data plane (per request, worker lcore): `Estimator::estimate()` and `prefix_fingerprint()`.
// Both are noexcept, allocate nothing, take no locks and make no syscalls.
// Control plane (start-up, CLI): `Estimator::from_file()` / `Estimator::builtin()` may allocate
// and throw `CalibrationError`.
//
// How it works (details and measured accuracy in docs/tokens.md):
//   A per-ISA SIMD kernel (AVX-512, AVX2, scalar reference; chosen once at start-up) classifies
//   every input byte and emits a bitmask of "segment starts". Segments mirror the boundaries that a
//   sentencepiece BPE vocabulary can never merge across (whitespace, Unicode script changes,
//   digits, control characters), so the tokenizer's output factorises over them. Each segment is
//   then priced by one probe into the calibration's memo (the exact piece count of every segment
//   seen twice in the calibration corpus, and of every vocabulary piece; SIMD passes for AVX-512
//   and AVX2), and the memo's misses by a feature model fitted on words the corpus saw once
//   (script, leading space, case, length; CJK runs per code point). Costs are summed in fixed
//   point, so every ISA returns exactly the same number.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tlb::tokens {

class CalibrationError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Instruction-set variants of the classification kernel.
enum class Isa : uint8_t { Scalar = 0, Avx2 = 1, Avx512 = 2 };
const char* isa_name(Isa isa) noexcept;
// Best variant this CPU supports (cpuid via __builtin_cpu_supports), decided once.
Isa best_isa() noexcept;
bool isa_supported(Isa isa) noexcept;

struct Model;  // calibrated tables (opaque; see model.hpp inside lib/tokens)

// A text field inside a larger buffer: bytes [off, off + len).
struct TextField {
    uint32_t off = 0;
    uint32_t len = 0;
};

class Estimator {
public:
    // Loads a calibration file (conf/tokenizers/*.toml). Throws CalibrationError.
    static Estimator from_file(const std::string& path);
    // Parses calibration TOML text. Throws CalibrationError.
    static Estimator from_toml(std::string_view text, const std::string& source_name = "<string>");
    // Vocabulary-free fallback used when no calibration is configured (rough: ~20-25% off).
    static Estimator builtin();

    Estimator(Estimator&&) noexcept;
    Estimator& operator=(Estimator&&) noexcept;
    ~Estimator();

    // Estimated number of tokens of one text as the tokenizer would encode it on its own
    // (one encode call, no BOS/EOS, no chat template). UTF-8 in; invalid bytes are priced as
    // byte-fallback tokens. Uses the start-up ISA.
    uint32_t estimate(const char* p, size_t n) const noexcept;
    uint32_t estimate(std::string_view s) const noexcept { return estimate(s.data(), s.size()); }
    // Same with an explicit kernel (tests and benchmarks); `isa` must be supported.
    uint32_t estimate(const char* p, size_t n, Isa isa) const noexcept;
    // Estimate in 1/256 token units (what estimate() rounds); for sums over many texts.
    uint64_t estimate_fixed(const char* p, size_t n) const noexcept;
    // Sum of estimate_fixed() over several fields of one buffer (the text fields of a request,
    // which the tokenizer encodes one by one), exactly. When the fields are in order with a byte
    // between them that a space does not attach to, such as lib/openai's '\n' separators, one
    // pass covers them all (segmentation, memo and miss passes shared, the separators skipped):
    // ~30% less work than a call per field on chat requests. Other layouts are priced field by field.
    uint64_t estimate_fields_fixed(const char* text, const TextField* fields, size_t n) const noexcept;
    uint64_t estimate_fields_fixed(const char* text, const TextField* fields, size_t n, Isa isa) const noexcept;

    const std::string& tokenizer_name() const noexcept;
    const Model& model() const noexcept { return *_model; }

private:
    explicit Estimator(std::unique_ptr<Model> m);
    std::unique_ptr<Model> _model;
};

// ---- prefix fingerprint -------------------------------------------------------------------

// Role of a text span in the prompt. The value is part of the hashed stream, so it is stable.
enum class Role : uint8_t {
    None = 0,  // /v1/completions prompt
    System = 1,
    User = 2,
    Assistant = 3,
    Tool = 4,
    Developer = 5,
    Function = 6,
    Other = 7,
};

// One decoded (JSON-unescaped) text field of a request, in prompt order.
struct TextSpan {
    const char* data = nullptr;
    size_t size = 0;
    Role role = Role::None;
};

constexpr size_t PREFIX_BLOCK_BYTES = 256;      // default; config policy.prefix_block_bytes
constexpr size_t PREFIX_MAX_BLOCK_BYTES = 4096;

// Hashes the logical prompt stream  [sep(role0) text0 sep(role1) text1 ...]  in blocks of
// `block_bytes` and writes the chained hash of every *complete* block, at most `max_out`:
// out[i] identifies the whole stream prefix of (i+1)*block_bytes bytes (h_i = H(h_{i-1}, block_i)).
// The separator is bytes that never occur in UTF-8 text (0xFF, role), so role boundaries are part
// of the identity but JSON formatting, key order and escapes are not (spans are decoded text).
// Returns the number of hashes written. block_bytes must be a multiple of 16 in [16, PREFIX_MAX_BLOCK_BYTES], else 0 is returned.
size_t prefix_fingerprint(const TextSpan* spans, size_t n_spans, uint64_t* out, size_t max_out,
                          size_t block_bytes = PREFIX_BLOCK_BYTES) noexcept;

}  // namespace tlb::tokens
