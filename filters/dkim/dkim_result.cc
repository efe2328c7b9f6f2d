#include "dkim_result.h"

namespace portcullis {

namespace {

int rank(DkimVerdict verdict) {
  switch (verdict) {
    case DkimVerdict::pass:
      return 5;
    case DkimVerdict::fail:
      return 4;
    case DkimVerdict::policy:
      return 3;
    case DkimVerdict::temperror:
      return 2;
    case DkimVerdict::permerror:
      return 1;
    case DkimVerdict::none:
      break;
  }
  return 0;
}

}  // namespace

std::string_view dkim_verdict_name(DkimVerdict verdict) {
  switch (verdict) {
    case DkimVerdict::none:
      return "none";
    case DkimVerdict::pass:
      return "pass";
    case DkimVerdict::fail:
      return "fail";
    case DkimVerdict::policy:
      return "policy";
    case DkimVerdict::temperror:
      return "temperror";
    case DkimVerdict::permerror:
      return "permerror";
  }
  return "permerror";
}

DkimVerdict better_dkim_verdict(DkimVerdict a, DkimVerdict b) {
  return rank(b) > rank(a) ? b : a;
}

}  // namespace portcullis
