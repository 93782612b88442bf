// OpenAI request understanding: one pass of simdjson On-Demand over a /v1/chat/completions or
// /v1/completions body, pulling out what routing needs (model, prompt text, max_tokens, n,
// stream, stream_options.include_usage, user) and rejecting bodies the backend would misread.
//
// Decisions (docs/openai.md has the long form):
//  * simdjson On-Demand (Debian libsimdjson 3.0.1): stage 1 is SIMD and chosen at run time;
//    fields are visited in document order, unknown fields skipped without materialising them.
//    Keys are compared unescaped, so "mod\u0065l" is the model field here as it is in the
//    backend's JSON library; a duplicate of a field we route on is rejected (two parsers could
//    otherwise pick different copies: routing on one model, running the other).
//  * Decoded text goes to a caller scratch buffer as one contiguous run, pieces separated by
//    '\n', so the token estimator and the classifier can each make one pass over it; spans say
//    where each piece is and whose it is. JSON escapes (incl. surrogate pairs) are decoded.
//    Decoded text is never longer than the JSON it came from, so a scratch buffer as large as
//    the largest accepted body cannot overflow.
//  * Text is decoded straight into scratch, not through simdjson's string buffer and a second
//    copy: a string's raw bytes are copied up to each backslash and the two-character escapes
//    decoded in between by a vector kernel chosen in init() (text_copy.hpp: AVX-512 VBMI2 /
//    AVX-512 / AVX2 / SSE2, memchr+memcpy as reference); from the first \u escape on, simdjson's
//    own unescaper (parser.unescape) finishes the string, so \u and error handling stay
//    simdjson's. Short strings that are only compared (role, part type) are used in place when
//    they have no backslash. Iteration results are used in place (in_place()) instead of being
//    copied out with get(): the copy reloaded the just-written iterator state through a wider
//    access, a store-forwarding stall per field. Benchmark (perf/micro/understand_bench
//    BM_Stage_Extract/4096, medians of 9, old and new builds run alternately): 1.32-1.50 us
//    before, 0.82-0.95 us after; simdjson's stage 1 is now about half of what is left.
//  * Padding contract: simdjson reads up to SIMDJSON_PADDING (64) bytes past the end of the
//    input. Callers that own a buffer with that much room after the body (the data plane's
//    request buffer has it) pass its capacity and the body is parsed in place (those 64 bytes
//    are borrowed and restored); otherwise the body is copied once into a padded buffer sized
//    at init().
//  * No allocation, no exceptions on the per-request path: init() sizes the parser and buffers
//    on the control plane; extract() never asks simdjson for a larger capacity (bodies above
//    the init size are refused with 413 before simdjson sees them); the library is compiled
//    with SIMDJSON_EXCEPTIONS=0, so only error-code APIs exist for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace tlb::openai {

constexpr size_t PADDING = 64;  // == SIMDJSON_PADDING (checked in request.cpp)

enum class Endpoint : uint8_t { CHAT_COMPLETIONS, COMPLETIONS };

// The endpoint a request path names; false for paths this library does not extract from.
// The query string must already be stripped (http::RequestParser::path() does).
inline bool endpoint_for_path(std::string_view path, Endpoint& out) noexcept {
    if (path == "/v1/chat/completions") { out = Endpoint::CHAT_COMPLETIONS; return true; }
    if (path == "/v1/completions") { out = Endpoint::COMPLETIONS; return true; }
    return false;
}

enum class Role : uint8_t { NONE = 0, SYSTEM, DEVELOPER, USER, ASSISTANT, TOOL, FUNCTION, OTHER };

// Where a piece of prompt text came from.
enum class Source : uint8_t {
    MESSAGE,    // messages[i].content (string or a text content part)
    TOOL_CALL,  // messages[i].tool_calls[j].function.name / .arguments
    TOOL_DEF,   // tools[k].function.{name,description,parameters} or functions[k].*
    PROMPT,     // prompt (completions)
};

struct TextSpan {
    uint32_t off = 0;  // into Request::text
    uint32_t len = 0;
    Source source = Source::MESSAGE;
    Role role = Role::NONE;
    uint16_t index = 0;  // message index (or prompt/tool index), saturating
};

constexpr uint32_t MAX_SPANS = 512;

enum class Error : uint8_t {
    NONE = 0,
    NOT_INITIALISED,
    EMPTY_BODY,
    BODY_TOO_LARGE,   // 413
    INVALID_JSON,
    NOT_OBJECT,
    MISSING_FIELD,
    WRONG_TYPE,
    BAD_VALUE,
    DUPLICATE_FIELD,
    SCRATCH_FULL,     // caller scratch smaller than documented; 413
    COUNT_
};
const char* error_name(Error e) noexcept;
uint16_t error_status(Error e) noexcept;

struct Request {
    Endpoint endpoint = Endpoint::CHAT_COMPLETIONS;
    std::string_view model;  // decoded; points into the scratch buffer
    uint32_t model_raw_off = 0;  // the model's JSON string token (with quotes) in the body
    uint32_t model_raw_len = 0;
    int64_t max_tokens = -1;  // max_completion_tokens if given, else max_tokens; -1: absent
    uint32_t n = 1;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    std::string_view user;
    uint32_t message_count = 0;
    uint32_t image_parts = 0;       // content parts that are images (not in text)
    uint32_t other_parts = 0;       // audio/file/unknown content parts
    uint64_t prompt_token_ids = 0;  // completions prompt given as token ids: exact count
    uint32_t tool_count = 0;

    // All decoded prompt text, pieces separated by '\n'.
    const uint8_t* text = nullptr;
    uint32_t text_len = 0;
    TextSpan spans[MAX_SPANS];
    uint32_t span_count = 0;
    bool spans_merged = false;  // more pieces than MAX_SPANS: the rest were merged into the last

    std::string_view span_text(const TextSpan& s) const noexcept {
        return {reinterpret_cast<const char*>(text) + s.off, s.len};
    }
};

class Extractor {
public:
    Extractor() noexcept;
    ~Extractor();
    Extractor(const Extractor&) = delete;
    Extractor& operator=(const Extractor&) = delete;

    // Control plane: sizes everything for bodies up to max_body_bytes. False if allocation fails.
    bool init(size_t max_body_bytes) noexcept;
    size_t max_body_bytes() const noexcept { return _max_body; }

    // body/len: the request body. capacity: bytes of the caller's buffer from body (>= len);
    // when it is at least len + PADDING the body is parsed in place, and the PADDING bytes after
    // it are set to spaces during the call and restored before it returns (simdjson's handling
    // of malformed input can depend on them; see docs/openai.md). Otherwise the body is copied
    // into the padded buffer sized at init(). scratch must hold scratch_cap bytes; scratch_cap
    // >= len always suffices. On success out.text points into scratch.
    Error extract(Endpoint ep, uint8_t* body, size_t len, size_t capacity, uint8_t* scratch,
                  size_t scratch_cap, Request& out) noexcept;

    // After an error: one sentence for the client naming the field, e.g.
    // "messages[2].content must be a string or an array of content parts".
    const char* message() const noexcept { return _msg; }
    // The OpenAI "param" for the error (e.g. "messages[2].content"), may be empty.
    const char* param() const noexcept { return _param; }

    struct Impl;

private:
    std::unique_ptr<Impl> _impl;
    size_t _max_body = 0;
    char _msg[192];
    char _param[96];
    friend struct Impl;
};

// Writes body with the model value replaced by new_model (JSON-escaped) into out. req must come
// from extract() over the same body. Returns the new length, or -1 if out_cap is too small.
int64_t rewrite_model(const uint8_t* body, size_t len, const Request& req, std::string_view new_model,
                      uint8_t* out, size_t out_cap) noexcept;

}  // namespace tlb::openai
