#include "http/response.hpp"

#include <cstring>

#include "http/util.hpp"

namespace tlb::http {

ResponseParser::ResponseParser() noexcept { reset(false); }

void ResponseParser::reset(bool head_request) noexcept {
    http_parser_init(&_p, HTTP_RESPONSE);
    _p.data = this;
    _head_request = head_request;
    _error = Error::NONE;
    _first_byte = false;
    _head_done = false;
    _complete = false;
    _interim_msg = false;
    _paused_interim = false;
    _sl_pos = 0;
    _status = 0;
    _interim = 0;
    _event_stream = false;
    _chunked = false;
    _close_delimited = false;
    _has_cl = false;
    _content_length = 0;
    _keep_alive = false;
    _body_bytes = 0;
    _name_len = 0;
    _name_overflow = false;
    _in_value = false;
    _ctype_len = 0;
    _ctype_capture = false;
    _sse = Sse::LINE_START;
    _skip_lf = false;
    _field_len = 0;
    _field_is_data = false;
    _event_has_data = false;
    _data_len = 0;
    _events = 0;
    _done = false;
}

int64_t ResponseParser::fail(Error e) noexcept {
    _error = e;
    return -static_cast<int64_t>(e);
}

int64_t ResponseParser::feed(const uint8_t* seg, size_t len) noexcept {
    if (_error != Error::NONE) return -static_cast<int64_t>(_error);
    if (_complete) return 0;
    if (len == 0) return 0;
    _first_byte = true;
    size_t off = 0;
    for (;;) {
        // The Debian http-parser build is not strict about the "HTTP/" literal, so the first
        // bytes of every status line are checked here.
        for (size_t i = off; _sl_pos < 9 && i < len; ++i, ++_sl_pos) {
            uint8_t c = seg[i];
            bool ok = _sl_pos < 7 ? c == static_cast<uint8_t>("HTTP/1."[_sl_pos])
                    : _sl_pos == 7 ? (c == '0' || c == '1') : c == ' ';
            if (!ok) return fail(Error::BAD_STATUS_LINE);
        }
        size_t n = http_parser_execute(&_p, &settings(), reinterpret_cast<const char*>(seg + off), len - off);
        off += n;
        auto err = static_cast<http_errno>(_p.http_errno);
        if (err == HPE_PAUSED) {
            if (_complete) return off == 0 ? 1 : static_cast<int64_t>(off);
            if (_paused_interim) {  // a 1xx ended; the final response starts at seg[off]
                _paused_interim = false;
                _sl_pos = 0;
                http_parser_pause(&_p, 0);
                if (off < len) continue;
                return 0;
            }
            return fail(Error::PROTOCOL);
        }
        if (err != HPE_OK) {
            switch (err) {
            case HPE_INVALID_STATUS: case HPE_INVALID_CONSTANT: case HPE_INVALID_VERSION:
                return fail(Error::BAD_STATUS_LINE);
            case HPE_HEADER_OVERFLOW: return fail(Error::RESPONSE_TOO_LARGE);
            case HPE_INVALID_CHUNK_SIZE: return fail(Error::BAD_CHUNK);
            case HPE_INVALID_CONTENT_LENGTH: return fail(_chunked ? Error::BAD_CHUNK : Error::BAD_CL);
            case HPE_UNEXPECTED_CONTENT_LENGTH: return fail(Error::DUPLICATE_CL);
            default: return fail(Error::PROTOCOL);
            }
        }
        return 0;
    }
}

int64_t ResponseParser::finish() noexcept {
    if (_error != Error::NONE) return -static_cast<int64_t>(_error);
    if (_complete) return 1;
    if (_head_done && _close_delimited) {
        http_parser_execute(&_p, &settings(), nullptr, 0);
        if (_complete) return 1;
    }
    return fail(Error::TRUNCATED);
}

int ResponseParser::cb_message_begin(http_parser* p) {
    auto* self = static_cast<ResponseParser*>(p->data);
    self->_name_len = 0;
    self->_name_overflow = false;
    self->_in_value = false;
    self->_ctype_len = 0;
    self->_ctype_capture = false;
    self->_interim_msg = false;
    return 0;
}

int ResponseParser::cb_header_field(http_parser* p, const char* at, size_t n) {
    auto* self = static_cast<ResponseParser*>(p->data);
    if (self->_head_done) return 0;  // trailers
    if (self->_in_value) {  // a new field begins
        self->_in_value = false;
        self->_name_len = 0;
        self->_name_overflow = false;
        self->_ctype_capture = false;
    }
    for (size_t i = 0; i < n; ++i) {
        if (self->_name_len >= sizeof(self->_name)) { self->_name_overflow = true; break; }
        self->_name[self->_name_len++] = static_cast<char>(ascii_lower(static_cast<uint8_t>(at[i])));
    }
    return 0;
}

int ResponseParser::cb_header_value(http_parser* p, const char* at, size_t n) {
    auto* self = static_cast<ResponseParser*>(p->data);
    if (self->_head_done) return 0;
    if (!self->_in_value) {
        self->_in_value = true;
        self->_ctype_capture = !self->_name_overflow &&
            std::string_view(self->_name, self->_name_len) == "content-type";
        if (self->_ctype_capture) self->_ctype_len = 0;
    }
    if (self->_ctype_capture) {
        for (size_t i = 0; i < n && self->_ctype_len < sizeof(self->_ctype); ++i)
            self->_ctype[self->_ctype_len++] = static_cast<char>(ascii_lower(static_cast<uint8_t>(at[i])));
    }
    return 0;
}

int ResponseParser::cb_headers_complete(http_parser* p) {
    auto* self = static_cast<ResponseParser*>(p->data);
    self->_in_value = false;
    uint16_t status = static_cast<uint16_t>(p->status_code);
    if (status >= 100 && status < 200) {
        // 101 would switch protocols under us; we never ask for an upgrade, so refuse it.
        if (status == 101) return -1;
        self->_interim_msg = true;
        ++self->_interim;
        return 0;
    }
    self->_status = status;
    self->_head_done = true;
    // "text/event-stream" possibly followed by parameters.
    std::string_view ct(self->_ctype, self->_ctype_len);
    constexpr std::string_view ES = "text/event-stream";
    self->_event_stream = ct.size() >= ES.size() && ct.substr(0, ES.size()) == ES &&
        (ct.size() == ES.size() || ct[ES.size()] == ';' || ct[ES.size()] == ' ');
    bool no_body = self->_head_request || status == 204 || status == 304;
    self->_chunked = !no_body && (p->flags & F_CHUNKED);
    self->_has_cl = !no_body && !self->_chunked && !p->uses_transfer_encoding &&
        (p->flags & F_CONTENTLENGTH);
    self->_content_length = self->_has_cl ? p->content_length : 0;
    // RFC 9112 6.3: no chunked final coding and no Content-Length -> read until close.
    self->_close_delimited = !no_body && !self->_chunked && !self->_has_cl;
    ResponseSink* sink = self->_sink ? self->_sink : &self->_null_sink;
    sink->on_head(status, self->_event_stream);
    return no_body ? 1 : 0;
}

int ResponseParser::cb_body(http_parser* p, const char* at, size_t n) {
    auto* self = static_cast<ResponseParser*>(p->data);
    if (!self->_head_done) return 0;
    self->_body_bytes += n;
    auto* b = reinterpret_cast<const uint8_t*>(at);
    if (self->_event_stream) {
        self->sse_feed(b, n);
    } else {
        ResponseSink* sink = self->_sink ? self->_sink : &self->_null_sink;
        sink->on_body(b, n);
    }
    return 0;
}

int ResponseParser::cb_message_complete(http_parser* p) {
    auto* self = static_cast<ResponseParser*>(p->data);
    if (self->_interim_msg) {
        // Pause so feed() knows where the final response's status line begins.
        self->_interim_msg = false;
        self->_paused_interim = true;
        http_parser_pause(p, 1);
        return 0;
    }
    self->_complete = true;
    self->_keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

void ResponseParser::sse_end_line() noexcept {
    ResponseSink* sink = _sink ? _sink : &_null_sink;
    if (_sse == Sse::LINE_START) {
        // Empty line: dispatch the event (W3C EventSource "dispatch the event").
        if (_event_has_data) {
            bool done = _data_len == 6 && std::memcmp(_data_head, "[DONE]", 6) == 0;
            _done = _done || done;
            ++_events;
            sink->on_event_end(done);
        }
        _event_has_data = false;
        _data_len = 0;
        return;
    }
    if (_sse == Sse::FIELD) {
        // A line with no colon names a field with an empty value.
        if (_field_len == 4 && std::memcmp(_field, "data", 4) == 0) {
            if (_event_has_data) {
                static const uint8_t NL = '\n';
                sink->on_event_data(&NL, 1);
                if (_data_len < sizeof(_data_head)) _data_head[_data_len] = '\n';
                ++_data_len;
            }
            _event_has_data = true;
        }
    }
    _sse = Sse::LINE_START;
    _field_len = 0;
    _field_is_data = false;
}

void ResponseParser::sse_feed(const uint8_t* p, size_t n) noexcept {
    ResponseSink* sink = _sink ? _sink : &_null_sink;
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (_skip_lf) {
            _skip_lf = false;
            if (c == '\n') { ++i; continue; }
        }
        if (c == '\r' || c == '\n') {
            sse_end_line();
            _skip_lf = c == '\r';
            ++i;
            continue;
        }
        switch (_sse) {
        case Sse::LINE_START:
            if (c == ':') { _sse = Sse::IGNORE; ++i; break; }  // comment line
            _sse = Sse::FIELD;
            _field_len = 0;
            [[fallthrough]];
        case Sse::FIELD:
            if (c == ':') {
                _field_is_data = _field_len == 4 && std::memcmp(_field, "data", 4) == 0;
                _sse = _field_is_data ? Sse::VALUE_START : Sse::IGNORE;
                if (_field_is_data) {
                    if (_event_has_data) {
                        static const uint8_t NL = '\n';
                        sink->on_event_data(&NL, 1);
                        if (_data_len < sizeof(_data_head)) _data_head[_data_len] = '\n';
                        ++_data_len;
                    }
                    _event_has_data = true;
                }
            } else if (_field_len < sizeof(_field)) {
                _field[_field_len++] = static_cast<char>(c);
            } else {
                _field_len = sizeof(_field);  // too long to be "data"; keep as a non-data field
                _field[0] = 0;
            }
            ++i;
            break;
        case Sse::VALUE_START:
            _sse = Sse::VALUE;
            if (c == ' ') { ++i; break; }  // one leading space is not part of the value
            [[fallthrough]];
        case Sse::VALUE: {
            size_t j = i;
            while (j < n && p[j] != '\r' && p[j] != '\n') ++j;
            for (size_t k = i; k < j && _data_len + (k - i) < sizeof(_data_head); ++k)
                _data_head[_data_len + (k - i)] = static_cast<char>(p[k]);
            _data_len += static_cast<uint32_t>(j - i);
            sink->on_event_data(p + i, j - i);
            i = j;
            break;
        }
        case Sse::IGNORE: {
            while (i < n && p[i] != '\r' && p[i] != '\n') ++i;
            break;
        }
        }
    }
}

const http_parser_settings& ResponseParser::settings() noexcept {
    static const http_parser_settings s = {
        &cb_message_begin, nullptr, nullptr, &cb_header_field, &cb_header_value,
        &cb_headers_complete, &cb_body, &cb_message_complete, nullptr, nullptr,
    };
    return s;
}

}  // namespace tlb::http
