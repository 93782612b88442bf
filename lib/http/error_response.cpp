#include "http/error_response.hpp"

#include <cstring>

namespace tlb::http {

const char* reason_phrase(uint16_t status) noexcept {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "Unknown";
    }
}

const char* error_type_for(uint16_t status) noexcept {
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

namespace {

struct Writer {
    uint8_t* p;
    uint8_t* end;
    bool ok = true;
    void put(std::string_view s) noexcept {
        if (!ok || static_cast<size_t>(end - p) < s.size()) { ok = false; return; }
        std::memcpy(p, s.data(), s.size());
        p += s.size();
    }
    void put_char(char c) noexcept {
        if (!ok || p == end) { ok = false; return; }
        *p++ = static_cast<uint8_t>(c);
    }
    void put_uint(uint64_t v) noexcept {
        char tmp[20];
        int n = 0;
        do { tmp[n++] = static_cast<char>('0' + v % 10); v /= 10; } while (v);
        while (n) put_char(tmp[--n]);
    }
    // JSON string contents: quote, backslash and control characters escaped; other bytes as is
    // (messages are UTF-8 from our own tables or from field names we parsed).
    void put_json(std::string_view s) noexcept {
        static const char HEX[] = "0123456789abcdef";
        for (char ch : s) {
            auto c = static_cast<uint8_t>(ch);
            if (c == '"' || c == '\\') { put_char('\\'); put_char(ch); }
            else if (c == '\n') put("\\n");
            else if (c == '\r') put("\\r");
            else if (c == '\t') put("\\t");
            else if (c < 0x20 || c == 0x7f) {
                put("\\u00");
                put_char(HEX[c >> 4]);
                put_char(HEX[c & 15]);
            } else put_char(ch);
        }
    }
    void put_json_or_null(std::string_view s) noexcept {
        if (s.empty()) { put("null"); return; }
        put_char('"');
        put_json(s);
        put_char('"');
    }
};

}  // namespace

int64_t build_error_response(uint8_t* out, size_t cap, uint16_t status, const ErrorBody& body,
                             bool keep_alive) noexcept {
    if (out == nullptr) return -1;
    // Body first, at the end of the buffer we will not need: we write the body into its final
    // place after the headers once its length is known, so render it to a scratch area first.
    // Two passes over a small body are cheaper than reserving a maximum Content-Length width.
    uint8_t scratch[1024];
    Writer b{scratch, scratch + sizeof(scratch)};
    b.put("{\"error\":{\"message\":\"");
    b.put_json(body.message);
    b.put("\",\"type\":\"");
    b.put_json(body.type.empty() ? std::string_view(error_type_for(status)) : body.type);
    b.put("\",\"param\":");
    b.put_json_or_null(body.param);
    b.put(",\"code\":");
    b.put_json_or_null(body.code);
    b.put("}}\n");
    if (!b.ok) return -1;
    size_t body_len = static_cast<size_t>(b.p - scratch);

    Writer w{out, out + cap};
    w.put("HTTP/1.1 ");
    w.put_uint(status);
    w.put_char(' ');
    w.put(reason_phrase(status));
    w.put("\r\nContent-Type: application/json\r\nContent-Length: ");
    w.put_uint(body_len);
    w.put(keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
    w.put(std::string_view(reinterpret_cast<const char*>(scratch), body_len));
    if (!w.ok) return -1;
    return w.p - out;
}

int64_t build_error_response(uint8_t* out, size_t cap, Error e) noexcept {
    ErrorBody body{error_message(e), {}, error_name(e), {}};
    return build_error_response(out, cap, error_status(e), body, false);
}

}  // namespace tlb::http
