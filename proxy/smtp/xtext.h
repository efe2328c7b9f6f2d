#pragma once

#include <string>
#include <string_view>

namespace portcullis {

// RFC 3461 section 4: characters outside "!".."~", and '+' and '=', become "+HH".
std::string xtext_encode(std::string_view text);

}  // namespace portcullis
