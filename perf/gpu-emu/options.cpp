#include "options.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace tlb::gpuemu {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep)) out.push_back(cur);
  return out;
}

bool to_double(const std::string& s, double& v) {
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return !s.empty() && end && *end == '\0' && std::isfinite(v);
}

bool to_prob(const std::string& s, double& v) { return to_double(s, v) && v >= 0 && v <= 1; }

// "5s", "200ms", "1.5" (seconds)
bool to_duration(const std::string& s, double& v) {
  std::string num = s;
  double mul = 1;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "ms") == 0) {
    num = s.substr(0, s.size() - 2);
    mul = 1e-3;
  } else if (s.size() > 1 && s.back() == 's') {
    num = s.substr(0, s.size() - 1);
  }
  if (!to_double(num, v) || v < 0) return false;
  v *= mul;
  return true;
}

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

bool parse_fault_spec(const std::string& s, FaultSpec& f, std::string* err) {
  f = FaultSpec{};
  if (s.empty() || s == "none") return true;
  for (const std::string& item : split(s, ',')) {
    auto parts = split(item, ':');
    if (parts.size() < 2) {
      *err = "fault item '" + item + "' needs KIND:PROB";
      return false;
    }
    const std::string& k = parts[0];
    double p;
    if (!to_prob(parts[1], p)) {
      *err = "fault item '" + item + "': probability must be in [0,1]";
      return false;
    }
    if (k == "refuse") {
      f.refuse = p;
      if (parts.size() > 2) {
        double st;
        if (!to_double(parts[2], st) || st < 400 || st > 599) {
          *err = "refuse status must be 4xx/5xx";
          return false;
        }
        f.refuse_status = static_cast<int>(st);
      }
    } else if (k == "close") {
      f.close = p;
    } else if (k == "reset") {
      f.reset = p;
    } else if (k == "reset-mid-stream") {
      f.reset_mid = p;
    } else if (k == "stall" || k == "stall-mid-stream") {
      double d;
      if (parts.size() < 3 || !to_duration(parts[2], d)) {
        *err = "fault item '" + item + "' needs a duration, e.g. stall:0.05:5s";
        return false;
      }
      if (k == "stall") {
        f.stall = p;
        f.stall_s = d;
      } else {
        f.stall_mid = p;
        f.stall_mid_s = d;
      }
    } else {
      *err = "unknown fault kind '" + k + "'";
      return false;
    }
  }
  return true;
}

bool parse_output_dist(const std::string& s, OutputDist& d, std::string* err) {
  auto parts = split(s, ':');
  d = OutputDist{};
  auto num = [&](size_t i, double& v) {
    return i < parts.size() && to_double(parts[i], v) && v >= 0;
  };
  if (parts.empty() || parts[0] == "max") {
    d.kind = OutputDist::MAX;
    return true;
  }
  if (parts[0] == "fixed" && num(1, d.a) && d.a >= 1) {
    d.kind = OutputDist::FIXED;
    return true;
  }
  if (parts[0] == "uniform" && num(1, d.a) && num(2, d.b) && d.a >= 1 && d.b >= d.a) {
    d.kind = OutputDist::UNIFORM;
    return true;
  }
  if (parts[0] == "exp" && num(1, d.a) && d.a >= 1) {
    d.kind = OutputDist::EXP;
    return true;
  }
  if (parts[0] == "lognormal" && num(1, d.a) && num(2, d.b) && d.a >= 1) {
    d.kind = OutputDist::LOGNORMAL;
    return true;
  }
  *err = "bad --output-dist '" + s + "' (max | fixed:N | uniform:A:B | exp:MEAN | lognormal:MEDIAN:SIGMA)";
  return false;
}

uint32_t OutputDist::sample(uint32_t max_tokens, double u1, double u2) const {
  double v = max_tokens;
  switch (kind) {
    case MAX: break;
    case FIXED: v = a; break;
    case UNIFORM: v = a + std::floor(u1 * (b - a + 1)); break;
    case EXP: v = std::ceil(-a * std::log1p(-u1)); break;
    case LOGNORMAL: {
      double z = std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2 * M_PI * u2);
      v = std::round(a * std::exp(b * z));
      break;
    }
  }
  if (!(v >= 1)) v = 1;
  if (v > max_tokens) v = max_tokens;
  return static_cast<uint32_t>(v);
}

const char* usage_text() {
  return "usage: gpu-emu --listen ADDR:PORT --profile NAME|FILE --model NAME[,ALIAS...]\n"
         "               [--spm MODEL] [--seed N] [--fault SPEC] [--output-dist SPEC]\n"
         "               [--profiles-dir DIR] [--log FILE] [--quiet] [--max-waiting N]\n"
         "               [--shed-status 429|503] [--default-max-tokens N] [--max-num-seqs N]\n"
         "               [--idle-timeout DUR]\n"
         "  fault SPEC: refuse:P[:STATUS],close:P,reset:P,reset-mid-stream:P,stall:P:DUR,\n"
         "              stall-mid-stream:P:DUR   (e.g. reset-mid-stream:0.1,stall:0.05:5s)\n"
         "  output-dist SPEC: max | fixed:N | uniform:A:B | exp:MEAN | lognormal:MEDIAN:SIGMA\n"
         "  see docs/gpu-emu.md\n";
}

std::string find_profiles_dir(const char* argv0) {
  if (const char* e = std::getenv("GPU_EMU_PROFILES_DIR"); e && *e) return e;
  std::vector<std::string> starts;
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    buf[n] = 0;
    starts.emplace_back(buf);
  } else if (argv0) {
    starts.emplace_back(argv0);
  }
  if (getcwd(buf, sizeof buf)) starts.push_back(std::string(buf) + "/x");
  for (std::string p : starts) {
    for (int up = 0; up < 8; ++up) {
      size_t slash = p.rfind('/');
      if (slash == std::string::npos) break;
      p = p.substr(0, slash);
      std::string cand = (p.empty() ? std::string("") : p) + "/conf/profiles";
      if (is_dir(cand)) return cand;
      if (p.empty()) break;
    }
  }
  return "conf/profiles";
}

int parse_options(int argc, char** argv, Options& o, std::string* err) {
  bool have_listen = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](std::string& out) {
      if (i + 1 >= argc) {
        *err = a + " needs a value";
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") return 1;
    if (a == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (!val(v)) return -1;
    double d;
    if (a == "--listen") {
      size_t c = v.rfind(':');
      if (c == std::string::npos || !to_double(v.substr(c + 1), d) || d < 0 || d > 65535) {
        *err = "--listen wants ADDR:PORT";
        return -1;
      }
      o.addr = v.substr(0, c);
      if (o.addr.empty() || o.addr == "*") o.addr = "0.0.0.0";
      o.port = static_cast<uint16_t>(d);
      have_listen = true;
    } else if (a == "--profile") {
      o.profile = v;
    } else if (a == "--profiles-dir") {
      o.profiles_dir = v;
    } else if (a == "--model") {
      o.models = split(v, ',');
    } else if (a == "--spm") {
      o.spm = v;
    } else if (a == "--seed") {
      o.seed = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--fault") {
      if (!parse_fault_spec(v, o.faults, err)) return -1;
    } else if (a == "--output-dist") {
      if (!parse_output_dist(v, o.output_dist, err)) return -1;
    } else if (a == "--log") {
      o.log_path = v;
    } else if (a == "--max-waiting") {
      o.max_waiting = std::atoi(v.c_str());
    } else if (a == "--shed-status") {
      o.shed_status = std::atoi(v.c_str());
      if (o.shed_status != 429 && o.shed_status != 503) {
        *err = "--shed-status must be 429 or 503";
        return -1;
      }
    } else if (a == "--default-max-tokens") {
      o.default_max_tokens = static_cast<uint32_t>(std::max(1, std::atoi(v.c_str())));
    } else if (a == "--idle-timeout") {
      if (!to_duration(v, o.idle_timeout_s)) {
        *err = "--idle-timeout wants a duration (5s, 500ms)";
        return -1;
      }
    } else if (a == "--max-num-seqs") {
      o.max_num_seqs = static_cast<uint32_t>(std::max(0, std::atoi(v.c_str())));
    } else {
      *err = "unknown option " + a;
      return -1;
    }
  }
  if (!have_listen || o.profile.empty() || o.models.empty()) {
    *err = "--listen, --profile and --model are required";
    return -1;
  }
  if (o.profiles_dir.empty()) o.profiles_dir = find_profiles_dir(argc > 0 ? argv[0] : nullptr);
  return 0;
}

}  // namespace tlb::gpuemu
