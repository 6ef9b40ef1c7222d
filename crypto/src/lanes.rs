//! Lane-wise ChaCha20: the first four words of one block for each of many
//! (block counter, nonce) pairs under one key at once, the pairs side by
//! side in the lanes of vector registers: sixteen lanes with AVX-512F and
//! eight with AVX2 where the CPU has them (detected at run time), four
//! otherwise (SSE2 on x86-64, plain `[u32; 4]` arrays elsewhere); the
//! scramble codec computes the last few heads of a batch with its scalar
//! block.

/// ChaCha20's constant words ("expand 32-byte k").
pub(crate) const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// Lanes of the portable path.
pub(crate) const NARROW: usize = 4;
/// Lanes of the AVX2 path.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const WIDE: usize = 8;
/// Lanes of the AVX-512F path.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const WIDEST: usize = 16;

/// The inputs of one block per lane: counter words, then the three nonce
/// words (RFC 8439 state words 12–15).
type Inputs<const L: usize> = [[u32; L]; 4];
/// The first four output words of one block per lane.
type Outputs<const L: usize> = [[u32; L]; 4];

/// ChaCha20's twenty rounds (RFC 8439 §2.3) over the state `$x`, sixteen
/// words of whatever lane type the operations `$add`, `$xor` and the
/// rotations by 16, 12, 8 and 7 work on.
macro_rules! rounds {
    ($x:ident, $add:expr, $xor:expr, $r16:expr, $r12:expr, $r8:expr, $r7:expr) => {{
        macro_rules! quarter {
            ($a:expr, $b:expr, $c:expr, $d:expr) => {
                $x[$a] = $add($x[$a], $x[$b]);
                $x[$d] = $r16($xor($x[$d], $x[$a]));
                $x[$c] = $add($x[$c], $x[$d]);
                $x[$b] = $r12($xor($x[$b], $x[$c]));
                $x[$a] = $add($x[$a], $x[$b]);
                $x[$d] = $r8($xor($x[$d], $x[$a]));
                $x[$c] = $add($x[$c], $x[$d]);
                $x[$b] = $r7($xor($x[$b], $x[$c]));
            };
        }
        for _ in 0..10 {
            quarter!(0, 4, 8, 12);
            quarter!(1, 5, 9, 13);
            quarter!(2, 6, 10, 14);
            quarter!(3, 7, 11, 15);
            quarter!(0, 5, 10, 15);
            quarter!(1, 6, 11, 12);
            quarter!(2, 7, 8, 13);
            quarter!(3, 4, 9, 14);
        }
    }};
}

/// Words 0–3 of one ChaCha20 block per lane (RFC 8439 §2.3) for the key
/// words `$key` and the per-lane `$inputs` (counter and nonce words), on
/// `$lanes`-lane vectors built by `$zero`/`$splat`, loaded from and stored
/// into `[u32; $lanes]` arrays by `$load`/`$store`, with the lane operations
/// [`rounds!`] takes.
macro_rules! lane_blocks {
    ($key:ident, $inputs:ident, $lanes:expr, $zero:expr, $splat:expr, $load:expr, $store:expr,
     $add:expr, $xor:expr, $r16:expr, $r12:expr, $r8:expr, $r7:expr) => {{
        let mut x = [$zero; 16];
        for (v, &s) in x.iter_mut().zip(&SIGMA) {
            *v = $splat(s);
        }
        for (v, &k) in x[4..12].iter_mut().zip($key) {
            *v = $splat(k);
        }
        for (v, w) in x[12..].iter_mut().zip($inputs) {
            *v = $load(w);
        }
        rounds!(x, $add, $xor, $r16, $r12, $r8, $r7);
        let mut out = [[0u32; $lanes]; 4];
        for ((o, v), &s) in out.iter_mut().zip(x).zip(&SIGMA) {
            $store(o, $add(v, $splat(s)));
        }
        out
    }};
}

/// Words 0–3 of ChaCha20 block `inputs[0][l]` with nonce `inputs[1..][l]`
/// under `key` for every lane `l`, on plain arrays (the compiler's own
/// vectorisation, if any).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn blocks_arrays<const L: usize>(key: &[u32; 8], inputs: &Inputs<L>) -> Outputs<L> {
    fn add<const L: usize>(a: [u32; L], b: [u32; L]) -> [u32; L] {
        std::array::from_fn(|i| a[i].wrapping_add(b[i]))
    }
    fn xor<const L: usize>(a: [u32; L], b: [u32; L]) -> [u32; L] {
        std::array::from_fn(|i| a[i] ^ b[i])
    }
    fn rotate<const L: usize, const R: u32>(a: [u32; L]) -> [u32; L] {
        a.map(|w| w.rotate_left(R))
    }
    lane_blocks!(
        key,
        inputs,
        L,
        [0u32; L],
        |w: u32| [w; L],
        |w: &[u32; L]| *w,
        |o: &mut [u32; L], v| *o = v,
        add,
        xor,
        rotate::<L, 16>,
        rotate::<L, 12>,
        rotate::<L, 8>,
        rotate::<L, 7>
    )
}

/// [`blocks_arrays`] on four lanes with SSE2 (always present on x86-64).
#[cfg(target_arch = "x86_64")]
fn blocks_sse2(key: &[u32; 8], inputs: &Inputs<NARROW>) -> Outputs<NARROW> {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86-64 baseline; the loads and stores
    // read and write whole `[u32; 4]` arrays (16 bytes, unaligned forms).
    unsafe {
        lane_blocks!(
            key,
            inputs,
            NARROW,
            _mm_setzero_si128(),
            |w: u32| _mm_set1_epi32(w as i32),
            |w: &[u32; NARROW]| _mm_loadu_si128(w.as_ptr().cast()),
            |o: &mut [u32; NARROW], v| _mm_storeu_si128(o.as_mut_ptr().cast(), v),
            |a, b| _mm_add_epi32(a, b),
            |a, b| _mm_xor_si128(a, b),
            |v| _mm_or_si128(_mm_slli_epi32::<16>(v), _mm_srli_epi32::<16>(v)),
            |v| _mm_or_si128(_mm_slli_epi32::<12>(v), _mm_srli_epi32::<20>(v)),
            |v| _mm_or_si128(_mm_slli_epi32::<8>(v), _mm_srli_epi32::<24>(v)),
            |v| _mm_or_si128(_mm_slli_epi32::<7>(v), _mm_srli_epi32::<25>(v))
        )
    }
}

/// [`blocks_sse2`] on eight lanes with AVX2 (the 16- and 8-bit rotations
/// as byte shuffles).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn blocks_avx2(key: &[u32; 8], inputs: &Inputs<WIDE>) -> Outputs<WIDE> {
    use std::arch::x86_64::*;
    // SAFETY: the caller runs only where AVX2 is present (this function's
    // target feature); the loads and stores read and write whole
    // `[u32; 8]` arrays (32 bytes, unaligned forms).
    unsafe {
        // Byte shuffles rotating every 32-bit word left by 16 and by 8.
        let rot16 = _mm256_setr_epi8(
            2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11,
            8, 9, 14, 15, 12, 13,
        );
        let rot8 = _mm256_setr_epi8(
            3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9,
            10, 15, 12, 13, 14,
        );
        lane_blocks!(
            key,
            inputs,
            WIDE,
            _mm256_setzero_si256(),
            |w: u32| _mm256_set1_epi32(w as i32),
            |w: &[u32; WIDE]| _mm256_loadu_si256(w.as_ptr().cast()),
            |o: &mut [u32; WIDE], v| _mm256_storeu_si256(o.as_mut_ptr().cast(), v),
            |a, b| _mm256_add_epi32(a, b),
            |a, b| _mm256_xor_si256(a, b),
            |v| _mm256_shuffle_epi8(v, rot16),
            |v| _mm256_or_si256(_mm256_slli_epi32::<12>(v), _mm256_srli_epi32::<20>(v)),
            |v| _mm256_shuffle_epi8(v, rot8),
            |v| _mm256_or_si256(_mm256_slli_epi32::<7>(v), _mm256_srli_epi32::<25>(v))
        )
    }
}

/// [`blocks_sse2`] on sixteen lanes with AVX-512F: its 32 registers hold
/// the whole state, and every rotation is one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn blocks_avx512(key: &[u32; 8], inputs: &Inputs<WIDEST>) -> Outputs<WIDEST> {
    use std::arch::x86_64::*;
    // SAFETY: the caller runs only where AVX-512F is present (this
    // function's target feature); the loads and stores read and write whole
    // `[u32; 16]` arrays (64 bytes, unaligned forms).
    unsafe {
        lane_blocks!(
            key,
            inputs,
            WIDEST,
            _mm512_setzero_si512(),
            |w: u32| _mm512_set1_epi32(w as i32),
            |w: &[u32; WIDEST]| _mm512_loadu_si512(w.as_ptr().cast()),
            |o: &mut [u32; WIDEST], v| _mm512_storeu_si512(o.as_mut_ptr().cast(), v),
            |a, b| _mm512_add_epi32(a, b),
            |a, b| _mm512_xor_si512(a, b),
            |v| _mm512_rol_epi32::<16>(v),
            |v| _mm512_rol_epi32::<12>(v),
            |v| _mm512_rol_epi32::<8>(v),
            |v| _mm512_rol_epi32::<7>(v)
        )
    }
}

/// Block counter and nonce words of a head-mask sample: the first word
/// with its top bit cleared (the keystream never wraps), then three words.
#[inline(always)]
pub(crate) fn sample_words(sample: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_le_bytes([sample[i], sample[i + 1], sample[i + 2], sample[i + 3]]);
    [w(0) & 0x7fff_ffff, w(4), w(8), w(12)]
}

/// The head masks of `samples` in full groups of `L` lanes into `masks`
/// with the block function `blocks`; returns how many it computed (the
/// rest is under one group).
#[inline(always)]
fn masks_lanes<const L: usize>(
    key: &[u32; 8],
    samples: &[[u8; 16]],
    masks: &mut [[u8; 16]],
    blocks: impl Fn(&[u32; 8], &Inputs<L>) -> Outputs<L>,
) -> usize {
    let mut done = 0;
    for (s, m) in samples.chunks_exact(L).zip(masks.chunks_exact_mut(L)) {
        let mut inputs = [[0u32; L]; 4];
        for (l, sample) in s.iter().enumerate() {
            for (w, v) in inputs.iter_mut().zip(sample_words(sample)) {
                w[l] = v;
            }
        }
        let out = blocks(key, &inputs);
        for (l, mask) in m.iter_mut().enumerate() {
            for (b, w) in mask.chunks_exact_mut(4).zip(&out) {
                b.copy_from_slice(&w[l].to_le_bytes());
            }
        }
        done += L;
    }
    done
}

/// [`masks_lanes`] on [`WIDE`] lanes with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn masks_avx2(key: &[u32; 8], samples: &[[u8; 16]], masks: &mut [[u8; 16]]) -> usize {
    masks_lanes::<WIDE>(key, samples, masks, |k, i| blocks_avx2(k, i))
}

/// [`masks_lanes`] on [`WIDEST`] lanes with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn masks_avx512(key: &[u32; 8], samples: &[[u8; 16]], masks: &mut [[u8; 16]]) -> usize {
    masks_lanes::<WIDEST>(key, samples, masks, |k, i| blocks_avx512(k, i))
}

/// [`masks_lanes`] on [`WIDEST`] lanes with AVX-512F; `None` when the CPU
/// lacks it (or is not x86-64).
pub(crate) fn masks_widest(
    key: &[u32; 8],
    samples: &[[u8; 16]],
    masks: &mut [[u8; 16]],
) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return Some(unsafe { masks_avx512(key, samples, masks) });
    }
    let _ = (key, samples, masks);
    None
}

/// [`masks_lanes`] on [`NARROW`] lanes with the target's baseline vectors.
pub(crate) fn masks_narrow(key: &[u32; 8], samples: &[[u8; 16]], masks: &mut [[u8; 16]]) -> usize {
    #[cfg(target_arch = "x86_64")]
    return masks_lanes::<NARROW>(key, samples, masks, blocks_sse2);
    #[cfg(not(target_arch = "x86_64"))]
    masks_lanes::<NARROW>(key, samples, masks, blocks_arrays::<NARROW>)
}

/// [`masks_lanes`] on [`NARROW`] lanes of plain arrays (the portable
/// code, which x86-64 runs only in tests).
#[cfg(test)]
pub(crate) fn masks_arrays(key: &[u32; 8], samples: &[[u8; 16]], masks: &mut [[u8; 16]]) -> usize {
    masks_lanes::<NARROW>(key, samples, masks, blocks_arrays::<NARROW>)
}

/// [`masks_lanes`] on [`WIDE`] lanes with AVX2; `None` when the CPU lacks
/// it (or is not x86-64).
pub(crate) fn masks_wide(
    key: &[u32; 8],
    samples: &[[u8; 16]],
    masks: &mut [[u8; 16]],
) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return Some(unsafe { masks_avx2(key, samples, masks) });
    }
    let _ = (key, samples, masks);
    None
}

/// The lanes [`masks`] computes at once on this CPU.
pub(crate) fn width() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return WIDEST;
        }
        if std::is_x86_feature_detected!("avx2") {
            return WIDE;
        }
    }
    NARROW
}

/// The head masks of `samples` into `masks`, as many as both hold, in
/// groups of the widest lanes the CPU has, then narrower ones; returns how
/// many (the rest, under [`NARROW`], is the caller's scalar tail).
pub(crate) fn masks(key: &[u32; 8], samples: &[[u8; 16]], masks: &mut [[u8; 16]]) -> usize {
    let n = samples.len().min(masks.len());
    let (samples, masks) = (&samples[..n], &mut masks[..n]);
    let mut done = masks_widest(key, samples, masks).unwrap_or(0);
    done += masks_wide(key, &samples[done..], &mut masks[done..]).unwrap_or(0);
    done + masks_narrow(key, &samples[done..], &mut masks[done..])
}
