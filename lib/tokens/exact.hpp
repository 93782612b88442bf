// Exact token counting with sentencepiece (control plane, calibration, CLI `exact`, tests).
// Not for the data plane: sentencepiece allocates and runs at a few MB/s.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace tlb::tokens {

class ExactCounter {
public:
    explicit ExactCounter(const std::string& model_path);  // throws CalibrationError
    ~ExactCounter();
    ExactCounter(ExactCounter&&) noexcept;
    // Number of ids of EncodeAsIds(text): no BOS/EOS, no chat template.
    uint32_t count(std::string_view text) const;
    const sentencepiece::SentencePieceProcessor& processor() const { return *_spm; }

private:
    std::unique_ptr<sentencepiece::SentencePieceProcessor> _spm;
};

}  // namespace tlb::tokens
