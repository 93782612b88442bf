// tlb::understand — the per-request understand step: from a complete HTTP/1.1 request (as framed
// by lib/http) to the RequestFeatures that routing needs, or to a ready-to-send error.
//
//   framing (lib/http) -> endpoint by method+path -> body extraction (lib/openai, simdjson
//   On-Demand) -> prompt-token estimate (lib/tokens, sum over text fields) -> content tags
//   (lib/classify, Hyperscan + SIMD script pass) -> prefix fingerprint (lib/tokens)
//
// Decisions (docs/understand.md has the long form and the measured costs):
//  * One Understander per worker, built on the control plane with everything it will ever need:
//    the openai Extractor (simdjson parser sized for the largest accepted body), a scratch buffer
//    for decoded text, a Hyperscan scratch (classify::Scanner), a span array for the fingerprint.
//    understand() is noexcept and allocates nothing (unit test counts operator new calls); the
//    classifier and estimator are shared, read-only, and outlive it.
//  * The data plane has already framed the request with its own RequestParser (it needs framing
//    to know the request is complete), so understand_framed() takes that parser; understand()
//    frames a complete buffer itself (tests, benchmarks, tools).
//  * Text fields are estimated one by one and summed (a tokenizer encodes each message on its own;
//    chat-template tokens are not counted), classified as the one contiguous run lib/openai
//    decodes them into ('\n'-separated, one hs_scan), and fingerprinted in prompt order with tool
//    definitions first (chat templates render tools into the system part, ahead of the messages).
//  * Errors are data: status + OpenAI-style code/message/param, rendered by lib/http's error
//    builder (build_error). Strings point at static text or into the Understander's buffers and
//    stay valid until the next call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/request.hpp"

namespace tlb::classify {
class Classifier;
class Scanner;
}  // namespace tlb::classify
namespace tlb::tokens {
class Estimator;
struct TextSpan;
struct TextField;
}  // namespace tlb::tokens
namespace tlb::openai {
class Extractor;
struct Request;
}  // namespace tlb::openai

namespace tlb::understand {

enum class EndpointKind : uint8_t { UNKNOWN = 0, CHAT, COMPLETIONS, MODELS, HEALTH };
const char* endpoint_name(EndpointKind k) noexcept;

constexpr uint32_t MAX_PREFIX_BLOCKS = 64;

struct RequestFeatures {
    EndpointKind endpoint = EndpointKind::UNKNOWN;
    http::Method method = http::Method::OTHER;
    bool keep_alive = true;

    // Chat / completions only. Strings point into the Understander; valid until the next call.
    std::string_view model;
    int64_t max_tokens = -1;  // max_completion_tokens if given, else max_tokens; -1: absent
    uint32_t n = 1;
    bool stream = false;
    bool include_usage = false;
    std::string_view user;
    uint32_t prompt_tokens = 0;  // estimate over the text fields (+ exact count of token-id prompts)
    uint64_t tags = 0;           // classify::TagSet
    uint32_t prefix_blocks = 0;  // valid entries of prefix_hash
    uint64_t prefix_hash[MAX_PREFIX_BLOCKS] = {};  // prefix_hash[i]: first (i+1)*block bytes
    uint32_t body_bytes = 0;
    uint32_t text_bytes = 0;     // decoded prompt text
    uint32_t message_count = 0;
    uint32_t tool_count = 0;
    uint32_t image_parts = 0;

    // Error: status 0 means none. Otherwise the request must be answered with build_error().
    uint16_t status = 0;
    const char* code = "";     // snake_case, also the counter name
    const char* message = "";  // one sentence for the client
    const char* param = "";    // OpenAI "param" (field path), may be empty

    bool ok() const noexcept { return status == 0; }
};

struct Options {
    size_t max_body_bytes = 8u << 20;   // bodies above are refused with 413
    size_t prefix_block_bytes = 256;    // multiple of 16 in [16, 4096]
    http::Limits limits;                // for understand() (framing done here)
};

class Understander {
public:
    Understander() noexcept;
    ~Understander();
    Understander(const Understander&) = delete;
    Understander& operator=(const Understander&) = delete;

    // Control plane. classifier may be null (no tags); estimator must not be. Both must outlive
    // this object. Returns false and sets *error when something cannot be allocated or is invalid.
    bool init(const Options& opt, const classify::Classifier* classifier, const tokens::Estimator* estimator,
              std::string* error);

    // Frames buf[0..len) as one complete request and understands it. capacity: bytes writable at
    // buf (>= len); with at least len + 64 the JSON body is parsed in place (simdjson padding; the
    // padding bytes are restored). Returns out.ok(). A request that is incomplete is a 400.
    bool understand(uint8_t* buf, size_t len, size_t capacity, RequestFeatures& out) noexcept;

    // Same for a request the caller's parser has completed over buf.
    bool understand_framed(const http::RequestParser& rp, uint8_t* buf, size_t capacity,
                           RequestFeatures& out) noexcept;

    // The HTTP response for a failed request (out.status != 0). Returns bytes written or -1.
    static int64_t build_error(const RequestFeatures& f, uint8_t* dst, size_t cap) noexcept;

    // Counters (per worker; read by telemetry).
    uint64_t requests() const noexcept { return _requests; }
    uint64_t errors() const noexcept { return _errors; }

private:
    bool fail(RequestFeatures& out, uint16_t status, const char* code, const char* message,
              const char* param = "") noexcept;

    Options _opt;
    const classify::Classifier* _classifier = nullptr;
    const tokens::Estimator* _estimator = nullptr;
    std::unique_ptr<http::RequestParser> _parser;
    std::unique_ptr<openai::Extractor> _extractor;
    std::unique_ptr<openai::Request> _req;
    std::unique_ptr<classify::Scanner> _scanner;
    std::unique_ptr<uint8_t[]> _scratch;  // decoded text, model, user
    size_t _scratch_cap = 0;
    std::unique_ptr<tokens::TextSpan[]> _spans;  // prefix fingerprint input
    std::unique_ptr<tokens::TextField[]> _fields;  // token estimate input
    char _msg[256] = {};
    bool _ready = false;
    uint64_t _requests = 0;
    uint64_t _errors = 0;
};

}  // namespace tlb::understand
