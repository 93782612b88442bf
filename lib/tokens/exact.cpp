#include "tokens/exact.hpp"

#include <sentencepiece_processor.h>

#include <vector>

#include "tokens/tokens.hpp"

namespace tlb::tokens {

ExactCounter::ExactCounter(const std::string& model_path)
    : _spm(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
    const auto st = _spm->Load(model_path);
    if (!st.ok()) throw CalibrationError(model_path + ": cannot load sentencepiece model: " + st.ToString());
}
ExactCounter::~ExactCounter() = default;
ExactCounter::ExactCounter(ExactCounter&&) noexcept = default;

uint32_t ExactCounter::count(std::string_view text) const {
    std::vector<int> ids;
    const auto st = _spm->Encode(text, &ids);
    if (!st.ok()) throw CalibrationError("sentencepiece encode failed: " + st.ToString());
    return uint32_t(ids.size());
}

}  // namespace tlb::tokens
