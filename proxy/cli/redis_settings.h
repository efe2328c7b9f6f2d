#pragma once

#include "config.h"
#include "redis_store.h"

namespace portcullis {

// [store.redis] as the Redis store takes it: what `run`'s workers and the `store` command
// connect with.
RedisStoreOptions redis_store_options(const RedisConfig& redis);

}  // namespace portcullis
