/* clipskip's CUDA emulator, kernel side: a block's threads are fibers run one at a
 * time by a scheduler in the calling host thread. A fiber runs until it reaches a
 * synchronizing point (__syncthreads, or a warp collective: shuffle, __syncwarp, ldmatrix,
 * mma.sync) and waits there until every live thread of its block (or warp) has arrived; the last
 * to arrive computes the collective for all lanes. Blocks run one after another in a shuffled
 * order (CS_EMU_SEED), so a kernel that depends on block order shows it.
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
    int warp, lane, state;
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

const size_t STACK_BYTES = 256 * 1024;

struct Block {
    std::vector<Thread> t;
    std::vector<Warp> w;
    std::vector<char *> stacks;
    int alive, arrived, cur;
    void *sched_sp;
    const std::function<void()> *fn;
    unsigned char *dyn;
    size_t dyn_bytes;
    bool synced;   /* some thread synchronized in this launch */
    bool direct;   /* running without fibers */
    ~Block() {
        for (char *p : stacks) free(p);
    }
} B;

uint3 g_direct_tid;
std::map<const void *, bool> g_syncs; /* kernel -> synchronized in its first launch */

Thread &cur() { return B.t[B.cur]; }

void yield_to_scheduler() { cs_emu_switch(&cur().sp, B.sched_sp); }

void release_block() {
    for (Thread &t : B.t)
        if (t.state == ST_WAIT) t.state = ST_RUN;
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
        if (i < (int)B.t.size() && B.t[i].state == ST_WAIT) B.t[i].state = ST_RUN;
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
    yield_to_scheduler();
}

void cp_complete(Thread &t, unsigned below) {
    size_t keep = 0;
    for (size_t i = 0; i < t.cp.size(); i++) {
        Pending &p = t.cp[i];
        if (p.group < below) {
            if (p.bytes) memcpy(p.dst, p.src, (size_t)p.bytes);
            memset(static_cast<char *>(p.dst) + p.bytes, 0, (size_t)(16 - p.bytes));
        } else {
            t.cp[keep++] = p;
        }
    }
    t.cp.resize(keep);
}

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

void run_block_fibers(dim3 block) {
    const int n = (int)(block.x * block.y * block.z);
    for (int i = 0; i < n; i++) {
        Thread &t = B.t[i];
        t.tid = uint3{(unsigned)(i % block.x), (unsigned)(i / block.x % block.y),
                      (unsigned)(i / (block.x * block.y))};
        t.warp = i / 32;
        t.lane = i % 32;
        t.state = ST_RUN;
        t.group = 0;
        t.cp.clear();
        t.sp = fiber_init(B.stacks[i]);
    }
    for (size_t k = 0; k < B.w.size(); k++) {
        B.w[k].alive = n - 32 * (int)k < 32 ? n - 32 * (int)k : 32;
        B.w[k].arrived = 0;
        B.w[k].kind = 0;
    }
    B.alive = n;
    B.arrived = 0;
    for (;;) {
        bool ran = false;
        for (int i = 0; i < n; i++)
            if (B.t[i].state == ST_RUN) {
                B.cur = i;
                cs_emu_switch(&B.sched_sp, B.t[i].sp);
                ran = true;
            }
        if (B.alive == 0) return;
        if (!ran) {
            int waiting = 0;
            for (int i = 0; i < n; i++) waiting += B.t[i].state == ST_WAIT;
            cs_emu_fault(cudaErrorLaunchTimeout,
                         "deadlock in block (%u,%u,%u): %d threads wait, none can run",
                         cs_emu_block_idx.x, cs_emu_block_idx.y, cs_emu_block_idx.z, waiting);
            return;
        }
    }
}

void run_block_direct(dim3 block) {
    const int n = (int)(block.x * block.y * block.z);
    B.alive = n;
    B.arrived = 0;
    for (int i = 0; i < n; i++) {
        B.cur = i;
        Thread &t = B.t[i];
        t.tid = uint3{(unsigned)(i % block.x), (unsigned)(i / block.x % block.y),
                      (unsigned)(i / (block.x * block.y))};
        t.state = ST_RUN;
        t.group = 0;
        t.cp.clear();
        (*B.fn)();
        thread_exit();
    }
}

uint64_t g_rng = 0;
uint64_t rng_next() {
    if (!g_rng) {
        const char *s = getenv("CS_EMU_SEED");
        g_rng = s ? strtoull(s, NULL, 10) * 2654435761ull + 1 : 0x9e3779b97f4a7c15ull;
    }
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

} // namespace

const uint3 &cs_emu_thread_idx(void) { return B.t[B.cur].tid; }

void cs_emu_run_grid(const void *kernel, dim3 grid, dim3 block, size_t smem,
                     const std::function<void()> &fn) {
    const size_t n = (size_t)block.x * block.y * block.z;
    const size_t blocks = (size_t)grid.x * grid.y * grid.z;
    init_tables();
    auto known = g_syncs.find(kernel);
    B.direct = known != g_syncs.end() && !known->second;
    if (B.t.size() < n) B.t.resize(n);
    if (!B.direct)
        while (B.stacks.size() < n) B.stacks.push_back(static_cast<char *>(malloc(STACK_BYTES)));
    B.w.resize((n + 31) / 32);
    B.fn = &fn;
    B.synced = false;
    std::vector<unsigned char> dyn(smem + 16);
    B.dyn = dyn.data();
    B.dyn_bytes = smem;
    cs_emu_block_dim = block;
    cs_emu_grid_dim = grid;
    /* a shuffled block order: a kernel may not rely on which block runs first */
    std::vector<size_t> order(blocks);
    for (size_t i = 0; i < blocks; i++) order[i] = i;
    for (size_t i = blocks; i > 1; i--) std::swap(order[i - 1], order[rng_next() % i]);
    memset(B.dyn, 0xff, smem); /* NaN in every float type; later blocks find the last one's data */
    for (size_t bi : order) {
        cs_emu_block_idx = uint3{(unsigned)(bi % grid.x), (unsigned)(bi / grid.x % grid.y),
                                 (unsigned)(bi / ((size_t)grid.x * grid.y))};
        if (B.direct)
            run_block_direct(block);
        else
            run_block_fibers(block);
    }
    if (known == g_syncs.end()) g_syncs[kernel] = B.synced;
}

void *cs_emu_dyn_smem(void) { return B.dyn; }

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
    t.cp.push_back(Pending{smem, gmem, src_bytes, t.group});
}

void cs_emu_cp_async_commit(void) { cur().group++; }

void cs_emu_cp_async_wait(int n) {
    Thread &t = cur();
    /* committed groups are 0 .. group-1; all but the newest n are complete after the wait */
    cp_complete(t, t.group >= (unsigned)n ? t.group - (unsigned)n : 0);
}
