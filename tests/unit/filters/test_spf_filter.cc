#define BOOST_TEST_MODULE spf_record
#include <boost/test/unit_test.hpp>
#include "spf_record.h"
using namespace portcullis;
BOOST_AUTO_TEST_CASE(todo) {
  BOOST_TEST(is_spf1_record("v=spf1"));
}
