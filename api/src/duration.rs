//! `metav1.Duration`: a Go `time.Duration` written as Go's duration string (`"1m0s"`).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;
const NANOS_PER_MINUTE: u64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: u64 = 60 * NANOS_PER_MINUTE;

/// A Go duration (signed nanoseconds). Parses Go's syntax (`1h30m`, `1.5s`, `250ms`) and prints
/// exactly what Go prints (`1h30m0s`, `1.5s`, `250ms`), so re-serialised objects match Fleet's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    nanos: i64,
}

/// A string that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    /// A duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: i64) -> Self {
        Duration { nanos }
    }

    /// A duration of `secs` seconds (saturating).
    pub const fn from_secs(secs: i64) -> Self {
        Duration {
            nanos: secs.saturating_mul(NANOS_PER_SECOND as i64),
        }
    }

    /// Signed nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// The duration as a `std` duration; `None` when negative.
    pub fn to_std(self) -> Option<std::time::Duration> {
        u64::try_from(self.nanos)
            .ok()
            .map(std::time::Duration::from_nanos)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration {
            nanos: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        }
    }
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseDurationError {
            input: input.to_string(),
            reason,
        };
        let (negative, mut rest) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        if rest == "0" {
            return Ok(Duration::default());
        }
        if rest.is_empty() {
            return Err(err("empty"));
        }
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let int_part = &rest[..int_len];
            rest = &rest[int_len..];
            let mut frac_part = "";
            if let Some(after_dot) = rest.strip_prefix('.') {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                frac_part = &after_dot[..frac_len];
                rest = &after_dot[frac_len..];
            }
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(err("expected a number"));
            }
            let unit_len = rest
                .char_indices()
                .find(|(_, c)| *c == '.' || c.is_ascii_digit())
                .map_or(rest.len(), |(i, _)| i);
            let unit = match &rest[..unit_len] {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => NANOS_PER_MICRO,
                "ms" => NANOS_PER_MILLI,
                "s" => NANOS_PER_SECOND,
                "m" => NANOS_PER_MINUTE,
                "h" => NANOS_PER_HOUR,
                "" => return Err(err("missing unit")),
                _ => return Err(err("unknown unit")),
            };
            rest = &rest[unit_len..];
            let int_value: u64 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| err("overflow"))?
            };
            let mut value = int_value.checked_mul(unit).ok_or_else(|| err("overflow"))?;
            // Fraction digits beyond nanosecond precision are dropped, as Go does.
            let mut scale = unit;
            for digit in frac_part.bytes() {
                scale /= 10;
                if scale == 0 {
                    break;
                }
                value = value
                    .checked_add(u64::from(digit - b'0') * scale)
                    .ok_or_else(|| err("overflow"))?;
            }
            total = total.checked_add(value).ok_or_else(|| err("overflow"))?;
        }
        let limit = if negative {
            1u64 << 63
        } else {
            (1u64 << 63) - 1
        };
        if total > limit {
            return Err(err("overflow"));
        }
        let nanos = if negative {
            0i64.wrapping_sub_unsigned(total)
        } else {
            total as i64
        };
        Ok(Duration { nanos })
    }
}

/// `value / 10^precision` with the fraction's trailing zeros trimmed (Go's `fmtFrac`/`fmtInt`).
fn decimal(value: u64, precision: u32) -> String {
    let divisor = 10u64.pow(precision);
    let int = value / divisor;
    let frac = value % divisor;
    if frac == 0 {
        return int.to_string();
    }
    let digits = format!("{frac:0width$}", width = precision as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let u = self.nanos.unsigned_abs();
        if u == 0 {
            return f.write_str("0s");
        }
        if u < NANOS_PER_MICRO {
            return write!(f, "{sign}{u}ns");
        }
        if u < NANOS_PER_MILLI {
            return write!(f, "{sign}{}\u{b5}s", decimal(u, 3));
        }
        if u < NANOS_PER_SECOND {
            return write!(f, "{sign}{}ms", decimal(u, 6));
        }
        let seconds = decimal(u % NANOS_PER_MINUTE, 9);
        let minutes = u / NANOS_PER_MINUTE;
        if minutes == 0 {
            return write!(f, "{sign}{seconds}s");
        }
        let hours = minutes / 60;
        if hours == 0 {
            return write!(f, "{sign}{minutes}m{seconds}s");
        }
        write!(f, "{sign}{hours}h{}m{seconds}s", minutes % 60)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Duration {
        s.parse().unwrap()
    }

    #[test]
    fn prints_like_go() {
        let cases = [
            ("0", "0s"),
            ("15s", "15s"),
            ("1m", "1m0s"),
            ("1h", "1h0m0s"),
            ("90m", "1h30m0s"),
            ("1.5s", "1.5s"),
            ("100ms", "100ms"),
            ("1500us", "1.5ms"),
            ("2\u{3bc}s", "2\u{b5}s"),
            ("10ns", "10ns"),
            ("-1m30s", "-1m30s"),
            ("2h45m0.5s", "2h45m0.5s"),
            ("1.0000000001s", "1s"),
            (".5h", "30m0s"),
        ];
        for (input, printed) in cases {
            assert_eq!(d(input).to_string(), printed, "{input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "1", "s", "1x", "-", "1.s.", "10000000000000h"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn serde_uses_the_go_string() {
        let v: Duration = serde_json::from_str("\"60s\"").unwrap();
        assert_eq!(v.to_std(), Some(std::time::Duration::from_secs(60)));
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1m0s\"");
    }
}
