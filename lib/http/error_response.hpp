// Error responses the appliance produces itself (400, 404, 413, 429, 431, 503, 504, ...): a
// complete HTTP/1.1 response with an OpenAI-style JSON body, written into a caller buffer so the
// data plane can send it from an mbuf without allocating:
//   HTTP/1.1 413 Payload Too Large
//   Content-Type: application/json
//   Content-Length: 97
//   Connection: close
//
//   {"error":{"message":"Request body too large.","type":"invalid_request_error","param":null,"code":"body_too_large"}}
// The shape follows the OpenAI API's error object (message, type, param, code) so SDK clients
// surface the message instead of a decoding error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/request.hpp"

namespace tlb::http {

const char* reason_phrase(uint16_t status) noexcept;
// OpenAI error type for a status: invalid_request_error (most 4xx), authentication_error (401),
// permission_error (403), not_found_error (404), rate_limit_error (429), server_error (5xx).
const char* error_type_for(uint16_t status) noexcept;

struct ErrorBody {
    std::string_view message;
    std::string_view type;   // empty: error_type_for(status)
    std::string_view code;   // empty: JSON null
    std::string_view param;  // empty: JSON null
};

// Returns the bytes written, or -1 when cap is too small (nothing useful is left in out then).
// keep_alive selects "Connection: keep-alive" or "Connection: close".
int64_t build_error_response(uint8_t* out, size_t cap, uint16_t status, const ErrorBody& body,
                             bool keep_alive) noexcept;
// For a framing error: status, message and code (the error's name) come from e.
// Framing errors leave the byte stream in an unknown state, so these always close.
int64_t build_error_response(uint8_t* out, size_t cap, Error e) noexcept;

}  // namespace tlb::http
