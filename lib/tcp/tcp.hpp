// lib/tcp umbrella header: the TCP machinery of the data plane (see docs/tcp.md).
#pragma once

#include "tcp/backend_pool.hpp"
#include "tcp/conn.hpp"
#include "tcp/counters.hpp"
#include "tcp/flow_table.hpp"
#include "tcp/mbuf_queue.hpp"
#include "tcp/reassembly.hpp"
#include "tcp/sender.hpp"
#include "tcp/seq.hpp"
#include "tcp/splice.hpp"
#include "tcp/syncookie.hpp"
#include "tcp/timer_wheel.hpp"
