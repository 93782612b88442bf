// Incremental HTTP/1.1 request framing for the client leg.
//
// Decision (see docs/http.md): tokenization is done by the Debian http-parser library (2.9.4,
// joyent/nodejs http-parser), the same state machine Node.js used for a decade; its known
// leniencies (obs-fold, bare LF line ends, chunk extensions that swallow anything up to CR, a
// request without Host, HTTP/0.9) are closed by our own checks on top of it:
//   * before any header byte reaches http-parser, our own line scanner walks the header block
//     (and later the trailer block): bare CR or bare LF, obs-fold, control characters, header
//     byte and header count limits. Only a complete, validated header block is handed to the
//     library, so it never sees a partial header line and every header arrives in one callback.
//   * the parser is paused at every chunk-size line so the raw line can be checked (hex digits,
//     then only a well-formed extension).
//   * semantic checks in on_headers_complete: version, Host, Transfer-Encoding codings, body
//     limit, Expect.
// HAProxy's h1 parser and Envoy's balsa were the models for which leniencies matter (request
// smuggling: CL+TE, duplicate CL, obs-fold, bare LF in chunk lines).
//
// Decision (fast path, see docs/http.md): http-parser is bypassed for requests it has nothing to
// judge in. Once the line scanner has validated the whole header block it has every field's span
// already; if the request line is one of GET HEAD POST PUT DELETE OPTIONS PATCH (spelled exactly)
// with an origin-form target, there is at most one Content-Length of 1-18 plain digits,
// Connection is absent or exactly keep-alive/close, and there is no Transfer-Encoding, Upgrade or
// Proxy-Connection (nor a field name starting with "transfer-encoding", which http-parser treats
// as one), the request is framed here: the same on_headers_complete checks run on facts the
// scanner gathered, and the Content-Length body is only counted. Everything else (chunked,
// absolute-form, other methods, any Content-Length or Connection value http-parser might judge
// differently) goes through http-parser exactly as before, so every rejection keeps its status
// and message. Both paths must give identical results: unit tests compare them on hand-picked and
// mutated requests fed whole and in pieces; set_fast_path(false) forces the library path.
// Benchmark (perf/micro/understand_bench BM_Stage_Framing/4096: ~250-byte header block, 4 KB
// Content-Length body, medians of 9 repetitions, old and new builds run alternately on the shared
// dev VM): 0.64-1.06 us before, 0.15-0.22 us after (about 4x); callgrind: 9.8k instructions per
// request before, 2.5k after. http-parser itself was ~60% of the old cost (one state-machine step
// per header byte); the scanner now checks each line with 16-byte SSE2 compares (scan.hpp)
// instead of memchr plus a byte loop. http_bench BM_RequestContentLength vs
// BM_RequestContentLengthViaHttpParser shows the same on its own request.
//
// Buffer contract: the caller owns one contiguous buffer holding the request from its first
// byte, appends bytes as TCP delivers them and calls parse(buf, len) with the total length so
// far. Spans are offsets into that buffer. A chunked body is de-chunked either in place (the
// decoded body then starts at headers_end(); raw chunk framing is destroyed, so the request must
// be re-framed with Content-Length when forwarded) or into a caller buffer given with
// set_body_buffer(). Content-Length bodies are never copied. No allocation, no exceptions, no
// syscalls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <http_parser.h>

namespace tlb::http {

// Mapped from config by the data plane.
struct Limits {
    uint32_t max_header_bytes = 16384;  // request line + headers + final CRLF
    uint32_t max_headers = 64;
    uint64_t max_body_bytes = 8u << 20;  // decoded body
};

// Storage for header spans is fixed; Limits::max_headers is clamped to it.
constexpr uint32_t MAX_HEADERS_CAP = 256;

// Why a message was rejected. Each maps to one HTTP status (error_status) and one client-facing
// sentence (error_message); the data plane counts them by name (error_name).
enum class Error : uint8_t {
    NONE = 0,
    BAD_REQUEST_LINE,      // 400
    BAD_METHOD,            // 400
    BAD_TARGET,            // 400
    BAD_VERSION,           // 400 (malformed, or HTTP/0.9)
    VERSION_NOT_SUPPORTED, // 505 (well-formed HTTP/2.0 and later on an HTTP/1 connection)
    BAD_HEADER,            // 400 (invalid header name or value syntax)
    BARE_CR_LF,            // 400 (line end that is not CRLF)
    OBS_FOLD,              // 400
    CONTROL_CHAR,          // 400
    MISSING_HOST,          // 400 (HTTP/1.1 without Host)
    DUPLICATE_HOST,        // 400
    CL_AND_TE,             // 400
    DUPLICATE_CL,          // 400
    BAD_CL,                // 400
    BAD_TE,                // 400 (chunked not last, or chunked twice)
    TE_UNSUPPORTED,        // 501 (a transfer coding other than chunked)
    BAD_CHUNK,             // 400 (chunk size line or chunk framing)
    EXPECTATION_FAILED,    // 417 (Expect other than 100-continue)
    UPGRADE_UNSUPPORTED,   // 400 (CONNECT)
    HEADERS_TOO_LARGE,     // 431
    TOO_MANY_HEADERS,      // 431
    BODY_TOO_LARGE,        // 413
    PROTOCOL,              // 400 (anything else http-parser refused)
    BAD_STATUS_LINE,       // response side: 502
    RESPONSE_TOO_LARGE,    // response side: 502
    TRUNCATED,             // response side: connection closed before the end
    COUNT_
};

uint16_t error_status(Error e) noexcept;
const char* error_name(Error e) noexcept;     // snake_case, for counters
const char* error_message(Error e) noexcept;  // one sentence for the client

enum class Method : uint8_t { OTHER = 0, GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH };

struct Span {
    uint32_t off = 0;
    uint32_t len = 0;
};

struct Header {
    Span name;
    Span value;  // leading and trailing whitespace trimmed
};

class RequestParser {
public:
    RequestParser() noexcept;
    RequestParser(const RequestParser&) = delete;
    RequestParser& operator=(const RequestParser&) = delete;

    void set_limits(const Limits& l) noexcept;
    // Where a chunked body is decoded; nullptr (the default) decodes in place.
    void set_body_buffer(uint8_t* out, size_t cap) noexcept;
    // Ready for the next request (keep-alive); limits and body buffer are kept.
    void reset() noexcept;
    // On (the default): requests the fast path can frame never reach http-parser (see the top of
    // this file). Off: every request goes through http-parser. Both must give identical results;
    // the switch exists so tests and benchmarks can compare them. Kept across reset().
    void set_fast_path(bool on) noexcept { _fast_enabled = on; }
    // Whether this request's headers were framed on the fast path (valid once headers_complete()).
    bool fast_framed() const noexcept { return _fast; }

    // buf: the request from its first byte; len: bytes received so far (only ever grows).
    // Returns <0 on error (-(int)error()), 0 when more bytes are needed, or when the request is
    // complete the number of bytes of buf that belong to it (anything after is the next
    // pipelined request). After an error or completion, call reset() before the next request.
    int64_t parse(uint8_t* buf, size_t len) noexcept;

    Error error() const noexcept { return _error; }
    uint16_t error_status_code() const noexcept { return error_status(_error); }
    bool headers_complete() const noexcept { return _headers_done; }
    bool complete() const noexcept { return _complete; }

    // Valid once headers_complete().
    Method method() const noexcept { return _method; }
    Span method_span() const noexcept { return _method_span; }
    Span target() const noexcept { return _target; }
    Span path() const noexcept { return _path; }  // target without query, origin-form
    uint8_t version_minor() const noexcept { return _minor; }  // HTTP/1.<minor>
    bool keep_alive() const noexcept { return _keep_alive; }
    bool chunked() const noexcept { return _chunked; }
    bool has_content_length() const noexcept { return _has_cl; }
    uint64_t content_length() const noexcept { return _content_length; }
    // The client sent Expect: 100-continue and the body has not started: the data plane should
    // answer CONTINUE_RESPONSE once it decides to accept the body.
    bool expect_continue() const noexcept { return _expect_continue; }
    uint32_t headers_end() const noexcept { return _headers_end; }  // offset of the first body byte
    uint32_t header_count() const noexcept { return _nheaders; }
    const Header* headers() const noexcept { return _headers; }
    Span host() const noexcept { return _host; }
    Span content_type() const noexcept { return _content_type; }
    Span authorization() const noexcept { return _authorization; }
    // First header with this (case-insensitive) name; len==0 span and false when absent.
    bool find_header(const uint8_t* buf, std::string_view name, Span& out) const noexcept;

    // Valid once complete(). For a chunked body with a body buffer, body_data() points into it;
    // otherwise into the request buffer passed to parse().
    const uint8_t* body_data(const uint8_t* buf) const noexcept {
        return _body_in_out ? _body_out : buf + _body_off;
    }
    uint8_t* body_data(uint8_t* buf) const noexcept { return _body_in_out ? _body_out : buf + _body_off; }
    uint64_t body_length() const noexcept { return _body_len; }

    static constexpr std::string_view CONTINUE_RESPONSE = "HTTP/1.1 100 Continue\r\n\r\n";

private:
    // What on_headers_complete needs from the request line and the framing headers; filled from
    // http-parser's state on the library path and by fast_headers_() on the fast path.
    struct HeadFacts {
        unsigned major = 1;
        unsigned minor = 1;
        unsigned method = 0;                   // enum http_method
        uint64_t content_length = UINT64_MAX;  // http-parser's "none" value
        bool keep_alive = true;
    };

    // What on_headers_complete checks, gathered from the header fields (values trimmed): by the
    // block scanner as it goes, or from http-parser's callbacks on the library path.
    struct HeaderSummary {
        uint32_t hosts = 0, cls = 0, tes = 0, nte = 0;
        Span te[8];
        Span host, content_type, authorization, expect;
        bool has_expect = false;
    };

    // Our line scanner over the header block (or the trailer block).
    int scan_block(const uint8_t* buf, size_t len) noexcept;
    int line_done_(const uint8_t* buf, uint32_t cr) noexcept;
    void header_line_(const uint8_t* buf, uint32_t start, uint32_t colon, uint32_t cr) noexcept;
    int64_t fail(Error e) noexcept;
    int64_t feed_parser(uint8_t* buf, size_t upto) noexcept;
    bool check_chunk_line(const uint8_t* buf, uint32_t begin, uint32_t end) noexcept;
    int on_headers_complete_(const HeadFacts& f) noexcept;
    bool fast_headers_(const uint8_t* buf) noexcept;
    int64_t fast_body_(size_t len) noexcept;

    static const http_parser_settings& settings() noexcept;
    static int cb_url(http_parser*, const char*, size_t);
    static int cb_header_field(http_parser*, const char*, size_t);
    static int cb_header_value(http_parser*, const char*, size_t);
    static int cb_headers_complete(http_parser*);
    static int cb_body(http_parser*, const char*, size_t);
    static int cb_message_complete(http_parser*);
    static int cb_chunk_header(http_parser*);

    http_parser _p;
    Limits _limits;
    uint8_t* _body_out = nullptr;
    size_t _body_out_cap = 0;
    bool _fast_enabled = true;  // kept across reset(), like the limits

    uint8_t* _buf = nullptr;  // valid during parse() only
    size_t _fed = 0;          // bytes handed to http-parser
    Error _error = Error::NONE;
    Error _cb_error = Error::NONE;

    // Block scanner state.
    bool _in_trailers = false;
    bool _block_done = false;
    bool _prev_cr = false;
    bool _leading = true;  // still skipping empty lines before the request line
    uint32_t _scan_pos = 0;
    uint32_t _line_start = 0;
    uint32_t _lines = 0;
    uint32_t _block_end = 0;
    uint32_t _trailer_start = 0;

    bool _headers_done = false;
    bool _complete = false;
    bool _paused_chunk = false;
    bool _in_header_value = false;
    bool _fast = false;      // this request's headers were framed without http-parser
    uint8_t _vminor = 1;     // the version's minor digit, from the request line
    uint32_t _target_q = 0;  // end of the target's path part: its first '?' or '#', else its end
    // Gathered by the block scanner for the fast path.
    bool _fp_ok = true;        // nothing seen so far that needs http-parser
    bool _fp_conn_close = false;
    bool _fp_conn_keep_alive = false;
    uint64_t _fp_cl = UINT64_MAX;
    HeaderSummary _sum;

    Method _method = Method::OTHER;
    Span _method_span;
    Span _target;
    Span _path;
    uint8_t _minor = 1;
    bool _keep_alive = true;
    bool _chunked = false;
    bool _has_cl = false;
    bool _expect_continue = false;
    uint64_t _content_length = 0;
    uint32_t _headers_end = 0;
    uint32_t _nheaders = 0;
    uint32_t _scan_headers = 0;  // fields the block scanner has put in _headers
    Header _headers[MAX_HEADERS_CAP];
    Span _host;
    Span _content_type;
    Span _authorization;

    // Body.
    bool _body_in_out = false;
    uint64_t _body_off = 0;
    uint64_t _body_len = 0;
    uint32_t _chunk_line_start = 0;  // raw offset where the next chunk-size line begins
    uint64_t _chunk_data_end = 0;    // raw offset after the last chunk data byte
};

}  // namespace tlb::http
