//! The workload's distributions, each sampled by inverting its CDF at a
//! uniform draw from a seeded [`Rng`].
//!
//! The parameters of Facebook's "ETC" pool are those mutilate ships
//! (Atikoglu et al., SIGMETRICS 2012): key sizes follow a generalized
//! extreme value distribution, value sizes a generalized Pareto, and
//! inter-arrival times are exponential (a Poisson process).

use crate::rng::Rng;

/// Generalized extreme value distribution (location μ, scale σ, shape ξ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gev {
    /// Location μ.
    pub loc: f64,
    /// Scale σ (> 0).
    pub scale: f64,
    /// Shape ξ.
    pub shape: f64,
}

impl Gev {
    /// ETC key sizes in bytes: GEV(30.7984, 8.20449, 0.078688).
    pub const FB_KEY: Gev = Gev {
        loc: 30.7984,
        scale: 8.20449,
        shape: 0.078688,
    };

    /// The value below which a fraction `p` of samples fall, `0 < p < 1`.
    pub fn quantile(&self, p: f64) -> f64 {
        let t = -p.ln();
        if self.shape == 0.0 {
            self.loc - self.scale * t.ln()
        } else {
            self.loc + self.scale * (t.powf(-self.shape) - 1.0) / self.shape
        }
    }

    /// One sample.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        self.quantile(rng.next_open01())
    }
}

/// Generalized Pareto distribution (location μ, scale σ, shape ξ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenPareto {
    /// Location μ.
    pub loc: f64,
    /// Scale σ (> 0).
    pub scale: f64,
    /// Shape ξ.
    pub shape: f64,
}

impl GenPareto {
    /// ETC value sizes in bytes: GPareto(0, 214.476, 0.348238).
    pub const FB_VALUE: GenPareto = GenPareto {
        loc: 0.0,
        scale: 214.476,
        shape: 0.348238,
    };

    /// The value below which a fraction `p` of samples fall, `0 < p < 1`.
    pub fn quantile(&self, p: f64) -> f64 {
        if self.shape == 0.0 {
            self.loc - self.scale * (1.0 - p).ln()
        } else {
            self.loc + self.scale * ((1.0 - p).powf(-self.shape) - 1.0) / self.shape
        }
    }

    /// The mean, finite for ξ < 1.
    pub fn mean(&self) -> f64 {
        self.loc + self.scale / (1.0 - self.shape)
    }

    /// One sample.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        self.quantile(rng.next_open01())
    }
}

/// Exponential distribution with a rate (events per unit time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exponential {
    /// λ > 0; the mean is 1/λ.
    pub rate: f64,
}

impl Exponential {
    /// The value below which a fraction `p` of samples fall, `0 < p < 1`.
    pub fn quantile(&self, p: f64) -> f64 {
        -(1.0 - p).ln() / self.rate
    }

    /// One sample.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        self.quantile(rng.next_open01())
    }
}

/// The small-value head of ETC's value sizes as mutilate tabulates it
/// (`Generator.cc`, `createFacebookValue`): (probability, size in bytes).
/// Together 44.155 %; the other draws come from the generalized Pareto.
pub const FB_VALUE_HEAD: [(f64, f64); 15] = [
    (0.00536, 0.0),
    (0.00047, 1.0),
    (0.17820, 2.0),
    (0.09239, 3.0),
    (0.00018, 4.0),
    (0.02740, 5.0),
    (0.00065, 6.0),
    (0.00606, 7.0),
    (0.00023, 8.0),
    (0.00837, 9.0),
    (0.00837, 10.0),
    (0.08989, 11.0),
    (0.00092, 12.0),
    (0.00326, 13.0),
    (0.01980, 14.0),
];

/// A distribution of sizes in bytes, as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SizeDist {
    /// Always this many bytes (`fixed:N`).
    Fixed(u32),
    /// `gev:LOC,SCALE,SHAPE`; `fb_key` is ETC's key sizes.
    Gev(Gev),
    /// `pareto:LOC,SCALE,SHAPE`; `fb_value` is ETC's value sizes.
    Pareto(GenPareto),
    /// `fb_value_mix`: mutilate's ETC value table, 44 % of values of 0–14
    /// bytes in fixed proportions ([`FB_VALUE_HEAD`]), the rest from
    /// `fb_value`.
    FbValueMix,
}

impl SizeDist {
    /// Parses `fixed:N`, `gev:a,b,c`, `pareto:a,b,c`, `fb_key` or `fb_value`.
    pub fn parse(s: &str) -> Result<SizeDist, String> {
        match s {
            "fb_key" => return Ok(SizeDist::Gev(Gev::FB_KEY)),
            "fb_value" => return Ok(SizeDist::Pareto(GenPareto::FB_VALUE)),
            "fb_value_mix" => return Ok(SizeDist::FbValueMix),
            _ => {}
        }
        let (kind, args) = s
            .split_once(':')
            .ok_or_else(|| format!("size distribution `{s}`: expected fb_key, fb_value, fixed:N, gev:LOC,SCALE,SHAPE or pareto:LOC,SCALE,SHAPE"))?;
        if kind == "fixed" {
            return args
                .parse()
                .map(SizeDist::Fixed)
                .map_err(|_| format!("size distribution `{s}`: `{args}` is not a byte count"));
        }
        let nums: Vec<f64> = args
            .split(',')
            .map(|a| a.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("size distribution `{s}`: expected three numbers"))?;
        let [loc, scale, shape] = nums[..] else {
            return Err(format!("size distribution `{s}`: expected three numbers"));
        };
        if scale.is_nan() || scale <= 0.0 || !loc.is_finite() || !shape.is_finite() {
            return Err(format!(
                "size distribution `{s}`: the scale must be positive"
            ));
        }
        match kind {
            "gev" => Ok(SizeDist::Gev(Gev { loc, scale, shape })),
            "pareto" => Ok(SizeDist::Pareto(GenPareto { loc, scale, shape })),
            _ => Err(format!("size distribution `{s}`: unknown kind `{kind}`")),
        }
    }

    /// One size, rounded to the nearest byte and clamped to `min..=max`.
    pub fn sample(&self, rng: &mut Rng, min: u32, max: u32) -> u32 {
        let x = match self {
            SizeDist::Fixed(n) => f64::from(*n),
            SizeDist::Gev(d) => d.sample(rng),
            SizeDist::Pareto(d) => d.sample(rng),
            SizeDist::FbValueMix => {
                let u = rng.next_open01();
                let mut sum = 0.0;
                let head = FB_VALUE_HEAD.iter().find(|&&(p, _)| {
                    sum += p;
                    u < sum
                });
                match head {
                    Some(&(_, size)) => size,
                    None => GenPareto::FB_VALUE.sample(rng),
                }
            }
        };
        // `as` saturates (NaN → 0), then the clamp applies.
        (x.round() as u32).clamp(min, max)
    }
}

impl std::fmt::Display for SizeDist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeDist::Fixed(n) => write!(f, "fixed:{n}"),
            SizeDist::Gev(d) if *d == Gev::FB_KEY => write!(f, "fb_key"),
            SizeDist::Pareto(d) if *d == GenPareto::FB_VALUE => write!(f, "fb_value"),
            SizeDist::FbValueMix => write!(f, "fb_value_mix"),
            SizeDist::Gev(d) => write!(f, "gev:{},{},{}", d.loc, d.scale, d.shape),
            SizeDist::Pareto(d) => write!(f, "pareto:{},{},{}", d.loc, d.scale, d.shape),
        }
    }
}

/// Which key each request names: uniform over `n` keys, or zipf with
/// exponent `s` (key `i` drawn with probability ∝ 1/(i+1)^s).
#[derive(Clone, Debug)]
pub enum KeyChooser {
    /// Every key equally likely.
    Uniform(u32),
    /// The cumulative distribution over the keys, for binary search.
    Zipf(Vec<f64>),
}

impl KeyChooser {
    /// A chooser over `n > 0` keys; `zipf` is the exponent, or `None` for
    /// uniform. Zipf keeps an `n`-entry table (8 bytes a key).
    pub fn new(n: u32, zipf: Option<f64>) -> KeyChooser {
        match zipf {
            None => KeyChooser::Uniform(n),
            Some(s) => {
                let mut cdf = Vec::with_capacity(n as usize);
                let mut total = 0.0;
                for i in 0..n {
                    total += 1.0 / f64::from(i + 1).powf(s);
                    cdf.push(total);
                }
                for c in &mut cdf {
                    *c /= total;
                }
                KeyChooser::Zipf(cdf)
            }
        }
    }

    /// One key index.
    pub fn sample(&self, rng: &mut Rng) -> u32 {
        match self {
            KeyChooser::Uniform(n) => rng.below(u64::from(*n)) as u32,
            KeyChooser::Zipf(cdf) => {
                let u = rng.next_open01();
                let i = cdf.partition_point(|&c| c < u);
                i.min(cdf.len() - 1) as u32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 200_000;

    fn sorted(mut f: impl FnMut() -> f64) -> Vec<f64> {
        let mut v: Vec<f64> = (0..N).map(|_| f()).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn empirical(v: &[f64], p: f64) -> f64 {
        v[((v.len() as f64) * p) as usize]
    }

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs()
    }

    #[test]
    fn gev_quantile_is_its_cdf_inverted() {
        // F(x) = exp(-(1 + ξ(x-μ)/σ)^(-1/ξ)).
        let d = Gev::FB_KEY;
        for p in [0.01, 0.3, 0.5, 0.9, 0.999] {
            let x = d.quantile(p);
            let f = (-(1.0 + d.shape * (x - d.loc) / d.scale).powf(-1.0 / d.shape)).exp();
            assert!((f - p).abs() < 1e-12, "p {p} F {f}");
        }
        // ξ = 0 is the Gumbel distribution.
        let g = Gev {
            loc: 1.0,
            scale: 2.0,
            shape: 0.0,
        };
        let x = g.quantile(0.5);
        assert!(((-(-(x - 1.0) / 2.0).exp()).exp() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn gev_samples_match_analytic_quantiles() {
        let d = Gev::FB_KEY;
        let mut rng = Rng::new(42);
        let v = sorted(|| d.sample(&mut rng));
        for p in [0.05, 0.25, 0.5, 0.75, 0.95, 0.99] {
            let (got, want) = (empirical(&v, p), d.quantile(p));
            assert!(close(got, want, 0.01), "p{p}: sample {got} analytic {want}");
        }
        // The ETC median key is about 33.8 bytes.
        assert!(
            (d.quantile(0.5) - 33.85).abs() < 0.05,
            "{}",
            d.quantile(0.5)
        );
    }

    #[test]
    fn pareto_quantile_is_its_cdf_inverted_and_mean_matches() {
        // F(x) = 1 - (1 + ξ(x-μ)/σ)^(-1/ξ).
        let d = GenPareto::FB_VALUE;
        for p in [0.01, 0.5, 0.9, 0.9999] {
            let x = d.quantile(p);
            let f = 1.0 - (1.0 + d.shape * (x - d.loc) / d.scale).powf(-1.0 / d.shape);
            assert!((f - p).abs() < 1e-12, "p {p} F {f}");
        }
        assert!((d.mean() - 329.07).abs() < 0.01, "{}", d.mean());
        let mut rng = Rng::new(7);
        let v = sorted(|| d.sample(&mut rng));
        for p in [0.1, 0.5, 0.9, 0.99] {
            let (got, want) = (empirical(&v, p), d.quantile(p));
            assert!(close(got, want, 0.03), "p{p}: sample {got} analytic {want}");
        }
        // ξ < 1/2: finite variance, so the sample mean converges (sd ≈ 600,
        // standard error ≈ 1.3 here; 2% is several errors wide).
        let mean = v.iter().sum::<f64>() / N as f64;
        assert!(close(mean, d.mean(), 0.02), "mean {mean}");
    }

    #[test]
    fn exponential_mean_and_quantiles() {
        let d = Exponential { rate: 250.0 };
        let mut rng = Rng::new(9);
        let v = sorted(|| d.sample(&mut rng));
        let mean = v.iter().sum::<f64>() / N as f64;
        assert!(close(mean, 1.0 / 250.0, 0.01), "mean {mean}");
        for p in [0.1, 0.5, 0.9, 0.99] {
            let (got, want) = (empirical(&v, p), d.quantile(p));
            assert!(close(got, want, 0.03), "p{p}: sample {got} analytic {want}");
        }
        assert!((d.quantile(0.5) - std::f64::consts::LN_2 / 250.0).abs() < 1e-15);
    }

    #[test]
    fn sizes_parse_round_trip_and_clamp() {
        for s in [
            "fb_key",
            "fb_value",
            "fb_value_mix",
            "fixed:100",
            "gev:1,2,0.5",
            "pareto:0,3,0.1",
        ] {
            assert_eq!(SizeDist::parse(s).unwrap().to_string(), s);
        }
        for bad in [
            "",
            "fixed",
            "fixed:x",
            "gev:1,2",
            "pareto:0,-1,0.3",
            "normal:1,2,3",
        ] {
            assert!(SizeDist::parse(bad).is_err(), "{bad}");
        }
        let mut rng = Rng::new(1);
        assert_eq!(SizeDist::Fixed(500).sample(&mut rng, 0, 300), 300);
        assert_eq!(SizeDist::Fixed(0).sample(&mut rng, 5, 300), 5);
        let d = SizeDist::Pareto(GenPareto::FB_VALUE);
        for _ in 0..10_000 {
            assert!(d.sample(&mut rng, 0, 1000) <= 1000);
        }
    }

    #[test]
    fn the_value_mix_has_its_head_and_its_tail() {
        let head: f64 = FB_VALUE_HEAD.iter().map(|&(p, _)| p).sum();
        assert!((head - 0.44155).abs() < 1e-9, "{head}");
        let mut rng = Rng::new(21);
        let mut counts = [0u32; 16];
        let mut large = 0u32;
        for _ in 0..N {
            let x = SizeDist::FbValueMix.sample(&mut rng, 0, 1_000_000);
            if x < 16 {
                counts[x as usize] += 1;
            } else if x > 1000 {
                large += 1;
            }
        }
        let tail = GenPareto::FB_VALUE;
        let cdf = |x: f64| 1.0 - (1.0 + tail.shape * x / tail.scale).powf(-1.0 / tail.shape);
        // Size 2: its table entry, plus the tail's draws that round to 2.
        let want2 = 0.17820 + (1.0 - head) * (cdf(2.5) - cdf(1.5));
        let got2 = f64::from(counts[2]) / N as f64;
        assert!((got2 - want2).abs() < 0.004, "{got2} vs {want2}");
        // Sizes past the table come from the tail only.
        let want_large = (1.0 - head) * (1.0 - cdf(1000.5));
        let got_large = f64::from(large) / N as f64;
        assert!(
            (got_large - want_large).abs() < 0.004,
            "{got_large} vs {want_large}"
        );
    }

    #[test]
    fn uniform_keys_cover_the_range_evenly() {
        let k = KeyChooser::new(100, None);
        let mut rng = Rng::new(5);
        let mut counts = vec![0u32; 100];
        for _ in 0..N {
            counts[k.sample(&mut rng) as usize] += 1;
        }
        for c in counts {
            assert!((1_700..2_300).contains(&c), "{c}");
        }
    }

    #[test]
    fn zipf_keys_follow_the_power_law() {
        let (n, s) = (1000u32, 1.0);
        let k = KeyChooser::new(n, Some(s));
        let h: f64 = (1..=n).map(|i| 1.0 / f64::from(i).powf(s)).sum();
        let mut rng = Rng::new(13);
        let mut counts = vec![0u32; n as usize];
        for _ in 0..N {
            counts[k.sample(&mut rng) as usize] += 1;
        }
        for rank in [0usize, 1, 9] {
            let want = N as f64 / (h * (rank as f64 + 1.0).powf(s));
            let got = f64::from(counts[rank]);
            assert!(close(got, want, 0.05), "rank {rank}: {got} vs {want}");
        }
        assert!(counts.iter().sum::<u32>() == N as u32);
    }
}
