// The strict JSON reader (proxy/observe/json_reader.h): what RFC 8259 allows is read with the right
// types and values; everything else is refused with an offset.
#define BOOST_TEST_MODULE json_reader
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>

#include "json_reader.h"

using portcullis::JsonValue;
using portcullis::parse_json;

namespace {

bool accepted(std::string_view text) {
  return parse_json(text).has_value();
}

std::string error_of(std::string_view text) {
  std::string error;
  const auto value = parse_json(text, &error);
  BOOST_TEST_INFO("input: " << text);
  BOOST_CHECK(!value.has_value());
  return error;
}

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

}  // namespace

BOOST_AUTO_TEST_CASE(scalars) {
  BOOST_TEST(parse_json("null")->is_null());
  BOOST_TEST(parse_json("true")->as_bool() == true);
  BOOST_TEST(parse_json("false")->as_bool() == false);
  BOOST_TEST(parse_json(" \t\r\n42 \n")->as_number() == 42.0);
  BOOST_TEST(parse_json("-0.5e2")->as_number() == -50.0);
  BOOST_TEST(parse_json("1E+3")->as_number() == 1000.0);
  BOOST_TEST(parse_json("0")->as_number() == 0.0);
  BOOST_TEST(parse_json("\"\"")->as_string() == "");
}

BOOST_AUTO_TEST_CASE(integers) {
  BOOST_TEST(*parse_json("4000")->as_integer() == 4000);
  BOOST_TEST(*parse_json("-7")->as_integer() == -7);
  BOOST_TEST(!parse_json("1.5")->as_integer().has_value());
  BOOST_TEST(!parse_json("1e19")->as_integer().has_value());
  BOOST_TEST(!parse_json("\"1\"")->as_integer().has_value());
}

BOOST_AUTO_TEST_CASE(objects_keep_document_order_and_find_members) {
  const auto value = parse_json(R"({"b": 1, "a": [true, null, "x"], "c": {"d": "e"}})");
  BOOST_REQUIRE(value.has_value());
  BOOST_REQUIRE(value->is_object());
  const auto& members = value->as_object();
  BOOST_REQUIRE_EQUAL(members.size(), 3u);
  BOOST_TEST(members[0].name == "b");
  BOOST_TEST(members[1].name == "a");
  BOOST_TEST(members[2].name == "c");
  const JsonValue* a = value->find("a");
  BOOST_REQUIRE(a != nullptr);
  BOOST_REQUIRE_EQUAL(a->as_array().size(), 3u);
  BOOST_TEST(a->as_array()[0].as_bool());
  BOOST_TEST(a->as_array()[1].is_null());
  BOOST_TEST(a->as_array()[2].as_string() == "x");
  BOOST_TEST(value->find("c")->find_string("d") != nullptr);
  BOOST_TEST(*value->find("c")->find_string("d") == "e");
  BOOST_TEST(value->find("missing") == nullptr);
  BOOST_TEST(value->find_string("b") == nullptr);  // a number, not a string
  BOOST_TEST(a->find("x") == nullptr);             // not an object
  BOOST_TEST(parse_json("{}")->as_object().empty());
  BOOST_TEST(parse_json("[ ]")->as_array().empty());
}

BOOST_AUTO_TEST_CASE(string_escapes) {
  BOOST_TEST(parse_json(R"("a\"b\\c\/d\be\ff\ng\rh\ti")")->as_string() ==
             "a\"b\\c/d\be\ff\ng\rh\ti");
  BOOST_TEST(parse_json(R"("\u0041\u00e9\u20AC")")->as_string() == "A\xC3\xA9\xE2\x82\xAC");
  BOOST_TEST(parse_json(R"("\u0000")")->as_string() == std::string(1, '\0'));
  // U+1F600 as a surrogate pair → 4-byte UTF-8.
  BOOST_TEST(parse_json(R"("\ud83d\ude00")")->as_string() == "\xF0\x9F\x98\x80");
  // Raw UTF-8 passes through unchanged.
  BOOST_TEST(parse_json("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"")->as_string() ==
             "caf\xC3\xA9 \xF0\x9F\x98\x80");
}

BOOST_AUTO_TEST_CASE(depth_limit) {
  BOOST_TEST(portcullis::max_json_depth == 64u);
  BOOST_TEST(accepted(nested_arrays(64)));
  BOOST_TEST(!accepted(nested_arrays(65)));
  BOOST_TEST(error_of(nested_arrays(65)) == "offset 64: nesting deeper than 64");
  std::string objects;
  for (int i = 0; i < 64; ++i)
    objects += "{\"k\":";
  BOOST_TEST(accepted(objects + "1" + std::string(64, '}')));
  BOOST_TEST(!accepted(objects + "{}" + std::string(64, '}')));
  // Far deeper than the limit: refused without exhausting the stack.
  BOOST_TEST(!accepted(std::string(1000000, '[')));
}

BOOST_AUTO_TEST_CASE(bad_escapes) {
  BOOST_TEST(error_of(R"("\x41")") == "offset 2: invalid escape");
  BOOST_TEST(!accepted(R"("\a")"));
  BOOST_TEST(!accepted(R"("\')"));
  BOOST_TEST(!accepted(R"("\u12")"));
  BOOST_TEST(!accepted(R"("\u12G4")"));
  BOOST_TEST(!accepted(R"("\U0041")"));
  BOOST_TEST(!accepted(R"("abc\)"));
}

BOOST_AUTO_TEST_CASE(lone_surrogates) {
  BOOST_TEST(error_of(R"("\ud83d")") == "offset 1: lone high surrogate");
  BOOST_TEST(error_of(R"("\ude00")") == "offset 1: lone low surrogate");
  BOOST_TEST(error_of(R"("x\ud83dx")") == "offset 2: lone high surrogate");
  BOOST_TEST(!accepted(R"("\ud83d\u0041")"));  // high + not-low
  BOOST_TEST(!accepted(R"("\ud83d\ud83d")"));  // high + high
  BOOST_TEST(!accepted(R"("\ude00\ud83d")"));  // reversed pair
}

BOOST_AUTO_TEST_CASE(trailing_garbage) {
  BOOST_TEST(error_of("{} x") == "offset 3: unexpected data after the value");
  BOOST_TEST(!accepted("{}{}"));
  BOOST_TEST(!accepted("1 2"));
  BOOST_TEST(!accepted("nullx"));
  BOOST_TEST(!accepted("[1],"));
  BOOST_TEST(!accepted(std::string("{}\0", 3)));
}

BOOST_AUTO_TEST_CASE(invalid_documents) {
  const char* invalid[] = {
      "",
      "   ",
      "{",
      "[1,]",
      "[,1]",
      "{\"a\":1,}",
      "{\"a\" 1}",
      "{a:1}",
      "{'a':1}",
      "{\"a\":1 \"b\":2}",
      "{1:2}",
      "[1 2]",
      "tru",
      "True",
      "NULL",
      "01",
      "-",
      "+1",
      "1.",
      ".5",
      "1e",
      "1e+",
      "0x10",
      "NaN",
      "Infinity",
      "-Infinity",
      "1e400",
      "\"unterminated",
      "\"tab\tinside\"",
      "\"line\nbreak\"",
      "// comment\n1",
      "\xEF\xBB\xBF{}",  // byte order mark
  };
  for (const char* text : invalid) {
    BOOST_TEST_INFO("input: " << text);
    BOOST_TEST(!accepted(text));
  }
}

BOOST_AUTO_TEST_CASE(duplicate_member_names) {
  BOOST_TEST(error_of(R"({"a":1,"b":2,"a":3})") == "offset 0: duplicate member name \"a\"");
  BOOST_TEST(!accepted(R"([{"x":{"k":1,"k":1}}])"));
  BOOST_TEST(accepted(R"({"a":{"a":1},"b":{"a":2}})"));  // same name, different objects
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_strings) {
  const char* invalid[] = {
      "\"\x80\"",              // lone continuation byte
      "\"\xC3\"",              // truncated 2-byte sequence
      "\"\xC0\xAF\"",          // overlong '/'
      "\"\xE0\x80\xAF\"",      // overlong 3-byte
      "\"\xED\xA0\x80\"",      // UTF-8 encoded surrogate U+D800
      "\"\xF4\x90\x80\x80\"",  // above U+10FFFF
      "\"\xF5\x80\x80\x80\"",  // invalid lead byte
      "\"\xFF\"",              //
      "\"\xE2\x82\"",          // truncated 3-byte sequence
  };
  for (const char* text : invalid) {
    BOOST_TEST_INFO("input bytes: " << text);
    BOOST_TEST(!accepted(text));
  }
  BOOST_TEST(accepted("\"\xF4\x8F\xBF\xBF\""));  // U+10FFFF, the highest code point
  BOOST_TEST(accepted("\"\xED\x9F\xBF\""));      // U+D7FF, just below the surrogates
}

BOOST_AUTO_TEST_CASE(utf8_sequence_lengths) {
  using portcullis::utf8_sequence_length;
  BOOST_TEST(utf8_sequence_length("") == 0u);
  BOOST_TEST(utf8_sequence_length("a") == 1u);
  BOOST_TEST(utf8_sequence_length("\xC3\xA9z") == 2u);
  BOOST_TEST(utf8_sequence_length("\xE2\x82\xAC") == 3u);
  BOOST_TEST(utf8_sequence_length("\xF0\x9F\x98\x80") == 4u);
  BOOST_TEST(utf8_sequence_length("\xC1\xBF") == 0u);
  BOOST_TEST(utf8_sequence_length("\xF0\x8F\xBF\xBF") == 0u);  // overlong 4-byte
  BOOST_TEST(utf8_sequence_length("\xE2\x28\xA1") == 0u);      // bad continuation
}
