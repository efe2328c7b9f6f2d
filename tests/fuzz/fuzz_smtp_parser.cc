// libFuzzer target for SmtpParser (command and data mode), with DotStuffer as a round-trip
// oracle. The first input byte picks the configuration:
//   bit 0     bare_lf = normalize (else reject)
//   bit 1     small command limits (64-byte lines, extras from bit 2)
//   bit 2     with bit 1: MAIL +16 / RCPT +40; alone: small data limits (lines 40, header 80,
//             message 300)
//   bits 3-4  when to call begin_data: 0 after an accepted DATA command (as the session does),
//             1 at the start and after every DATA, 2 after every command, 3 never
//   bits 5-7  the chunk size of the second, split run (1, 2, 3, 5, 8, 13, 64, 512 bytes)
// Both runs must give identical events; every call is checked against the parser's contract.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dot_stuffer.h"
#include "smtp_parser.h"
#include "smtp_path.h"

using namespace portcullis;

namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

bool has_bare_cr_or_lf(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\r' && (i + 1 == bytes.size() || bytes[i + 1] != '\n')) return true;
    if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r')) return true;
  }
  return false;
}

std::string describe(const Command& command) {
  std::string out = "C" + std::to_string(static_cast<int>(command.verb)) + "/" +
                    std::to_string(static_cast<int>(command.error)) + "|" + command.line + "|" +
                    command.argument + "|" + command.path + "|" + command.params_text + "|";
  for (const EsmtpParam& param : command.params) {
    out += param.keyword + (param.has_value ? "=" : "") + param.value + ";";
  }
  return out;
}

std::string describe(const DataEnd& end, const std::string& content) {
  std::string out = "D" + std::to_string(end.bare_cr) + std::to_string(end.bare_lf) +
                    std::to_string(end.nul) + std::to_string(end.line_too_long) +
                    std::to_string(end.header_too_large) + std::to_string(end.too_big) + "/" +
                    std::to_string(end.size);
  // A refused message's partial content depends on the split; only good content is compared.
  if (end.ok()) out += "|" + content;
  return out;
}

// A message the parser accepted, stuffed again, must read back unchanged.
void check_round_trip(const std::string& content) {
  DotStuffer stuffer;
  std::string wire;
  stuffer.feed(content, &wire);
  stuffer.finish(&wire);
  wire += "QUIT\r\n";
  SmtpParser parser(ParserLimits{});
  parser.begin_data();
  Command command;
  std::string read_back;
  DataEnd end;
  SmtpParser::Step step = parser.feed(wire, &command, &read_back, &end);
  require(step.event == SmtpParser::Event::data_end, "stuffed content did not end");
  require(step.consumed == wire.size() - 6, "stuffed content ended in the wrong place");
  require(end.ok(), "stuffed content was refused");
  require(read_back == content, "stuffed content read back differently");
}

struct Config {
  ParserLimits limits;
  int begin_data_policy = 0;
  size_t chunk_size = 1;
};

Config config_from(uint8_t byte) {
  Config config;
  if (byte & 1) config.limits.bare_lf = BareLfMode::normalize;
  if (byte & 2) {
    config.limits.command_line = 64;
    config.limits.mail_extra = (byte & 4) ? 16 : 0;
    config.limits.rcpt_extra = (byte & 4) ? 40 : 0;
  } else if (byte & 4) {
    config.limits.max_line_length = 40;
    config.limits.max_header_size = 80;
    config.limits.max_message_size = 300;
  }
  config.begin_data_policy = (byte >> 3) & 3;
  static constexpr size_t chunk_sizes[] = {1, 2, 3, 5, 8, 13, 64, 512};
  config.chunk_size = chunk_sizes[(byte >> 5) & 7];
  return config;
}

std::vector<std::string> run(std::string_view input, const Config& config, size_t chunk_size) {
  SmtpParser parser(config.limits);
  if (config.begin_data_policy == 1) parser.begin_data();
  const size_t buffer_limit =
      config.limits.command_line + std::max(config.limits.mail_extra, config.limits.rcpt_extra);
  std::vector<std::string> events;
  std::string pending;
  std::string content;
  for (size_t offset = 0; offset < input.size(); offset += chunk_size) {
    pending.append(input.substr(offset, chunk_size));
    while (!pending.empty()) {
      Command command;
      DataEnd end;
      const bool was_in_data = parser.in_data();
      SmtpParser::Step step = parser.feed(pending, &command, &content, &end);
      require(step.consumed <= pending.size(), "consumed more than the input");
      pending.erase(0, step.consumed);
      require(content.size() <= config.limits.max_message_size, "content past the size limit");
      if (step.event == SmtpParser::Event::need_more) {
        require(pending.empty(), "need_more left input unconsumed");
        break;
      }
      require(step.consumed > 0, "an event without progress");
      if (step.event == SmtpParser::Event::command) {
        require(!was_in_data, "a command in data mode");
        require(command.line.size() <= buffer_limit, "command line past the buffer limit");
        if (command.error == CommandError::none &&
            (command.verb == Verb::mail || command.verb == Verb::rcpt)) {
          PathKind kind = command.verb == Verb::mail ? PathKind::mail_from : PathKind::rcpt_to;
          require(parse_path("<" + command.path + ">", kind).ok, "accepted path reparses bad");
        }
        events.push_back(describe(command));
        const bool accepted_data =
            command.verb == Verb::data && command.error == CommandError::none;
        if ((config.begin_data_policy <= 1 && accepted_data) || config.begin_data_policy == 2) {
          parser.begin_data();
        }
      } else {
        require(was_in_data, "data_end outside data mode");
        require(!parser.in_data(), "still in data mode after data_end");
        if (end.ok()) {
          require(end.size == content.size(), "size differs from the content");
          require(!has_bare_cr_or_lf(content), "accepted content has a bare CR or LF");
          check_round_trip(content);
        }
        events.push_back(describe(end, content));
        content.clear();
      }
    }
  }
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Config config = config_from(data[0]);
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::vector<std::string> whole = run(input, config, input.size() + 1);
  const std::vector<std::string> split = run(input, config, config.chunk_size);
  require(whole == split, "splitting the input changed the events");
  return 0;
}
