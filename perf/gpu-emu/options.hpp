// gpu-emu command line, fault and output-length specifications (docs/gpu-emu.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tlb::gpuemu {

// --fault SPEC: comma-separated KIND:PROB[:ARG] items, each drawn independently per request
// from the seeded generator:
//   refuse:P[:STATUS]        answer STATUS (default 503) with an OpenAI error body
//   close:P                  close the connection (FIN) without answering
//   reset:P                  reset the connection (RST) without answering
//   reset-mid-stream:P       reset (RST) after a random number of emitted tokens
//   stall:P:DUR              hold every response byte for DUR (e.g. 5s, 200ms) after arrival
//   stall-mid-stream:P:DUR   hold output for DUR after the first token
struct FaultSpec {
  double refuse = 0, close = 0, reset = 0, reset_mid = 0, stall = 0, stall_mid = 0;
  int refuse_status = 503;
  double stall_s = 0, stall_mid_s = 0;
};
bool parse_fault_spec(const std::string& s, FaultSpec& out, std::string* err);

// --output-dist SPEC: how many tokens a request generates, always capped at its max_tokens:
//   max                      exactly max_tokens (default)
//   fixed:N                  N
//   uniform:A:B              uniform integer in [A, B]
//   exp:MEAN                 exponential with mean MEAN (at least 1)
//   lognormal:MEDIAN:SIGMA   lognormal with the given median and log-space sigma
struct OutputDist {
  enum Kind { MAX, FIXED, UNIFORM, EXP, LOGNORMAL } kind = MAX;
  double a = 0, b = 0;
  // u1, u2 uniform in [0,1) from the per-request seeded generator.
  uint32_t sample(uint32_t max_tokens, double u1, double u2) const;
};
bool parse_output_dist(const std::string& s, OutputDist& out, std::string* err);

struct Options {
  std::string addr = "127.0.0.1";
  uint16_t port = 8000;
  std::string profile;
  std::string profiles_dir;
  std::vector<std::string> models;  // --model a,b: names served (first is reported)
  std::string spm;
  uint64_t seed = 1;
  FaultSpec faults;
  OutputDist output_dist;
  std::string log_path;
  bool quiet = false;
  int max_waiting = -1;  // shed load when this many requests wait (-1 = never)
  double idle_timeout_s = 0;  // close keep-alive connections idle this long (0 = never)
  int shed_status = 429;
  uint32_t default_max_tokens = 256;
  uint32_t max_num_seqs = 0;  // override the profile (0 = keep)
};

// 0 = ok, 1 = --help printed request, -1 = error (*err set).
int parse_options(int argc, char** argv, Options& o, std::string* err);
const char* usage_text();
// Profiles directory: --profiles-dir, else $GPU_EMU_PROFILES_DIR, else the first
// <ancestor of the executable or of the cwd>/conf/profiles that exists.
std::string find_profiles_dir(const char* argv0);

}  // namespace tlb::gpuemu
