#include "thread_scheduling.h"

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstring>

namespace portcullis {

bool apply_cpu_scheduling(CpuScheduling policy, std::string* error) {
  if (policy == CpuScheduling::normal) return true;
  int current = 0;
  sched_param param{};
  if (const int status = pthread_getschedparam(pthread_self(), &current, &param); status != 0) {
    *error = std::string("pthread_getschedparam: ") + std::strerror(status);
    return false;
  }
  if (current != SCHED_OTHER) return true;
  param.sched_priority = 0;  // the only priority SCHED_BATCH has; the nice value stays
  if (const int status = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param); status != 0) {
    *error = std::string("pthread_setschedparam(SCHED_BATCH): ") + std::strerror(status);
    return false;
  }
  return true;
}

bool pin_to_cpu(unsigned index, std::string* error) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
    *error = std::string("sched_getaffinity: ") + std::strerror(errno);
    return false;
  }
  const int count = CPU_COUNT(&allowed);
  if (count == 0) {
    *error = "the process may run on no CPU";
    return false;
  }
  const int wanted = static_cast<int>(index % static_cast<unsigned>(count));
  int position = 0;  // among the allowed CPUs
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (position++ != wanted) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (const int status = pthread_setaffinity_np(pthread_self(), sizeof one, &one); status != 0) {
      *error = "pthread_setaffinity_np(CPU " + std::to_string(cpu) + "): " + std::strerror(status);
      return false;
    }
    return true;
  }
  *error = "no CPU for index " + std::to_string(index);  // unreachable: wanted < count
  return false;
}

void name_this_thread(const std::string& name) {
  // The kernel keeps 15 bytes; a longer name would make the call fail.
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace portcullis
