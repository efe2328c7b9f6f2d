#include "session_phase.h"

namespace portcullis {

std::string_view phase_name(Phase phase) {
  switch (phase) {
    case Phase::connect:
      return "connect";
    case Phase::helo:
      return "helo";
    case Phase::mail:
      return "mail";
    case Phase::rcpt:
      return "rcpt";
    case Phase::data:
      return "data";
  }
  return "unknown";
}

std::optional<Phase> parse_phase(std::string_view name) {
  for (Phase phase : all_phases) {
    if (phase_name(phase) == name) return phase;
  }
  return std::nullopt;
}

}  // namespace portcullis
