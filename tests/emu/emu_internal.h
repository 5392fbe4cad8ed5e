/* Between the emulator's two halves: emu_runtime.cpp (API, memory, streams, graphs) and
 * emu_kernel.cpp (threads as fibers, the emulated instructions). */
#ifndef CS_EMU_INTERNAL_H
#define CS_EMU_INTERNAL_H

#include "cuda_emu.h"

/* Run every block of a grid now: blocks in a shuffled order, one at a time; or (coop, a
 * cooperative launch) all at once, interleaved, so grid-wide barriers work. */
void cs_emu_run_grid(const void *kernel, dim3 grid, dim3 block, size_t smem,
                     const std::function<void()> &fn, bool coop);
/* A kernel did something a GPU would fault on: prints the first few, makes e sticky. */
void cs_emu_fault(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The device's opt-in shared memory per block, by its compute capability (CS_EMU_CC): 227 KB
 * for 9.0, 163 KB for 8.0, 99 KB for 8.6/8.9. */
size_t cs_emu_smem_optin(void);
/* The emulator's one random stream (block order, copy landing, stream interleaving): xorshift64,
 * seeded from CS_EMU_SEED, so a run can be repeated. */
uint64_t cs_emu_rand(void);
/* 1 once a kernel has faulted (the error is sticky). */
int cs_emu_faulted(void);
/* Whether [p, p + n) lies inside one live cudaMalloc allocation. */
int cs_emu_in_device_alloc(const void *p, size_t n);

#endif
