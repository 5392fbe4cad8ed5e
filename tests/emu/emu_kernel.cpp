/* clipskip's CUDA emulator, kernel side: a block's threads are fibers run one at a
 * time by a scheduler in the calling host thread. A fiber runs until it reaches a
 * synchronizing point (__syncthreads, or a warp collective: shuffle, __syncwarp, ldmatrix,
 * mma.sync) and waits there until every live thread of its block (or warp) has arrived; the last
 * to arrive computes the collective for all lanes. Blocks run one after another in a shuffled
 * order (CS_EMU_SEED), so a kernel that depends on block order shows it. A cooperative launch
 * runs all its blocks at once instead: each in turn for a random number of rounds, or until
 * all its threads wait or spin (cs_emu_spin, polling another block's writes), so a grid-wide
 * barrier works and a phase that runs ahead of one reads what the other blocks have not
 * written yet.
 *
 * cp.async and TMA data land either at issue or as late as allowed (the wait that retires the
 * group; for TMA, when no thread can progress otherwise), chosen at random per copy.
 *
 * Checked as a GPU would fault (cs_emu_fault, sticky like a device error): cp.async sources
 * outside every cudaMalloc allocation or misaligned, misaligned ldmatrix rows, dynamic shared
 * memory over the kernel's limit, a warp whose lanes reach different collectives, deadlock.
 *
 * A kernel that never synchronized in its first launch runs its later launches without fibers
 * (a plain loop over the threads): the elementwise kernels on large tensors. */
#include "emu_internal.h"

#include <map>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

/* ---- fiber switch: six callee-saved registers and the stack pointer (x86-64 System V);
 * swapcontext would also save the signal mask, a system call per switch. */
#if defined(__x86_64__)
extern "C" void cs_emu_switch(void **save_sp, void *to_sp);
__asm__(".text\n"
        ".globl cs_emu_switch\n"
        ".type cs_emu_switch,@function\n"
        "cs_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size cs_emu_switch,.-cs_emu_switch\n");
#else
#error "tests/emu: the fiber switch is written for x86-64 only"
#endif

uint3 cs_emu_block_idx;
dim3 cs_emu_block_dim, cs_emu_grid_dim;

namespace {

enum { ST_RUN, ST_WAIT, ST_DONE };
enum { W_BLOCK = 1, W_WARP, W_WG }; /* what a waiting thread waits for */
enum { C_SYNCWARP = 1, C_SHFL, C_LDM, C_LDMT, C_MMA_F16, C_MMA_BF16 };

struct Pending {
    void *dst;
    const void *src;
    int bytes;
    unsigned group;
};

struct Thread {
    void *sp; /* saved stack pointer while switched out */
    uint3 tid;
    int warp, lane, state, waitk;
    unsigned wg_group; /* wgmma: committed groups */
    size_t wg_nop;     /* wgmma: ops this thread issued */
    unsigned group; /* cp.async: the open (uncommitted) group's number */
    std::vector<Pending> cp;
};

struct Warp {
    int alive, arrived, kind;
    int mask[32];
    uint64_t val[32];
    const void *ptr[32];
    uint32_t a[32][4], b[32][2];
    float c[32][4];
    uint64_t out[32][4];
};

/* one m64nNk16 wgmma of a warpgroup, queued until a wait_group retires its group */
struct WgOp {
    uint64_t da, db;
    int n, bf16, filled;
    unsigned group;
    float *d[128];
};
struct WGroup {
    int alive, arrived;
    std::vector<WgOp> ops;
    size_t done;
};
struct Mbar {
    unsigned expected;
    int pending;
    long long tx;
    unsigned phase;
};
struct Tma {
    unsigned char *dst;
    uint64_t map[16];
    int c0, c1;
    uint64_t *bar;
};

const size_t STACK_BYTES = 256 * 1024;

struct Block {
    std::vector<Thread> t;
    std::vector<Warp> w;
    std::vector<WGroup> g;
    std::map<uint64_t *, Mbar> bars;
    std::vector<Tma> tma;
    bool spun; /* the thread just run only spun on an mbarrier */
    std::vector<char *> stacks;
    int alive, arrived, cur;
    void *sched_sp;
    const std::function<void()> *fn;
    unsigned char *dyn;
    size_t dyn_bytes;
    bool synced;   /* some thread synchronized in this launch */
    bool direct;   /* running without fibers */
    uint3 idx;     /* blockIdx (cooperative launches: each block has its own Block) */
    std::vector<unsigned char> dyn_store; /* cooperative launches: own shared memory */
    ~Block() {
        for (char *p : stacks) free(p);
    }
};
Block g_block;          /* the block running in ordinary launches */
Block *g_blk = &g_block; /* the block running now */
#define B (*g_blk)
/* fiber stacks of cooperative launches, reused, freed at exit */
struct StackPool {
    std::vector<char *> v;
    ~StackPool() {
        for (char *p : v) free(p);
    }
} g_coop_stacks;

uint3 g_direct_tid;
std::map<const void *, bool> g_syncs; /* kernel -> synchronized in its first launch */

Thread &cur() { return B.t[B.cur]; }
/* An async copy (cp.async, TMA) lands at once or as late as allowed, at random: late shows a
 * read before the wait, early shows a slot refilled while something still reads it. */
bool land_early() { return (cs_emu_rand() >> 17) & 1; }

void yield_to_scheduler() { cs_emu_switch(&cur().sp, B.sched_sp); }

void release_block() {
    for (Thread &t : B.t)
        if (t.state == ST_WAIT && t.waitk == W_BLOCK) t.state = ST_RUN;
    B.arrived = 0;
}

/* ---- the warp collectives, computed once every live lane has arrived */

uint32_t ldm_pair(const void *row, int col) {
    const uint16_t *p = static_cast<const uint16_t *>(row);
    return (uint32_t)p[col] | ((uint32_t)p[col + 1] << 16);
}

/* ldmatrix .x4: lanes 8j..8j+7 give the rows of matrix j; lane l's register j holds matrix j's
 * row l/4, elements 2(l%4), 2(l%4)+1 (.trans: column l/4, rows 2(l%4), 2(l%4)+1). */
void do_ldmatrix(Warp &w, int trans) {
    for (int l = 0; l < 32; l++)
        for (int j = 0; j < 4; j++) {
            if (!trans) {
                w.out[l][j] = ldm_pair(w.ptr[8 * j + l / 4], 2 * (l % 4));
            } else {
                const uint16_t *r0 = static_cast<const uint16_t *>(w.ptr[8 * j + 2 * (l % 4)]);
                const uint16_t *r1 = static_cast<const uint16_t *>(w.ptr[8 * j + 2 * (l % 4) + 1]);
                w.out[l][j] = (uint32_t)r0[l / 4] | ((uint32_t)r1[l / 4] << 16);
            }
        }
}

/* f16 / bf16 bits -> value, by table */
float g_f16[65536], g_bf16[65536];
void init_tables() {
    static bool done = false;
    if (done) return;
    for (uint32_t i = 0; i < 65536; i++) {
        __half h;
        h.x = (uint16_t)i;
        g_f16[i] = __half2float(h);
        __nv_bfloat16 v;
        v.x = (uint16_t)i;
        g_bf16[i] = __bfloat162float(v);
    }
    done = true;
}

/* mma.m16n8k16 .row.col: A 16x16 (lane l: rows g, g+8 at cols 2t, 2t+1 and 2t+8, 2t+9),
 * B 16x8 (k rows 2t, 2t+1 and 2t+8, 2t+9 at col g), C/D 16x8 (rows g, g+8 at cols 2t, 2t+1),
 * g = l/4, t = l%4. Each product is exact in fp32 (11 + 11 significand bits at most); they are
 * added to C in increasing k, each addition rounded to fp32 (the hardware's internal order and
 * precision are unspecified; this is one fixed choice, the same for every call). */
void do_mma(Warp &w, int bf16) {
    const float *cv = bf16 ? g_bf16 : g_f16;
    float A[16][16], Bm[16][8], D[16][8];
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, t = l % 4;
        for (int h = 0; h < 2; h++) {
            A[g][2 * t + h] = cv[(uint16_t)(w.a[l][0] >> (16 * h))];
            A[g + 8][2 * t + h] = cv[(uint16_t)(w.a[l][1] >> (16 * h))];
            A[g][2 * t + 8 + h] = cv[(uint16_t)(w.a[l][2] >> (16 * h))];
            A[g + 8][2 * t + 8 + h] = cv[(uint16_t)(w.a[l][3] >> (16 * h))];
            Bm[2 * t + h][g] = cv[(uint16_t)(w.b[l][0] >> (16 * h))];
            Bm[2 * t + 8 + h][g] = cv[(uint16_t)(w.b[l][1] >> (16 * h))];
        }
        D[g][2 * t] = w.c[l][0];
        D[g][2 * t + 1] = w.c[l][1];
        D[g + 8][2 * t] = w.c[l][2];
        D[g + 8][2 * t + 1] = w.c[l][3];
    }
    for (int r = 0; r < 16; r++) /* 8 independent chains per row: vectorizes, same order */
        for (int k = 0; k < 16; k++)
            for (int c = 0; c < 8; c++) D[r][c] += A[r][k] * Bm[k][c];
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, t = l % 4;
        const float f[4] = {D[g][2 * t], D[g][2 * t + 1], D[g + 8][2 * t], D[g + 8][2 * t + 1]};
        for (int e = 0; e < 4; e++) memcpy(&w.out[l][e], &f[e], 4);
    }
}

void compute_warp(Warp &w, int first_lane) {
    switch (w.kind) {
    case C_SHFL:
        for (int l = 0; l < 32; l++) w.out[l][0] = w.val[l ^ w.mask[l]];
        break;
    case C_LDM: do_ldmatrix(w, 0); break;
    case C_LDMT: do_ldmatrix(w, 1); break;
    case C_MMA_F16: do_mma(w, 0); break;
    case C_MMA_BF16: do_mma(w, 1); break;
    default: break;
    }
    for (int l = 0; l < 32; l++) {
        const int i = first_lane + l;
        if (i < (int)B.t.size() && B.t[i].state == ST_WAIT && B.t[i].waitk == W_WARP)
            B.t[i].state = ST_RUN;
    }
    w.arrived = 0;
    w.kind = 0;
}

/* The calling lane has put its inputs into w; returns once the collective is computed. */
void warp_arrive(int kind) {
    Thread &t = cur();
    if (B.direct) {
        cs_emu_fault(cudaErrorLaunchFailure,
                     "emulator: a kernel that did not synchronize in its first launch did now");
        return;
    }
    B.synced = true;
    Warp &w = B.w[t.warp];
    if (w.arrived && w.kind != kind)
        cs_emu_fault(cudaErrorIllegalInstruction,
                     "warp %d of block (%u,%u,%u): lanes reached different warp collectives (%d, %d)",
                     t.warp, cs_emu_block_idx.x, cs_emu_block_idx.y, cs_emu_block_idx.z, w.kind, kind);
    w.kind = kind;
    if (w.alive < 32 && kind != C_SYNCWARP)
        cs_emu_fault(cudaErrorIllegalInstruction,
                     "warp %d of block (%u,%u,%u): full-warp collective with %d lanes exited", t.warp,
                     cs_emu_block_idx.x, cs_emu_block_idx.y, cs_emu_block_idx.z, 32 - w.alive);
    if (++w.arrived == w.alive) {
        compute_warp(w, t.warp * 32);
        return;
    }
    t.state = ST_WAIT;
    t.waitk = W_WARP;
    yield_to_scheduler();
}

/* One cp.async's 16 bytes: src_bytes from global, zeros after them. */
void cp_land(const Pending &p) {
    if (p.bytes) memcpy(p.dst, p.src, (size_t)p.bytes);
    memset(static_cast<char *>(p.dst) + p.bytes, 0, (size_t)(16 - p.bytes));
}

void cp_complete(Thread &t, unsigned below) {
    size_t keep = 0;
    for (size_t i = 0; i < t.cp.size(); i++) {
        Pending &p = t.cp[i];
        if (p.group < below) {
            cp_land(p);
        } else {
            t.cp[keep++] = p;
        }
    }
    t.cp.resize(keep);
}

void wg_release(int gi);

void thread_exit() {
    Thread &t = cur();
    cp_complete(t, ~0u); /* outstanding copies still land */
    t.state = ST_DONE;
    B.alive--;
    if (B.arrived && B.arrived == B.alive) release_block();
    if (!B.direct) {
        Warp &w = B.w[t.warp];
        w.alive--;
        if (w.arrived && w.arrived == w.alive) compute_warp(w, t.warp * 32);
        WGroup &g = B.g[t.warp / 4];
        g.alive--;
        if (g.arrived && g.arrived == g.alive) wg_release(t.warp / 4);
    }
}

void trampoline() {
    (*B.fn)();
    thread_exit();
    cs_emu_switch(&cur().sp, B.sched_sp); /* never resumed */
    abort();
}

/* A fresh stack whose first switch-in "returns" into trampoline with the ABI's alignment. */
void *fiber_init(char *stack) {
    uintptr_t top = ((uintptr_t)stack + STACK_BYTES) & ~(uintptr_t)15;
    void **sp = reinterpret_cast<void **>(top);
    *--sp = nullptr;                                   /* trampoline's return address: none */
    *--sp = reinterpret_cast<void *>(&trampoline);     /* popped by ret */
    for (int i = 0; i < 6; i++) *--sp = nullptr;        /* rbp rbx r12-r15 */
    return sp;
}

void tma_complete_all();

/* Thread i of the block, at its start. */
Thread &thread_reset(int i, dim3 block) {
    Thread &t = B.t[i];
    t.tid = uint3{(unsigned)(i % block.x), (unsigned)(i / block.x % block.y),
                  (unsigned)(i / (block.x * block.y))};
    t.warp = i / 32;
    t.lane = i % 32;
    t.state = ST_RUN;
    t.waitk = 0;
    t.group = 0;
    t.wg_group = 0;
    t.wg_nop = 0;
    t.cp.clear();
    return t;
}

void block_start(dim3 block) {
    const int n = (int)(block.x * block.y * block.z);
    for (int i = 0; i < n; i++) thread_reset(i, block).sp = fiber_init(B.stacks[i]);
    for (size_t k = 0; k < B.w.size(); k++) {
        B.w[k].alive = n - 32 * (int)k < 32 ? n - 32 * (int)k : 32;
        B.w[k].arrived = 0;
        B.w[k].kind = 0;
    }
    for (size_t k = 0; k < B.g.size(); k++) {
        B.g[k].alive = n - 128 * (int)k < 128 ? n - 128 * (int)k : 128;
        B.g[k].arrived = 0;
        B.g[k].ops.clear();
        B.g[k].done = 0;
    }
    B.bars.clear();
    B.tma.clear();
    B.alive = n;
    B.arrived = 0;
}

/* Warps held back for a round at random (CS_EMU_LAG=0: never), so that one warp can run ahead
 * of another by a collective or more: a kernel missing a barrier between two uses of shared
 * memory shows it. */
/* An emulator switch that is on unless the environment sets it to 0. */
bool env_on(const char *name) {
    const char *v = getenv(name);
    return !(v && !strcmp(v, "0"));
}

bool lag_on() {
    static const bool on = env_on("CS_EMU_LAG");
    return on;
}

/* One round over the block's n threads: 1 some progressed, 0 none could (all wait or spin),
 * 2 none did but some warp was held back (not a stall), -1 the block has finished. Pending
 * TMA loads land when only spinners are left. */
int block_round(int n) {
    bool ran = false, held = false, hold = false;
    const uint64_t r = lag_on() ? cs_emu_rand() : 0;
    for (int i = 0; i < n; i++) {
        if (i % 32 == 0) hold = lag_on() && ((r >> (2 * (i / 32) % 64)) & 3) == 0;
        if (B.t[i].state != ST_RUN) continue;
        if (hold) {
            held = true;
            continue;
        }
        B.cur = i;
        B.spun = false;
        cs_emu_switch(&B.sched_sp, B.t[i].sp);
        ran |= !B.spun;
    }
    if (B.alive == 0) return -1;
    if (ran) return 1;
    if (held) return 2;
    if (!B.tma.empty()) {
        tma_complete_all();
        return 1;
    }
    return 0;
}

void block_stuck_counts(int n, int *waiting, int *spinning) {
    for (int i = 0; i < n; i++) {
        *waiting += B.t[i].state == ST_WAIT;
        *spinning += B.t[i].state == ST_RUN;
    }
}

void run_block_fibers(dim3 block) {
    const int n = (int)(block.x * block.y * block.z);
    block_start(block);
    for (;;) {
        const int r = block_round(n);
        if (r < 0) return;
        if (r == 0) {
            int waiting = 0, spinning = 0;
            block_stuck_counts(n, &waiting, &spinning);
            cs_emu_fault(cudaErrorLaunchTimeout,
                         "deadlock in block (%u,%u,%u): %d threads wait at a barrier or collective, "
                         "%d spin on an mbarrier, none can progress",
                         cs_emu_block_idx.x, cs_emu_block_idx.y, cs_emu_block_idx.z, waiting, spinning);
            return;
        }
    }
}

/* Block b sized for n threads of fn, with shared memory dyn of smem bytes. */
void block_shape(Block &b, size_t n, const std::function<void()> &fn, unsigned char *dyn, size_t smem) {
    if (b.t.size() < n) b.t.resize(n);
    b.w.resize((n + 31) / 32);
    b.g.resize((n + 127) / 128);
    b.fn = &fn;
    b.dyn = dyn;
    b.dyn_bytes = smem;
}

/* blockIdx of the bi-th block of grid (x fastest) */
uint3 block_index(size_t bi, dim3 grid) {
    return uint3{(unsigned)(bi % grid.x), (unsigned)(bi / grid.x % grid.y), (unsigned)(bi / ((size_t)grid.x * grid.y))};
}

/* A cooperative launch: every block started, then run in turns until all finish. */
void run_grid_coop(const std::vector<size_t> &order, dim3 grid, dim3 block, size_t smem,
                   const std::function<void()> &fn) {
    const size_t n = (size_t)block.x * block.y * block.z, nb = order.size();
    std::vector<char *> &pool = g_coop_stacks.v;
    while (pool.size() < nb * n) pool.push_back(static_cast<char *>(malloc(STACK_BYTES)));
    std::vector<Block> bl(nb);
    std::vector<char> done(nb, 0);
    for (size_t i = 0; i < nb; i++) {
        Block &b = bl[i];
        b.idx = block_index(order[i], grid);
        b.stacks.assign(pool.begin() + i * n, pool.begin() + (i + 1) * n);
        b.direct = false;
        b.dyn_store.assign(smem + 16, 0xff); /* NaN in every float type */
        block_shape(b, n, fn, b.dyn_store.data(), smem);
        g_blk = &b;
        block_start(block);
    }
    /* Blocks stall: each turn a running block stops, with probability 1/32, for 8 to 71 turns,
     * so that the others get far ahead of it in the middle of an item, as behind an SM that
     * waits on memory (CS_EMU_SLOW=0: never). A dependency a kernel fails to wait for shows. */
    static const bool slow_on = env_on("CS_EMU_SLOW");
    std::vector<int> stall(nb, 0);
    bool all = false; /* the turn after one where nothing moved: every block runs */
    for (;;) {
        bool progress = false, left = false, held = false, skipped = false;
        for (size_t i = 0; i < nb && !cs_emu_faulted(); i++) {
            if (done[i]) continue;
            if (slow_on && !stall[i] && cs_emu_rand() % 32 == 0) stall[i] = 8 + (int)(cs_emu_rand() % 64);
            if (stall[i]) stall[i]--;
            if (!all && stall[i]) {
                skipped = left = true;
                continue;
            }
            g_blk = &bl[i];
            cs_emu_block_idx = B.idx;
            for (int r = 1 + (int)(cs_emu_rand() % 8); r > 0; r--) {
                const int res = block_round((int)n);
                if (res < 0) done[i] = 1;
                if (res <= 0) break;
                progress |= res == 1;
                held |= res == 2;
            }
            left |= !done[i];
        }
        if (!left || cs_emu_faulted()) break;
        all = !progress && !held && skipped; /* a skipped block may be the one that can move */
        if (!progress && !held && !skipped) {
            int waiting = 0, spinning = 0;
            for (size_t i = 0; i < nb; i++) {
                g_blk = &bl[i];
                if (!done[i]) block_stuck_counts((int)n, &waiting, &spinning);
            }
            cs_emu_fault(cudaErrorLaunchTimeout,
                         "deadlock in a cooperative launch of %zu blocks: %d threads wait at a barrier "
                         "or collective, %d spin, none can progress", nb, waiting, spinning);
            break;
        }
    }
    for (Block &b : bl) b.stacks.clear(); /* the pool's */
    g_blk = &g_block;
}

void run_block_direct(dim3 block) {
    const int n = (int)(block.x * block.y * block.z);
    B.alive = n;
    B.arrived = 0;
    for (int i = 0; i < n; i++) {
        B.cur = i;
        thread_reset(i, block);
        (*B.fn)();
        thread_exit();
    }
}

} // namespace

uint64_t cs_emu_rand(void) {
    static uint64_t x = 0;
    if (!x) {
        const char *s = getenv("CS_EMU_SEED");
        x = s ? strtoull(s, NULL, 10) * 2654435761ull + 1 : 0x9e3779b97f4a7c15ull;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

const uint3 &cs_emu_thread_idx(void) { return B.t[B.cur].tid; }

void cs_emu_run_grid(const void *kernel, dim3 grid, dim3 block, size_t smem,
                     const std::function<void()> &fn, bool coop) {
    const size_t n = (size_t)block.x * block.y * block.z;
    const size_t blocks = (size_t)grid.x * grid.y * grid.z;
    init_tables();
    cs_emu_block_dim = block;
    cs_emu_grid_dim = grid;
    /* a shuffled block order: a kernel may not rely on which block runs first */
    std::vector<size_t> order(blocks);
    for (size_t i = 0; i < blocks; i++) order[i] = i;
    for (size_t i = blocks; i > 1; i--) std::swap(order[i - 1], order[cs_emu_rand() % i]);
    if (coop) {
        run_grid_coop(order, grid, block, smem, fn);
        return;
    }
    auto known = g_syncs.find(kernel);
    B.direct = known != g_syncs.end() && !known->second;
    if (!B.direct)
        while (B.stacks.size() < n) B.stacks.push_back(static_cast<char *>(malloc(STACK_BYTES)));
    std::vector<unsigned char> dyn(smem + 16, 0xff); /* NaN; later blocks find the last one's data */
    block_shape(B, n, fn, dyn.data(), smem);
    B.synced = false;
    for (size_t bi : order) {
        cs_emu_block_idx = block_index(bi, grid);
        if (B.direct)
            run_block_direct(block);
        else
            run_block_fibers(block);
        if (cs_emu_faulted()) break; /* the launch has failed: its other blocks would only add noise */
    }
    if (known == g_syncs.end()) g_syncs[kernel] = B.synced;
}

void *cs_emu_dyn_smem(void) { return B.dyn; }

void cs_emu_spin(void) {
    if (B.direct) {
        cs_emu_fault(cudaErrorLaunchFailure, "emulator: a kernel spins in a launch run without fibers");
        return;
    }
    B.synced = true;
    B.spun = true; /* no progress: all blocks spinning or waiting is a deadlock */
    yield_to_scheduler();
}

void cs_emu_syncthreads(void) {
    if (B.direct) {
        cs_emu_fault(cudaErrorLaunchFailure,
                     "emulator: a kernel that did not synchronize in its first launch did now");
        return;
    }
    B.synced = true;
    if (++B.arrived == B.alive) {
        release_block();
        return;
    }
    cur().state = ST_WAIT;
    cur().waitk = W_BLOCK;
    yield_to_scheduler();
}

void cs_emu_syncwarp(void) { warp_arrive(C_SYNCWARP); }

uint64_t cs_emu_shfl_xor(uint64_t v, int lane_mask) {
    Thread &t = cur();
    if (B.direct) return v;
    Warp &w = B.w[t.warp];
    w.val[t.lane] = v;
    w.mask[t.lane] = lane_mask & 31;
    warp_arrive(C_SHFL);
    return w.out[t.lane][0];
}

void cs_emu_ldmatrix_x4(uint32_t r[4], const void *smem, int trans) {
    Thread &t = cur();
    if ((uintptr_t)smem % 16)
        cs_emu_fault(cudaErrorMisalignedAddress, "ldmatrix: row address %p not 16-byte aligned", smem);
    if (B.direct) return;
    Warp &w = B.w[t.warp];
    w.ptr[t.lane] = smem;
    warp_arrive(trans ? C_LDMT : C_LDM);
    for (int j = 0; j < 4; j++) r[j] = (uint32_t)w.out[t.lane][j];
}

void cs_emu_mma16816(float d[4], const uint32_t a[4], const uint32_t b[2], int bf16) {
    Thread &t = cur();
    if (B.direct) return;
    Warp &w = B.w[t.warp];
    memcpy(w.a[t.lane], a, sizeof w.a[0]);
    memcpy(w.b[t.lane], b, sizeof w.b[0]);
    memcpy(w.c[t.lane], d, sizeof w.c[0]);
    warp_arrive(bf16 ? C_MMA_BF16 : C_MMA_F16);
    for (int e = 0; e < 4; e++) memcpy(&d[e], &w.out[t.lane][e], 4);
}

void cs_emu_cp_async16(void *smem, const void *gmem, int src_bytes) {
    Thread &t = cur();
    if (src_bytes < 0 || src_bytes > 16) {
        cs_emu_fault(cudaErrorIllegalInstruction, "cp.async: source size %d", src_bytes);
        return;
    }
    if ((uintptr_t)smem % 16 || (src_bytes && (uintptr_t)gmem % 16)) {
        cs_emu_fault(cudaErrorMisalignedAddress, "cp.async: %p <- %p not 16-byte aligned", smem, gmem);
        return;
    }
    if (src_bytes && !cs_emu_in_device_alloc(gmem, (size_t)src_bytes)) {
        cs_emu_fault(cudaErrorIllegalAddress,
                     "cp.async: block (%u,%u,%u) thread %u reads %d bytes at %p, outside every "
                     "allocation",
                     cs_emu_block_idx.x, cs_emu_block_idx.y, cs_emu_block_idx.z, t.tid.x, src_bytes, gmem);
        return;
    }
    const unsigned char *d = static_cast<unsigned char *>(smem);
    if (d >= B.dyn && d < B.dyn + B.dyn_bytes + 16 && d + 16 > B.dyn + B.dyn_bytes) {
        cs_emu_fault(cudaErrorIllegalAddress, "cp.async: writes past the dynamic shared memory (%zu bytes)",
                     B.dyn_bytes);
        return;
    }
    const Pending p = {smem, gmem, src_bytes, t.group};
    if (land_early())
        cp_land(p);
    else
        t.cp.push_back(p);
}

void cs_emu_cp_async_commit(void) { cur().group++; }

void cs_emu_cp_async_wait(int n) {
    Thread &t = cur();
    /* committed groups are 0 .. group-1; all but the newest n are complete after the wait */
    cp_complete(t, t.group >= (unsigned)n ? t.group - (unsigned)n : 0);
}

/* ---- sm_90: wgmma, mbarriers, TMA */

namespace {

/* the 2-byte element at (row r, k) of a K-major operand with the 128-byte swizzle: rows of 128
 * bytes, 8-row groups sbo bytes apart; 16-byte chunk bits [4,7) xor'd with row bits [7,10) of the
 * shared address (the swizzle is anchored to 1024-byte boundaries) */
uint16_t desc_elem(uint64_t desc, int r, int k) {
    const uint32_t start = (uint32_t)(desc & 0x3FFF) << 4, sbo = (uint32_t)((desc >> 32) & 0x3FFF) << 4;
    const uint32_t off = start + (uint32_t)(r / 8) * sbo + (uint32_t)(r % 8) * 128 + (uint32_t)k * 2;
    const uint32_t phys = off ^ (((off >> 7) & 7) << 4);
    if (phys + 2 > B.dyn_bytes) {
        cs_emu_fault(cudaErrorIllegalAddress, "wgmma: operand byte %u past the %zu bytes of shared memory",
                     phys, B.dyn_bytes);
        return 0;
    }
    uint16_t v;
    memcpy(&v, B.dyn + phys, 2);
    return v;
}

/* d += A(64 x 16) B(n x 16)^T for the 128 threads: thread t (warp w = t/32, lane l) holds
 * d[4j + 2i + e] = D[16w + l/4 + 8i][8j + 2(l%4) + e]; each product added in increasing k, as
 * do_mma does, so the bits match the mma.sync tiles. */
void wgmma_exec(const WgOp &op) {
    if ((op.da >> 62) != 1 || (op.db >> 62) != 1) {
        cs_emu_fault(cudaErrorIllegalInstruction, "wgmma: only the 128-byte swizzle is emulated");
        return;
    }
    const float *cv = op.bf16 ? g_bf16 : g_f16;
    static float A[64][16], Bm[256][16];
    for (int r = 0; r < 64; r++)
        for (int k = 0; k < 16; k++) A[r][k] = cv[desc_elem(op.da, r, k)];
    for (int c = 0; c < op.n; c++)
        for (int k = 0; k < 16; k++) Bm[c][k] = cv[desc_elem(op.db, c, k)];
    for (int t = 0; t < 128; t++) {
        float *d = op.d[t];
        if (!d) continue;
        const int w = t / 32, l = t % 32;
        for (int j = 0; j < op.n / 8; j++)
            for (int e4 = 0; e4 < 4; e4++) {
                const int r = 16 * w + l / 4 + 8 * (e4 >> 1), c = 8 * j + 2 * (l % 4) + (e4 & 1);
                float acc = d[4 * j + e4];
                for (int k = 0; k < 16; k++) acc += A[r][k] * Bm[c][k];
                d[4 * j + e4] = acc;
            }
    }
}

/* The last thread of a warpgroup at wgmma.wait_group: run the retired groups, free the others. */
unsigned g_wait_keep;
void wg_release(int gi) {
    WGroup &g = B.g[gi];
    unsigned committed = 0;
    for (int i = 0; i < 128; i++) {
        const int ti = gi * 128 + i;
        if (ti < (int)B.t.size() && B.t[ti].state != ST_DONE) committed = B.t[ti].wg_group;
    }
    const unsigned below = committed >= g_wait_keep ? committed - g_wait_keep : 0;
    while (g.done < g.ops.size() && g.ops[g.done].group < below) {
        const WgOp &op = g.ops[g.done++];
        if (op.filled != g.alive)
            cs_emu_fault(cudaErrorIllegalInstruction, "wgmma issued by %d of the warpgroup's %d threads",
                         op.filled, g.alive);
        wgmma_exec(op);
    }
    for (int i = 0; i < 128; i++) {
        const int ti = gi * 128 + i;
        if (ti < (int)B.t.size() && B.t[ti].state == ST_WAIT && B.t[ti].waitk == W_WG) B.t[ti].state = ST_RUN;
    }
    g.arrived = 0;
}

void mbar_check(uint64_t *bar, Mbar &m) {
    if (m.pending < 0)
        cs_emu_fault(cudaErrorIllegalInstruction, "mbarrier %p: more arrivals than its count %u", (void *)bar,
                     m.expected);
    if (m.pending == 0 && m.tx == 0) { /* the phase completes */
        m.phase ^= 1u;
        m.pending = (int)m.expected;
    }
}

Mbar *mbar_of(uint64_t *bar, const char *op) {
    auto it = B.bars.find(bar);
    if (it == B.bars.end()) {
        cs_emu_fault(cudaErrorIllegalInstruction, "%s on mbarrier %p before its init", op, (void *)bar);
        return nullptr;
    }
    return &it->second;
}

void tma_land(const Tma &q) {
    const unsigned char *g = reinterpret_cast<const unsigned char *>(q.map[0]);
    const uint64_t dim0 = q.map[1], dim1 = q.map[2], stride = q.map[3], box0 = q.map[4], box1 = q.map[5];
    for (uint64_t r = 0; r < box1; r++)
        for (uint64_t c = 0; c < box0 / 8; c++) { /* 16-byte chunks of 8 elements */
            unsigned char chunk[16] = {};
            const uint64_t row = (uint64_t)q.c1 + r;
            for (int e = 0; e < 8; e++) {
                const uint64_t col = (uint64_t)q.c0 + c * 8 + e;
                if (row < dim1 && col < dim0) { /* past the tensor: zeros */
                    const unsigned char *src = g + row * stride + col * 2;
                    if (!cs_emu_in_device_alloc(src, 2)) {
                        cs_emu_fault(cudaErrorIllegalAddress, "TMA reads %p, outside every allocation",
                                     (const void *)src);
                        return;
                    }
                    memcpy(chunk + 2 * e, src, 2);
                }
            }
            const uint64_t off = r * 128 + ((c ^ (r % 8)) * 16);
            memcpy(q.dst + off, chunk, 16);
        }
    Mbar *m = mbar_of(q.bar, "TMA complete_tx");
    if (!m) return;
    m->tx -= (long long)(box0 * box1 * 2);
    mbar_check(q.bar, *m);
}

void tma_complete_all() {
    std::vector<Tma> q;
    q.swap(B.tma);
    for (const Tma &t : q) tma_land(t);
}

} // namespace

uint32_t cs_emu_smem_addr(const void *p) {
    const unsigned char *c = static_cast<const unsigned char *>(p);
    if (c < B.dyn || c > B.dyn + B.dyn_bytes) {
        cs_emu_fault(cudaErrorInvalidAddressSpace, "shared address of %p: not in the dynamic shared memory", p);
        return 0;
    }
    return (uint32_t)(c - B.dyn);
}

void cs_emu_wgmma(float *d, uint64_t desc_a, uint64_t desc_b, int n, int bf16) {
    Thread &t = cur();
    if (B.direct) return;
    B.synced = true;
    WGroup &g = B.g[t.warp / 4];
    const size_t k = t.wg_nop++;
    if (k >= g.ops.size()) {
        WgOp op = {};
        op.da = desc_a, op.db = desc_b, op.n = n, op.bf16 = bf16, op.group = t.wg_group;
        g.ops.push_back(op);
    }
    WgOp &op = g.ops[k];
    if (op.da != desc_a || op.db != desc_b || op.n != n || op.group != t.wg_group)
        cs_emu_fault(cudaErrorIllegalInstruction, "wgmma: the threads of a warpgroup disagree on its operands");
    const int slot = (int)(&t - &B.t[0]) % 128;
    if (!op.d[slot]) op.filled++;
    op.d[slot] = d;
}

void cs_emu_wgmma_commit(void) { cur().wg_group++; }

void cs_emu_wgmma_wait(int n) {
    Thread &t = cur();
    if (B.direct) return;
    B.synced = true;
    WGroup &g = B.g[t.warp / 4];
    g_wait_keep = (unsigned)n;
    if (++g.arrived == g.alive) {
        wg_release(t.warp / 4);
        return;
    }
    t.state = ST_WAIT;
    t.waitk = W_WG;
    yield_to_scheduler();
}

void cs_emu_mbar_init(uint64_t *bar, unsigned count) {
    B.synced = true;
    B.bars[bar] = Mbar{count, (int)count, 0, 0};
}

void cs_emu_mbar_arrive(uint64_t *bar, unsigned expect_tx_bytes) {
    Mbar *m = mbar_of(bar, "arrive");
    if (!m) return;
    m->tx += expect_tx_bytes;
    m->pending--;
    mbar_check(bar, *m);
}

void cs_emu_mbar_wait(uint64_t *bar, unsigned parity) {
    for (;;) {
        Mbar *m = mbar_of(bar, "try_wait");
        if (!m || m->phase != (parity & 1u) || cs_emu_faulted()) return;
        cs_emu_spin(); /* no progress: the scheduler lands TMA loads, or calls it a deadlock */
    }
}

void cs_emu_tma_load_2d(void *smem, const void *tensor_map, int c0, int c1, uint64_t *bar) {
    B.synced = true;
    Tma q;
    memcpy(q.map, tensor_map, sizeof q.map);
    if (q.map[6] != 0x54454e534f524d41ull) {
        cs_emu_fault(cudaErrorIllegalInstruction, "TMA with a tensor map the emulator did not encode");
        return;
    }
    q.dst = static_cast<unsigned char *>(smem);
    const uint32_t off = cs_emu_smem_addr(smem);
    if (off % 1024 || off + q.map[4] * q.map[5] * 2 > B.dyn_bytes) {
        cs_emu_fault(cudaErrorMisalignedAddress, "TMA box at shared offset %u: not 1024-aligned or past the end",
                     off);
        return;
    }
    q.c0 = c0, q.c1 = c1, q.bar = bar;
    if (land_early())
        tma_land(q);
    else
        B.tma.push_back(q);
}
