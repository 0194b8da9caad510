// Host emulation of the CUDA built-ins graphc's generated kernels use (runtime/cuda.py), so the same
// source compiles with g++ and runs on the CPU (runtime/emulate.py compares it with the interpreter).
//
// A launch runs the grid block by block. Kernels without __syncthreads/shuffles run their threads one
// after another. Kernels with them run each thread of a block as a fiber (ucontext): a barrier switches
// back to the scheduler, which runs every other thread of the block up to the same barrier before any
// goes on. Warp shuffles exchange values through a per-thread slot between two such barriers, so they
// must be reached by every thread of the block (the generated code keeps them outside any branch);
// a block whose threads do not all reach the same number of barriers is reported as an error.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <vector>

struct dim3 { unsigned x, y, z; };

static dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __restrict__ __restrict
#define __shared__ static

namespace emu {
typedef void (*Body)(void **);
static const size_t kStack = 64 * 1024;
struct Fiber { ucontext_t ctx; bool done; };
static ucontext_t g_sched;
static std::vector<Fiber> g_fibers;
static std::vector<char> g_stacks;
static std::vector<uint64_t> g_slots;   // one shuffle slot per thread of the block
static int g_cur = -1;                  // the running fiber; -1: threads run one after another
static int g_error = 0;                 // 1: a barrier in a kernel run without fibers; 2: divergent barrier
static Body g_body;
static void **g_args;

static void set_thread(unsigned t) {
    threadIdx.x = t % blockDim.x;
    threadIdx.y = (t / blockDim.x) % blockDim.y;
    threadIdx.z = t / (blockDim.x * blockDim.y);
}

static void barrier() {
    if (g_cur < 0) { g_error = 1; return; }
    swapcontext(&g_fibers[g_cur].ctx, &g_sched);
}

static void entry() {
    g_body(g_args);
    g_fibers[g_cur].done = true;  // returning resumes the scheduler (uc_link)
}

static int run_block_fibers(unsigned n) {
    if (g_fibers.size() < n) {
        g_fibers.resize(n);
        g_stacks.resize(n * kStack);
    }
    g_slots.assign(n, 0);
    for (unsigned t = 0; t < n; ++t) {
        Fiber &f = g_fibers[t];
        f.done = false;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = &g_stacks[t * kStack];
        f.ctx.uc_stack.ss_size = kStack;
        f.ctx.uc_link = &g_sched;
        makecontext(&f.ctx, entry, 0);
    }
    for (;;) {  // one round: every live thread runs to its next barrier (or to its end)
        unsigned done = 0;
        for (unsigned t = 0; t < n; ++t) {
            if (g_fibers[t].done) { ++done; continue; }
            g_cur = (int)t;
            set_thread(t);
            swapcontext(&g_sched, &g_fibers[t].ctx);
            done += g_fibers[t].done;
        }
        g_cur = -1;
        if (done == n) return 0;
        if (done) return 2;  // some threads ended while others wait at a barrier
    }
}

// Runs body(args) for every thread of the grid; returns 0, or the error code above.
static int launch(dim3 grid, dim3 block, int fibers, Body body, void **args) {
    gridDim = grid;
    blockDim = block;
    g_body = body;
    g_args = args;
    g_error = 0;
    const unsigned n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx.x = bx; blockIdx.y = by; blockIdx.z = bz;
                if (fibers) {
                    int r = run_block_fibers(n);
                    if (r) return r;
                } else {
                    for (unsigned t = 0; t < n; ++t) {
                        set_thread(t);
                        body(args);
                    }
                    if (g_error) return g_error;
                }
            }
    return 0;
}

template <class T> static T shfl(T v, int src_lane_of, int width, bool down) {
    // write my value, wait for the block, read my source lane's, wait again before the slots are reused
    memcpy(&g_slots[g_cur < 0 ? 0 : g_cur], &v, sizeof(T));
    barrier();
    const int me = g_cur < 0 ? 0 : g_cur;
    const int lane = me & 31, base = me - lane;
    int src = down ? lane + src_lane_of : (lane / width) * width + src_lane_of % width;
    T r = v;
    if (down ? (lane % width) + src_lane_of < width : true) memcpy(&r, &g_slots[base + src], sizeof(T));
    barrier();
    return r;
}
}  // namespace emu

static inline void __syncthreads() { emu::barrier(); }
template <class T> static inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    return emu::shfl(v, (int)delta, width, true);
}
template <class T> static inline T __shfl_sync(unsigned, T v, int lane, int width = 32) {
    return emu::shfl(v, lane, width, false);
}
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(long long i) { double d; memcpy(&d, &i, 8); return d; }

// 16-bit storage formats (cuda_fp16.h / cuda_bf16.h on the device): bits only, no arithmetic and no implicit
// conversions, so a kernel that forgets to convert a load or a store fails to build here. Both conversions from
// float round to nearest even, as __float2half_rn / __float2bfloat16_rn (cvt.rn.f16.f32, cvt.rn.bf16.f32);
// float16 through g++'s _Float16 (IEEE binary16, x86-64), bfloat16 by hand (a NaN becomes 0x7fff, as CUDA's).
struct __half { uint16_t x; };
struct __nv_bfloat16 { uint16_t x; };
static inline float __half2float(__half h) { _Float16 f; memcpy(&f, &h.x, 2); return (float)f; }
static inline __half __float2half_rn(float v) { const _Float16 f = (_Float16)v; __half h; memcpy(&h.x, &f, 2); return h; }
static inline float __bfloat162float(__nv_bfloat16 h) {
    const uint32_t u = (uint32_t)h.x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __nv_bfloat16 __float2bfloat16_rn(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    __nv_bfloat16 h;
    h.x = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)0x7fff : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return h;
}
