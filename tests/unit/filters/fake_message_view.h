// A MessageView over a string, for the data-phase filters' tests: the header section is the
// bytes before the first empty line, as the proxy's MessageView gives it.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "message_view.h"

namespace portcullis::test {

class StringMessageView : public MessageView {
 public:
  explicit StringMessageView(std::string message) : message_(std::move(message)) {}

  std::uint64_t size() const override { return message_.size(); }
  std::string_view header_section() const override {
    const std::size_t end = message_.find("\r\n\r\n");
    return std::string_view(message_).substr(0,
                                             end == std::string::npos ? message_.size() : end + 2);
  }
  std::unique_ptr<MessageReader> read_from_start() const override {
    return std::make_unique<Reader>(message_);
  }

 private:
  class Reader : public MessageReader {
   public:
    explicit Reader(const std::string& message) : message_(message) {}
    bool read(std::string* chunk, std::size_t max_bytes) override {
      if (offset_ >= message_.size() || max_bytes == 0) return false;
      const std::size_t take = std::min(max_bytes, message_.size() - offset_);
      chunk->assign(message_, offset_, take);
      offset_ += take;
      return true;
    }
    const std::string& error() const override { return error_; }

   private:
    const std::string& message_;
    std::size_t offset_ = 0;
    std::string error_;
  };

  std::string message_;
};

}  // namespace portcullis::test
