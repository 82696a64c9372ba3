//! Delays written the way Kubernetes users write them (`500ms`, `2s`, `1m30s`), with jitter.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {problem} (expected e.g. \"500ms\", \"2s\", \"1m30s\")")]
pub struct DurationParseError {
    pub input: String,
    pub problem: &'static str,
}

/// Parses a Go-style duration: a sequence of decimal numbers with units `ms`, `s`, `m`, `h`
/// (`"0"` alone is allowed).
pub fn parse_duration(input: &str) -> Result<Duration, DurationParseError> {
    let error = |problem| DurationParseError {
        input: input.to_owned(),
        problem,
    };
    let text = input.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(error("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(error("a number must come before each unit"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| error("not a number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(error("missing unit")),
            _ => return Err(error("unknown unit")),
        };
        rest = &rest[unit_len..];
        let part = Duration::try_from_secs_f64(number * seconds_per_unit)
            .map_err(|_| error("out of range"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| error("out of range"))?;
    }
    Ok(total)
}

/// Formats like Go's `time.Duration.String` for the whole-millisecond values profiles use.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    if !millis.is_multiple_of(1000) {
        if millis < 1000 {
            return format!("{millis}ms");
        }
        return format!("{}s", duration.as_secs_f64());
    }
    let seconds = millis / 1000;
    let (hours, minutes, secs) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if secs > 0 || out.is_empty() {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// `after`, plus a uniformly random extra in `0..=jitter` (kwok's `delay` with `jitterDuration`).
///
/// In YAML either a bare duration (`"2s"`, no jitter) or `{after: 2s, jitter: 3s}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delay {
    pub after: Duration,
    pub jitter: Duration,
}

impl Delay {
    pub const ZERO: Delay = Delay {
        after: Duration::ZERO,
        jitter: Duration::ZERO,
    };

    pub fn fixed(after: Duration) -> Self {
        Self {
            after,
            jitter: Duration::ZERO,
        }
    }

    pub fn with_jitter(after: Duration, jitter: Duration) -> Self {
        Self { after, jitter }
    }

    /// One draw; whole milliseconds so timelines print and compare cleanly.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let jitter_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        let extra = if jitter_ms == 0 {
            0
        } else {
            rng.random_range(0..=jitter_ms)
        };
        self.after.saturating_add(Duration::from_millis(extra))
    }

    /// The longest this delay can be.
    pub fn max(&self) -> Duration {
        self.after.saturating_add(self.jitter)
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.jitter.is_zero() {
            write!(f, "{}", format_duration(self.after))
        } else {
            write!(
                f,
                "{} (+0..{} jitter)",
                format_duration(self.after),
                format_duration(self.jitter)
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DelayRepr {
    Bare(String),
    Full {
        #[serde(default)]
        after: Option<String>,
        #[serde(default)]
        jitter: Option<String>,
    },
}

impl<'de> Deserialize<'de> for Delay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parse = |text: Option<String>| -> Result<Duration, D::Error> {
            text.map_or(Ok(Duration::ZERO), |text| {
                parse_duration(&text).map_err(serde::de::Error::custom)
            })
        };
        match DelayRepr::deserialize(deserializer)? {
            DelayRepr::Bare(after) => Ok(Delay::fixed(parse(Some(after))?)),
            DelayRepr::Full { after, jitter } => Ok(Delay {
                after: parse(after)?,
                jitter: parse(jitter)?,
            }),
        }
    }
}

impl Serialize for Delay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.jitter.is_zero() {
            return serializer.serialize_str(&format_duration(self.after));
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("after", &format_duration(self.after))?;
        map.serialize_entry("jitter", &format_duration(self.jitter))?;
        map.end()
    }
}

/// Serde helpers for an optional plain duration field written as `"30s"`.
pub mod option_duration {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_some(&format_duration(*duration)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn go_style_durations_parse_with_mixed_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
    }

    #[test]
    fn durations_without_units_or_with_unknown_units_are_rejected_with_the_input_named() {
        let error = parse_duration("10").unwrap_err();
        assert!(error.to_string().contains("\"10\""), "{error}");
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn a_delay_reads_from_a_bare_duration_or_after_and_jitter() {
        let bare: Delay = serde_json::from_value(serde_json::json!("2s")).unwrap();
        assert_eq!(bare, Delay::fixed(Duration::from_secs(2)));
        let full: Delay =
            serde_json::from_value(serde_json::json!({"after": "1s", "jitter": "500ms"})).unwrap();
        assert_eq!(
            full,
            Delay::with_jitter(Duration::from_secs(1), Duration::from_millis(500))
        );
        assert_eq!(
            serde_json::to_value(full).unwrap(),
            serde_json::json!({"after": "1s", "jitter": "500ms"})
        );
        assert_eq!(serde_json::to_value(bare).unwrap(), serde_json::json!("2s"));
    }

    #[test]
    fn a_delay_sample_stays_within_after_and_after_plus_jitter() {
        let delay = Delay::with_jitter(Duration::from_secs(1), Duration::from_secs(2));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let sample = delay.sample(&mut rng);
            assert!(
                sample >= Duration::from_secs(1) && sample <= Duration::from_secs(3),
                "{sample:?}"
            );
        }
        assert_eq!(Delay::ZERO.sample(&mut rng), Duration::ZERO);
    }

    #[test]
    fn formatted_durations_read_back_unchanged() {
        for millis in [0, 250, 1000, 1500, 90_000, 3_600_000, 3_661_000] {
            let duration = Duration::from_millis(millis);
            assert_eq!(
                parse_duration(&format_duration(duration)).unwrap(),
                duration,
                "{millis}"
            );
        }
    }
}
