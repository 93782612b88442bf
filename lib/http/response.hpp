// Incremental HTTP/1.1 response framing for the return path (backend -> client).
//
// Responses are spliced, not terminated: each backend segment is forwarded as is, and this
// parser only watches the bytes go by, one segment at a time (segments are not contiguous, so
// nothing here keeps pointers into earlier segments). It finds the end of the response
// (Content-Length, chunked, close-delimited, or no body for HEAD/204/304/1xx), skips 1xx interim
// responses, and hands the decoded body to a sink: the raw body for ordinary responses, and for
// text/event-stream the `data:` payload of each Server-Sent Event with an end-of-event mark that
// says whether it was `data: [DONE]`. Usage extraction (lib/openai) plugs in as the sink.
//
// Tokenization is http-parser (HTTP_RESPONSE mode), as for requests; the backend is a server we
// chose, so strictness matters less than on the client side, but every malformed input is still
// an error result, never an assert.
#pragma once

#include <cstddef>
#include <cstdint>

#include <http_parser.h>

#include "http/request.hpp"

namespace tlb::http {

class ResponseSink {
public:
    virtual ~ResponseSink() = default;
    // Headers of the final (non-1xx) response are complete.
    virtual void on_head(uint16_t /*status*/, bool /*event_stream*/) noexcept {}
    // Decoded body bytes of a response that is not text/event-stream.
    virtual void on_body(const uint8_t* /*p*/, size_t /*n*/) noexcept {}
    // Pieces of the current SSE event's data (several data lines are joined with '\n').
    virtual void on_event_data(const uint8_t* /*p*/, size_t /*n*/) noexcept {}
    // End of an SSE event that had at least one data line; done: its data was exactly [DONE].
    virtual void on_event_end(bool /*done*/) noexcept {}
};

class ResponseParser {
public:
    ResponseParser() noexcept;
    ResponseParser(const ResponseParser&) = delete;
    ResponseParser& operator=(const ResponseParser&) = delete;

    // Prepare for the response to the next request. head_request: the request was HEAD, so
    // the response has no body whatever its headers say.
    void reset(bool head_request = false) noexcept;
    void set_sink(ResponseSink* sink) noexcept { _sink = sink; }

    // Feed one segment. Returns <0 on error (-(int)error()), 0 when the response continues, or
    // when it is complete the number of bytes of this segment that belong to it.
    int64_t feed(const uint8_t* seg, size_t len) noexcept;
    // The backend closed its side. Completes a close-delimited response (returns 1); returns
    // 1 as well if the response was already complete; otherwise Error::TRUNCATED.
    int64_t finish() noexcept;

    Error error() const noexcept { return _error; }
    bool first_byte() const noexcept { return _first_byte; }
    bool headers_complete() const noexcept { return _head_done; }
    bool complete() const noexcept { return _complete; }
    uint16_t status() const noexcept { return _status; }
    uint32_t interim_count() const noexcept { return _interim; }  // 1xx responses skipped
    bool event_stream() const noexcept { return _event_stream; }
    bool chunked() const noexcept { return _chunked; }
    bool close_delimited() const noexcept { return _close_delimited; }
    bool has_content_length() const noexcept { return _has_cl; }
    uint64_t content_length() const noexcept { return _content_length; }
    bool keep_alive() const noexcept { return _keep_alive; }  // valid once complete
    uint64_t body_bytes() const noexcept { return _body_bytes; }  // decoded
    uint32_t events() const noexcept { return _events; }       // SSE events with data
    bool done_seen() const noexcept { return _done; }          // data: [DONE] seen

private:
    static const http_parser_settings& settings() noexcept;
    static int cb_message_begin(http_parser*);
    static int cb_header_field(http_parser*, const char*, size_t);
    static int cb_header_value(http_parser*, const char*, size_t);
    static int cb_headers_complete(http_parser*);
    static int cb_body(http_parser*, const char*, size_t);
    static int cb_message_complete(http_parser*);
    int64_t fail(Error e) noexcept;
    void sse_feed(const uint8_t* p, size_t n) noexcept;
    void sse_end_line() noexcept;

    http_parser _p;
    ResponseSink* _sink = nullptr;
    ResponseSink _null_sink;
    bool _head_request = false;
    Error _error = Error::NONE;
    bool _first_byte = false;
    bool _head_done = false;
    bool _complete = false;
    bool _interim_msg = false;
    bool _paused_interim = false;
    uint8_t _sl_pos = 0;  // bytes of the current status line checked
    uint16_t _status = 0;
    uint32_t _interim = 0;
    bool _event_stream = false;
    bool _chunked = false;
    bool _close_delimited = false;
    bool _has_cl = false;
    uint64_t _content_length = 0;
    bool _keep_alive = false;
    uint64_t _body_bytes = 0;

    // Header name/value accumulation across segments (only the headers we act on).
    char _name[24];
    uint8_t _name_len = 0;
    bool _name_overflow = false;
    bool _in_value = false;
    char _ctype[40];
    uint8_t _ctype_len = 0;
    bool _ctype_capture = false;

    // SSE state.
    enum class Sse : uint8_t { LINE_START, FIELD, VALUE_START, VALUE, IGNORE };
    Sse _sse = Sse::LINE_START;
    bool _skip_lf = false;
    char _field[8];
    uint8_t _field_len = 0;
    bool _field_is_data = false;
    bool _event_has_data = false;
    uint32_t _data_len = 0;
    char _data_head[8];
    uint32_t _events = 0;
    bool _done = false;
};

}  // namespace tlb::http
