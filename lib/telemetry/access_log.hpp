// Access log: one JSON line per request, written by a control-plane thread from the records the
// workers queue (worker_telemetry.hpp). The worker never formats text or touches a file: it copies
// a 64-byte POD into an SPSC ring (or drops and counts it when the ring is full).
//
// Line format (keys always present, in this order; absent values are null):
//   {"time":"2026-11-23T22:10:00.123456Z","client":"10.10.0.2:41234","worker":0,
//    "model":"llama-3-8b","est_prompt_tokens":812,"prompt_tokens":798,"completion_tokens":64,
//    "tags":["code"],"policy":"token_aware","backend":"gpu1","reason":"lowest_ttft",
//    "attempts":1,"status":200,"ttft_s":0.081234,"e2e_s":1.502311,"stream":true,"aborted":false,
//    "local":false}
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "telemetry/worker_telemetry.hpp"

namespace tlb::telemetry {

// Names for the ids in a record (resolved on the control plane from the scoreboard / config).
struct NameTables {
    std::vector<std::string> models;    // by scoreboard model id
    std::vector<std::string> backends;  // by scoreboard backend index
    std::vector<std::string> tags;      // by tag bit
};

void append_json_string(std::string& out, std::string_view s);  // quoted, escaped (RFC 8259)
void append_iso8601_utc(std::string& out, int64_t unix_us);
// Appends one JSON object and a '\n'.
void format_access_json(std::string& out, const AccessRecord& r, const NameTables& names,
                        int64_t unix_offset_us);

// Destination of the log: "" off, "-" stdout, else a file opened for append.
class AccessLogFile {
public:
    ~AccessLogFile();
    bool open(const std::string& target, std::string* err);
    bool enabled() const { return _f != nullptr; }
    void write(const std::string& text);  // buffered; flush() makes it visible
    void flush();
    uint64_t write_errors() const { return _errors; }

private:
    FILE* _f = nullptr;
    bool _owned = false;
    uint64_t _errors = 0;
};

}  // namespace tlb::telemetry
