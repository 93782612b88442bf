// Rule-file parser (control plane). Format in docs/classify.md and at the top of conf/rules/*.rules.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "classify/classify.hpp"

namespace tlb::classify {

// Parses one rule file's text. Appends its rules to `rules`, registering new tag names in `tags`
// (bit = index). Returns false and sets *error to "name:line: message" on the first bad line.
// Regex syntax is checked later, when the whole set is compiled (errors still name file:line).
// A line "@early_exit" makes the file's rules their own database (see docs/classify.md); then
// *early_exit is set.
bool parse_rules(std::string_view name, std::string_view text, std::vector<Rule>& rules,
                 std::vector<std::string>& tags, std::string* error, bool* early_exit = nullptr);

}  // namespace tlb::classify
