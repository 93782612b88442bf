#include "telemetry/access_log.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "policy/policy.hpp"

namespace tlb::telemetry {

const char* status_class_name(uint8_t c) {
    static const char* const N[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    return c < 6 ? N[c] : "none";
}

void append_json_string(std::string& out, std::string_view s) {
    static const char HEX[] = "0123456789abcdef";
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += HEX[c >> 4];
                out += HEX[c & 15];
            } else {
                out += char(c);
            }
        }
    }
    out += '"';
}

void append_iso8601_utc(std::string& out, int64_t unix_us) {
    time_t secs = time_t(unix_us / 1000000);
    int64_t frac = unix_us % 1000000;
    if (frac < 0) { frac += 1000000; --secs; }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, long(frac));
    out += buf;
}

static void append_uint(std::string& out, uint64_t v) { out += std::to_string(v); }

static void append_seconds(std::string& out, uint32_t us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6f", us * 1e-6);
    out += buf;
}

static void append_name(std::string& out, const std::vector<std::string>& table, uint32_t id) {
    if (id < table.size()) append_json_string(out, table[id]);
    else {
        out += '"';
        out += '#';
        out += std::to_string(id);
        out += '"';
    }
}

void format_access_json(std::string& out, const AccessRecord& r, const NameTables& names,
                        int64_t unix_offset_us) {
    bool usage = r.flags & AccessRecord::FLAG_USAGE;
    bool routed = r.flags & AccessRecord::FLAG_ROUTED;
    out += "{\"time\":\"";
    append_iso8601_utc(out, int64_t(r.t_request_us) + unix_offset_us);
    out += "\",\"client\":\"";
    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &r.client_ip, ip, sizeof ip);
    out += ip;
    out += ':';
    append_uint(out, ntohs(r.client_port));
    out += "\",\"worker\":";
    append_uint(out, r.worker);
    out += ",\"model\":";
    if (r.model == NO_MODEL) out += "null";
    else append_name(out, names.models, r.model);
    out += ",\"est_prompt_tokens\":";
    append_uint(out, r.estimated_prompt_tokens);
    out += ",\"prompt_tokens\":";
    if (usage) append_uint(out, r.prompt_tokens); else out += "null";
    out += ",\"completion_tokens\":";
    if (usage) append_uint(out, r.completion_tokens); else out += "null";
    out += ",\"tags\":[";
    bool first = true;
    for (uint64_t t = r.tags; t; t &= t - 1) {
        if (!first) out += ',';
        first = false;
        append_name(out, names.tags, uint32_t(__builtin_ctzll(t)));
    }
    out += "],\"policy\":";
    append_json_string(out, policy::kind_name(policy::Kind(r.policy)));
    out += ",\"backend\":";
    if (r.backend == NO_BACKEND) out += "null";
    else append_name(out, names.backends, r.backend);
    out += ",\"reason\":";
    if (routed) append_json_string(out, policy::reason_text(policy::Reason(r.reason)));
    else out += "null";
    out += ",\"attempts\":";
    append_uint(out, r.attempts);
    out += ",\"status\":";
    if (r.status) append_uint(out, r.status); else out += "null";
    out += ",\"ttft_s\":";
    if (r.ttft_us) append_seconds(out, r.ttft_us); else out += "null";
    out += ",\"e2e_s\":";
    if (r.e2e_us) append_seconds(out, r.e2e_us); else out += "null";
    out += ",\"stream\":";
    out += (r.flags & AccessRecord::FLAG_STREAM) ? "true" : "false";
    out += ",\"aborted\":";
    out += (r.flags & AccessRecord::FLAG_ABORTED) ? "true" : "false";
    out += ",\"local\":";
    out += (r.flags & AccessRecord::FLAG_LOCAL) ? "true" : "false";
    out += "}\n";
}

AccessLogFile::~AccessLogFile() {
    if (_f) std::fflush(_f);
    if (_owned && _f) std::fclose(_f);
}

bool AccessLogFile::open(const std::string& target, std::string* err) {
    if (target.empty()) return true;
    if (target == "-") {
        _f = stdout;
        return true;
    }
    _f = std::fopen(target.c_str(), "a");
    if (!_f) {
        if (err) *err = "access log " + target + ": " + std::strerror(errno);
        return false;
    }
    _owned = true;
    return true;
}

void AccessLogFile::write(const std::string& text) {
    if (_f && std::fwrite(text.data(), 1, text.size(), _f) != text.size()) ++_errors;
}

void AccessLogFile::flush() {
    if (_f && std::fflush(_f) != 0) ++_errors;
}

}  // namespace tlb::telemetry
