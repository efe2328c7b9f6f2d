// What filters see of the message of a transaction (DESIGN §2: the message is read whole, in
// memory or spilled to a private file, before the upstream sees DATA).
//
// Two ways in, both read-only:
//   - streaming: a filter whose FilterDefinition sets `streams_message` gets
//     SessionFilter::on_message_begin at DATA's 354 and on_message_data with the message bytes
//     as they arrive (dot-unstuffed, CRLF line ends; chunk boundaries fall anywhere, even inside
//     a CRLF), so work such as body hashing and key lookups runs while the client is sending;
//   - at the data phase (end of data): HookContext::message() gives the whole message.
// A transaction that ends early (RSET, refused, client gone) simply gets no data hook; the next
// on_message_begin starts over.
// The view and its readers belong to the transaction: valid until the data phase's call ends
// (its result, its deadline or cancel()), never to be kept for a later message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace portcullis {

class MessageReader {
 public:
  virtual ~MessageReader() = default;
  // The next at most `max_bytes` bytes into `chunk`; false at the end or on a read error
  // (error() then says why).
  virtual bool read(std::string* chunk, std::size_t max_bytes) = 0;
  virtual const std::string& error() const = 0;
};

class MessageView {
 public:
  virtual ~MessageView() = default;
  // Bytes of the whole message (header and body, dot-unstuffed).
  virtual std::uint64_t size() const = 0;
  // The header section: the bytes before the empty line (CRLF line ends, without the empty
  // line), at most [limits] max_header_size (a larger header was refused with 552 5.3.4).
  virtual std::string_view header_section() const = 0;
  // A reader from the first byte of the message; several readers may exist at once.
  virtual std::unique_ptr<MessageReader> read_from_start() const = 0;
};

}  // namespace portcullis
