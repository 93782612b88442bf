// Token usage from responses: the `usage` object of a non-stream completion body, or of the
// SSE chunk that carries it (stream_options.include_usage, or vLLM's continuous usage stats),
// and the `data: [DONE]` end marker.
//
// Responses are spliced segment by segment, so the body is never contiguous in one buffer.
// UsageScanner therefore reads the body (or one SSE event's data) incrementally with a tiny
// JSON structure tracker (strings, escapes, depth) that only looks for the top-level "usage"
// key; it copies that object (a few hundred bytes) into its own padded buffer, and parse_usage()
// then reads it with simdjson. Text inside strings can never be mistaken for the key, and
// nothing but the usage object is ever copied. UsageSink plugs the scanner into the http
// ResponseParser. No allocation, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "http/response.hpp"
#include "openai/request.hpp"

namespace tlb::openai {

struct Usage {
    int64_t prompt_tokens = -1;      // -1: absent
    int64_t completion_tokens = -1;
    int64_t total_tokens = -1;
    int64_t cached_tokens = -1;      // usage.prompt_tokens_details.cached_tokens (prefix cache hits)
    bool present() const noexcept { return prompt_tokens >= 0 || completion_tokens >= 0; }
};

// simdjson parser for usage objects and small response documents; one per worker.
class UsageParser {
public:
    UsageParser() noexcept;
    ~UsageParser();
    UsageParser(const UsageParser&) = delete;
    UsageParser& operator=(const UsageParser&) = delete;
    bool init(size_t max_doc_bytes) noexcept;  // control plane

    // json: a whole response document (top-level "usage" is read) or a bare usage object
    // (as captured by UsageScanner, is_object_itself = true). The document is always copied into
    // a padded buffer (usage documents are small); capacity is accepted for symmetry.
    // Returns false when the JSON is invalid or has no usable usage; "usage": null is absent.
    bool parse(const uint8_t* json, size_t len, size_t capacity, Usage& out, bool is_object_itself = false) noexcept;

    struct Impl;

private:
    std::unique_ptr<Impl> _impl;
    size_t _max = 0;
};

// True when an SSE event's data is exactly "[DONE]" (surrounding whitespace ignored).
bool is_done_marker(const uint8_t* p, size_t n) noexcept;

class UsageScanner {
public:
    static constexpr size_t CAPTURE_MAX = 1024;  // usage objects are ~100-300 bytes

    void reset() noexcept;
    void feed(const uint8_t* p, size_t n) noexcept;
    // True once a complete top-level "usage" object has been captured.
    bool captured() const noexcept { return _captured; }
    bool overflowed() const noexcept { return _overflow; }
    const uint8_t* object() const noexcept { return _buf; }
    size_t object_len() const noexcept { return _len; }
    size_t object_capacity() const noexcept { return sizeof(_buf); }

private:
    int32_t _depth = 0;
    bool _in_string = false;
    bool _escape = false;
    bool _expect_key = false;   // at depth 1, the next string is a key
    bool _key_string = false;   // current string is a depth-1 key
    uint8_t _key_match = 0;     // bytes of "usage" matched so far (6 = mismatch)
    bool _key_is_usage = false; // last depth-1 key was exactly "usage"
    bool _await_value = false;  // saw ':' after the "usage" key
    bool _capturing = false;
    bool _captured = false;
    bool _overflow = false;
    size_t _len = 0;
    uint8_t _buf[CAPTURE_MAX + PADDING] = {};
};

// Wires a UsageScanner into http::ResponseParser: for ordinary bodies the whole body is scanned;
// for SSE, each event separately, keeping the last event whose usage was present.
class UsageSink final : public http::ResponseSink {
public:
    explicit UsageSink(UsageParser* parser) noexcept : _parser(parser) {}
    void reset() noexcept;
    void on_head(uint16_t status, bool event_stream) noexcept override;
    void on_body(const uint8_t* p, size_t n) noexcept override;
    void on_event_data(const uint8_t* p, size_t n) noexcept override;
    void on_event_end(bool done) noexcept override;
    // Call once the response is complete (non-stream bodies are parsed then).
    void finish() noexcept;

    const Usage& usage() const noexcept { return _usage; }
    bool done() const noexcept { return _done; }
    uint32_t events() const noexcept { return _events; }

private:
    UsageParser* _parser;
    UsageScanner _scanner;
    Usage _usage;
    bool _event_stream = false;
    bool _done = false;
    uint32_t _events = 0;
};

}  // namespace tlb::openai
