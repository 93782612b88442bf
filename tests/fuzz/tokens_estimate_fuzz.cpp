// libFuzzer target: the token estimator (lib/tokens) on arbitrary bytes, with the shipped
// calibration (memo, Han table, vocabulary), and the same calibration for a tokenizer without
// byte fallback (<unk> runs, merged control bytes). Checks, for both: every ISA this CPU has gives the scalar
// result; the explain path (no fast paths) gives the same total; the input split into fields
// (lib/openai's layout: '\n' between fields, one pass) prices exactly the per-field sum. ASan and
// UBSan check every vector load of the kernels against the input buffer.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tokens/model.hpp"
#include "tokens/tokens.hpp"

using namespace tlb::tokens;

namespace {
const Estimator& estimator(bool byte_fallback) {
    static const Estimator with = Estimator::from_file(TLB_SOURCE_ROOT "/conf/tokenizers/fortunes-bpe8k.toml");
    static const Estimator without = [] {
        FILE* f = std::fopen(TLB_SOURCE_ROOT "/conf/tokenizers/fortunes-bpe8k.toml", "rb");
        if (!f) abort();
        std::string t;
        char buf[65536];
        for (size_t r; (r = std::fread(buf, 1, sizeof buf, f)) > 0;) t.append(buf, r);
        std::fclose(f);
        const size_t at = t.find("byte_fallback = true");
        if (at == std::string::npos) abort();
        t.replace(at, 20, "byte_fallback = false");
        return Estimator::from_toml(t);
    }();
    return byte_fallback ? with : without;
}
const Isa ISAS[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512};

void check(const Estimator& e, const uint8_t* data, size_t size);
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    check(estimator(true), data, size);
    check(estimator(false), data, size);
    return 0;
}

namespace {
void check(const Estimator& e, const uint8_t* data, size_t size) {
    // The text in its own allocation of exactly its size, so a load past its end is reported.
    std::vector<char> text(data, data + size);
    const char* p = text.data();
    const uint64_t ref = e.estimate_fixed(p, size);
    const TextField all{0, uint32_t(size)};
    for (Isa isa : ISAS)
        if (isa_supported(isa) && e.estimate_fields_fixed(p, &all, 1, isa) != ref) abort();
    std::vector<SegmentInfo> segs;
    if (explain(e.model(), p, size, segs) != ref) abort();

    // Fields: cut at up to 7 places chosen by the first bytes, joined with '\n'.
    if (size < 2) return;
    const size_t nf = 1 + data[0] % 8;
    std::vector<size_t> cuts{0};
    for (size_t k = 1; k < nf; ++k) cuts.push_back(1 + (size_t(data[k % size]) * 257 + k * 7919) % size);
    cuts.push_back(size);
    std::sort(cuts.begin(), cuts.end());
    std::string joined;
    std::vector<TextField> fields;
    uint64_t sum = 0;
    for (size_t k = 0; k + 1 < cuts.size(); ++k) {
        if (k) joined += '\n';
        fields.push_back(TextField{uint32_t(joined.size()), uint32_t(cuts[k + 1] - cuts[k])});
        joined.append(reinterpret_cast<const char*>(data) + cuts[k], cuts[k + 1] - cuts[k]);
        sum += e.estimate_fixed(reinterpret_cast<const char*>(data) + cuts[k], cuts[k + 1] - cuts[k]);
    }
    std::vector<char> buf(joined.begin(), joined.end());
    for (Isa isa : ISAS)
        if (isa_supported(isa) && e.estimate_fields_fixed(buf.data(), fields.data(), fields.size(), isa) != sum) abort();
}
}  // namespace
