// Profile loading (control plane: exceptions from toml++ are caught here) and the analytic
// helpers that mirror the engine's step-time formula.
#include "gpumodel/gpumodel.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace tlb::gpumodel {

namespace {

bool fail(std::string* err, const std::string& msg) {
  if (err) *err = msg;
  return false;
}

template <typename T>
bool get_num(const toml::table& t, const char* sect, const char* key, T& out, bool required,
             double lo, double hi, std::string* err) {
  toml::node_view<const toml::node> n = sect ? t[sect][key] : t[key];
  std::string full = sect ? std::string(sect) + "." + key : std::string(key);
  if (!n) {
    if (required) return fail(err, "missing key " + full);
    return true;
  }
  std::optional<double> v = n.value<double>();
  if (!v) return fail(err, "key " + full + " is not a number");
  if (!(*v >= lo && *v <= hi))
    return fail(err, "key " + full + " out of range [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "]");
  out = static_cast<T>(*v);
  return true;
}

bool get_str(const toml::table& t, const char* key, std::string& out, bool required,
             std::string* err) {
  auto v = t[key].value<std::string>();
  if (!v) {
    if (required) return fail(err, std::string("missing string key ") + key);
    return true;
  }
  out = *v;
  return true;
}

}  // namespace

double Profile::prefill_step_time(uint32_t tokens, uint32_t start) const {
  double c0 = start, c1 = static_cast<double>(start) + tokens;
  return decode_base_s + prefill_overhead_s + prefill_per_token_s * tokens +
         prefill_attn_s_per_token2 * (c1 * c1 - c0 * c0);
}

double Profile::decode_step_time(uint32_t batch, uint64_t sum_ctx) const {
  return decode_base_s + decode_per_seq_s * batch +
         decode_per_ctx_token_s * static_cast<double>(sum_ctx);
}

double Profile::lone_ttft(uint32_t prompt_tokens, uint32_t cached) const {
  if (cached >= prompt_tokens) cached = prompt_tokens ? prompt_tokens - 1 : 0;
  double t = 0;
  uint32_t pos = cached;
  uint32_t chunk = max_num_batched_tokens ? max_num_batched_tokens : 1;
  while (pos < prompt_tokens) {
    uint32_t k = std::min(chunk, prompt_tokens - pos);
    t += prefill_step_time(k, pos);
    pos += k;
  }
  return t;
}

bool parse_profile(std::string_view text, Profile& p, std::string* err) {
  toml::table t;
  try {
    t = toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "toml: " << e.description() << " at line " << e.source().begin.line;
    return fail(err, os.str());
  }
  Profile out;
  if (!get_str(t, "name", out.name, true, err)) return false;
  if (!get_str(t, "gpu", out.gpu, false, err)) return false;
  if (!get_str(t, "model", out.model, true, err)) return false;
  if (!get_num(t, nullptr, "gpus", out.gpus, false, 1, 1024, err)) return false;
  if (!get_num(t, nullptr, "cost_per_gpu_hour", out.cost_per_gpu_hour, false, 0, 1e4, err))
    return false;
  if (!get_num(t, "scheduler", "max_num_seqs", out.max_num_seqs, true, 1, 1 << 20, err)) return false;
  if (!get_num(t, "scheduler", "max_num_batched_tokens", out.max_num_batched_tokens, true, 1,
               1 << 24, err))
    return false;
  if (!get_num(t, "scheduler", "max_model_len", out.max_model_len, false, 2, 1 << 24, err))
    return false;
  if (!get_num(t, "kv", "capacity_tokens", out.kv_capacity_tokens, true, 1, 1e12, err)) return false;
  if (!get_num(t, "kv", "block_tokens", out.block_tokens, false, 1, 4096, err)) return false;
  if (!get_num(t, "kv", "prefix_cache_blocks", out.prefix_cache_blocks, false, 0, 1e12, err))
    return false;
  if (!get_num(t, "kv", "watermark", out.kv_watermark, false, 0, 0.5, err)) return false;
  if (auto b = t["kv"]["prefix_caching"].value<bool>()) out.prefix_caching = *b;
  if (!get_num(t, "prefill", "overhead_s", out.prefill_overhead_s, false, 0, 10, err)) return false;
  if (!get_num(t, "prefill", "per_token_s", out.prefill_per_token_s, true, 0, 1, err)) return false;
  if (!get_num(t, "prefill", "attn_s_per_token2", out.prefill_attn_s_per_token2, false, 0, 1, err))
    return false;
  if (!get_num(t, "decode", "base_s", out.decode_base_s, true, 1e-9, 10, err)) return false;
  if (!get_num(t, "decode", "per_seq_s", out.decode_per_seq_s, false, 0, 1, err)) return false;
  if (!get_num(t, "decode", "per_ctx_token_s", out.decode_per_ctx_token_s, false, 0, 1, err))
    return false;
  if (out.kv_capacity_tokens / out.block_tokens < 1)
    return fail(err, "kv.capacity_tokens smaller than one block");
  p = std::move(out);
  return true;
}

bool load_profile(const std::string& path, Profile& out, std::string* err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return fail(err, "cannot open profile " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string e;
  if (!parse_profile(ss.str(), out, &e)) return fail(err, path + ": " + e);
  return true;
}

std::string profile_path(const std::string& v, const std::string& dir) {
  if (v.find('/') != std::string::npos ||
      (v.size() > 5 && v.compare(v.size() - 5, 5, ".toml") == 0))
    return v;
  return (dir.empty() ? std::string("conf/profiles") : dir) + "/" + v + ".toml";
}

uint64_t block_hash(uint64_t prev, const void* data, size_t len) {
  // FNV-1a over the bytes seeded with the previous hash, then a 64-bit finaliser
  // (splitmix64) so chained hashes stay well spread. 0 is reserved for "no hash".
  uint64_t h = 0xcbf29ce484222325ULL ^ (prev * 0x9e3779b97f4a7c15ULL);
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < len; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h ? h : 1;
}

uint64_t block_hash_u64(uint64_t prev, uint64_t v) {
  uint64_t h = prev ^ (v + 0x9e3779b97f4a7c15ULL + (prev << 6) + (prev >> 2));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h ? h : 1;
}

}  // namespace tlb::gpumodel
