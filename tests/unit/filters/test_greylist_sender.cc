#define BOOST_TEST_MODULE greylist_sender
#include <boost/test/unit_test.hpp>

#include "greylist_sender.h"

using portcullis::normalise_greylist_sender;

BOOST_AUTO_TEST_CASE(case_is_folded_and_the_null_sender_stays_empty) {
  BOOST_TEST(normalise_greylist_sender("Alice@Example.ORG") == "alice@example.org");
  BOOST_TEST(normalise_greylist_sender("") == "");
}

BOOST_AUTO_TEST_CASE(a_batv_tag_is_removed) {
  BOOST_TEST(normalise_greylist_sender("prvs=1234abcdef=alice@example.org") == "alice@example.org");
  BOOST_TEST(normalise_greylist_sender("PRVS=0123ABCDEF=Alice@Example.org") == "alice@example.org");
  // Not the 10-character tag of BATV: left as it is.
  BOOST_TEST(normalise_greylist_sender("prvs=short=alice@example.org") ==
             "prvs=short=alice@example.org");
  BOOST_TEST(normalise_greylist_sender("prvs=1234abcdef=@example.org") ==
             "prvs=1234abcdef=@example.org");
}

BOOST_AUTO_TEST_CASE(srs_addresses_go_back_to_the_original_sender) {
  BOOST_TEST(normalise_greylist_sender("SRS0=HHH=TT=example.org=alice@forwarder.example") ==
             "alice@example.org");
  BOOST_TEST(normalise_greylist_sender("srs0+hhh=tt=example.org=alice@forwarder.example") ==
             "alice@example.org");
  BOOST_TEST(normalise_greylist_sender(
                 "SRS1=XXX=first.example==HHH=TT=example.org=alice@second.example") ==
             "alice@example.org");
  // The original local part may hold '=' itself.
  BOOST_TEST(normalise_greylist_sender("SRS0=HHH=TT=example.org=a=b@forwarder.example") ==
             "a=b@example.org");
  // A BATV-signed sender that was then forwarded with SRS.
  BOOST_TEST(normalise_greylist_sender(
                 "SRS0=HHH=TT=example.org=prvs=1234abcdef=alice@forwarder.example") ==
             "prvs=1234abcdef=alice@example.org");
}

BOOST_AUTO_TEST_CASE(what_does_not_parse_is_only_lower_cased) {
  BOOST_TEST(normalise_greylist_sender("SRS0=too=few@forwarder.example") ==
             "srs0=too=few@forwarder.example");
  BOOST_TEST(normalise_greylist_sender("SRS1=no-double-equals@forwarder.example") ==
             "srs1=no-double-equals@forwarder.example");
  BOOST_TEST(normalise_greylist_sender("srs0") == "srs0");
  BOOST_TEST(normalise_greylist_sender("SRS0=HHH=TT==alice@forwarder.example") ==
             "srs0=hhh=tt==alice@forwarder.example");
}
