// SECURITY: the HELO name (and the PTR name) come from the client and DNS. Every value is
// xtext-encoded, so no space, CR, LF or '=' of theirs reaches the upstream command line, and
// each line is bounded by max_line; a value too long for any line is dropped.
#include "xclient.h"

#include <string_view>

#include "xtext.h"

namespace portcullis {
namespace {

constexpr std::string_view command_verb = "XCLIENT";
constexpr size_t crlf_length = 2;

// Postfix XCLIENT_README: these two literals are sent as they are, not xtext-encoded.
bool is_unavailable_marker(std::string_view value) {
  return value == "[UNAVAILABLE]" || value == "[TEMPUNAVAIL]";
}

class AttributeList {
 public:
  AttributeList(const std::set<std::string>& advertised, size_t max_line)
      : advertised_(advertised), max_line_(max_line) {}

  void add(const std::string& name, std::string_view value) {
    if (value.empty() || advertised_.count(name) == 0) return;
    std::string attribute = name + "=";
    attribute += is_unavailable_marker(value) ? std::string(value) : xtext_encode(value);
    if (command_verb.size() + 1 + attribute.size() + crlf_length > max_line_) return;
    attributes_.push_back(std::move(attribute));
  }

  const std::vector<std::string>& attributes() const { return attributes_; }

 private:
  const std::set<std::string>& advertised_;
  size_t max_line_;
  std::vector<std::string> attributes_;
};

class LinePacker {
 public:
  explicit LinePacker(size_t max_line) : max_line_(max_line) {}

  bool fits_in_current(size_t attribute_length) const {
    return !current_.empty() && current_.size() + 1 + attribute_length + crlf_length <= max_line_;
  }
  bool fits_alone(size_t attribute_length) const {
    return command_verb.size() + 1 + attribute_length + crlf_length <= max_line_;
  }

  // Puts the attribute on the current line when there is room, else starts a new line.
  void add(const std::string& attribute) {
    if (!fits_in_current(attribute.size())) start_line();
    current_ += ' ';
    current_ += attribute;
  }

  void start_line() {
    if (current_.size() > command_verb.size()) lines_.push_back(std::move(current_));
    current_ = std::string(command_verb);
  }

  std::vector<std::string> finish() {
    start_line();
    return std::move(lines_);
  }

 private:
  size_t max_line_;
  std::string current_;
  std::vector<std::string> lines_;
};

std::string join(const std::vector<std::string>& parts) {
  std::string joined;
  for (const auto& part : parts) {
    if (!joined.empty()) joined += ' ';
    joined += part;
  }
  return joined;
}

}  // namespace

std::vector<std::string> build_xclient_commands(const ClientIdentity& client,
                                                const std::set<std::string>& advertised,
                                                size_t max_line) {
  AttributeList leading(advertised, max_line);
  leading.add("PROTO", client.proto);
  leading.add("HELO", client.helo);
  if (client.port != 0) leading.add("PORT", std::to_string(client.port));
  if (!client.dest_addr.empty()) {
    leading.add("DESTADDR", client.dest_is_ipv6 ? "IPV6:" + client.dest_addr : client.dest_addr);
  }
  if (client.dest_port != 0) leading.add("DESTPORT", std::to_string(client.dest_port));
  leading.add("REVERSE_NAME", client.reverse_name);

  // Once the upstream has the new NAME/ADDR it may stop treating us as an authorized XCLIENT
  // host, so these come last and, where they fit, together.
  AttributeList identity(advertised, max_line);
  identity.add("NAME", client.name);
  if (!client.addr.empty()) {
    identity.add("ADDR", client.addr_is_ipv6 ? "IPV6:" + client.addr : client.addr);
  }

  LinePacker packer(max_line);
  for (const auto& attribute : leading.attributes())
    packer.add(attribute);

  const std::string identity_text = join(identity.attributes());
  if (identity_text.empty()) {
    // nothing to add
  } else if (packer.fits_in_current(identity_text.size())) {
    packer.add(identity_text);
  } else if (packer.fits_alone(identity_text.size())) {
    packer.start_line();
    packer.add(identity_text);
  } else {
    // Each fits alone but not both together: ADDR still ends up in the final line.
    for (const auto& attribute : identity.attributes())
      packer.add(attribute);
  }
  return packer.finish();
}

}  // namespace portcullis
