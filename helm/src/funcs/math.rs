//! Sprig math: integer (int64) and float64 arithmetic.

use std::collections::HashMap;

use super::conversion::{to_f64, to_i64};
use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::Value;

fn i(v: i64) -> Result<Value, String> {
    Ok(Value::Int(v))
}

fn f(v: f64) -> Result<Value, String> {
    Ok(Value::Float(v))
}

/// Go's `math.Round`-style rounding to `places` decimals (sprig `round`).
fn round(x: f64, places: i64, half: f64) -> f64 {
    let pow = 10f64.powi(places.clamp(-300, 300) as i32);
    let digit = pow * x;
    let (int_part, frac) = (digit.trunc(), digit.fract());
    let r = if frac.abs() >= half {
        int_part + frac.signum()
    } else {
        int_part
    };
    r / pow
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    reg(t, Sprig, "add1", &[A], None, |_, a| {
        i(to_i64(&a[0]).wrapping_add(1))
    });
    reg(t, Sprig, "add", &[], Some(A), |_, a| {
        i(a.iter().map(to_i64).fold(0i64, i64::wrapping_add))
    });
    reg(t, Sprig, "sub", &[A, A], None, |_, a| {
        i(to_i64(&a[0]).wrapping_sub(to_i64(&a[1])))
    });
    reg(t, Sprig, "mul", &[A], Some(A), |_, a| {
        i(a.iter().map(to_i64).fold(1i64, i64::wrapping_mul))
    });
    reg(t, Sprig, "div", &[A, A], None, |_, a| {
        let d = to_i64(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        i(to_i64(&a[0]).wrapping_div(d))
    });
    reg(t, Sprig, "mod", &[A, A], None, |_, a| {
        let d = to_i64(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        i(to_i64(&a[0]).wrapping_rem(d))
    });
    reg(t, Sprig, "max", &[A], Some(A), |_, a| {
        i(a.iter().map(to_i64).max().unwrap_or(0))
    });
    reg(t, Sprig, "min", &[A], Some(A), |_, a| {
        i(a.iter().map(to_i64).min().unwrap_or(0))
    });
    reg(t, Sprig, "add1f", &[A], None, |_, a| f(to_f64(&a[0]) + 1.0));
    reg(t, Sprig, "addf", &[], Some(A), |_, a| {
        f(a.iter().map(to_f64).sum())
    });
    reg(t, Sprig, "subf", &[A], Some(A), |_, a| {
        f(a[1..].iter().map(to_f64).fold(to_f64(&a[0]), |x, y| x - y))
    });
    reg(t, Sprig, "mulf", &[A], Some(A), |_, a| {
        f(a[1..].iter().map(to_f64).fold(to_f64(&a[0]), |x, y| x * y))
    });
    reg(t, Sprig, "divf", &[A], Some(A), |_, a| {
        f(a[1..].iter().map(to_f64).fold(to_f64(&a[0]), |x, y| x / y))
    });
    reg(t, Sprig, "maxf", &[A], Some(A), |_, a| {
        f(a[1..].iter().map(to_f64).fold(to_f64(&a[0]), f64::max))
    });
    reg(t, Sprig, "minf", &[A], Some(A), |_, a| {
        f(a[1..].iter().map(to_f64).fold(to_f64(&a[0]), f64::min))
    });
    reg(t, Sprig, "floor", &[A], None, |_, a| {
        f(to_f64(&a[0]).floor())
    });
    reg(t, Sprig, "ceil", &[A], None, |_, a| f(to_f64(&a[0]).ceil()));
    reg(t, Sprig, "round", &[A, I], Some(F), |_, a| {
        let half = a.get(2).map(to_f64).unwrap_or(0.5);
        f(round(to_f64(&a[0]), to_i64(&a[1]), half))
    });
    reg(t, Sprig, "randInt", &[I, I], None, |_, a| {
        use rand::Rng;
        let (lo, hi) = (to_i64(&a[0]), to_i64(&a[1]));
        if hi <= lo {
            return Err("invalid argument to Intn".into());
        }
        i(rand::rng().random_range(lo..hi))
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn rounding() {
        assert_eq!(super::round(1.23456, 2, 0.5), 1.23);
        assert_eq!(super::round(2.5, 0, 0.5), 3.0);
    }
}
