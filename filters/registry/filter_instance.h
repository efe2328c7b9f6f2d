// What the chain wraps around a registered filter. The config builds these; the session's
// filter runner runs them (so the type lives here, below both).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "filter.h"
#include "session_phase.h"

namespace portcullis {

enum class FailureMode { tempfail, continue_session };  // "tempfail" | "continue"

// One entry of [filters] chain, as loaded from the config.
struct FilterInstance {
  std::string name;
  std::chrono::milliseconds timeout{20000};
  FailureMode failure_mode = FailureMode::tempfail;
  std::vector<Phase> hooks;
  std::vector<std::string> facts;  // names the filter may record
  bool streams_message = false;    // FilterDefinition::streams_message
  std::shared_ptr<const FilterFactory> factory;
};

}  // namespace portcullis
