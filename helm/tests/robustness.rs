//! Bad input never panics: deterministic mutations of real templates and values are parsed and
//! executed (the `cargo fuzz` target in helm/fuzz explores further).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleet_helm::gotemplate::{ExecOptions, FuncSet, MissingKey, ParseOptions, Template};

const SEEDS: &[&str] = &[
    "{{- define \"x\" -}}{{ printf \"%s-%d\" .a (len .b) | trunc 5 }}{{- end }}{{ include \"x\" . | nindent 2 }}",
    "{{ range $i, $v := .b }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ $v | quote }}{{ else }}none{{ end }}",
    "{{ with .a }}{{ . | upper | replace \"A\" \"b\" }}{{ else with .c }}{{ toYaml . }}{{ end }}",
    "{{ $d := dict \"k\" (list 1 2) }}{{ $_ := set $d \"x\" (fromYaml \"a: [1, {b: c}]\") }}{{ toJson $d }}",
    "{{/* c */}}{{ tpl \"{{ .a }}\" . }} {{ semverCompare \">=1.2\" \"1.3.0\" }} {{ regexReplaceAll \"(a+)\" .a \"$1x\" }}",
    "{{ index .b 0 }} {{ slice .a 1 2 }} {{ and .a (not .c) }} {{ or nil 0 \"\" }} {{ printf \"%v %q %05.2f\" .b .a 3.5 }}",
    "{{ `raw` }} {{ 'a' }} {{ 0x1F }} {{ -1.5e3 }} {{ (.a) }} {{ $.a }} {{ .b | len | add 1 | mul 2 }}",
];

/// A small deterministic generator (no external randomness: failures reproduce).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn mutate(seed: &str, rng: &mut Lcg) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    let tokens = [
        "{{",
        "}}",
        "-",
        "(",
        ")",
        "|",
        "$",
        ".",
        "\"",
        "`",
        "end",
        "if",
        " ",
        "é",
        "\n",
        "{{-",
        "-}}",
        "/*",
        "*/",
        "9999999999999999999999",
        "range",
        "define",
    ];
    for _ in 0..(1 + rng.next() % 4) {
        if chars.is_empty() {
            break;
        }
        let pos = (rng.next() as usize) % (chars.len() + 1);
        match rng.next() % 3 {
            0 => {
                let end = (pos + (rng.next() as usize % 6)).min(chars.len());
                chars.drain(pos..end);
            }
            1 => {
                let t = tokens[rng.next() as usize % tokens.len()];
                for (i, c) in t.chars().enumerate() {
                    chars.insert((pos + i).min(chars.len()), c);
                }
            }
            _ => {
                chars.truncate(pos);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_templates_never_panic() {
    let data = serde_json::json!({"a": "abc", "b": [1, "two", {"x": null}], "c": {"d": [true]}});
    let popts = ParseOptions {
        funcs: FuncSet::Helm,
        ..Default::default()
    };
    let mut rng = Lcg(42);
    for mk in [MissingKey::Zero, MissingKey::Error, MissingKey::Default] {
        let eopts = ExecOptions {
            funcs: FuncSet::Helm,
            missing_key: mk,
            max_output_bytes: 1 << 16,
            max_template_depth: 50,
            max_include_depth: 50,
        };
        for i in 0..3000 {
            let text = mutate(SEEDS[i % SEEDS.len()], &mut rng);
            if let Ok(t) = Template::parse("fuzz", &text, &popts) {
                let _ = t.execute(&data, &eopts);
            }
        }
    }
}

#[test]
fn huge_requests_are_refused_not_attempted() {
    let popts = ParseOptions {
        funcs: FuncSet::Helm,
        ..Default::default()
    };
    let eopts = ExecOptions {
        funcs: FuncSet::Helm,
        max_output_bytes: 1 << 20,
        ..Default::default()
    };
    for text in [
        "{{ repeat 1000000000 \"abc\" }}",
        "{{ until 1000000000 }}",
        "{{ range 1000000000 }}{{ end }}",
        "{{ indent 65000 (repeat 100000 \"\\n\") }}",
        "{{ seq 1 1000000000 }}",
        "{{ printf \"%999999999d\" 1 }}{{ printf \"%999999999d\" 1 }}",
        "{{ randAlphaNum 1000000000 }}",
    ] {
        let t = Template::parse("big", text, &popts).unwrap();
        let e = t.execute(&serde_json::json!({}), &eopts);
        assert!(e.is_err(), "{text} should be refused");
    }
}
