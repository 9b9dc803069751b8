#!/usr/bin/python3
"""Python `ovs` IDL side of bench/ovsdb (run by crates/bench's ovsdb_bench; benchmark only).

Modes (REMOTE is unix:PATH of a Northbound ovsdb-server prepared by the driver):
  insert REMOTE PORTS SWITCHES BATCH  -- PORTS logical switch ports, BATCH ports per transaction,
                                         port i on switch "sw<i % SWITCHES>" (made by the driver)
  sync REMOTE ROWS                    -- initial monitor sync of the Logical_Switch_Port table
Prints one JSON line: {"seconds": ..., "rss_kib": ..., ...}. The clock starts before the Idl is
made, so it includes the schema fetch, the initial monitor reply and, for insert, every commit.
"""

import json
import sys
import time

import ovs.db.idl
import ovs.poller

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"


def vm_hwm_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def port_name(i):
    return "p%d" % i


def port_address(i):
    return "0a:00:00:%02x:%02x:%02x 10.%d.%d.%d" % (
        (i >> 16) & 255, (i >> 8) & 255, i & 255, 100 + ((i >> 16) & 255), (i >> 8) & 255, i & 255)


def wait_synced(idl, done):
    """Runs the IDL until done(idl) holds."""
    while True:
        idl.run()
        if done(idl):
            return
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.block()


def insert(remote, ports, switches, batch):
    t0 = time.perf_counter()
    helper = ovs.db.idl.SchemaHelper(location=NB_SCHEMA)
    helper.register_columns("Logical_Switch", ["name", "ports"])
    helper.register_columns("Logical_Switch_Port", ["name", "addresses"])
    idl = ovs.db.idl.Idl(remote, helper)
    wait_synced(idl, lambda i: i.change_seqno != 0 and len(i.tables["Logical_Switch"].rows) >= switches)
    by_name = {r.name: r for r in idl.tables["Logical_Switch"].rows.values()}
    sws = [by_name["sw%d" % s] for s in range(switches)]
    t_synced = time.perf_counter()
    lsp_table = idl.tables["Logical_Switch_Port"]
    i = 0
    txns = 0
    while i < ports:
        txn = ovs.db.idl.Transaction(idl)
        for j in range(i, min(i + batch, ports)):
            row = txn.insert(lsp_table)
            row.name = port_name(j)
            row.addresses = [port_address(j)]
            sws[j % switches].addvalue("ports", row)
        status = txn.commit_block()
        if status != ovs.db.idl.Transaction.SUCCESS:
            raise SystemExit("transaction %d failed: %s %s" % (txns, status, txn.get_error()))
        txns += 1
        i += batch
    t1 = time.perf_counter()
    idl.close()
    print(json.dumps({"seconds": t1 - t0, "connect_sync_s": t_synced - t0, "txns": txns,
                      "rss_kib": vm_hwm_kib()}))


def sync(remote, rows):
    t0 = time.perf_counter()
    helper = ovs.db.idl.SchemaHelper(location=NB_SCHEMA)
    helper.register_table("Logical_Switch_Port")
    idl = ovs.db.idl.Idl(remote, helper)
    wait_synced(idl, lambda i: i.change_seqno != 0 and len(i.tables["Logical_Switch_Port"].rows) >= rows)
    t1 = time.perf_counter()
    n = len(idl.tables["Logical_Switch_Port"].rows)
    idl.close()
    print(json.dumps({"seconds": t1 - t0, "rows": n, "rss_kib": vm_hwm_kib()}))


def main(argv):
    if len(argv) == 6 and argv[1] == "insert":
        insert(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    elif len(argv) == 4 and argv[1] == "sync":
        sync(argv[2], int(argv[3]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
