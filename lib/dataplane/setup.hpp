// Control-plane helpers that turn a validated config into the shared state workers read.
#pragma once

#include <memory>
#include <string>

#include "config/config.hpp"
#include "scoreboard/scoreboard.hpp"

namespace tlb::dataplane {

// Create the POSIX-shm scoreboard named by [telemetry] scoreboard_shm (or a process-private one
// when `private_segment`), register every model, tag and trust zone, and add the backends in
// config order (scoreboard index = index in cfg.backends). Aliases' candidates must be served
// models (lib/config checks). Throws std::runtime_error with a message on failure.
std::unique_ptr<scoreboard::Scoreboard> build_scoreboard(const config::Config& cfg,
                                                         uint32_t n_workers,
                                                         bool private_segment = false);

}  // namespace tlb::dataplane
