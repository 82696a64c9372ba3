//! Sprig dates: `now`, `date`, `dateInZone`, `toDate`, `unixEpoch`, `htmlDate`, `ago`, `duration`.

use std::collections::HashMap;
use std::rc::Rc;

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::{Object, Value};

/// A Go `time.Time`.
#[derive(Debug, Clone)]
pub struct Time(pub DateTime<FixedOffset>);

impl Object for Time {
    fn type_name(&self) -> &str {
        "time.Time"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn has_method(&self, name: &str) -> bool {
        matches!(name, "Unix" | "Year" | "Format" | "UTC" | "String")
    }
    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        Some(Ok(match name {
            "Unix" => Value::Int(self.0.timestamp()),
            "Year" => Value::Int(i64::from(chrono::Datelike::year(&self.0))),
            "Format" => Value::str(go_format(
                &self.0,
                args.first().and_then(Value::as_str).unwrap_or(""),
            )),
            "UTC" => Value::Object(Rc::new(Time(self.0.with_timezone(&Utc).fixed_offset()))),
            "String" => Value::str(self.display()),
            _ => return None,
        }))
    }
    fn display(&self) -> String {
        go_format(&self.0, "2006-01-02 15:04:05.999999999 -0700 MST")
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

/// Formats with a Go reference layout (`2006-01-02T15:04:05Z07:00`).
pub fn go_format(t: &DateTime<FixedOffset>, layout: &str) -> String {
    const TOKENS: &[(&str, &str)] = &[
        ("January", "%B"),
        ("Monday", "%A"),
        ("2006", "%Y"),
        ("Jan", "%b"),
        ("Mon", "%a"),
        ("MST", "%Z"),
        ("Z07:00", "Z07:00"),
        ("-07:00", "%:z"),
        ("-0700", "%z"),
        ("Z0700", "Z0700"),
        ("-07", "%#z"),
        ("002", "%j"),
        ("01", "%m"),
        ("02", "%d"),
        ("_2", "%e"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("15", "%H"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("1", "%-m"),
        ("2", "%-d"),
        ("3", "%-I"),
        ("4", "%-M"),
        ("5", "%-S"),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        // fractional seconds .000 / .999
        for (prefix, trim) in [(".0", false), (",0", false), (".9", true), (",9", true)] {
            if rest.starts_with(prefix) {
                let digit = prefix.as_bytes()[1];
                let n = 1 + rest[1..].bytes().take_while(|&b| b == digit).count();
                let after = rest[n..].chars().next();
                if !after.is_some_and(|c| c.is_ascii_digit()) {
                    let nanos = t.timestamp_subsec_nanos();
                    let digits = format!("{nanos:09}");
                    let mut frac = digits[..(n - 1).min(9)].to_string();
                    if trim {
                        frac = frac.trim_end_matches('0').to_string();
                    }
                    if !frac.is_empty() {
                        out.push(prefix.as_bytes()[0] as char);
                        out.push_str(&frac);
                    }
                    rest = &rest[n..];
                    continue 'outer;
                }
            }
        }
        for (tok, fmt) in TOKENS {
            if rest.starts_with(tok) {
                match *fmt {
                    "Z07:00" | "Z0700" => {
                        if t.offset().local_minus_utc() == 0 {
                            out.push('Z');
                        } else {
                            out.push_str(
                                &t.format(if *fmt == "Z07:00" { "%:z" } else { "%z" })
                                    .to_string(),
                            );
                        }
                    }
                    "%Z" => {
                        if t.offset().local_minus_utc() == 0 {
                            out.push_str("UTC");
                        } else {
                            out.push_str(&t.format("%z").to_string()[..3]);
                        }
                    }
                    f => out.push_str(&t.format(f).to_string()),
                }
                rest = &rest[tok.len()..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn to_time(v: &Value) -> DateTime<FixedOffset> {
    match v {
        Value::Object(o) if o.type_name() == "time.Time" => {
            let j = o.to_json();
            j.as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .unwrap_or_else(|| Local::now().fixed_offset())
        }
        Value::Int(i) => Utc
            .timestamp_opt(*i, 0)
            .single()
            .unwrap_or_default()
            .with_timezone(&Local)
            .fixed_offset(),
        Value::Float(f) => Utc
            .timestamp_opt(*f as i64, 0)
            .single()
            .unwrap_or_default()
            .with_timezone(&Local)
            .fixed_offset(),
        _ => Local::now().fixed_offset(),
    }
}

fn in_zone(t: DateTime<FixedOffset>, zone: &str) -> DateTime<FixedOffset> {
    match zone {
        "UTC" | "" => t.with_timezone(&Utc).fixed_offset(),
        "Local" => t.with_timezone(&Local).fixed_offset(),
        _ => t.with_timezone(&Utc).fixed_offset(),
    }
}

/// Go's reference layout to parse with (subset: fixed-width numeric fields and zones).
fn parse_go(layout: &str, s: &str) -> Result<DateTime<FixedOffset>, String> {
    let mut fmt = String::new();
    let mut rest = layout;
    let map: &[(&str, &str)] = &[
        ("2006", "%Y"),
        ("Z07:00", "%:z"),
        ("-07:00", "%:z"),
        ("-0700", "%z"),
        ("01", "%m"),
        ("02", "%d"),
        ("15", "%H"),
        ("04", "%M"),
        ("05", "%S"),
        ("Jan", "%b"),
        ("MST", "%Z"),
    ];
    'outer: while !rest.is_empty() {
        for (tok, f) in map {
            if rest.starts_with(tok) {
                fmt.push_str(f);
                rest = &rest[tok.len()..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        fmt.push(c);
        rest = &rest[c.len_utf8()..];
    }
    let s2 = s.replace('Z', "+00:00");
    if let Ok(t) = DateTime::parse_from_str(&s2, &fmt) {
        return Ok(t);
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, &fmt) {
        return Ok(Local
            .from_local_datetime(&t)
            .single()
            .map(|t| t.fixed_offset())
            .unwrap_or_default());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, &fmt) {
        let t = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        return Ok(Local
            .from_local_datetime(&t)
            .single()
            .map(|t| t.fixed_offset())
            .unwrap_or_default());
    }
    Err(format!("parsing time {s:?} as {layout:?}: cannot parse"))
}

fn time_value(t: DateTime<FixedOffset>) -> Value {
    Value::Object(Rc::new(Time(t)))
}

/// Go's `time.Duration.String()` for whole seconds.
pub fn duration_string(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let neg = secs < 0;
    let mut s = secs.unsigned_abs();
    let h = s / 3600;
    s %= 3600;
    let m = s / 60;
    s %= 60;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if h > 0 {
        out.push_str(&format!("{h}h{m}m"));
    } else if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    reg(t, Sprig, "now", &[], None, |_, _| {
        Ok(time_value(Local::now().fixed_offset()))
    });
    reg(t, Sprig, "date", &[S, A], None, |_, a| {
        Ok(Value::str(go_format(
            &to_time(&a[1]),
            a[0].as_str().unwrap_or(""),
        )))
    });
    reg(t, Sprig, "dateInZone", &[S, A, S], None, |_, a| {
        let tz = in_zone(to_time(&a[1]), a[2].as_str().unwrap_or(""));
        Ok(Value::str(go_format(&tz, a[0].as_str().unwrap_or(""))))
    });
    reg(t, Sprig, "htmlDate", &[A], None, |_, a| {
        Ok(Value::str(go_format(&to_time(&a[0]), "2006-01-02")))
    });
    reg(t, Sprig, "htmlDateInZone", &[A, S], None, |_, a| {
        Ok(Value::str(go_format(
            &in_zone(to_time(&a[0]), a[1].as_str().unwrap_or("")),
            "2006-01-02",
        )))
    });
    for name in ["toDate", "mustToDate"] {
        reg(t, Sprig, name, &[S, S], None, |_, a| {
            Ok(time_value(parse_go(
                a[0].as_str().unwrap_or(""),
                a[1].as_str().unwrap_or(""),
            )?))
        });
    }
    reg(t, Sprig, "unixEpoch", &[A], None, |_, a| {
        Ok(Value::str(to_time(&a[0]).timestamp().to_string()))
    });
    reg(t, Sprig, "dateModify", &[S, A], None, |_, a| {
        let t0 = to_time(&a[1]);
        let d = a[0].as_str().unwrap_or("");
        let secs = parse_duration(d).unwrap_or(0);
        Ok(time_value(t0 + chrono::Duration::seconds(secs)))
    });
    reg(t, Sprig, "ago", &[A], None, |_, a| {
        let secs = Local::now().timestamp() - to_time(&a[0]).timestamp();
        Ok(Value::str(duration_string(secs)))
    });
    reg(t, Sprig, "duration", &[A], None, |_, a| {
        Ok(Value::str(duration_string(super::conversion::to_i64(
            &a[0],
        ))))
    });
}

/// Parses Go durations like `1h30m`, `-10s` into seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(if neg { -total as i64 } else { total as i64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layouts() {
        let t = DateTime::parse_from_rfc3339("2021-03-04T05:06:07.5+00:00").unwrap();
        assert_eq!(go_format(&t, "2006-01-02"), "2021-03-04");
        assert_eq!(go_format(&t, "15:04:05.000"), "05:06:07.500");
        assert_eq!(
            go_format(&t, "Jan 2, 2006 at 3:04pm (MST)"),
            "Mar 4, 2021 at 5:06am (UTC)"
        );
        assert_eq!(
            go_format(&t, "2006-01-02T15:04:05Z07:00"),
            "2021-03-04T05:06:07Z"
        );
        assert_eq!(duration_string(3725), "1h2m5s");
        assert_eq!(parse_duration("-1h30m"), Some(-5400));
    }
}
