// pass_client = "proxy-v2" in front of a real Postfix with smtpd_upstream_proxy_protocol =
// haproxy: Postfix wants a PROXY header on every connection, the start-up probe's included
// (it sends LOCAL), and sees the client bound to 127.0.0.2 through the header.
#define BOOST_TEST_MODULE integration_postfix_proxy_v2
#include <boost/test/unit_test.hpp>
#include <memory>

#include "fixtures.h"
#include "test_support.h"

using namespace portcullis::test;

BOOST_AUTO_TEST_CASE(postfix_in_haproxy_mode_sees_the_client_from_the_proxy_v2_header) {
  BOOST_REQUIRE_MESSAGE(running_as_root(), "a private Postfix needs root");
  PostfixFixture postfix("127.0.0.1/32");
  const std::string config_dir = (postfix.dir() / "etc").string();
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{"postconf", "-c", config_dir, "-e",
                                 "smtpd_upstream_proxy_protocol = haproxy"},
        std::vector<std::string>{"postfix", "-c", config_dir, "reload"}}) {
    const CommandResult result = run_command(argv, 30s);
    BOOST_REQUIRE_MESSAGE(result.status.success(), argv[0] << ": " << result.err);
  }
  // Without a PROXY header Postfix now waits for one: the old plaintext greeting is gone.
  PortcullisOptions options;
  options.upstream_port = postfix.port();
  options.pass_client = "proxy-v2";
  options.settings["upstream"]["reply_timeout"] = "30";
  PortcullisFixture proxy(options);  // waits for a 220 banner: the LOCAL probe worked

  SmtpTestClient client("127.0.0.1", proxy.port(), {.source_address = "127.0.0.2", .timeout = 30s});
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO haproxy-client.example.test").code == 250);
  BOOST_TEST(client.command("MAIL FROM:<sender@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("DATA").code == 354);
  client.send(dot_stuff(make_message(1000, "proxy v2", "PROXY-V2-MARKER")) + ".\r\n");
  const SmtpReply queued = client.read_reply();
  BOOST_TEST(queued.code == 250, queued.describe());
  BOOST_TEST(client.command("QUIT").code == 221);

  BOOST_TEST(postfix.wait_for_log("client=unknown[127.0.0.2]", 10s), postfix.log());
  BOOST_TEST(!contains(postfix.log(), "haproxy read: timeout"), postfix.log());
}
