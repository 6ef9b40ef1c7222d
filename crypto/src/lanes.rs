//! Lane-wise ChaCha20: the first four words of one block for each of many
//! (block counter, nonce) pairs under one key, the pairs side by side in the
//! lanes of `[u32; L]` arrays so the compiler keeps each state word of all
//! lanes in one vector register. Eight lanes with AVX2 where the CPU has it
//! (detected at run time), four (SSE2 / NEON width) otherwise; the scramble
//! codec computes the last few heads of a batch with its scalar block.

/// ChaCha20's constant words ("expand 32-byte k").
pub(crate) const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// Lanes of the portable path.
pub(crate) const NARROW: usize = 4;
/// Lanes of the AVX2 path.
pub(crate) const WIDE: usize = 8;

/// The inputs of one block per lane: counter words, then the three nonce
/// words (RFC 8439 state words 12–15).
pub(crate) type Inputs<const L: usize> = [[u32; L]; 4];
/// The first four output words of one block per lane.
pub(crate) type Outputs<const L: usize> = [[u32; L]; 4];

#[inline(always)]
fn add<const L: usize>(a: &mut [u32; L], b: &[u32; L]) {
    for i in 0..L {
        a[i] = a[i].wrapping_add(b[i]);
    }
}

#[inline(always)]
fn xor_rotate<const L: usize>(d: &mut [u32; L], a: &[u32; L], r: u32) {
    for i in 0..L {
        d[i] = (d[i] ^ a[i]).rotate_left(r);
    }
}

#[inline(always)]
fn quarter_round<const L: usize>(x: &mut [[u32; L]; 16], a: usize, b: usize, c: usize, d: usize) {
    let (mut va, mut vb, mut vc, mut vd) = (x[a], x[b], x[c], x[d]);
    add(&mut va, &vb);
    xor_rotate(&mut vd, &va, 16);
    add(&mut vc, &vd);
    xor_rotate(&mut vb, &vc, 12);
    add(&mut va, &vb);
    xor_rotate(&mut vd, &va, 8);
    add(&mut vc, &vd);
    xor_rotate(&mut vb, &vc, 7);
    x[a] = va;
    x[b] = vb;
    x[c] = vc;
    x[d] = vd;
}

/// Words 0–3 of ChaCha20 block `inputs[0][l]` with nonce `inputs[1..][l]`
/// under `key`, for every lane `l` (RFC 8439 §2.3, lane by lane).
#[inline(always)]
pub(crate) fn blocks<const L: usize>(key: &[u32; 8], inputs: &Inputs<L>) -> Outputs<L> {
    let mut x = [[0u32; L]; 16];
    for (w, &s) in x.iter_mut().zip(&SIGMA) {
        *w = [s; L];
    }
    for (w, &k) in x[4..12].iter_mut().zip(key) {
        *w = [k; L];
    }
    x[12..].copy_from_slice(inputs);
    for _ in 0..10 {
        quarter_round(&mut x, 0, 4, 8, 12);
        quarter_round(&mut x, 1, 5, 9, 13);
        quarter_round(&mut x, 2, 6, 10, 14);
        quarter_round(&mut x, 3, 7, 11, 15);
        quarter_round(&mut x, 0, 5, 10, 15);
        quarter_round(&mut x, 1, 6, 11, 12);
        quarter_round(&mut x, 2, 7, 8, 13);
        quarter_round(&mut x, 3, 4, 9, 14);
    }
    let mut out = [[0u32; L]; 4];
    for (o, (w, &s)) in out.iter_mut().zip(x.iter().zip(&SIGMA)) {
        *o = *w;
        add(o, &[s; L]);
    }
    out
}

/// Block counter and nonce words of a head-mask sample: the first word
/// with its top bit cleared (the keystream never wraps), then three words.
#[inline(always)]
pub(crate) fn sample_words(sample: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_le_bytes([sample[i], sample[i + 1], sample[i + 2], sample[i + 3]]);
    [w(0) & 0x7fff_ffff, w(4), w(8), w(12)]
}

/// The head masks of `samples` in full groups of `L` lanes into `masks`;
/// returns how many it computed (the rest is under one group).
#[inline(always)]
fn masks_lanes<const L: usize>(
    key: &[u32; 8],
    samples: &[[u8; 16]],
    masks: &mut [[u8; 16]],
) -> usize {
    let mut done = 0;
    for (s, m) in samples.chunks_exact(L).zip(masks.chunks_exact_mut(L)) {
        let mut inputs = [[0u32; L]; 4];
        for (l, sample) in s.iter().enumerate() {
            for (w, v) in inputs.iter_mut().zip(sample_words(sample)) {
                w[l] = v;
            }
        }
        let out = blocks::<L>(key, &inputs);
        for (l, mask) in m.iter_mut().enumerate() {
            for (b, w) in mask.chunks_exact_mut(4).zip(&out) {
                b.copy_from_slice(&w[l].to_le_bytes());
            }
        }
        done += L;
    }
    done
}

/// [`masks_lanes`] on [`WIDE`] lanes, compiled for AVX2 so the lane
/// arrays live in 256-bit registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn masks_avx2(key: &[u32; 8], samples: &[[u8; 16]], masks: &mut [[u8; 16]]) -> usize {
    masks_lanes::<WIDE>(key, samples, masks)
}

/// [`masks_lanes`] on [`NARROW`] lanes with the target's baseline vectors.
pub(crate) fn masks_narrow(key: &[u32; 8], samples: &[[u8; 16]], masks: &mut [[u8; 16]]) -> usize {
    masks_lanes::<NARROW>(key, samples, masks)
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
    if std::is_x86_feature_detected!("avx2") {
        return WIDE;
    }
    NARROW
}

/// The head masks of `samples` into `masks`, as many as both hold, in
/// groups of [`width`] lanes then [`NARROW`]; returns how many (the rest,
/// under [`NARROW`], is the caller's scalar tail).
pub(crate) fn masks(key: &[u32; 8], samples: &[[u8; 16]], masks: &mut [[u8; 16]]) -> usize {
    let n = samples.len().min(masks.len());
    let (samples, masks) = (&samples[..n], &mut masks[..n]);
    let wide = masks_wide(key, samples, masks).unwrap_or(0);
    wide + masks_narrow(key, &samples[wide..], &mut masks[wide..])
}
