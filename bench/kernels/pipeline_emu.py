#!/usr/bin/env python3
"""Replay, under random thread interleavings, the two synchronisation protocols of kernels that
have not run on a GPU yet, and check them:

1. kernels/gemm_wgmma_ws.cu: one producer thread (TMA loads onto full[s]), two consumer
   warpgroups (wait full[s], compute, release slot kt-1 on empty[s], 256 arrivals), STAGES
   slots, mbarrier phase parity as PTX defines it (try_wait.parity P succeeds once the phase
   with parity P has completed, i.e. while the current phase's parity differs from P). Checks:
   no deadlock; every tile a consumer computes on is the one loaded for that k-tile (a slot is
   never refilled while a consumer may still read it).
   With a k_chunk the consumers also drain their wgmma groups at each chunk boundary.
2. kernels/gemm.cu cross-block split of K: S blocks per output tile store partials, count on a
   per-tile counter; the block that sees count S-1 sums the partials in chunk order and resets
   the counter. Checks: exactly one block finishes each tile, it sees every partial, and the
   counter is 0 afterwards (so graph replays work), over several launches.
3. host/cuda_outbox.c: downloads through a ring of device slots, filled on the compute stream
   and copied to the host on a copy stream, ordered by events with CUDA's semantics (a wait
   on an event waits for its latest record enqueued before the wait; none: no-op). Checks: a
   slot is never refilled before its copy to the host has run, every host destination gets
   its chunk, and after finish's join both streams are done.

Mirrors the kernels' loops by hand: keep it in step when they change. Run:
python3 bench/kernels/pipeline_emu.py (standard library only, a few seconds)."""
import random


class MBarrier:
    def __init__(self, count):
        self.count, self.pending, self.tx, self.completed = count, count, 0, 0

    def _maybe_complete(self):
        if self.pending == 0 and self.tx == 0:
            self.completed += 1
            self.pending = self.count

    def arrive(self, expect_tx=0):
        self.tx += expect_tx
        self.pending -= 1
        assert self.pending >= 0, "more arrivals than the count"
        self._maybe_complete()

    def complete_tx(self, n):
        self.tx -= n
        self._maybe_complete()

    def try_wait(self, parity):
        return (self.completed & 1) != parity


def ws_pipeline(kt_total, stages, rng, consumers=2, threads_per=2, chunk_kt=0):
    """threads_per consumer threads per warpgroup stand in for 128 (count = all of them);
    chunk_kt > 0: a fixed split of K folding the partial every chunk_kt k-tiles."""
    full = [MBarrier(1) for _ in range(stages)]
    empty = [MBarrier(consumers * threads_per) for _ in range(stages)]
    slot_tile = [None] * stages      # which k-tile the slot's data is
    inflight = []                    # TMA loads issued, not landed: (slot, kt)

    def producer():
        for kt in range(kt_total):
            s = kt % stages
            if kt >= stages:
                while not empty[s].try_wait(((kt // stages) - 1) & 1):
                    yield
            full[s].arrive(expect_tx=2)
            inflight.append((s, kt))
            yield

    def consumer(c):
        prev_reads = None
        for kt in range(kt_total):
            s = kt % stages
            if chunk_kt and kt > 0 and kt % chunk_kt == 0 and prev_reads is not None:
                # wait_group 0 before folding the chunk: the previous group is done reading
                ps, pk = prev_reads
                assert slot_tile[ps] == pk, "slot overwritten before the chunk's last group ended"
                yield
            while not full[s].try_wait((kt // stages) & 1):
                yield
            assert slot_tile[s] == kt, f"consumer {c} wanted tile {kt}, slot {s} holds {slot_tile[s]}"
            reads = (s, kt)  # the wgmma group reads the slot asynchronously
            yield
            # wait_group 1: the previous group has finished reading
            if prev_reads is not None:
                ps, pk = prev_reads
                assert slot_tile[ps] == pk, "slot overwritten while a wgmma group still read it"
                if kt > 0:
                    empty[(kt - 1) % stages].arrive()
            prev_reads = reads
            yield
        ps, pk = prev_reads
        assert slot_tile[ps] == pk

    def tma():
        while True:
            if inflight and rng.random() < 0.5:
                s, kt = inflight.pop(0)
                slot_tile[s] = kt
                full[s].complete_tx(1)
                yield
                full[s].complete_tx(1)
            yield

    threads = [producer()] + [consumer(c) for c in range(consumers) for _ in range(threads_per)]
    dma = tma()
    alive = list(threads)
    steps = 0
    while alive:
        steps += 1
        assert steps < 200000, "deadlock"
        t = rng.choice(alive + [dma])
        try:
            next(t)
        except StopIteration:
            alive.remove(t)


def split_counter(splits, tiles, launches, rng):
    sem = [0] * tiles
    for launch in range(launches):
        ws = {}
        finished = {}
        blocks = [(t, z) for t in range(tiles) for z in range(splits)]
        rng.shuffle(blocks)
        for t, z in blocks:
            ws[(t, z)] = (launch, t, z)  # store partial, fence, then count
            prev = sem[t]
            sem[t] += 1
            if prev == splits - 1:
                sem[t] = 0  # atomicExch(sem, 0) by the last block
                assert t not in finished
                finished[t] = [ws[(t, c)] for c in range(splits)]
        assert sorted(finished) == list(range(tiles)), "a tile was never finished"
        for t, parts in finished.items():
            assert parts == [(launch, t, c) for c in range(splits)], "a partial was missing"
        assert all(v == 0 for v in sem), "counters not back at 0"


class Stream:
    """Ops run in order; an op is ('fill', slot, chunk), ('copy', slot, chunk),
    ('record', event), ('wait', event, n): until record n of the event has run (n 0: none)."""
    def __init__(self):
        self.ops = []


def outbox(n_chunks, n_slots, rng, wait_free=True, join=True):
    compute, copy = Stream(), Stream()
    enq = {}                      # event -> records enqueued so far
    done = {}                     # event -> records run so far
    slot = [None] * n_slots       # which chunk a slot holds
    host = [None] * n_chunks
    nxt = 0

    def record(st, ev):
        enq[ev] = enq.get(ev, 0) + 1
        st.ops.append(("record", ev, enq[ev]))

    def wait(st, ev):
        st.ops.append(("wait", ev, enq.get(ev, 0)))

    # the host, as cs_cu_outbox_download queues it; compute work between downloads
    for c in range(n_chunks):
        k = nxt
        nxt = (nxt + 1) % n_slots
        if wait_free:
            wait(compute, ("free", k))
        compute.ops.append(("fill", k, c))
        record(compute, ("ready", k))
        wait(copy, ("ready", k))
        copy.ops.append(("copy", k, c))
        record(copy, ("free", k))
        if rng.random() < 0.5:
            compute.ops.append(("work",))
    if join:  # finish(): record ob_done on the copy stream, the compute stream waits for it
        record(copy, "done")
        wait(compute, "done")
    compute.ops.append(("end",))

    def runnable(st):
        op = st.ops[0]
        return op[0] != "wait" or done.get(op[1], 0) >= op[2]

    steps = 0
    while compute.ops or copy.ops:
        steps += 1
        assert steps < 100000, "deadlock"
        ready = [st for st in (compute, copy) if st.ops and runnable(st)]
        assert ready, "deadlock: both streams wait"
        st = rng.choice(ready)
        op = st.ops.pop(0)
        if op[0] == "fill":
            slot[op[1]] = op[2]
        elif op[0] == "copy":
            assert slot[op[1]] == op[2], f"slot {op[1]} refilled with chunk {slot[op[1]]} before chunk {op[2]} was copied"
            host[op[2]] = op[2]
        elif op[0] == "record":
            done[op[1]] = op[2]
        elif op[0] == "end":
            # the host's synchronize on the compute stream returns here: all must be delivered
            assert host == list(range(n_chunks)), "finish returned before every copy ran"


def main():
    rng = random.Random(1)
    runs = 0
    for stages in (2, 3, 4, 6):
        for kt_total in (1, 2, stages - 1, stages, stages + 1, 3 * stages + 2, 13):
            for _ in range(20):
                ws_pipeline(max(1, kt_total), stages, rng)
                runs += 1
    for chunk_kt in (1, 2, 6):
        for kt_total in (1, 5, 13):
            for _ in range(20):
                ws_pipeline(kt_total, 6, rng, chunk_kt=chunk_kt)
                runs += 1
    print(f"ok  wgmma_ws pipeline: {runs} random interleavings, no deadlock, no slot reuse while read")
    for splits in (2, 3, 8):
        split_counter(splits, tiles=7, launches=4, rng=rng)
    print("ok  split-K counters: one finisher per tile, every partial seen, counters reset")
    runs = 0
    for n_slots in (1, 2, 8):
        for n_chunks in (1, 3, 8, 20):
            for _ in range(30):
                outbox(n_chunks, n_slots, rng)
                runs += 1
    print(f"ok  download outbox: {runs} random interleavings, no slot refilled before its copy, "
          "all delivered by finish")


if __name__ == "__main__":
    main()
