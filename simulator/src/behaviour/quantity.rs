//! Kubernetes resource quantities (`500m`, `2`, `128Mi`, `1G`), as the scheduler compares them.

/// The quantity in thousandths of its unit (millicores for cpu, milli-bytes for memory), so
/// `500m` cpu and `0.5` compare equal and sums are exact.
pub(crate) fn parse(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let (milli_multiplier, divisor): (i128, i128) = match suffix {
        "" => (1000, 1),
        "m" => (1, 1),
        "n" => (1, 1_000_000),
        "u" => (1, 1000),
        "k" => (1000 * 1000, 1),
        "M" => (1000 * 1000_i128.pow(2), 1),
        "G" => (1000 * 1000_i128.pow(3), 1),
        "T" => (1000 * 1000_i128.pow(4), 1),
        "P" => (1000 * 1000_i128.pow(5), 1),
        "E" => (1000 * 1000_i128.pow(6), 1),
        "Ki" => (1000 * 1024, 1),
        "Mi" => (1000 * 1024_i128.pow(2), 1),
        "Gi" => (1000 * 1024_i128.pow(3), 1),
        "Ti" => (1000 * 1024_i128.pow(4), 1),
        "Pi" => (1000 * 1024_i128.pow(5), 1),
        "Ei" => (1000 * 1024_i128.pow(6), 1),
        _ if suffix.starts_with(['e', 'E']) => {
            let exponent: u32 = suffix[1..].parse().ok()?;
            (1000 * 10_i128.checked_pow(exponent)?, 1)
        }
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let negative = whole.starts_with('-');
    let whole_digits = whole.trim_start_matches(['+', '-']);
    let whole: i128 = match (whole_digits.is_empty(), fraction.is_empty()) {
        (true, true) => return None,
        (true, false) => 0,
        (false, _) => whole_digits.parse().ok()?,
    };
    let mut value = whole.checked_mul(milli_multiplier)?;
    if !fraction.is_empty() {
        let digits = u32::try_from(fraction.len()).ok()?;
        let fraction_value: i128 = fraction.parse().ok()?;
        value += fraction_value.checked_mul(milli_multiplier)? / 10_i128.checked_pow(digits)?;
    }
    value /= divisor;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn cpu_and_memory_quantities_parse_to_thousandths() {
        assert_eq!(parse("500m"), Some(500));
        assert_eq!(parse("0.5"), Some(500));
        assert_eq!(parse("2"), Some(2000));
        assert_eq!(parse("128Mi"), Some(128 * 1024 * 1024 * 1000));
        assert_eq!(parse("1G"), Some(1_000_000_000 * 1000));
        assert_eq!(parse("1.5Gi"), Some(1536 * 1024 * 1024 * 1000));
        assert_eq!(parse("1e3"), Some(1_000_000));
        assert_eq!(parse("110"), Some(110_000));
    }

    #[test]
    fn text_that_is_not_a_quantity_is_rejected() {
        assert_eq!(parse("lots"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("5 cores"), None);
        assert_eq!(parse("1Zi"), None);
    }
}
