//! Physical units and quantities: [`Unit`], [`Quantity`], [`Dimension`] and [`UnitError`].
//!
//! A parameter declared with a unit (see [`schema`](crate::schema)) accepts a plain number,
//! taken in that unit, or a quantity written with a compatible unit, converted exactly:
//!
//! ```
//! use crabby::units::{Quantity, Unit};
//! let mm_s = Unit::parse("mm/s").unwrap();
//! assert_eq!(Quantity::parse("30 mm/min").unwrap().to(&mm_s).unwrap(), 0.5);
//! let kelvin = Unit::parse("K").unwrap();
//! assert!((Quantity::parse("150 °C").unwrap().to(&kelvin).unwrap() - 423.15).abs() < 1e-9);
//! // An incompatible unit is an error naming both.
//! let err = Quantity::parse("2 kN").unwrap().to(&mm_s).unwrap_err();
//! assert!(err.to_string().contains("kN") && err.to_string().contains("mm/s"));
//! ```
//!
//! A unit is a product of symbols with optional SI prefixes and integer exponents: `mm/s`,
//! `mm/min`, `kN`, `MPa`, `m/s^2`, `m/s²`, `N*m`, `N·m`, `kN/mm`, `1/s`. Symbols: `m`, `g`,
//! `s`, `min`, `h`, `Hz`, `rpm`, `N`, `Pa`, `bar`, `V`, `A`, `W`, `J`, `Ω` (or `ohm`), `K`,
//! `°C` (or `degC`), `°F` (or `degF`), `%`, and `1` for no unit. Prefixes: `p n µ u m c d k
//! M G T`. `°C` and `°F` are absolute temperatures (with an offset), so they stand alone.
//!
//! Conversion factors are kept as exact fractions, so `30 mm/min` is exactly `0.5 mm/s`: the
//! only rounding is the final multiplication by the value.

use std::fmt;

/// The exponents of the SI base dimensions: metre, kilogram, second, ampere, kelvin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Dimension(pub [i8; 5]);

impl Dimension {
    /// No dimension (a ratio, a count, a percentage).
    pub const NONE: Dimension = Dimension([0; 5]);
    const NAMES: [&'static str; 5] = ["m", "kg", "s", "A", "K"];

    fn add(self, o: Dimension, sign: i8) -> Option<Dimension> {
        let mut d = self.0;
        for (a, b) in d.iter_mut().zip(o.0) {
            *a = a.checked_add(b.checked_mul(sign)?)?;
        }
        Some(Dimension(d))
    }

    fn pow(self, n: i8) -> Option<Dimension> {
        let mut d = self.0;
        for a in &mut d {
            *a = a.checked_mul(n)?;
        }
        Some(Dimension(d))
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Dimension::NONE {
            return f.write_str("none");
        }
        let mut first = true;
        for (n, e) in Dimension::NAMES.iter().zip(self.0) {
            if e == 0 {
                continue;
            }
            if !first {
                f.write_str("·")?;
            }
            first = false;
            if e == 1 {
                write!(f, "{n}")?;
            } else {
                write!(f, "{n}^{e}")?;
            }
        }
        Ok(())
    }
}

/// An exact positive fraction (a unit's factor to SI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ratio {
    num: u128,
    den: u128,
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

impl Ratio {
    const ONE: Ratio = Ratio { num: 1, den: 1 };

    fn new(num: u128, den: u128) -> Ratio {
        let g = gcd(num, den);
        Ratio {
            num: num / g,
            den: den / g,
        }
    }

    fn mul(self, o: Ratio) -> Option<Ratio> {
        // Cross-reduce first so the products stay small.
        let g1 = gcd(self.num, o.den);
        let g2 = gcd(o.num, self.den);
        Some(Ratio::new(
            (self.num / g1).checked_mul(o.num / g2)?,
            (self.den / g2).checked_mul(o.den / g1)?,
        ))
    }

    fn inv(self) -> Ratio {
        Ratio {
            num: self.den,
            den: self.num,
        }
    }

    fn pow(self, n: i8) -> Option<Ratio> {
        let mut r = Ratio::ONE;
        for _ in 0..n.unsigned_abs() {
            r = r.mul(self)?;
        }
        Some(if n < 0 { r.inv() } else { r })
    }

    /// `v · num / den`, exact when the result is representable.
    fn apply(self, v: f64) -> f64 {
        let (n, d) = (self.num as f64, self.den as f64);
        if self.den == 1 {
            v * n
        } else if self.num == 1 {
            v / d
        } else {
            v * n / d
        }
    }
}

/// A unit: a dimension, an exact factor to SI and, for °C and °F, an offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    text: String,
    dim: Dimension,
    factor: Ratio,
    /// Absolute temperature: SI = factor · (v + offset); `offset` in the unit itself.
    offset: Option<Ratio>,
}

/// What went wrong reading or converting a unit or a quantity.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    /// Text that is not a unit.
    #[error("unknown unit '{symbol}' in \"{text}\" (known: {KNOWN})")]
    UnknownUnit {
        /// The whole unit text.
        text: String,
        /// The part that is not known.
        symbol: String,
    },
    /// Text that is not a number followed by a unit.
    #[error("\"{0}\" is not a quantity: expected a number and a unit, such as \"5 mm/s\"")]
    NotAQuantity(String),
    /// A unit of another dimension.
    #[error("unit '{got}' ({got_dim}) is not compatible with '{expected}' ({expected_dim})")]
    Incompatible {
        /// The unit given.
        got: String,
        /// Its dimension.
        got_dim: Dimension,
        /// The unit expected.
        expected: String,
        /// Its dimension.
        expected_dim: Dimension,
    },
    /// `°C` or `°F` combined with other units.
    #[error("'{0}' is an absolute temperature with an offset; it cannot be combined with other units (write K for temperature differences)")]
    AffineCompound(String),
    /// Exponents or factors too large.
    #[error("unit \"{0}\" is too large to convert")]
    Overflow(String),
}

const KNOWN: &str = "m, g, s, min, h, Hz, rpm, N, Pa, bar, V, A, W, J, Ω, K, °C, °F, %, with prefixes p n µ m c d k M G T";

/// At most 60 characters of `text`, for messages.
fn short(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// (symbol, dimension [m kg s A K], factor num, factor den, takes prefixes)
const SYMBOLS: &[(&str, [i8; 5], u128, u128, bool)] = &[
    ("1", [0, 0, 0, 0, 0], 1, 1, false),
    ("%", [0, 0, 0, 0, 0], 1, 100, false),
    ("m", [1, 0, 0, 0, 0], 1, 1, true),
    ("g", [0, 1, 0, 0, 0], 1, 1000, true),
    ("s", [0, 0, 1, 0, 0], 1, 1, true),
    ("min", [0, 0, 1, 0, 0], 60, 1, false),
    ("h", [0, 0, 1, 0, 0], 3600, 1, false),
    ("Hz", [0, 0, -1, 0, 0], 1, 1, true),
    ("rpm", [0, 0, -1, 0, 0], 1, 60, false),
    ("N", [1, 1, -2, 0, 0], 1, 1, true),
    ("Pa", [-1, 1, -2, 0, 0], 1, 1, true),
    ("bar", [-1, 1, -2, 0, 0], 100_000, 1, true),
    ("V", [2, 1, -3, -1, 0], 1, 1, true),
    ("A", [0, 0, 0, 1, 0], 1, 1, true),
    ("W", [2, 1, -3, 0, 0], 1, 1, true),
    ("J", [2, 1, -2, 0, 0], 1, 1, true),
    ("Ω", [2, 1, -3, -2, 0], 1, 1, true),
    ("ohm", [2, 1, -3, -2, 0], 1, 1, true),
    ("K", [0, 0, 0, 0, 1], 1, 1, true),
];

/// (prefix, num, den)
const PREFIXES: &[(&str, u128, u128)] = &[
    ("p", 1, 1_000_000_000_000),
    ("n", 1, 1_000_000_000),
    ("µ", 1, 1_000_000),
    ("μ", 1, 1_000_000),
    ("u", 1, 1_000_000),
    ("m", 1, 1000),
    ("c", 1, 100),
    ("d", 1, 10),
    ("k", 1000, 1),
    ("M", 1_000_000, 1),
    ("G", 1_000_000_000, 1),
    ("T", 1_000_000_000_000, 1),
];

fn symbol(s: &str) -> Option<(Dimension, Ratio)> {
    let find = |s: &str| SYMBOLS.iter().find(|e| e.0 == s);
    if let Some(e) = find(s) {
        return Some((Dimension(e.1), Ratio::new(e.2, e.3)));
    }
    for (p, pn, pd) in PREFIXES {
        if let Some(rest) = s.strip_prefix(p) {
            if let Some(e) = find(rest).filter(|e| e.4) {
                return Some((
                    Dimension(e.1),
                    Ratio::new(e.2, e.3).mul(Ratio::new(*pn, *pd))?,
                ));
            }
        }
    }
    None
}

/// Splits a factor such as `s^2`, `s²`, `m-1` into its symbol and exponent.
fn exponent(f: &str) -> (&str, Option<i8>) {
    if let Some((s, e)) = f.split_once('^') {
        return (s, e.trim().parse().ok());
    }
    let sup = [('⁻', 0), ('¹', 1), ('²', 2), ('³', 3), ('⁴', 4)];
    if let Some(i) = f.find(|c| sup.iter().any(|(s, _)| *s == c)) {
        let (s, e) = f.split_at(i);
        let mut n: i8 = 0;
        let mut neg = false;
        for c in e.chars() {
            match sup.iter().find(|(s, _)| *s == c) {
                Some(('⁻', _)) => neg = true,
                Some((_, d)) => n = n * 10 + d,
                None => return (s, None),
            }
        }
        return (s, Some(if neg { -n } else { n }));
    }
    (f, Some(1))
}

impl Unit {
    /// No unit (dimensionless, factor 1).
    pub fn none() -> Unit {
        Unit {
            text: String::new(),
            dim: Dimension::NONE,
            factor: Ratio::ONE,
            offset: None,
        }
    }

    /// Reads a unit such as `mm/s`, `kN`, `°C`, `m/s^2`.
    pub fn parse(text: &str) -> Result<Unit, UnitError> {
        let t = text.trim();
        let unknown = |sym: &str| UnitError::UnknownUnit {
            text: short(text),
            symbol: short(sym),
        };
        match t {
            "°C" | "degC" | "℃" => {
                return Ok(Unit {
                    text: t.to_owned(),
                    dim: Dimension([0, 0, 0, 0, 1]),
                    factor: Ratio::ONE,
                    offset: Some(Ratio::new(27315, 100)),
                })
            }
            "°F" | "degF" | "℉" => {
                return Ok(Unit {
                    text: t.to_owned(),
                    dim: Dimension([0, 0, 0, 0, 1]),
                    factor: Ratio::new(5, 9),
                    offset: Some(Ratio::new(45967, 100)),
                })
            }
            "" => return Err(unknown("")),
            _ => {}
        }
        let mut dim = Dimension::NONE;
        let mut factor = Ratio::ONE;
        let overflow = || UnitError::Overflow(short(text));
        // Numerator, then each '/' starts a denominator factor.
        for (i, part) in t.split('/').enumerate() {
            let sign = if i == 0 { 1 } else { -1 };
            let factors: Vec<&str> = part
                .split(['*', '·', '.', ' '])
                .filter(|f| !f.is_empty())
                .collect();
            if factors.is_empty() {
                return Err(unknown(part));
            }
            for f in factors {
                if matches!(f, "°C" | "degC" | "°F" | "degF" | "℃" | "℉") {
                    return Err(UnitError::AffineCompound(f.to_owned()));
                }
                let (sym, exp) = exponent(f);
                let exp = exp.filter(|e| *e != 0).ok_or_else(|| unknown(f))?;
                let (d, r) = symbol(sym).ok_or_else(|| unknown(sym))?;
                dim = dim
                    .add(d.pow(exp).ok_or_else(overflow)?, sign)
                    .ok_or_else(overflow)?;
                let r = r.pow(exp).ok_or_else(overflow)?;
                factor = factor
                    .mul(if sign < 0 { r.inv() } else { r })
                    .ok_or_else(overflow)?;
            }
        }
        Ok(Unit {
            text: t.to_owned(),
            dim,
            factor,
            offset: None,
        })
    }

    /// The same unit for differences: no offset (a difference of 2 °C is 2 K, not
    /// -271.15 °C). Other units are unchanged.
    pub fn difference(&self) -> Unit {
        Unit {
            offset: None,
            ..self.clone()
        }
    }

    /// This unit's differences per second (a slope): `mm/s` gives `mm/s/s`, `°C` gives
    /// `°C/s` (as kelvin per second).
    pub fn per_second(&self) -> Unit {
        let mut dim = self.dim;
        dim.0[2] = dim.0[2].saturating_sub(1);
        Unit {
            text: if self.text.is_empty() {
                "1/s".to_owned()
            } else {
                format!("{}/s", self.text)
            },
            dim,
            factor: self.factor,
            offset: None,
        }
    }

    /// The unit as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its dimension.
    pub fn dimension(&self) -> Dimension {
        self.dim
    }

    /// Whether a value in this unit converts to `other`.
    pub fn compatible(&self, other: &Unit) -> bool {
        self.dim == other.dim
    }

    /// Converts `value` from this unit to `to`.
    pub fn convert(&self, value: f64, to: &Unit) -> Result<f64, UnitError> {
        if self.dim != to.dim {
            return Err(UnitError::Incompatible {
                got: self.display_name(),
                got_dim: self.dim,
                expected: to.display_name(),
                expected_dim: to.dim,
            });
        }
        if self.offset.is_none() && to.offset.is_none() {
            let r = self
                .factor
                .mul(to.factor.inv())
                .ok_or_else(|| UnitError::Overflow(self.text.clone()))?;
            return Ok(r.apply(value));
        }
        // Absolute temperatures: through kelvin.
        let off = |o: Option<Ratio>| o.map(|r| r.apply(1.0)).unwrap_or(0.0);
        let kelvin = self.factor.apply(value + off(self.offset));
        Ok(to.factor.inv().apply(kelvin) - off(to.offset))
    }

    fn display_name(&self) -> String {
        if self.text.is_empty() {
            "no unit".to_owned()
        } else {
            self.text.clone()
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A number with a unit, such as `5 mm/s`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    /// The number as written.
    pub value: f64,
    /// Its unit ([`Unit::none`] for a plain number).
    pub unit: Unit,
}

impl Quantity {
    /// Reads `"<number> <unit>"` (the space is optional: `5mm/s`), or a plain number.
    pub fn parse(text: &str) -> Result<Quantity, UnitError> {
        let t = text.trim();
        let not = || UnitError::NotAQuantity(short(text));
        // The longest prefix that parses as a number (numbers are short: the first 64 bytes
        // are tried, so a long text costs no more than a short one).
        let end = t
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .take_while(|&i| i <= 64)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|&i| {
                let head = &t[..i];
                // "1e" is not a number yet, but "1e3" is; never eat a unit's 'e'.
                head.parse::<f64>().is_ok()
                    && !head.eq_ignore_ascii_case("inf")
                    && !head.eq_ignore_ascii_case("nan")
                    && !head.eq_ignore_ascii_case("infinity")
            })
            .ok_or_else(not)?;
        let value: f64 = t[..end].parse().map_err(|_| not())?;
        if !value.is_finite() {
            return Err(not());
        }
        let rest = t[end..].trim();
        let unit = if rest.is_empty() {
            Unit::none()
        } else {
            Unit::parse(rest)?
        };
        Ok(Quantity { value, unit })
    }

    /// The value in unit `to`.
    pub fn to(&self, to: &Unit) -> Result<f64, UnitError> {
        self.unit.convert(self.value, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(q: &str, u: &str) -> f64 {
        Quantity::parse(q)
            .unwrap()
            .to(&Unit::parse(u).unwrap())
            .unwrap()
    }

    #[test]
    fn exact_conversions() {
        assert_eq!(conv("30 mm/min", "mm/s"), 0.5);
        assert_eq!(conv("0.3 mm/min", "mm/s"), 0.005);
        assert_eq!(conv("5 mm/s", "mm/s"), 5.0);
        assert_eq!(conv("2 kN", "N"), 2000.0);
        assert_eq!(conv("1.5 MPa", "Pa"), 1_500_000.0);
        assert_eq!(conv("2 bar", "kPa"), 200.0);
        assert_eq!(conv("250 mV", "V"), 0.25);
        assert_eq!(conv("60 rpm", "Hz"), 1.0);
        assert_eq!(conv("1 h", "s"), 3600.0);
        assert_eq!(conv("500 ms", "s"), 0.5);
        assert_eq!(conv("2 min", "s"), 120.0);
        assert_eq!(conv("40 %", "1"), 0.4);
        assert_eq!(conv("0.4", "1"), 0.4);
        assert_eq!(conv("1 kHz", "Hz"), 1000.0);
        assert_eq!(conv("9.81 m/s^2", "mm/s²"), 9810.0);
        assert_eq!(conv("3 N*m", "N·m"), 3.0);
        assert_eq!(conv("2 kN/mm", "N/m"), 2_000_000.0);
        assert_eq!(conv("5µm", "m"), 5e-6);
        assert_eq!(conv("1e3 N", "kN"), 1.0);
        assert_eq!(conv("-2.5 mm", "mm"), -2.5);
    }

    #[test]
    fn temperatures_have_offsets() {
        assert_eq!(conv("150 °C", "°C"), 150.0);
        assert!((conv("150 °C", "K") - 423.15).abs() < 1e-12);
        assert!((conv("0 K", "°C") + 273.15).abs() < 1e-12);
        assert!((conv("212 °F", "°C") - 100.0).abs() < 1e-12);
        assert!((conv("100 degC", "°F") - 212.0).abs() < 1e-12);
        // Differences in kelvin and millikelvin are plain factors.
        assert_eq!(conv("5 K", "K"), 5.0);
        // Differences and slopes have no offset.
        let c = Unit::parse("°C").unwrap();
        assert_eq!(
            Quantity::parse("2 K").unwrap().to(&c.difference()).unwrap(),
            2.0
        );
        assert_eq!(
            Quantity::parse("60 K/min")
                .unwrap()
                .to(&c.per_second())
                .unwrap(),
            1.0
        );
        let f = Unit::parse("°F").unwrap();
        assert!((Quantity::parse("5 K").unwrap().to(&f.difference()).unwrap() - 9.0).abs() < 1e-12);
        assert!(matches!(
            Unit::parse("°C/s"),
            Err(UnitError::AffineCompound(_))
        ));
    }

    #[test]
    fn incompatible_units_name_both() {
        let e = Quantity::parse("2 kN")
            .unwrap()
            .to(&Unit::parse("mm/s").unwrap())
            .unwrap_err();
        let t = e.to_string();
        assert!(t.contains("'kN'") && t.contains("'mm/s'"), "{t}");
        assert!(t.contains("kg") && t.contains("m·s^-1"), "{t}");
        let e = Quantity::parse("5").unwrap().to(&Unit::parse("s").unwrap());
        assert!(e.unwrap_err().to_string().contains("no unit"));
    }

    #[test]
    fn bad_text_is_an_error() {
        for bad in [
            "",
            "mm/s",
            "5 furlongs",
            "5 mm/",
            "5 /s",
            "abc",
            "5 m^x",
            "nan",
            "inf m",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad} parsed");
        }
        assert!(matches!(
            Quantity::parse("5 kfoo"),
            Err(UnitError::UnknownUnit { symbol, .. }) if symbol == "kfoo"
        ));
        assert!(Unit::parse("m^100000").is_err());
        assert!(matches!(
            Unit::parse("Tm^9/ps^9"),
            Err(UnitError::Overflow(_))
        ));
        assert!(Quantity::parse("1e400 N").is_err());
        // A long text is refused with a short message.
        let long = "5".repeat(100_000) + " furlong";
        let e = Quantity::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 400, "{}", e.len());
    }

    #[test]
    fn round_trips_between_compatible_units() {
        // A small xorshift: random values through random pairs of units of one dimension.
        let groups: [&[&str]; 6] = [
            &["mm/s", "m/s", "mm/min", "µm/ms", "km/h"],
            &["N", "kN", "mN", "kg*m/s^2"],
            &["Pa", "kPa", "MPa", "bar", "N/mm^2"],
            &["s", "ms", "min", "h"],
            &["Hz", "kHz", "rpm", "1/s"],
            &["K", "°C", "°F", "mK"],
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let g = groups[(next() % groups.len() as u64) as usize];
            let a = Unit::parse(g[(next() % g.len() as u64) as usize]).unwrap();
            let b = Unit::parse(g[(next() % g.len() as u64) as usize]).unwrap();
            let v = (next() % 2_000_001) as f64 / 1000.0 - 1000.0;
            let there = a.convert(v, &b).unwrap();
            let back = b.convert(there, &a).unwrap();
            assert!(
                (back - v).abs() <= 1e-9 * v.abs().max(1.0),
                "{v} {a} -> {there} {b} -> {back} {a}"
            );
        }
    }

    #[test]
    fn dimensions_display() {
        assert_eq!(
            Unit::parse("N").unwrap().dimension().to_string(),
            "m·kg·s^-2"
        );
        assert_eq!(Unit::parse("%").unwrap().dimension().to_string(), "none");
    }
}
