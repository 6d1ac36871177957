/*
 * The core's internal headers in one include, for sources that use most of them (config.c,
 * rules.c, the internal test suites). New code includes the topic headers it uses:
 *
 *   lib/error.h     errors and the debug log        lib/clock.h     the monotonic clock
 *   lib/segment.h   the segment's format            lib/handle.h    struct rl, the segment clock
 *   lib/algo.h      limits' parameters, algorithms  lib/table.h     the key table's entry points
 *   lib/thread.h    threads, the fork registry      lib/compiler.h  TSan, TLS, cpu_relax
 *   lib/options.h   the options table               lib/remote.h    the remote modes' interface
 *   lib/rules.h     rule sets, rules.c's entry points
 *
 * No lib/ header includes a sync/ header: the core reaches Redis only through lib/remote.h.
 * Not installed; nothing here is ABI.
 */
#ifndef RL_INTERNAL_H
#define RL_INTERNAL_H

#include <pthread.h>
#include <time.h>

#include "rl.h"

#include "lib/algo.h"
#include "lib/clock.h"
#include "lib/compiler.h"
#include "lib/error.h"
#include "lib/handle.h"
#include "lib/segment.h"
#include "lib/table.h"
#include "lib/rules.h"
#include "lib/thread.h"

#endif /* RL_INTERNAL_H */
