/* clipskip's CUDA emulator: __half and the conversions the kernels use, exact IEEE binary16
 * with round-to-nearest-even (the hardware's _rn conversions). C++ only (kernel sources). */
#ifndef CS_EMU_CUDA_FP16_H
#define CS_EMU_CUDA_FP16_H

#include <stdint.h>
#include <string.h>

struct __half { uint16_t x; };
struct __half2 { __half x, y; };

static inline uint32_t cs_emu_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float cs_emu_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline __half __float2half_rn(float f) {
    const uint32_t u = cs_emu_f2u(f), sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    __half h;
    if (a >= 0x7f800000u) { /* inf or nan */
        h.x = (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0));
        return h;
    }
    if (a >= 0x477ff000u) { h.x = (uint16_t)(sign | 0x7c00u); return h; } /* rounds to inf */
    if (a < 0x38800000u) { /* subnormal half (or zero): value = m * 2^-24 */
        const float v = cs_emu_u2f(a) * 16777216.0f; /* exact: scales by 2^24 */
        /* round half to even in float arithmetic: v < 2^10, so adding 2^23 rounds to integer */
        const float r = (v + 8388608.0f) - 8388608.0f;
        h.x = (uint16_t)(sign | (uint32_t)r);
        return h;
    }
    /* normal: drop 13 mantissa bits with round-to-nearest-even */
    const uint32_t e = ((a >> 23) - 112) << 10, m = a & 0x7fffffu;
    uint32_t r = e | (m >> 13);
    const uint32_t rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    h.x = (uint16_t)(sign | r);
    return h;
}

static inline float __half2float(__half h) {
    const uint32_t sign = (uint32_t)(h.x & 0x8000u) << 16, e = (h.x >> 10) & 0x1fu, m = h.x & 0x3ffu;
    if (e == 0) {
        const float v = (float)m * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (e == 31) return cs_emu_u2f(sign | 0x7f800000u | (m << 13));
    return cs_emu_u2f(sign | ((e + 112) << 23) | (m << 13));
}

static inline __half __float2half(float f) { return __float2half_rn(f); }
static inline __half2 __floats2half2_rn(float a, float b) {
    __half2 r;
    r.x = __float2half_rn(a);
    r.y = __float2half_rn(b);
    return r;
}
static inline float __low2float(__half2 v) { return __half2float(v.x); }
static inline float __high2float(__half2 v) { return __half2float(v.y); }

#endif
