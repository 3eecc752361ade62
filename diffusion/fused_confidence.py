"""A fused confidence-and-argmax kernel for CUDA, compiled at run time by NVRTC through cuda-python.

The reference scorer (`confidence.torch_scorer`) makes a float32 copy of the
logits, a `log_softmax` of it and a max (or top-2) over it: four passes over
(B, W, V) values, about 40 MB each for a 64-token window of a 152k-token
vocabulary. Every quantity it needs comes out of one pass instead: each
position's largest logit and its index, the second largest (the margin), and
the two running sums s = sum(e^(x - max)) and w = sum(e^(x - max) (x - max)),
rescaled whenever a larger maximum turns up (the online softmax of Milakov
and Gimelshein, 2018). From those:

    log p(token) = -log s        top-1 probability = 1 / s
    margin = (1 - e^(second - max)) / s
    sum p log p = w / s - log s

Two launches: blocks of 4,096 logits each (a row spans many blocks, so a
64-row step fills the GPU) hold their logits in registers, find the maximum,
then sum relative to it; then one warp per row merges its blocks' partial
results. The logits are read once, in the model's own dtype. Minus-infinity
logits (the banned ids, a forbidden null) count for nothing, as in the
reference. Ties go to the lowest token id. The first version, one block per
row with a rescaling update per logit, took 230 µs for 64 rows of a
152k-token vocabulary on an H100: 64 blocks for 132 multiprocessors.

Whether it beats the torch version depends on the device: `race` times both
there and the engine keeps the faster one. Nothing here runs
without cuda-python's `cuda.core`, NVRTC and a CUDA device; `available()`
says why not, and the engine then uses the torch scorer.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import torch

from diffusion.confidence import CONFIDENCES, Scorer, torch_scorer

log = logging.getLogger(__name__)

KINDS = {"top1": 0, "margin": 1, "entropy": 2}
THREADS = 256  # per block: 8 warps

KERNEL_SOURCE = r"""
#define NEG_INF __int_as_float(0xff800000)
#define NO_TOKEN 0x7fffffff
#define THREADS 256
#define PER 16  // logits per thread in the first pass: 4,096 per block

// What one thread (then a warp, then the block) knows of its share of a row.
struct Partial {
    float top;       // largest logit seen
    float second;    // second largest (equal to top on a tie)
    float sum;       // sum of e^(x - top)
    float weighted;  // sum of e^(x - top) * (x - top): relative, so it cannot overflow
    int token;       // index of top, the lowest on a tie
};

__device__ __forceinline__ float bf16_to_float(unsigned short bits) {
    return __uint_as_float(((unsigned int)bits) << 16);
}

__device__ __forceinline__ float f16_to_float(unsigned short bits) {
    float value;
    asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
    return value;
}

__device__ __forceinline__ Partial merge(Partial a, Partial b) {
    bool a_leads = a.top > b.top || (a.top == b.top && a.token < b.token);
    Partial hi = a_leads ? a : b;
    Partial lo = a_leads ? b : a;
    Partial r = hi;
    r.second = fmaxf(hi.second, lo.top);
    if (lo.sum > 0.0f) {
        float rescale = expf(lo.top - hi.top);
        r.weighted += rescale * (lo.weighted + (lo.top - hi.top) * lo.sum);
        r.sum += lo.sum * rescale;
    }
    return r;
}

__device__ __forceinline__ Partial shuffle_down(Partial p, int offset) {
    Partial q;
    q.top = __shfl_down_sync(0xffffffffu, p.top, offset);
    q.second = __shfl_down_sync(0xffffffffu, p.second, offset);
    q.sum = __shfl_down_sync(0xffffffffu, p.sum, offset);
    q.weighted = __shfl_down_sync(0xffffffffu, p.weighted, offset);
    q.token = __shfl_down_sync(0xffffffffu, p.token, offset);
    return q;
}

__device__ __forceinline__ Partial warp_reduce(Partial p) {
    for (int offset = 16; offset > 0; offset >>= 1) p = merge(p, shuffle_down(p, offset));
    return p;
}

template <int DTYPE>  // 0: bfloat16, 1: float16, 2: float32
__device__ __forceinline__ float load(const void* logits, long long at) {
    if (DTYPE == 0) return bf16_to_float(((const unsigned short*)logits)[at]);
    if (DTYPE == 1) return f16_to_float(((const unsigned short*)logits)[at]);
    return ((const float*)logits)[at];
}

__device__ __forceinline__ Partial block_reduce(Partial p, Partial* shared) {
    p = warp_reduce(p);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = p;
    __syncthreads();
    if (warp == 0) {
        p = lane < THREADS / 32 ? shared[lane] : Partial{NEG_INF, NEG_INF, 0.0f, 0.0f, NO_TOKEN};
        p = warp_reduce(p);
    }
    return p;  // whole in thread 0
}

// Pass 1: block (row, chunk) reduces PER * THREADS logits of its row, held in registers,
// to one Partial: the maximum and its index first, then the two sums relative to it, so
// each value costs one exponential and no rescaling.
template <int DTYPE>
__device__ void chunk_partials(const void* logits, long long rows, long long vocab, long long chunks,
                               Partial* partials) {
    long long row = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
    if (row >= rows) return;
    long long first = chunk * (long long)(PER * THREADS);
    float x[PER];
    Partial p = {NEG_INF, NEG_INF, 0.0f, 0.0f, NO_TOKEN};
#pragma unroll
    for (int i = 0; i < PER; i++) {
        long long v = first + i * THREADS + threadIdx.x;
        float value = v < vocab ? load<DTYPE>(logits, row * vocab + v) : NEG_INF;
        x[i] = value > NEG_INF ? value : NEG_INF;  // NaN carries no mass, as minus infinity
        if (x[i] > p.top) {  // indices rise with i: on a tie the earlier (lower) one stays
            p.second = p.top;
            p.top = x[i];
            p.token = (int)v;
        } else {
            p.second = fmaxf(p.second, x[i]);
        }
    }
    __shared__ Partial shared[THREADS / 32];
    __shared__ float top;
    Partial best = block_reduce(p, shared);
    if (threadIdx.x == 0) top = best.top;
    __syncthreads();
    float sum = 0.0f, weighted = 0.0f;
    if (top > NEG_INF) {
#pragma unroll
        for (int i = 0; i < PER; i++) {
            if (x[i] > NEG_INF) {
                float e = expf(x[i] - top);
                sum += e;
                weighted += e * (x[i] - top);
            }
        }
    }
    __syncthreads();  // `shared` is reused
    Partial sums = {top, NEG_INF, sum, weighted, NO_TOKEN};
    sums = block_reduce(sums, shared);
    if (threadIdx.x == 0) {
        best.sum = sums.sum;
        best.weighted = sums.weighted;
        partials[blockIdx.x] = best;
    }
}

// Pass 2: one warp per row merges its chunks' Partials and writes the scores.
__device__ void finish_rows(const Partial* partials, long long rows, long long chunks, long long kind,
                            float* confidence, long long* token, float* logp) {
    long long row = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    Partial p = {NEG_INF, NEG_INF, 0.0f, 0.0f, NO_TOKEN};
    for (long long c = lane; c < chunks; c += 32) p = merge(p, partials[row * chunks + c]);
    p = warp_reduce(p);
    if (lane != 0) return;
    if (!(p.sum > 0.0f)) {  // every logit minus infinity: no token is possible, as NaN says in torch
        confidence[row] = __int_as_float(0x7fc00000);
        token[row] = 0;
        logp[row] = __int_as_float(0x7fc00000);
        return;
    }
    float log_sum = logf(p.sum);
    float top_probability = 1.0f / p.sum;
    float c;
    if (kind == 0) c = top_probability;
    else if (kind == 1) c = top_probability - expf(p.second - p.top) / p.sum;
    else c = p.weighted / p.sum - log_sum;
    confidence[row] = c;
    token[row] = p.token;
    logp[row] = -log_sum;
}

extern "C" __global__ void __launch_bounds__(THREADS) chunks_bf16(
    const void* logits, long long rows, long long vocab, long long chunks, Partial* partials) {
    chunk_partials<0>(logits, rows, vocab, chunks, partials);
}

extern "C" __global__ void __launch_bounds__(THREADS) chunks_f16(
    const void* logits, long long rows, long long vocab, long long chunks, Partial* partials) {
    chunk_partials<1>(logits, rows, vocab, chunks, partials);
}

extern "C" __global__ void __launch_bounds__(THREADS) chunks_f32(
    const void* logits, long long rows, long long vocab, long long chunks, Partial* partials) {
    chunk_partials<2>(logits, rows, vocab, chunks, partials);
}

extern "C" __global__ void __launch_bounds__(THREADS) finish(
    const Partial* partials, long long rows, long long chunks, long long kind,
    float* confidence, long long* token, float* logp) {
    finish_rows(partials, rows, chunks, kind, confidence, token, logp);
}
"""

KERNEL_NAMES = {
    torch.bfloat16: "chunks_bf16",
    torch.float16: "chunks_f16",
    torch.float32: "chunks_f32",
}
FINISH = "finish"
CHUNK = 16 * THREADS  # logits per block in the first pass: PER * THREADS in the source
PARTIAL_BYTES = 20  # sizeof(Partial): four floats and an int


def cuda_core():
    """The `cuda.core` module (1.x; 0.x kept it under `experimental`), or None."""
    try:
        import cuda.core as core

        core.Program  # noqa: B018 (1.x exports it at the top)
        return core
    except (ImportError, AttributeError):
        pass
    try:
        from cuda.core import experimental as core

        return core
    except ImportError:
        return None


def compile_kernels(arch: str):
    """NVRTC-compiled object code of the kernels for `arch` (e.g. "sm_90"). Needs NVRTC, not a GPU."""
    core = cuda_core()
    if core is None:
        raise RuntimeError("cuda-python's cuda.core is not installed (pip install 'unmask[cuda]')")
    options = core.ProgramOptions(arch=arch, std="c++17", name="unmask_confidence")
    return core.Program(KERNEL_SOURCE, "c++", options=options).compile("cubin")


class FusedScorer:
    """A `Scorer` (logits (..., V) -> confidence, token, log p(token)) running the fused kernel."""

    def __init__(self, confidence: str, device: torch.device) -> None:
        core = cuda_core()
        if core is None:
            raise RuntimeError("cuda-python's cuda.core is not installed (pip install 'unmask[cuda]')")
        if device.type != "cuda":
            raise RuntimeError(f"the fused scorer runs on CUDA devices, not {device}")
        self.kind = KINDS[confidence]
        index = device.index if device.index is not None else torch.cuda.current_device()
        self.device = torch.device("cuda", index)
        self._core = core
        self._target = core.Device(index)
        self._threads = threading.local()  # threads whose current context is the device's
        self._make_current()
        major, minor = self._target.compute_capability
        code = compile_kernels(f"sm_{major}{minor}")
        self.kernels = {dtype: code.get_kernel(name) for dtype, name in KERNEL_NAMES.items()}
        self.finish = code.get_kernel(FINISH)

    def _make_current(self) -> None:
        # A launch on torch's default stream (handle 0) runs in the calling thread's current
        # context, and the scheduler's worker is not the thread that built the scorer.
        if not getattr(self._threads, "ready", False):
            self._target.set_current()  # the primary context, which torch uses too
            self._threads.ready = True

    def __call__(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        kernel = self.kernels.get(logits.dtype)
        assert kernel is not None, f"no fused kernel for {logits.dtype}"
        assert logits.device == self.device, f"logits on {logits.device}, scorer built for {self.device}"
        logits = logits.contiguous()
        vocab = logits.shape[-1]
        shape = logits.shape[:-1]
        rows = logits.numel() // vocab if vocab else 0
        chunks = -(-vocab // CHUNK)
        confidence = torch.empty(shape, dtype=torch.float32, device=logits.device)
        token = torch.empty(shape, dtype=torch.long, device=logits.device)
        logp = torch.empty(shape, dtype=torch.float32, device=logits.device)
        if rows:
            partials = torch.empty(rows * chunks * PARTIAL_BYTES, dtype=torch.uint8, device=logits.device)
            self._make_current()
            core = self._core
            stream = core.Stream.from_handle(torch.cuda.current_stream(logits.device).cuda_stream)
            core.launch(
                stream,
                core.LaunchConfig(grid=rows * chunks, block=THREADS),
                kernel,
                logits.data_ptr(),
                rows,
                vocab,
                chunks,
                partials.data_ptr(),
            )
            warps_per_block = THREADS // 32
            core.launch(
                stream,
                core.LaunchConfig(grid=-(-rows // warps_per_block), block=THREADS),
                self.finish,
                partials.data_ptr(),
                rows,
                chunks,
                self.kind,
                confidence.data_ptr(),
                token.data_ptr(),
                logp.data_ptr(),
            )
        return confidence, token, logp


@dataclass(frozen=True)
class Race:
    """The fused kernel against the torch scorer on one device, for one shape of logits."""

    agrees: bool
    fused_ms: float
    torch_ms: float
    detail: str = ""

    @property
    def fused_wins(self) -> bool:
        return self.agrees and self.fused_ms < self.torch_ms


def agreement(fused, reference, logits: torch.Tensor) -> tuple[bool, str]:
    """Whether two scorers agree on `logits`: the same confidence and log-probability (to float32
    summation order), and tokens holding the same logit (two ids may tie in bf16)."""
    conf_a, token_a, logp_a = fused(logits)
    conf_b, token_b, logp_b = reference(logits)
    chosen = logits.gather(-1, token_a[..., None])[..., 0]
    best = logits.gather(-1, token_b[..., None])[..., 0]
    problems = []
    if not torch.equal(chosen, best):
        problems.append("tokens")
    if not torch.allclose(conf_a, conf_b.float(), rtol=1e-3, atol=1e-5):
        problems.append(f"confidence (max diff {float((conf_a - conf_b).abs().max()):.2e})")
    if not torch.allclose(logp_a, logp_b.float(), rtol=1e-3, atol=1e-4):
        problems.append(f"log-probability (max diff {float((logp_a - logp_b).abs().max()):.2e})")
    return not problems, ", ".join(problems)


def race(fused, reference, logits: torch.Tensor, repeats: int = 50) -> Race:
    """Check the fused scorer against the reference on `logits`, then time both with CUDA events
    (medians of `repeats`, after a warm-up)."""
    agrees, detail = agreement(fused, reference, logits)

    def median_ms(scorer) -> float:
        for _ in range(3):
            scorer(logits)
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            scorer(logits)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return sorted(times)[len(times) // 2]

    return Race(agrees, median_ms(fused), median_ms(reference), detail)


def race_logits(rows: int, window: int, vocab: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Logits shaped like a step's, random (never zeros: they hide unwritten outputs), with a few
    ids banned as the denoiser bans them."""
    generator = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn((rows, window, vocab), generator=generator, device=device) * 4
    logits[..., :3] = float("-inf")
    return logits.to(dtype)


def available() -> str | None:
    """None when the fused scorer can be built here, else why not."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    if cuda_core() is None:
        return "cuda-python's cuda.core is not installed (pip install 'unmask[cuda]')"
    return None


@dataclass(frozen=True)
class ScorerChoice:
    """The scorer an engine runs its steps with, and why."""

    scorer: Scorer
    fused: bool
    reason: str


def choose_scorer(
    confidence: str,
    wanted: bool | None,
    device: torch.device,
    dtype: torch.dtype,
    vocab: int,
    rows: int,
    window: int,
) -> ScorerChoice:
    """The fused kernel when `wanted` (True: required; None: when the race on this device, with
    logits shaped (rows, window, vocab), says it agrees with torch and is faster), else torch's."""
    reference = torch_scorer(CONFIDENCES[confidence])
    if wanted is False:
        return ScorerChoice(reference, False, "torch scorer (fused kernel turned off)")
    why_not = available() if device.type == "cuda" else f"the model runs on {device}"
    if why_not is None:
        try:
            fused = FusedScorer(confidence, device)
            result = race(fused, reference, race_logits(rows, window, vocab, dtype, device))
        except Exception as error:  # NVRTC or the driver refused: the torch scorer still works
            why_not = f"the fused kernel failed to build or run: {error}"
        else:
            timing = f"fused {result.fused_ms:.3f} ms, torch {result.torch_ms:.3f} ms per step"
            if result.fused_wins or (wanted and result.agrees):
                return ScorerChoice(fused, True, f"fused kernel ({timing})")
            why_not = f"disagrees with torch on {result.detail}" if not result.agrees else f"slower: {timing}"
    if wanted:
        raise RuntimeError(f"the fused confidence kernel was asked for but cannot be used: {why_not}")
    log.info("scoring with torch: %s", why_not)
    return ScorerChoice(reference, False, f"torch scorer (fused kernel not used: {why_not})")
