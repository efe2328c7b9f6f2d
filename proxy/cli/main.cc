// portcullis: command-line entry point (run, check, explain, report, store, version).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "config.h"
#include "explain_command.h"
#include "rejection_report.h"
#include "run_readiness.h"
#include "server.h"
#include "store_command.h"
#include "tls_context.h"

namespace {

constexpr const char* kDefaultConfig = portcullis::default_config_path;

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
  // Then what `run` needs of this machine: the user, directories, files, addresses.
  const portcullis::RunReadiness::Report readiness = portcullis::RunReadiness::check(config);
  for (const auto& message : readiness.errors)
    fmt::print(stderr, "error: {}\n", message.to_string());
  for (const auto& message : readiness.warnings)
    fmt::print(stderr, "warning: {}\n", message.to_string());
  errors += readiness.errors.size();
  if (errors > 0) {
    fmt::print(stderr, "{}: {} error(s)\n", config_path, errors);
    return 1;
  }
  const size_t rules = config.policy.policy ? config.policy.policy->rules().size() : 0;
  std::string chain;
  for (const auto& filter : config.filters.chain) {
    if (!chain.empty()) chain += ", ";
    chain += filter.name;
  }
  fmt::print("{}: ok (filters: {}; policy: {} rule(s) from {} file(s))\n", config_path,
             chain.empty() ? "none" : chain, rules, config.policy.files.size());
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
  portcullis::ExplainOptions explain_options;
  explain_options.config_path = kDefaultConfig;
  CLI::App* explain = app.add_subcommand(
      "explain", "run one transaction through the filters and policy and show every decision");
  explain->add_option("-c,--config", explain_options.config_path, "configuration file")
      ->capture_default_str();
  explain->add_option("--client", explain_options.client, "client address (IP or IP:PORT)")
      ->required();
  explain->add_option("--helo", explain_options.helo, "HELO/EHLO argument");
  explain->add_flag("--tls", explain_options.tls, "as if the client had used STARTTLS");
  auto* from =
      explain->add_option("--from", explain_options.from, "sender (<> for the null sender)");
  explain->add_option("--rcpt", explain_options.rcpts, "recipient (repeat for several)");
  explain->add_option("--message", explain_options.message_file, "message file for the data phase");
  explain->add_option("--evidence", explain_options.evidence,
                      "FACT=VALUE: use this instead of what a filter would find (repeatable)");
  explain->add_option("--dns", explain_options.dns,
                      "IP:PORT of a DNS resolver, instead of [dns] resolvers (repeatable)");
  explain->add_flag("--json", explain_options.json, "JSON output for tools");

  portcullis::ReportOptions report_options;
  CLI::App* report = app.add_subcommand("report", "summarise rejection logs");
  report->add_option("files", report_options.files, "rejection log files (- = standard input)")
      ->required();
  report->add_flag("--json", report_options.json, "JSON output for tools");
  report->add_option("--top", report_options.top, "entries per table")->capture_default_str();

  portcullis::StoreCommandOptions store_options;
  store_options.config_path = kDefaultConfig;
  CLI::App* store = app.add_subcommand(
      "store", "list, show or delete the state store's entries (greylist triplets, rate counters)");
  store->add_option("-c,--config", store_options.config_path, "configuration file")
      ->capture_default_str();
  store->require_subcommand(1);
  // fallthrough: --config is also taken after the action (`store list --config F`).
  store->fallthrough();
  CLI::App* store_list = store->add_subcommand("list", "list the entries, in key order");
  auto* list_prefix =
      store_list->add_option("--prefix", store_options.prefix, "only keys that start with P");
  store_list->add_option("--limit", store_options.limit, "entries at most")->capture_default_str();
  store_list->add_flag("--json", store_options.json, "JSON output for tools");
  CLI::App* store_show = store->add_subcommand("show", "show one entry (exit 1: no such key)");
  store_show->add_option("key", store_options.key, "the key")->required();
  store_show->add_flag("--json", store_options.json, "JSON output for tools");
  CLI::App* store_delete =
      store->add_subcommand("delete", "delete one entry, or those whose key starts with P");
  store_delete->add_option("key", store_options.key, "the key");
  CLI::App* store_pass = store->add_subcommand(
      "pass", "mark a greylist triplet as passed: the sender's next retry is delivered");
  store_pass->add_option("key", store_options.key, "the triplet's key (gl:...)")->required();
  auto* delete_prefix = store_delete->add_option("--prefix", store_options.prefix,
                                                 "delete the keys that start with P");
  store_delete->add_option("--limit", store_options.limit, "entries deleted at most")
      ->capture_default_str();

  app.add_subcommand("version", "print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*run) return command_run(config_path);
    if (*check) return command_check(config_path);
    if (*explain) {
      explain_options.from_given = from->count() > 0;
      return portcullis::run_explain(explain_options, std::cout, std::cerr);
    }
    if (*report) return portcullis::run_report(report_options, std::cout, std::cerr);
    if (*store) {
      store_options.action = *store_list   ? "list"
                             : *store_show ? "show"
                             : *store_pass ? "pass"
                                           : "delete";
      store_options.prefix_given = list_prefix->count() > 0 || delete_prefix->count() > 0;
      return portcullis::run_store(store_options, std::cout, std::cerr);
    }
    fmt::print("portcullis {}\n", PORTCULLIS_VERSION);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "portcullis: fatal: {}\n", e.what());
    return 1;
  }
}
