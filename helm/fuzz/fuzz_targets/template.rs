//! Fuzzes template text and values: parsing and executing must never panic, hang or blow up.
#![no_main]

use fleet_helm::gotemplate::{ExecOptions, FuncSet, MissingKey, ParseOptions, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // first line: values as YAML-ish JSON; the rest: the template
    let (values, tpl) = text.split_once('\n').unwrap_or(("{}", &text));
    // Key generation and password hashing are slow by design (RSA-4096, scrypt, bcrypt): a fuzz
    // input calling them would only look like a hang. Unit tests cover them.
    const SLOW: &[&str] = &[
        "genPrivateKey",
        "genCA",
        "genSelfSigned",
        "genSignedCert",
        "derivePassword",
        "bcrypt",
        "htpasswd",
    ];
    if SLOW.iter().any(|f| tpl.contains(f)) {
        return;
    }
    let values: serde_json::Value =
        serde_json::from_str(values).unwrap_or(serde_json::json!({"a": {"b": [1, "x"]}}));
    let popts = ParseOptions {
        funcs: FuncSet::Helm,
        ..Default::default()
    };
    if let Ok(t) = Template::parse("fuzz", tpl, &popts) {
        let eopts = ExecOptions {
            funcs: FuncSet::Helm,
            missing_key: MissingKey::Zero,
            max_output_bytes: 1 << 20,
            max_template_depth: 100,
            max_include_depth: 100,
        };
        let _ = t.execute(&values, &eopts);
    }
});
