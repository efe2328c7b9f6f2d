#pragma once

#include "config.h"
#include "redis_store.h"

namespace portcullis {

// [store.redis] as the Redis store takes it: what `run`'s workers and the `store` command
// connect with.
RedisStoreOptions redis_store_options(const RedisConfig& redis);
// The same for the administrator's commands (`store`, `explain`): a timeout of at least 2 s,
// since they are not in the mail path and a Redis busy with the nodes' traffic should not
// fail them.
RedisStoreOptions redis_command_options(const RedisConfig& redis);

}  // namespace portcullis
