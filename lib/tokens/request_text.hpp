// Text fields of an OpenAI request body, for the CLI, calibration checks and tests (control plane:
// simdjson DOM, allocates). The data plane gets the same spans from lib/openai's On-Demand
// extraction; both follow the same rule so counts agree:
//   messages[].content (string, or text parts of a content-part array), messages[].tool_calls[]
//   .function name and arguments, prompt (string or array of strings), tools[].function /
//   functions[]: name, description, parameters (minified JSON).
#pragma once

#include <string>
#include <vector>

#include "tokens/tokens.hpp"

namespace tlb::tokens {

struct RequestText {
    std::vector<std::string> texts;  // decoded (JSON-unescaped) text fields, prompt order
    std::vector<Role> roles;         // same size
};

// Returns false if `json` is not a JSON object with "messages" or "prompt".
bool extract_request_text(const std::string& json, RequestText& out);

// Role name ("system", "user", ...) to Role.
Role role_from_name(std::string_view name) noexcept;

}  // namespace tlb::tokens
