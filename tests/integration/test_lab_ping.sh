#!/usr/bin/env bash
# First packet path through DPDK: from tlb-client, ping and arping 10.10.0.1 (the VIP on the
# appliance's client port) get replies; from tlb-gpu the same for 10.20.0.1; the appliance's
# counters account for them; and with the appliance stopped the same probes get no reply (so this
# test fails when nothing answers). Lab setup/teardown and the lab lock come from lib/lab.sh.
set -euo pipefail
. "$(dirname "$0")/lib/lab.sh"

[ -x "$TOKENLB_BIN" ] || fail "appliance not built: $TOKENLB_BIN"
lab_session

probe_ping() { # ns addr -> 0 when all 3 echo requests were answered
  ip netns exec "$1" ping -c 3 -i 0.2 -W 1 "$2" >/tmp/tlb-ping.$$ 2>&1
  local rc=$?
  grep -E "packets transmitted" /tmp/tlb-ping.$$ || true
  rm -f /tmp/tlb-ping.$$
  return $rc
}
probe_arping() { # ns iface addr -> 0 when replies came back
  local out rc
  out=$(ip netns exec "$1" arping -c 2 -w 4 -i "$2" "$3" 2>&1) && rc=0 || rc=$?
  echo "$out" | grep -E "packets received" || true
  [ $rc -eq 0 ] && [[ "$out" == *"($3)"* ]]
}

# 1. Nothing answers before the appliance runs (the lab's kernel ends are quiet).
probe_ping tlb-client "$LAB_VIP" && fail "ping $LAB_VIP answered with no appliance running"
pass "no answer from $LAB_VIP before start"

# 2. Appliance up: everything answers through DPDK.
lab_start
probe_ping tlb-client "$LAB_VIP" || fail "ping $LAB_VIP from tlb-client"
pass "ping $LAB_VIP from tlb-client"
probe_arping tlb-client tlbc1 "$LAB_VIP" || fail "arping $LAB_VIP from tlb-client"
pass "arping $LAB_VIP from tlb-client"
probe_ping tlb-gpu "$LAB_APPLIANCE_GPU" || fail "ping $LAB_APPLIANCE_GPU from tlb-gpu"
pass "ping $LAB_APPLIANCE_GPU from tlb-gpu"
probe_arping tlb-gpu tlbg1 "$LAB_APPLIANCE_GPU" || fail "arping $LAB_APPLIANCE_GPU from tlb-gpu"
pass "arping $LAB_APPLIANCE_GPU from tlb-gpu"
# Large echo (1400 bytes of payload) comes back intact: checksums over a full frame.
in_client ping -c 1 -W 1 -s 1400 -p a5 "$LAB_VIP" >/dev/null || fail "1400-byte ping"
pass "1400-byte ping"
# An address the appliance does not own stays silent.
probe_arping tlb-client tlbc1 10.10.0.77 && fail "arping 10.10.0.77 answered"
pass "no ARP answer for 10.10.0.77"
# The appliance's reply MAC is the DPDK port's (the kernel's neighbour entry in tlb-client).
mac_c=$(ip -n tlb-client neigh show "$LAB_VIP" | awk '{print $5}')
[ -n "$mac_c" ] || fail "tlb-client has no neighbour entry for $LAB_VIP"
grep -qi "port client .* mac $mac_c" "$LAB_RUN/tokenlb.log" || fail "neighbour MAC $mac_c is not the appliance port's"
pass "tlb-client resolved $LAB_VIP to the DPDK port's MAC $mac_c"

# 3. The counters account for what we sent (names shared by every tokenlb worker so far; a
# counter that is still zero is not printed, hence the default 0).
counters=$("$LAB_SH" counters)
echo "$counters"
get() { echo "$counters" | head -1 | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'; }
# 3 + 3 + 1 echo requests and 2 + 2 ARP requests were sent above (lab.sh start sends a few more).
[ "$(get icmp_echo_replies)" -ge 7 ] || fail "icmp_echo_replies $(get icmp_echo_replies) < 7"
[ "$(get arp_answered)" -ge 4 ] || fail "arp_answered $(get arp_answered) < 4"
pass "counters: $(get icmp_echo_replies) echo replies, $(get arp_answered) ARP answers"

# 4. Stopped: the same probes fail, and the appliance exited cleanly.
lab_stop
grep -q "^tokenlb: exit 0" "$LAB_RUN/tokenlb.log" || fail "appliance did not exit cleanly"
pass "appliance stopped with exit 0"
ip -n tlb-client neigh flush dev tlbc1 || true
ip -n tlb-gpu neigh flush dev tlbg1 || true
probe_ping tlb-client "$LAB_VIP" && fail "ping $LAB_VIP still answered after stop"
probe_arping tlb-client tlbc1 "$LAB_VIP" && fail "arping $LAB_VIP still answered after stop"
probe_ping tlb-gpu "$LAB_APPLIANCE_GPU" && fail "ping $LAB_APPLIANCE_GPU still answered after stop"
probe_arping tlb-gpu tlbg1 "$LAB_APPLIANCE_GPU" && fail "arping $LAB_APPLIANCE_GPU still answered after stop"
pass "no answers after stop"
echo "test_lab_ping: all checks passed"
