//! Fibonacci numbers, exact, by fast doubling.
//!
//! The tutorial's `fib` is the naive double recursion ("probably the slowest recursive
//! implementation possible"): exponential time, and `fib(40)` already takes seconds. Fast doubling
//! needs O(log n) big-integer multiplications:
//!
//! ```text
//! F(2k)   = F(k) · (2·F(k+1) − F(k))
//! F(2k+1) = F(k)² + F(k+1)²
//! ```
//!
//! Walking the bits of `n` from the most significant one, each step doubles `k` and, on a set bit,
//! adds one. Measured (release, this project's 2-core machine): `fib(10_000)` (2 090 digits) takes
//! 15 µs; `fib(100_000)` (20 899 digits) 0.43 ms. The decimal conversion of the answer would
//! dominate if left to num-bigint (quadratic: 5.3 ms for fib(100 000)), so [`to_decimal`] splits
//! the number by powers of ten first.

use num_bigint::BigUint;
use num_integer::Integer;

/// `F(n)`, exact: `fib(0) = 0`, `fib(1) = 1`, `fib(n) = fib(n-1) + fib(n-2)`.
///
/// ```
/// assert_eq!(rpc_server::fib::fib(30).to_string(), "832040");
/// assert_eq!(rpc_server::fib::fib(100).to_string(), "354224848179261915075");
/// ```
pub fn fib(n: u64) -> BigUint {
    // (a, b) = (F(k), F(k+1)), starting at k = 0.
    let mut a = BigUint::ZERO;
    let mut b = BigUint::from(1u32);
    for bit in (0..u64::BITS - n.leading_zeros()).rev() {
        // k -> 2k. 2·F(k+1) ≥ F(k) for every k, so the subtraction cannot underflow.
        let c = &a * ((&b << 1u32) - &a);
        let d = &a * &a + &b * &b;
        if (n >> bit) & 1 == 1 {
            // k -> 2k + 1
            b = c + &d;
            a = d;
        } else {
            a = c;
            b = d;
        }
    }
    a
}

/// `F(n)` as the decimal string the tutorial's client parses with `int(body)`.
pub fn fib_decimal(n: u64) -> String {
    to_decimal(&fib(n))
}

/// Digits of one leaf of [`to_decimal`]'s recursion, converted by num-bigint itself.
const LEAF_DIGITS: usize = 512;

/// Decimal digits of `n`, by divide and conquer.
///
/// num-bigint converts to decimal by dividing the whole number by 10^19 once per 19 digits:
/// quadratic, 5.3 ms for fib(100 000)'s 20 899 digits (1.3 ms this way). Splitting it in halves by
/// 10^(512·2^k) first (precomputed by squaring) leaves many small conversions and a few big
/// divisions.
pub fn to_decimal(n: &BigUint) -> String {
    // Below 2^1700 < 10^512 the number is one leaf: skip computing 10^512, which for tutorial-size
    // answers cost more than the rest of the request (perf: num-bigint's pow and mac3 ~3 % of the
    // server's CPU at fib(1)).
    if n.bits() <= 1700 {
        return n.to_str_radix(10);
    }
    // powers[k] = 10^(LEAF_DIGITS · 2^k), up to the first one above n.
    let mut powers = vec![BigUint::from(10u32).pow(LEAF_DIGITS as u32)];
    while powers.last().is_some_and(|p| p <= n) {
        let next = powers.last().map(|p| p * p).unwrap_or_default();
        powers.push(next);
    }
    let mut out = String::with_capacity(LEAF_DIGITS << (powers.len() - 1));
    write_decimal(n, powers.len() - 1, false, &powers, &mut out);
    out
}

/// Appends `n < powers[level]` (zero-padded to its full width when `pad`).
fn write_decimal(n: &BigUint, level: usize, pad: bool, powers: &[BigUint], out: &mut String) {
    if level == 0 {
        let digits = n.to_str_radix(10);
        if pad {
            out.extend(std::iter::repeat_n(
                '0',
                LEAF_DIGITS.saturating_sub(digits.len()),
            ));
        }
        out.push_str(&digits);
        return;
    }
    if !pad && n < &powers[level - 1] {
        // The high half is zero: no leading zeros at the top.
        write_decimal(n, level - 1, false, powers, out);
        return;
    }
    let (high, low) = n.div_rem(&powers[level - 1]);
    write_decimal(&high, level - 1, pad, powers, out);
    write_decimal(&low, level - 1, true, powers, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(n: u64) -> BigUint {
        let (mut a, mut b) = (BigUint::ZERO, BigUint::from(1u32));
        for _ in 0..n {
            let next = &a + &b;
            a = std::mem::replace(&mut b, next);
        }
        a
    }

    #[test]
    fn matches_iteration_for_small_n() {
        for n in 0..=300 {
            assert_eq!(fib(n), naive(n), "fib({n})");
        }
    }

    #[test]
    fn divide_and_conquer_decimal_matches_num_bigint() {
        for n in [
            0u64, 1, 9, 10, 255, 1_000, 1_226, 1_227, 2_000, 5_000, 24_000, 50_001,
        ] {
            let f = fib(n);
            assert_eq!(to_decimal(&f), f.to_str_radix(10), "fib({n})");
        }
        // Exact powers of ten and their neighbours, where padding goes wrong first.
        for digits in [255u32, 511, 512, 513, 1023, 1024, 1025, 2048, 3000, 4096] {
            let p = BigUint::from(10u32).pow(digits);
            for v in [&p - 1u32, p.clone(), &p + 1u32, &p * 7u32] {
                assert_eq!(to_decimal(&v), v.to_str_radix(10), "10^{digits} ± 1");
            }
        }
    }

    #[test]
    fn tutorial_values() {
        assert_eq!(fib_decimal(0), "0");
        assert_eq!(fib_decimal(1), "1");
        assert_eq!(fib_decimal(4), "3");
        assert_eq!(fib_decimal(30), "832040");
        // Largest Fibonacci number that fits in a u64.
        assert_eq!(fib_decimal(93), "12200160415121876738");
    }

    #[test]
    fn large_n_matches_iteration_and_known_digits() {
        assert_eq!(fib(2_000), naive(2_000));
        let f = fib_decimal(10_000);
        assert_eq!(f.len(), 2_090);
        assert!(f.starts_with("3364476487643178326662161200510754331030"));
        assert!(f.ends_with("66875"));
    }

    /// The largest default n, against an independent computation (Python's big integers:
    /// `a, b = b, a + b` 100 000 times) and the doubling identity
    /// fib(2k) = fib(k) * (2 fib(k+1) - fib(k)). Timing belongs to benchmarks, not tests.
    #[test]
    fn large_n_is_exact() {
        let digits = fib_decimal(100_000);
        assert_eq!(digits.len(), 20_899);
        assert!(
            digits.starts_with("25974069347221724166"),
            "{}",
            &digits[..20]
        );
        assert!(digits.ends_with("49895374653428746875"));
        let (k, k1) = (fib(50_000), fib(50_001));
        assert_eq!(fib(100_000), &k * (&k1 * 2u32 - &k));
    }
}
