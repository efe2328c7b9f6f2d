// portcullis: command-line entry point (run, check, version).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include "config.h"
#include "server.h"
#include "tls_context.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/portcullis/portcullis.toml";

void print_messages(const portcullis::ConfigResult& result) {
  for (const auto& message : result.errors) {
    fmt::print(stderr, "error: {}\n", message.to_string());
  }
  for (const auto& message : result.warnings) {
    fmt::print(stderr, "warning: {}\n", message.to_string());
  }
}

int command_check(const std::string& config_path) {
  portcullis::ConfigResult result = portcullis::load_config(config_path);
  print_messages(result);
  if (!result.config) {
    fmt::print(stderr, "{}: {} error(s)\n", config_path, result.errors.size());
    return 1;
  }
  // Certificates and keys are loaded as `run` would load them: each pair must match.
  const portcullis::Config& config = *result.config;
  portcullis::TlsServerContexts::LoadResult tls =
      portcullis::TlsServerContexts::load(config, nullptr);
  for (const auto& warning : tls.warnings)
    fmt::print(stderr, "warning: {}\n", warning);
  for (const auto& error : tls.errors)
    fmt::print(stderr, "error: {}\n", error);
  size_t errors = tls.errors.size();
  if (config.upstream.tls != portcullis::UpstreamTls::none) {
    std::string error;
    if (!portcullis::make_upstream_tls_context(config.upstream, &error)) {
      fmt::print(stderr, "error: upstream: {}\n", error);
      ++errors;
    }
  }
  if (errors > 0) {
    fmt::print(stderr, "{}: {} error(s)\n", config_path, errors);
    return 1;
  }
  fmt::print("{}: ok\n", config_path);
  return 0;
}

int command_run(const std::string& config_path) {
  portcullis::ConfigResult result = portcullis::load_config(config_path);
  print_messages(result);
  if (!result.config) return 1;
  portcullis::Server server(std::move(*result.config));
  return server.run();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Portcullis: a filtering SMTP proxy in front of Postfix"};
  app.require_subcommand(1);
  std::string config_path = kDefaultConfig;

  CLI::App* run = app.add_subcommand("run", "run the proxy in the foreground");
  run->add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  CLI::App* check = app.add_subcommand("check", "validate the configuration and exit 0 or 1");
  check->add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_subcommand("version", "print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*run) return command_run(config_path);
    if (*check) return command_check(config_path);
    fmt::print("portcullis {}\n", PORTCULLIS_VERSION);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "portcullis: fatal: {}\n", e.what());
    return 1;
  }
}
