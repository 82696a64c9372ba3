//! Sprig's `semver` and `semverCompare` with Masterminds/semver v3 rules: loose versions (`v1.2`,
//! `1`), constraints joined by `,` or spaces (and) and `||` (or), `~` `^` `x` wildcards, hyphen
//! ranges, and pre-releases only matching constraints that name a pre-release.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::{Map, Value};

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub build: String,
    pub original: String,
}

impl Version {
    /// Parses like Masterminds `NewVersion` (loose: optional `v`, missing minor/patch).
    pub fn parse(s: &str) -> Result<Version, String> {
        let orig = s.to_string();
        let t = s.trim();
        let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
        let (core, build) = match t.split_once('+') {
            Some((c, b)) => (c, b.to_string()),
            None => (t, String::new()),
        };
        let (core, pre) = match core.split_once('-') {
            Some((c, p)) => (c, p.to_string()),
            None => (core, String::new()),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty()
            || parts.len() > 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("Invalid Semantic Version".into());
        }
        let num = |i: usize| -> Result<u64, String> {
            parts.get(i).map_or(Ok(0), |p| {
                p.parse::<u64>()
                    .map_err(|_| "Invalid Semantic Version".to_string())
            })
        };
        if !pre.is_empty()
            && !pre
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err("Invalid Semantic Version".into());
        }
        Ok(Version {
            major: num(0)?,
            minor: num(1)?,
            patch: num(2)?,
            pre,
            build,
            original: orig,
        })
    }

    fn cmp_pre(a: &str, b: &str) -> Ordering {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            _ => {}
        }
        let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
        for (x, y) in pa.iter().zip(pb.iter()) {
            let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(i), Ok(j)) => i.cmp(&j),
                (Ok(_), Err(_)) => Ordering::Less,
                (Err(_), Ok(_)) => Ordering::Greater,
                _ => x.cmp(y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        pa.len().cmp(&pb.len())
    }

    pub fn compare(&self, o: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| Version::cmp_pre(&self.pre, &o.pre))
    }
}

#[derive(Debug, Clone)]
struct Bound {
    op: String,
    v: Version,
    /// which parts were wildcards/missing: 0 = all given, 1 = patch missing, 2 = minor missing, 3 = all
    dirty: u8,
}

fn parse_bound(op: &str, ver: &str) -> Result<Bound, String> {
    let t = ver.trim().strip_prefix(['v', 'V']).unwrap_or(ver.trim());
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let mut parts: Vec<String> = core.split('.').map(str::to_string).collect();
    let mut dirty = 0u8;
    let wild = |p: &str| matches!(p, "x" | "X" | "*" | "");
    let given = parts.len();
    for i in 0..3 {
        if i >= given || wild(&parts[i]) {
            if dirty == 0 {
                dirty = 3 - i as u8;
            }
            if i < parts.len() {
                parts[i] = "0".into();
            } else {
                parts.push("0".into());
            }
        }
    }
    let v = Version::parse(&format!("{}{}", parts.join("."), rest))
        .map_err(|_| format!("improper constraint: {op}{ver}"))?;
    Ok(Bound {
        op: op.to_string(),
        v,
        dirty,
    })
}

fn check(b: &Bound, v: &Version) -> bool {
    // pre-releases only match constraints with a pre-release on the same major.minor.patch
    if !v.pre.is_empty() && b.v.pre.is_empty() {
        return false;
    }
    let c = &b.v;
    let cmp = v.compare(c);
    match b.op.as_str() {
        "" | "=" => match b.dirty {
            0 => cmp == Ordering::Equal,
            1 => v.major == c.major && v.minor == c.minor,
            2 => v.major == c.major,
            _ => true,
        },
        "!=" => match b.dirty {
            0 => cmp != Ordering::Equal,
            1 => !(v.major == c.major && v.minor == c.minor),
            2 => v.major != c.major,
            _ => false,
        },
        ">" => match b.dirty {
            0 => cmp == Ordering::Greater,
            1 => (v.major, v.minor) > (c.major, c.minor),
            2 => v.major > c.major,
            _ => false,
        },
        ">=" | "=>" => cmp != Ordering::Less,
        "<" => cmp == Ordering::Less,
        "<=" | "=<" => match b.dirty {
            0 => cmp != Ordering::Greater,
            1 => (v.major, v.minor) <= (c.major, c.minor),
            2 => v.major <= c.major,
            _ => true,
        },
        "~" | "~>" => {
            if cmp == Ordering::Less {
                return false;
            }
            if b.dirty >= 2 {
                v.major == c.major
            } else {
                v.major == c.major && v.minor == c.minor
            }
        }
        "^" => {
            if cmp == Ordering::Less {
                return false;
            }
            if c.major > 0 || b.dirty >= 2 {
                v.major == c.major
            } else if c.minor > 0 || b.dirty == 1 {
                v.major == 0 && v.minor == c.minor
            } else {
                v.major == 0 && v.minor == 0 && v.patch == c.patch
            }
        }
        _ => false,
    }
}

/// A Masterminds constraint set.
pub struct Constraints {
    any_of: Vec<Vec<Bound>>,
}

impl Constraints {
    pub fn parse(s: &str) -> Result<Constraints, String> {
        let mut any_of = Vec::new();
        for alt in s.split("||") {
            let mut all = Vec::new();
            let alt = alt.trim();
            // hyphen ranges "1.2 - 1.4"
            let normalized = alt.replace(',', " ");
            let toks: Vec<&str> = normalized.split_whitespace().collect();
            let mut i = 0;
            while i < toks.len() {
                if i + 2 < toks.len() && toks[i + 1] == "-" {
                    all.push(parse_bound(">=", toks[i])?);
                    all.push(parse_bound("<=", toks[i + 2])?);
                    i += 3;
                    continue;
                }
                let tok = toks[i];
                let op_len = tok
                    .find(|c: char| c.is_ascii_alphanumeric() || c == '*')
                    .unwrap_or(tok.len());
                let (op, ver) = tok.split_at(op_len);
                let (op, ver) = if ver.is_empty() && i + 1 < toks.len() {
                    i += 1;
                    (op, toks[i])
                } else {
                    (op, ver)
                };
                if !matches!(
                    op,
                    "" | "=" | "!=" | ">" | "<" | ">=" | "=>" | "<=" | "=<" | "~" | "~>" | "^"
                ) {
                    return Err(format!("improper constraint: {alt}"));
                }
                all.push(parse_bound(op, ver)?);
                i += 1;
            }
            if all.is_empty() {
                return Err(format!("improper constraint: {alt}"));
            }
            any_of.push(all);
        }
        Ok(Constraints { any_of })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|b| check(b, v)))
    }
}

/// `semverCompare constraint version`.
pub fn semver_compare(constraint: &str, version: &str) -> Result<bool, String> {
    let c = Constraints::parse(constraint)?;
    let v = Version::parse(version)?;
    Ok(c.matches(&v))
}

fn version_value(v: &Version) -> Value {
    let mut m = Map::new();
    m.insert("Major".into(), Value::Int(v.major as i64));
    m.insert("Minor".into(), Value::Int(v.minor as i64));
    m.insert("Patch".into(), Value::Int(v.patch as i64));
    m.insert("Prerelease".into(), Value::str(&v.pre));
    m.insert("Metadata".into(), Value::str(&v.build));
    m.insert("Original".into(), Value::str(&v.original));
    Value::from(m)
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    reg(t, Sprig, "semverCompare", &[S, S], None, |_, a| {
        Ok(Value::Bool(semver_compare(
            a[0].as_str().unwrap_or(""),
            a[1].as_str().unwrap_or(""),
        )?))
    });
    reg(t, Sprig, "semver", &[S], None, |_, a| {
        Ok(version_value(&Version::parse(a[0].as_str().unwrap_or(""))?))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints() {
        assert!(semver_compare(">=1.19-0", "v1.20.0").unwrap());
        assert!(semver_compare(">=1.19-0", "v1.20.4-eks-6b7464").unwrap());
        assert!(!semver_compare(">=1.19", "v1.20.4-eks-6b7464").unwrap());
        assert!(semver_compare("^1.2.3", "1.9.0").unwrap());
        assert!(!semver_compare("^1.2.3", "2.0.0").unwrap());
        assert!(semver_compare("~1.2", "1.2.9").unwrap());
        assert!(!semver_compare("~1.2", "1.3.0").unwrap());
        assert!(semver_compare("1.x", "1.4.0").unwrap());
        assert!(semver_compare(">= 1.2, < 2.0", "1.5.0").unwrap());
        assert!(semver_compare("<1.0 || >=3", "3.1.0").unwrap());
        assert!(semver_compare("1.0 - 2.0", "1.5.0").unwrap());
        assert!(semver_compare("*", "0.1.0").unwrap());
        assert!(Version::parse("a.b").is_err());
    }
}
