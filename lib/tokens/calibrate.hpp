// Calibration (control plane / CLI only): builds a calibration file from a sentencepiece model and
// a text corpus. Allocates and throws freely.
#pragma once

#include <string>
#include <vector>

namespace tlb::tokens {

struct CalibrationOptions {
    std::string spm_model;                  // path to a sentencepiece .model
    std::vector<std::string> corpus;        // UTF-8 files or directories of them
    size_t max_corpus_bytes = 64u << 20;    // stop reading after this much text
    uint64_t memo_min_count = 2;            // corpus segments seen this often go into the memo
    size_t memo_max_keys = 1u << 17;        // most frequent first
};

struct FitReport {
    size_t docs = 0;
    size_t bytes = 0;
    double mape = 0;       // mean absolute percentage error per document (fraction)
    double p95 = 0;        // 95th percentile of the absolute percentage error
    double bias = 0;       // sum(estimate) / sum(exact) - 1
    size_t memo_keys = 0;     // memo keys written
    size_t memo_entries = 0;  // memo table entries (with vocabulary pieces and fixed keys)
    std::string details;   // human-readable per-segment-kind table
};

// Returns the calibration file text (TOML) and fills `report` with the fit on the corpus.
std::string calibrate(const CalibrationOptions& opt, FitReport& report);

// Reads the corpus the same way calibrate() does: documents are separated by a line holding only
// "\x1e", or by a blank line followed by "%" (fortune files); long documents are cut at line
// boundaries near 8 KiB.
std::vector<std::string> read_corpus(const std::vector<std::string>& paths, size_t max_bytes);

}  // namespace tlb::tokens

namespace tlb::tokens {
// Per-cell residuals (estimate - exact) of the estimator on `texts`, largest first: a table for
// finding what the model misses. Slow; CLI `diag` only.
std::string diagnose(const std::string& calib_file, const std::string& spm_model,
                     const std::vector<std::string>& texts, size_t top);
}  // namespace tlb::tokens
