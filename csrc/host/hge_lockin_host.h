/*
 * hge_lockin_host.h - host-only fast paths of the lock-in (not built for a
 * microcontroller: tools/firmware compiles the .c files of csrc/ itself, not
 * those of csrc/host/).
 *
 * Every path here runs the same per-sample and per-group arithmetic as the
 * portable C99 path (hge_lockin_kernels.h, one copy) and leaves the instance in
 * the same state, so a window may be split into blocks that alternate between
 * paths; each is tested bit for bit against hge_embedded/reference/fixed.py.
 *
 *   isa      runtime dispatch: HGE_ISA_GENERIC is the baseline x86-64 (or any
 *            host) code, HGE_ISA_AVX2 the same source compiled for AVX2 (the
 *            compiler vectorises the reference-cache loops over samples; gathers
 *            are not used), HGE_ISA_AUTO picks AVX2 when the CPU has it.
 *   refs     a reference cache: the Q22 sin and cos of every terminal at every
 *            sample of a window (one NCO walk), reused for every window of the same
 *            plan and length. With it the per-sample work is two rounding multiplies
 *            per terminal and no table lookups. Two layouts: rows (hge_refs_fill, one
 *            row of n per channel) and lane-interleaved (hge_refs_fill_lanes, 4
 *            terminals per 32-byte row, what the AVX2 lane kernel reads; the
 *            default of core.References). Both take 8 bytes per terminal-sample, so
 *            a large plan streams its cache from memory (M = 64, n = 1e5: 51 MB).
 *   threads  terminals split into contiguous ranges, one thread each (1 = the
 *            calling thread only): the calling thread and persistent workers
 *            (hge_host_pool.h), or threads started per call. Terminals are
 *            independent, so the result does not depend on the split or the threads.
 */
#ifndef HGE_LOCKIN_HOST_H
#define HGE_LOCKIN_HOST_H

#include "hge_host_pool.h"
#include "hge_lockin.h"

#define HGE_ISA_AUTO 0u
#define HGE_ISA_GENERIC 1u
#define HGE_ISA_AVX2 2u
#define HGE_HOST_MAX_THREADS 64u /* = HGE_POOL_MAX_TASKS */

typedef struct {
    uint32_t isa;     /* HGE_ISA_AUTO, HGE_ISA_GENERIC or HGE_ISA_AVX2 */
    uint32_t threads; /* 1..HGE_HOST_MAX_THREADS */
    uint32_t pool;    /* threads > 1: HGE_POOL_WORKERS (0, the persistent workers of
                         hge_host_pool.h) or HGE_POOL_SPAWN (threads started per call) */
} hge_host_opts_t;

/* 1 if this CPU (and this build) can run the given isa, else 0. */
int hge_host_isa_available(uint32_t isa);

/*
 * Reference cache of a plan: refs[(2 m) stride + j] = hge_sin_q22(phase_m(j)),
 * refs[(2 m + 1) stride + j] = hge_sin_q22(phase_m(j) + 2^30), j < n, with
 * phase_m(j) = phases[m] + j steps[m] (mod 2^32) and phases NULL meaning 0.
 * n <= stride. Errors: HGE_ERR_NULL, HGE_ERR_TERMINALS, HGE_ERR_FREQ (as init),
 * HGE_ERR_SIZE (n > stride).
 */
hge_status hge_refs_fill(int32_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                         const uint32_t *phases, uint32_t n);

/*
 * hge_lockin_bw3_process / hge_lockin_boxcar_process with the host's options.
 * refs NULL: the NCO runs per sample (as the portable path). refs non-NULL: it
 * must point at the cache entry of this block's first sample (cache base + the
 * number of samples processed since init/reset), laid out as for hge_refs_fill
 * with the given stride, for the same steps and phases as the instance; each
 * terminal's phase is still advanced, by n steps, so the state after the call is
 * the portable path's. Errors: as the portable calls, plus HGE_ERR_RANGE for an
 * unknown or unavailable isa, threads outside 1..HGE_HOST_MAX_THREADS or an unknown
 * pool mode (a job that gets no thread runs on the calling thread).
 */
hge_status hge_host_bw3_process(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                uint32_t stride, const hge_host_opts_t *opts);
hge_status hge_host_boxcar_process(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n,
                                   const int32_t *refs, uint32_t stride, const hge_host_opts_t *opts);

/*
 * Lane-interleaved reference cache (what core.References builds): terminals in
 * batches of HGE_HOST_LANES; batch b, sample j holds one row of 2 HGE_HOST_LANES
 * int32 at refs[b stride + HGE_LANE_ROW j]: the Q22 sines of terminals
 * HGE_HOST_LANES b .. HGE_HOST_LANES b + HGE_HOST_LANES - 1, then their cosines
 * (lanes past n_terms hold 0). The AVX2 path reads a row (32 bytes) as one vector:
 * terminals in SIMD lanes, one broadcast sample for all, no gathers, no transposes. stride >= HGE_LANE_ROW n; the cache takes
 * ceil(n_terms / HGE_HOST_LANES) stride int32. Errors as hge_refs_fill (HGE_ERR_SIZE:
 * stride < HGE_LANE_ROW n).
 */
#define HGE_HOST_LANES 4u
#define HGE_LANE_ROW (2u * HGE_HOST_LANES)
hge_status hge_refs_fill_lanes(int32_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                               const uint32_t *phases, uint32_t n);

/*
 * hge_host_bw3_process / hge_host_boxcar_process reading a lane-interleaved cache:
 * refs (not NULL) points at the row of this block's first sample in batch 0 (cache
 * base + HGE_LANE_ROW times the samples processed since init/reset); stride as for
 * hge_refs_fill_lanes. The AVX2 code runs whole groups of 8 samples for a batch of
 * terminals at once (mixers, pre-sums and the SoA filter step in registers); partial
 * groups at block edges and the generic isa run the scalar kernels. Threads split the
 * batches. Errors as hge_host_bw3_process.
 */
hge_status hge_host_bw3_process_lanes(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                      uint32_t stride, const hge_host_opts_t *opts);
hge_status hge_host_boxcar_process_lanes(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n,
                                         const int32_t *refs, uint32_t stride, const hge_host_opts_t *opts);

/*
 * Packed lane cache: the lane cache's values (|v| <= 2^22) as 24-bit two's complement,
 * little-endian, 3 bytes each, so a row (4 sines then 4 cosines) takes HGE_PACKED_ROW
 * = 24 bytes instead of 32 (a quarter less memory traffic for the bandwidth-bound lane
 * kernel). Batch b, sample j: the row at refs + b stride + HGE_PACKED_ROW j (bytes;
 * stride >= HGE_PACKED_ROW n, in bytes). The AVX2 code reads exactly the 24 bytes of
 * each row (two overlapping 16-byte loads), never past the buffer; no alignment needed.
 * Errors as hge_refs_fill_lanes.
 */
#define HGE_PACKED_ROW (3u * HGE_LANE_ROW)
hge_status hge_refs_fill_packed(uint8_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                                const uint32_t *phases, uint32_t n);

/* hge_host_bw3_process_lanes / hge_host_boxcar_process_lanes reading a packed cache
 * (refs: cache base + HGE_PACKED_ROW times the samples processed since init/reset;
 * stride in bytes). Same results; errors as those. */
hge_status hge_host_bw3_process_packed(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const uint8_t *refs,
                                       uint32_t stride, const hge_host_opts_t *opts);
hge_status hge_host_boxcar_process_packed(hge_lockin_boxcar_t *s, const int32_t *x, uint32_t n,
                                          const uint8_t *refs, uint32_t stride, const hge_host_opts_t *opts);

/*
 * Scaled lane cache (Butterworth only): the lane cache's layout and stride with every
 * value multiplied by 256 (Q30; |256 ref| <= 2^30 fits int32). The AVX2 kernel then
 * multiplies a row as loaded (no unpacking, as the packed cache needs, and no per-product
 * shift, as the plain lane cache needs): the fewest operations per sample, at the plain
 * lane cache's 32 bytes per row. Errors as hge_refs_fill_lanes.
 */
hge_status hge_refs_fill_scaled(int32_t *refs, uint32_t stride, uint32_t n_terms, const uint32_t *steps,
                                const uint32_t *phases, uint32_t n);

/* hge_host_bw3_process_lanes reading a scaled lane cache (refs, stride as for that call).
 * Same results; errors as it. */
hge_status hge_host_bw3_process_scaled(hge_lockin_bw3_t *s, const int32_t *x, uint32_t n, const int32_t *refs,
                                       uint32_t stride, const hge_host_opts_t *opts);

/*
 * hge_mean_q0 (hge_lockin.h: round-half-up mean of the 24-bit-saturated codes, same
 * formats, errors and result) with the host's isa: the sum of the saturated codes is an
 * exact integer in any order, so the AVX2 code (8 lanes: clamp, widen to int64, add)
 * gives the portable sum and then the portable rounding. isa as hge_host_opts_t
 * (HGE_ERR_RANGE if unknown or unavailable).
 */
hge_status hge_host_mean_q0(const int32_t *x, uint32_t n, int32_t *mean, uint32_t isa);

/*
 * K windows of one plan in one call (the trainer reads ~300 windows of one plan per
 * iteration; one call instead of K saves each window's binding overhead). Window k is
 * x[k n .. k n + n - 1] (x holds n_windows n codes). Its outputs, out_i[k n_terms + m] and
 * out_q[k n_terms + m], are exactly those of the one-window calls
 *     hge_lockin_bw3_init(&s, coeffs, terms, n_terms, steps, phases);
 *     hge_lockin_bw3_set_dc(&s, dcs == NULL ? 0 : dcs[k]);
 *     hge_host_bw3_process<layout>(&s, x + k n, n, refs, stride, &one_thread);
 *     hge_lockin_bw3_output(&s, out_i + k n_terms, out_q + k n_terms);
 * which this function makes (the same functions, so the same integers; formats, rounding and
 * overflow as those: Q6 outputs, see hge_lockin.h). layout names the reference cache refs
 * points at (its base, sample 0): HGE_REFS_NONE (refs unused, the NCO per sample),
 * HGE_REFS_ROWS (hge_refs_fill), HGE_REFS_LANES (hge_refs_fill_lanes), HGE_REFS_PACKED
 * (hge_refs_fill_packed, stride in bytes), HGE_REFS_SCALED (hge_refs_fill_scaled), built for
 * these steps and phases and at least n samples. opts: isa as for the process calls; threads
 * split the windows (whole windows per thread, each window on one thread; windows are
 * independent, so the split does not change a bit); pool as hge_host_opts_t.
 * terms: caller-owned workspace of n_terms terminals per thread, min(opts->threads,
 * n_windows) n_terms in all (overwritten). n_windows = 0 does nothing.
 * Errors (checked before any window, except the per-window ones): HGE_ERR_NULL (terms, x,
 * opts, coeffs or an output NULL; refs NULL with a cache layout), HGE_ERR_TERMINALS,
 * HGE_ERR_SIZE (n = 0, or the cache shorter than n samples), HGE_ERR_RANGE (unknown layout,
 * bad opts); per window as init / set_dc (HGE_ERR_FREQ, HGE_ERR_COEF, HGE_ERR_RANGE for a dc
 * outside 24 bits): the outputs are then unspecified.
 */
#define HGE_REFS_NONE 0u
#define HGE_REFS_ROWS 1u
#define HGE_REFS_LANES 2u
#define HGE_REFS_PACKED 3u
#define HGE_REFS_SCALED 4u
hge_status hge_host_bw3_windows(const hge_bw3_coeffs_t *coeffs, hge_lockin_bw3_term_t *terms, uint32_t n_terms,
                                const uint32_t *steps, const uint32_t *phases, const int32_t *x, uint32_t n,
                                uint32_t n_windows, const int32_t *dcs, const void *refs, uint32_t layout,
                                uint32_t stride, const hge_host_opts_t *opts, int32_t *out_i, int32_t *out_q);

/* The same for integrate-and-dump: outputs the Q22 sums of hge_lockin_boxcar_output (int64;
 * each window's count is n). n <= HGE_BOXCAR_MAX_SAMPLES (else HGE_ERR_SIZE); the scaled
 * layout serves the Butterworth only (HGE_ERR_RANGE). Otherwise as hge_host_bw3_windows. */
hge_status hge_host_boxcar_windows(hge_lockin_boxcar_term_t *terms, uint32_t n_terms, const uint32_t *steps,
                                   const uint32_t *phases, const int32_t *x, uint32_t n, uint32_t n_windows,
                                   const int32_t *dcs, const void *refs, uint32_t layout, uint32_t stride,
                                   const hge_host_opts_t *opts, int64_t *out_i, int64_t *out_q);

/*
 * Float samples -> 24-bit ADC codes, window by window, as the host's demodulate (to_codes) makes
 * them: window k is x[k n .. k n + n - 1] (binary64, nA or any unit); its scale (unit per code)
 * is scale[k] = full_scale / (2^23 - 1) when full_scale > 0, else its largest |sample| (1 if
 * that is 0) over 2^22 - 1 (one bit of headroom: the core saturates x - dc to 24 bits); codes[k n + j] = clip(round(x / scale[k]), -(2^23 - 1), 2^23 - 1),
 * rounding to nearest with ties to even (numpy's round), exact for every double (the clip comes
 * first here, which gives the same integer because its bounds are integers). dcs non-NULL: also
 * each window's hge_host_mean_q0 of its codes (round half up; isa as there). Formats: scale and x
 * binary64, codes and dcs Q0 int32. Errors: HGE_ERR_NULL (x, codes or scale NULL), HGE_ERR_SIZE
 * (n = 0 or above HGE_MEAN_MAX_SAMPLES), HGE_ERR_RANGE (full_scale NaN, negative or infinite; a
 * sample NaN or infinite, or with full_scale > 0 a |sample| above full_scale (1 + 1e-12); an
 * unknown isa): the outputs of that window and later ones are then unspecified.
 */
hge_status hge_host_codes(const double *x, uint32_t n_windows, uint32_t n, double full_scale, int32_t *codes,
                          double *scale, int32_t *dcs, uint32_t isa);

/*
 * The DAC's applied fundamentals of K windows (the host's applied_fundamentals, one electrode
 * row per tone): for window k (samples starts[k] .. starts[k] + n - 1 of every row) and electrode
 * i (row rows[i] of volts, rows of row_stride doubles), the DAC's value of each sample
 * q = round(v / lsb) lsb (ties to even, as numpy's round), and the dot products
 * out_s[k m + i] = sum_j q_j ps[i n + j], out_c[k m + i] = sum_j q_j pc[i n + j] (the tone
 * fit's sine and cosine rows for tone i). Binary64 throughout; the sums run in j order (each
 * within gamma_n sum_j |q_j p_j| of the exact one). The caller checks the rows. Errors:
 * HGE_ERR_NULL, HGE_ERR_SIZE (m or n 0, a window past its row's end), HGE_ERR_RANGE (lsb not
 * finite and > 0).
 */
hge_status hge_host_fundamentals(const double *volts, uint64_t row_stride, const uint32_t *rows, uint32_t m,
                                 const uint64_t *starts, uint32_t n_windows, uint32_t n, double lsb,
                                 const double *ps, const double *pc, double *out_s, double *out_c);

#endif /* HGE_LOCKIN_HOST_H */
