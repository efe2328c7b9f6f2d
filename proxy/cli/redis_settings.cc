#include "redis_settings.h"

#include <algorithm>

namespace portcullis {

RedisStoreOptions redis_store_options(const RedisConfig& redis) {
  RedisStoreOptions options;
  options.host = redis.address.ip();
  options.port = redis.address.port();
  options.database = redis.database;
  options.prefix = redis.prefix;
  options.password = redis.password;
  options.timeout = std::chrono::milliseconds(redis.timeout_ms);
  return options;
}

RedisStoreOptions redis_command_options(const RedisConfig& redis) {
  RedisStoreOptions options = redis_store_options(redis);
  options.timeout = std::max(options.timeout, std::chrono::milliseconds(2000));
  return options;
}

}  // namespace portcullis
