//! Sprig and Helm function families. Each module registers its functions in the shared table
//! (see `gotemplate::funcs` for how a template's function set is chosen).

use std::collections::HashMap;

use crate::gotemplate::funcs::Entry;

pub mod certs;
pub mod conversion;
pub mod crypto;
pub mod date;
pub mod dicts;
pub mod encoding;
pub mod helm;
pub mod lists;
pub mod math;
pub mod regex;
pub mod semver;
pub mod strings;

pub(crate) fn register_all(t: &mut HashMap<&'static str, Entry>) {
    conversion::register(t);
    strings::register(t);
    lists::register(t);
    dicts::register(t);
    math::register(t);
    semver::register(t);
    regex::register(t);
    crypto::register(t);
    certs::register(t);
    encoding::register(t);
    date::register(t);
    helm::register(t);
}
