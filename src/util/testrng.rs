//! The seeded generator of the generated tests, unit and integration alike (the integration
//! tests include this file by path): splitmix64 — no dependency, the same sequence on every
//! machine, and any seed (0 included) gives a full-period sequence.

/// A seeded generator: `Rng(seed)`.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits (not an `Iterator`: it never ends).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0), of `n`'s type.
    pub fn below<N>(&mut self, n: N) -> N
    where
        N: TryFrom<u64> + TryInto<u64> + Copy,
    {
        let m = n.try_into().unwrap_or(u64::MAX).max(1);
        match N::try_from(self.next() % m) {
            Ok(v) => v,
            // Below `n`, so it fits `n`'s type.
            Err(_) => unreachable!("a number below n fits n's type"),
        }
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Each of `items` with `percent` % probability, in order.
    pub fn subset<T: Clone>(&mut self, items: &[T], percent: u64) -> Vec<T> {
        items
            .iter()
            .filter(|_| self.chance(percent))
            .cloned()
            .collect()
    }
}
