#include "explain_command.h"

#include <sys/stat.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>

#include "config.h"
#include "event_handles.h"
#include "filter_observer.h"
#include "filter_runner.h"
#include "message_store.h"
#include "net_address.h"
#include "policy_session.h"
#include "quiet_main_log.h"
#include "read_only_store.h"
#include "recording_resolver.h"
#include "redis_settings.h"
#include "redis_store.h"
#include "rejection_log.h"
#include "session_facts.h"
#include "stored_message_view.h"
#include "unbound_resolver.h"

namespace portcullis {

namespace {

// Routes completions to the one runner of the explained session.
class ExplainRouter final : public CompletionTarget {
 public:
  void deliver(std::uint64_t session_id, std::uint64_t call_id, FilterResult result) override {
    if (runner && session_id == kSessionId) runner->deliver(call_id, std::move(result));
  }
  static constexpr std::uint64_t kSessionId = 1;
  FilterRunner* runner = nullptr;
};

// Offers the resolver the way a live session does (Worker::resolver_for): made on first use,
// on explain's own loop, for [dns] (or --dns); a context libunbound refuses leaves the filters
// without a resolver, as in live traffic, and says why in the trace.
//
// The store is [store]'s, read-only (ReadOnlyStore): the LMDB file, or Redis's gets and lists.
// explain shows the keys it looked up and what an update would have made of them, and never
// writes. No LMDB file yet: every key absent.
class ExplainServices final : public FilterServices {
 public:
  ExplainServices(event_base* base, UnboundResolverOptions dns, ReadOnlyStore store,
                  std::string store_problem)
      : base_(base),
        dns_(std::move(dns)),
        store_problem_(std::move(store_problem)),
        store_(std::move(store)) {}

  StateStore* store() override {
    if (!store_problem_.empty()) {
      if (!store_problem_told_) store_problem_notes_.push_back(store_problem_);
      store_problem_told_ = true;
      return nullptr;
    }
    return &store_;
  }
  std::vector<std::string> take_store_notes() {
    std::vector<std::string> notes = store_.take_lookups();
    notes.insert(notes.begin(), store_problem_notes_.begin(), store_problem_notes_.end());
    store_problem_notes_.clear();
    return notes;
  }
  std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds delay,
                                           std::function<void()> callback) override {
    return start_loop_timer(base_, delay, std::move(callback));
  }
  void send_to_client(std::string_view) override {}  // there is no client

  DnsResolver* resolver() override {
    if (!resolver_taken_) {
      resolver_taken_ = true;
      try {
        recording_ = std::make_unique<RecordingResolver>(UnboundResolver::create(base_, dns_));
      } catch (const std::exception& error) {
        resolver_problem = fmt::format("no DNS resolver: {}", error.what());
      }
    }
    return recording_.get();
  }

  std::vector<DnsExchange> take_exchanges() {
    return recording_ ? recording_->take() : std::vector<DnsExchange>{};
  }
  std::string resolver_problem;  // reported once, in the phase that first asked

 private:
  event_base* base_;
  UnboundResolverOptions dns_;
  bool resolver_taken_ = false;
  std::unique_ptr<RecordingResolver> recording_;
  std::string store_problem_;  // the store file could not be opened: reported once
  bool store_problem_told_ = false;
  std::vector<std::string> store_problem_notes_;
  ReadOnlyStore store_;
};

// Filter problems go into the trace instead of a log.
class ExplainObserver final : public FilterObserver {
 public:
  void filter_result(const std::string& filter, std::string_view result,
                     std::chrono::nanoseconds duration) override {
    if (result != "ok") {
      notes.push_back(
          fmt::format("filter {}: {} after {} ms", filter, result,
                      std::chrono::duration_cast<std::chrono::milliseconds>(duration).count()));
    }
  }
  void filter_problem(std::uint64_t, const std::string& filter, Phase, std::string_view what,
                      const std::string& detail) override {
    notes.push_back(fmt::format("filter {}: {}: {}", filter, what, detail));
  }
  std::vector<std::string> notes;
};

std::optional<FactValue> parse_evidence_value(const FactSpec& spec, const std::string& text,
                                              std::string* error) {
  switch (spec.type) {
    case FactType::boolean:
      if (text == "true") return FactValue(true);
      if (text == "false") return FactValue(false);
      *error = "expected true or false";
      return std::nullopt;
    case FactType::integer: {
      try {
        size_t used = 0;
        const long long number = std::stoll(text, &used);
        if (used == text.size()) return FactValue(static_cast<std::int64_t>(number));
      } catch (const std::exception&) {
      }
      *error = "expected an integer";
      return std::nullopt;
    }
    case FactType::string:
      return FactValue(text);
    case FactType::ip:
      if (auto address = IpAddress::parse(text)) return FactValue(*address);
      *error = "expected an IP address";
      return std::nullopt;
    case FactType::list: {
      FactList items;
      std::stringstream stream(text);
      std::string item;
      while (std::getline(stream, item, ',')) {
        if (!item.empty()) items.push_back(item);
      }
      return FactValue(std::move(items));
    }
  }
  return std::nullopt;
}

// A message file is usually written with LF line ends; on the wire (and so in what the data
// filters read) every line ends in CRLF, as swaks or sendmail would send it.
std::string with_crlf_line_ends(const std::string& text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out.push_back('\r');
    out.push_back(text[i]);
  }
  return out;
}

struct ExplainSession {
  event_base* base;
  ExplainServices* services;
  std::map<Phase, std::vector<std::string>>* skipped_notes;
  FilterRunner* runner;
  policy::PolicySession* policy;
  const FactCatalog* catalog;
  Facts* facts;
  const Facts* overrides;
  SessionView* view;
  ExplainObserver* observer;
  std::vector<policy::Verdict> verdicts;
  std::vector<std::vector<DnsExchange>> exchanges;  // per verdict: the queries of its phase

  // The same order as a live session: filters of the phase, then the policy.
  const policy::Verdict& screen(Phase phase, const MessageView* message = nullptr) {
    PhaseOutcome outcome;
    outcome.phase = phase;
    bool done = false;
    observer->notes.clear();
    if (runner) {
      runner->run(
          phase, *view, *facts,
          [&](PhaseOutcome result) {
            outcome = std::move(result);
            done = true;
          },
          overrides, message);
      while (!done) {
        if (event_base_loop(base, EVLOOP_ONCE) != 0) break;
      }
    }
    // Evidence given on the command line wins over what the core knows too.
    if (overrides) {
      for (const auto& [name, value] : *overrides) {
        if (catalog->find(name) && catalog->find(name)->known_from <= phase) {
          facts->set(name, value);
        }
      }
    }
    policy::Verdict verdict = policy->evaluate(phase, *facts, outcome.failed_filters);
    for (const auto& filter : outcome.skipped_filters) {
      verdict.trace.notes.push_back(fmt::format(
          "filter {} failed with failure_mode = continue: its facts are absent", filter));
    }
    for (auto& note : observer->notes)
      verdict.trace.notes.push_back(std::move(note));
    for (auto& note : (*skipped_notes)[phase])
      verdict.trace.notes.push_back(std::move(note));
    skipped_notes->erase(phase);
    if (!services->resolver_problem.empty()) {
      verdict.trace.notes.push_back(std::move(services->resolver_problem));
      services->resolver_problem.clear();
    }
    for (auto& note : services->take_store_notes())
      verdict.trace.notes.push_back(std::move(note));
    exchanges.push_back(services->take_exchanges());
    verdicts.push_back(std::move(verdict));
    return verdicts.back();
  }
};

bool refused_now(const policy::Verdict& verdict) {
  return verdict.refused() && (verdict.answer == policy::AnswerTime::now ||
                               verdict.answer == policy::AnswerTime::now_and_close);
}

// One line: what the client would have seen in the end.
std::string outcome_line(const std::vector<policy::Verdict>& verdicts, std::size_t rcpts,
                         bool data_phase, bool delivered) {
  std::size_t refused_rcpts = 0;
  std::string rcpt_reply;
  for (const auto& verdict : verdicts) {
    if (!refused_now(verdict)) continue;
    const std::string reply = verdict.reply ? verdict.reply->to_string() : "";
    if (verdict.phase != Phase::rcpt) {
      return fmt::format("refused at {}: {}", phase_name(verdict.phase), reply);
    }
    ++refused_rcpts;
    rcpt_reply = reply;
  }
  if (rcpts > 0 && refused_rcpts == rcpts) {
    return fmt::format("every recipient refused: {}", rcpt_reply);
  }
  std::string out;
  if (refused_rcpts > 0) {
    out = fmt::format("{} of {} recipients refused ({}); ", refused_rcpts, rcpts, rcpt_reply);
  }
  if (delivered) return out + "the message would be relayed to the upstream";
  if (rcpts > 0 && !data_phase) return out + "the transaction would go on to DATA (no --message)";
  return out + "nothing refused by policy";
}

// Each phase's trace with the DNS queries of that phase: in text a `dns:` line per query after
// the phase line, in JSON a "dns" array in the phase object.
std::string render_text_with_dns(const std::vector<policy::Verdict>& verdicts,
                                 const std::vector<std::vector<DnsExchange>>& exchanges) {
  std::string out;
  for (std::size_t i = 0; i < verdicts.size(); ++i) {
    if (!out.empty()) out += "\n";
    std::string phase = policy::render_text(verdicts[i]);
    const std::size_t first_line = phase.find('\n') + 1;
    std::string lines;
    for (const auto& exchange : exchanges[i])
      lines += "  dns: " + describe_exchange(exchange) + "\n";
    phase.insert(first_line, lines);
    out += phase;
  }
  return out;
}

std::string render_json_with_dns(const std::vector<policy::Verdict>& verdicts,
                                 const std::vector<std::vector<DnsExchange>>& exchanges) {
  std::string out = "[";
  for (std::size_t i = 0; i < verdicts.size(); ++i) {
    if (i > 0) out += ',';
    std::string phase = policy::render_json(verdicts[i]);
    phase.pop_back();  // the object's closing brace: "dns" goes in the same object
    std::string dns = "[";
    for (const auto& exchange : exchanges[i]) {
      if (dns.size() > 1) dns += ',';
      dns += exchange_json(exchange);
    }
    out += phase + ",\"dns\":" + dns + "]}";
  }
  return out + "]";
}

}  // namespace

int run_explain(const ExplainOptions& options, std::ostream& out, std::ostream& err) {
  ConfigResult loaded = load_config(options.config_path);
  for (const auto& message : loaded.errors)
    err << "error: " << message.to_string() << "\n";
  if (!loaded.config) return 1;
  const Config& config = *loaded.config;

  std::optional<NetAddress> client = NetAddress::parse_host_port(options.client);
  if (!client) {
    // A bare address: port 0.
    std::string text = options.client;
    if (text.find(':') != std::string::npos && text.front() != '[') text = "[" + text + "]";
    client = NetAddress::parse_host_port(text + ":0");
  }
  std::optional<IpAddress> client_ip = client ? IpAddress::parse(client->ip()) : std::nullopt;
  if (!client_ip) {
    err << "explain: --client: expected an IP address (optionally with a port), got \""
        << options.client << "\"\n";
    return 2;
  }

  const FactCatalog& catalog = *config.filters.catalog;
  Facts overrides;
  for (const auto& item : options.evidence) {
    const size_t equals = item.find('=');
    const std::string name = item.substr(0, equals);
    const FactSpec* spec = catalog.find(name);
    if (equals == std::string::npos || !spec) {
      err << "explain: --evidence " << item << ": expected FACT=VALUE with a known fact\n";
      return 2;
    }
    std::string problem;
    auto value = parse_evidence_value(*spec, item.substr(equals + 1), &problem);
    if (!value) {
      err << "explain: --evidence " << item << ": " << problem << "\n";
      return 2;
    }
    overrides.set(name, std::move(*value));
  }

  std::string message;
  if (!options.message_file.empty()) {
    std::ifstream file(options.message_file, std::ios::binary);
    if (!file) {
      err << "explain: cannot read " << options.message_file << "\n";
      return 2;
    }
    std::ostringstream content;
    content << file.rdbuf();
    message = with_crlf_line_ends(content.str());
  }

  UnboundResolverOptions dns{config.dns.resolvers, std::chrono::seconds(config.dns.timeout),
                             nullptr};
  if (!options.dns.empty()) dns.resolvers = options.dns;
  for (const auto& resolver : options.dns) {
    if (!unbound_forwarder(resolver)) {
      err << "explain: --dns " << resolver
          << ": expected IP:PORT (e.g. 127.0.0.1:53 or [::1]:53)\n";
      return 2;
    }
  }

  // A filter that --evidence gives any fact of is not run: the evidence stands for what it
  // would have found (so `--evidence spf=fail` asks no DNS); its other facts stay absent
  // unless given too.
  std::vector<FilterInstance> chain;
  std::map<Phase, std::vector<std::string>> skipped_notes;
  for (const auto& filter : config.filters.chain) {
    std::vector<std::string> given;
    for (const auto& fact : filter.facts) {
      if (overrides.has(fact)) given.push_back(fact);
    }
    if (given.empty()) {
      chain.push_back(filter);
      continue;
    }
    if (filter.hooks.empty()) continue;
    skipped_notes[filter.hooks.front()].push_back(
        fmt::format("filter {} not run: --evidence gives {}", filter.name, fmt::join(given, ", ")));
  }

  EventBasePtr base(event_base_new());
  // The store as `run` opens it. LMDB: never created here (a file made by explain, perhaps as
  // root, would not be the file `run` expects to own) and never swept (a sweep writes).
  // Redis: quiet, as for `store`; a Redis that cannot be reached is said by each lookup's note.
  std::optional<QuietMainLog> quiet_log;  // outlives the Redis store, which logs to it
  std::unique_ptr<LmdbDatabase> store_database;
  std::shared_ptr<StateStore> redis_store;
  std::string store_problem;
  const std::string store_path = lmdb_store_path(config.server);
  struct stat store_file {};
  if (config.store.backend == StoreBackend::redis) {
    quiet_log.emplace();
    redis_store = RedisStore::create(base.get(), redis_command_options(config.store.redis));
  } else if (::stat(store_path.c_str(), &store_file) == 0) {
    LmdbDatabaseOptions store_options;
    store_options.path = store_path;
    store_options.map_size = config.store.lmdb_map_size;
    store_options.sweep_interval = std::chrono::hours(24 * 365);
    std::string error;
    store_database = LmdbDatabase::open(std::move(store_options), &error);
    if (!store_database) {
      store_problem = fmt::format("no store: cannot open {}: {}", store_path, error);
    }
  }

  auto router = std::make_shared<ExplainRouter>();
  ExplainServices services(base.get(), std::move(dns),
                           redis_store ? ReadOnlyStore(base.get(), redis_store)
                                       : ReadOnlyStore(base.get(), store_database.get()),
                           std::move(store_problem));
  ExplainObserver observer;
  std::unique_ptr<FilterRunner> runner;
  if (!chain.empty()) {
    runner = std::make_unique<FilterRunner>(base.get(), ExplainRouter::kSessionId, chain, router,
                                            services, observer);
    router->runner = runner.get();
  }
  policy::PolicySession policy(config.policy.policy,
                               policy::SessionOptions{config.policy.delay_reject});
  Facts facts;
  SessionView view;
  view.session_id = ExplainRouter::kSessionId;
  view.client_ip = *client_ip;
  view.client_port = client->port();
  view.hostname = config.server.hostname;
  if (!config.listeners.empty()) view.local_ip = IpAddress::parse(config.listeners[0].address.ip());
  view.facts = &facts;
  record_connect_facts(facts, client_ip, client->port());

  ExplainSession session{base.get(),
                         &services,
                         &skipped_notes,
                         runner.get(),
                         &policy,
                         &catalog,
                         &facts,
                         overrides.empty() ? nullptr : &overrides,
                         &view,
                         &observer,
                         {},
                         {}};
  bool delivered = false;
  bool data_phase = false;
  [&] {
    if (refused_now(session.screen(Phase::connect))) return;
    if (options.helo.empty()) return;
    record_helo_facts(facts, &catalog, options.helo, options.tls, "TLSv1.3");
    if (refused_now(session.screen(Phase::helo))) return;
    if (!options.from_given) return;
    const std::string sender = options.from == "<>" ? std::string() : options.from;
    // As a client that declares SIZE= would.
    record_mail_facts(facts, &catalog, sender,
                      message.empty() ? std::nullopt : std::optional<std::int64_t>(message.size()));
    if (refused_now(session.screen(Phase::mail))) return;
    std::int64_t accepted = 0;
    for (const auto& rcpt : options.rcpts) {
      record_rcpt_facts(facts, &catalog, rcpt, accepted);
      if (!refused_now(session.screen(Phase::rcpt))) ++accepted;
    }
    if (accepted == 0 || options.message_file.empty()) return;
    data_phase = true;
    record_data_facts(facts, &catalog, static_cast<std::int64_t>(message.size()), accepted);
    // As a live session: the data filters see the message stream in, then whole at the data
    // phase. It stays in memory (explain writes no spill file).
    MessageStore store(message.size() + 1, std::string());
    if (!store.append(message)) {
      err << "explain: cannot hold the message: " << store.error() << "\n";
      return;
    }
    if (runner && runner->streams_message()) {
      runner->begin_message(view);
      constexpr std::size_t chunk = 64 * 1024;
      for (std::size_t at = 0; at < message.size(); at += chunk) {
        runner->message_data(view, std::string_view(message).substr(at, chunk));
      }
    }
    const StoredMessageView stored(store, config.limits.max_header_size);
    delivered = !refused_now(session.screen(Phase::data, &stored));
  }();
  if (runner) runner->session_end(view);

  if (options.json) {
    out << fmt::format(
        "{{\"client\":{},\"verdicts\":{},\"outcome\":{}}}\n", json_string(client_ip->to_string()),
        render_json_with_dns(session.verdicts, session.exchanges),
        json_string(outcome_line(session.verdicts, options.rcpts.size(), data_phase, delivered)));
  } else {
    out << render_text_with_dns(session.verdicts, session.exchanges);
    out << "\noutcome: "
        << outcome_line(session.verdicts, options.rcpts.size(), data_phase, delivered) << "\n";
  }
  return 0;
}

}  // namespace portcullis
