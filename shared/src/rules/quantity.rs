//! Kubernetes resource quantities (`10Gi`, `500m`, `1e3`): syntax and comparison.

/// A parsed quantity, as a value in base units (bytes, cores) with the sign kept.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Quantity(pub f64);

/// Parses a quantity with Kubernetes' syntax: a signed decimal number and an optional binary
/// (`Ki`..`Ei`), decimal (`n u m k M G T P E`) or exponent (`e3`, `E-2`) suffix.
pub fn parse(s: &str) -> Option<Quantity> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1.0, &s[1..]),
        b'-' => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (num, suffix) = rest.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exp if exp.starts_with(['e', 'E']) => {
            let digits = &exp[1..];
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse::<i32>().ok()?)
        }
        _ => return None,
    };
    Some(Quantity(sign * value * factor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("10Gi", Some(10.0 * 1024f64.powi(3)))]
    #[case("500m", Some(0.5))]
    #[case("1e3", Some(1000.0))]
    #[case("1.5", Some(1.5))]
    #[case("2G", Some(2e9))]
    #[case("10 Gi", None)]
    #[case("Gi", None)]
    #[case("10GB", None)]
    #[case("1.2.3", None)]
    #[case("", None)]
    fn parses(#[case] text: &str, #[case] want: Option<f64>) {
        assert_eq!(parse(text).map(|q| q.0), want, "{text}");
    }
}
