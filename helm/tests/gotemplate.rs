//! Go text/template semantics, Sprig and Helm functions, and error messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleet_helm::gotemplate::{ExecOptions, FuncSet, MissingKey, ParseOptions, Template};
use serde_json::json;

fn run_with(
    text: &str,
    data: serde_json::Value,
    funcs: FuncSet,
    mk: MissingKey,
) -> Result<String, String> {
    let popts = ParseOptions {
        funcs,
        ..Default::default()
    };
    let t = Template::parse("t", text, &popts).map_err(|e| e.0)?;
    let eopts = ExecOptions {
        funcs,
        missing_key: mk,
        ..Default::default()
    };
    t.execute(&data, &eopts).map_err(|e| e.0)
}

fn run(text: &str, data: serde_json::Value) -> String {
    run_with(text, data, FuncSet::Helm, MissingKey::Default).unwrap()
}

fn err(text: &str, data: serde_json::Value) -> String {
    run_with(text, data, FuncSet::Helm, MissingKey::Default).unwrap_err()
}

#[test]
fn text_and_trim_markers() {
    assert_eq!(run("a {{- \" b \" -}} c", json!({})), "a b c");
    assert_eq!(run("x\n  {{- 1 }}\n", json!({})), "x1\n");
    assert_eq!(run("{{/* comment */}}y", json!({})), "y");
    assert_eq!(run("a  {{- /* c */ -}}  b", json!({})), "ab");
}

#[test]
fn fields_variables_and_pipelines() {
    let d = json!({"a": {"b": "x"}, "n": 3});
    assert_eq!(run("{{ .a.b }}", d.clone()), "x");
    assert_eq!(run("{{ $v := .a }}{{ $v.b }}", d.clone()), "x");
    assert_eq!(run("{{ .a.b | printf \"%s-%s\" \"y\" }}", d.clone()), "y-x");
    assert_eq!(run("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", d.clone()), "2");
    assert_eq!(run("{{ (.a).b }}", d.clone()), "x");
    assert_eq!(run("{{ .missing }}", d.clone()), "<no value>");
    assert_eq!(run("{{ $ }}", json!("root")), "root");
}

#[test]
fn if_else_with_range() {
    let d = json!({"l": ["a", "b"], "m": {"z": 1, "a": 2}, "e": [], "t": true});
    assert_eq!(run("{{ if .t }}yes{{ else }}no{{ end }}", d.clone()), "yes");
    assert_eq!(
        run(
            "{{ if .e }}1{{ else if .t }}2{{ else }}3{{ end }}",
            d.clone()
        ),
        "2"
    );
    assert_eq!(run("{{ with .m }}{{ .a }}{{ end }}", d.clone()), "2");
    assert_eq!(
        run(
            "{{ with .e }}x{{ else with .t }}{{ . }}{{ end }}",
            d.clone()
        ),
        "true"
    );
    assert_eq!(
        run(
            "{{ range $i, $v := .l }}{{ $i }}={{ $v }};{{ end }}",
            d.clone()
        ),
        "0=a;1=b;"
    );
    assert_eq!(
        run(
            "{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}",
            d.clone()
        ),
        "a=2;z=1;"
    );
    assert_eq!(
        run("{{ range .e }}x{{ else }}empty{{ end }}", d.clone()),
        "empty"
    );
    assert_eq!(
        run(
            "{{ range .l }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
            d.clone()
        ),
        "a"
    );
    assert_eq!(
        run(
            "{{ range .l }}{{ if eq . \"a\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
            d.clone()
        ),
        "b"
    );
    assert_eq!(run("{{ range 3 }}{{ . }}{{ end }}", d), "012");
}

#[test]
fn define_template_block() {
    assert_eq!(
        run(
            "{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" 5 }}",
            json!({})
        ),
        "[5]"
    );
    assert_eq!(
        run(
            "{{ block \"b\" . }}default {{ .v }}{{ end }}",
            json!({"v": 1})
        ),
        "default 1"
    );
    assert_eq!(
        run(
            "{{ define \"x\" }}{{ .a }}{{ end }}{{ include \"x\" . | upper }}",
            json!({"a": "q"})
        ),
        "Q"
    );
}

#[test]
fn builtins_and_comparisons() {
    let d = json!({"s": "abc", "l": [1, 2, 3], "m": {"k": "v"}});
    assert_eq!(
        run(
            "{{ len .s }} {{ len .l }} {{ index .l 1 }} {{ index .m \"k\" }}",
            d.clone()
        ),
        "3 3 2 v"
    );
    assert_eq!(
        run("{{ slice .s 1 2 }} {{ slice .l 1 }}", d.clone()),
        "b [2 3]"
    );
    assert_eq!(
        run(
            "{{ and 1 0 2 }} {{ or 0 \"\" \"x\" }} {{ not 0 }}",
            d.clone()
        ),
        "0 x true"
    );
    assert_eq!(
        run(
            "{{ eq 1 2 1 }} {{ ne \"a\" \"b\" }} {{ lt 1 2 }} {{ ge 2 2 }} {{ gt \"b\" \"a\" }}",
            d.clone()
        ),
        "true true true true true"
    );
    assert_eq!(
        run("{{ print 1 2 \"a\" }} {{ println \"x\" }}", d.clone()),
        "1 2a x\n"
    );
    assert_eq!(
        run(
            "{{ html \"<a>\" }} {{ js \"'\" }} {{ urlquery \"a b&\" }}",
            d
        ),
        "&lt;a&gt; \\' a+b%26"
    );
    // and/or short-circuit: the failing call is never made
    assert_eq!(run("{{ or 1 (fail \"no\") }}", json!({})), "1");
}

#[test]
fn printf_like_go() {
    assert_eq!(
        run(
            "{{ printf \"%05.1f|%-3s|%q|%v|%x\" 3.14159 \"a\" \"b\" .l 255 }}",
            json!({"l": [1, "x"]})
        ),
        "003.1|a  |\"b\"|[1 x]|ff"
    );
    assert_eq!(run("{{ printf \"%d\" \"x\" }}", json!({})), "%!d(string=x)");
}

#[test]
fn error_messages_name_template_line_and_column() {
    assert_eq!(
        err("a\n  {{ .x.y }}", json!({"x": null})),
        "template: t:2:7: executing \"t\" at <.x.y>: nil pointer evaluating interface {}.y"
    );
    assert_eq!(
        err("{{ fail \"boom\" }}", json!({})),
        "template: t:1:3: executing \"t\" at <fail \"boom\">: error calling fail: HELM_ERR_STARTboomHELM_ERR_END"
    );
    assert_eq!(
        run_with(
            "{{ fail \"boom\" }}",
            json!({}),
            FuncSet::Sprig,
            MissingKey::Default
        )
        .unwrap_err(),
        "template: t:1:3: executing \"t\" at <fail \"boom\">: error calling fail: boom"
    );
    assert_eq!(
        err("{{ nope }}", json!({})),
        "template: t:1: function \"nope\" not defined"
    );
    assert_eq!(
        err("{{ if }}", json!({})),
        "template: t:1: missing value for if"
    );
    assert_eq!(
        err("{{ eq 1 \"a\" }}", json!({})),
        "template: t:1:3: executing \"t\" at <eq 1 \"a\">: error calling eq: incompatible types for comparison"
    );
    assert_eq!(
        err("{{ template \"none\" }}", json!({})),
        "template: t:1:3: executing \"t\" at <template \"none\">: template \"none\" not defined"
    );
    assert_eq!(
        run_with("{{ .a }}", json!({}), FuncSet::Sprig, MissingKey::Error).unwrap_err(),
        "template: t:1:3: executing \"t\" at <.a>: map has no entry for key \"a\""
    );
    assert_eq!(
        err("{{ upper 3 }}", json!({})),
        "template: t:1:9: executing \"t\" at <3>: wrong type for value; expected string; got int"
    );
}

#[test]
fn recursion_is_bounded() {
    let e = err(
        "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
        json!({}),
    );
    assert!(e.contains("exceeded maximum template depth"), "{e}");
    let e = err(
        "{{ define \"r\" }}{{ include \"r\" . }}{{ end }}{{ include \"r\" . }}",
        json!({}),
    );
    assert!(
        e.contains("rendering template has a nested reference name: r"),
        "{e}"
    );
}

#[test]
fn output_is_bounded() {
    let popts = ParseOptions {
        funcs: FuncSet::Helm,
        ..Default::default()
    };
    let t = Template::parse("t", "{{ range 500 }}xxxxxxxxxx{{ end }}", &popts).unwrap();
    let eopts = ExecOptions {
        funcs: FuncSet::Helm,
        max_output_bytes: 1000,
        ..Default::default()
    };
    assert!(
        t.execute(&json!({}), &eopts)
            .unwrap_err()
            .0
            .contains("output exceeds the limit")
    );
}

#[test]
fn custom_delimiters_and_sprig_without_env() {
    let popts = ParseOptions {
        left_delim: "${".into(),
        right_delim: "}".into(),
        funcs: FuncSet::SprigWithoutEnv,
    };
    let t = Template::parse("v", "a: ${ .x | quote }", &popts).unwrap();
    let eopts = ExecOptions {
        funcs: FuncSet::SprigWithoutEnv,
        missing_key: MissingKey::Error,
        ..Default::default()
    };
    assert_eq!(t.execute(&json!({"x": "y"}), &eopts).unwrap(), "a: \"y\"");
    assert!(Template::parse("v", "${ env \"HOME\" }", &popts).is_err());
    assert!(Template::parse("v", "${ include \"x\" . }", &popts).is_err());
}

#[test]
fn sprig_strings() {
    let d = json!({});
    assert_eq!(
        run(
            "{{ \"Hello World\" | lower }} {{ upper \"a\" }} {{ title \"ab cd\" }}",
            d.clone()
        ),
        "hello world A Ab Cd"
    );
    assert_eq!(
        run(
            "{{ trim \"  a \" }}|{{ trimPrefix \"x\" \"xa\" }}|{{ trimSuffix \"-\" \"a-\" }}|{{ trimAll \"$\" \"$a$\" }}",
            d.clone()
        ),
        "a|a|a|a"
    );
    assert_eq!(
        run(
            "{{ trunc 3 \"abcdef\" }} {{ replace \"a\" \"b\" \"aa\" }} {{ contains \"b\" \"abc\" }} {{ hasPrefix \"a\" \"ab\" }} {{ hasSuffix \"b\" \"ab\" }}",
            d.clone()
        ),
        "abc bb true true true"
    );
    assert_eq!(
        run(
            "{{ quote \"a\" 1 }} {{ squote \"a\" }} {{ indent 2 \"a\\nb\" }}{{ nindent 1 \"c\" }}",
            d.clone()
        ),
        "\"a\" \"1\" 'a'   a\n  b\n c"
    );
    assert_eq!(
        run(
            "{{ splitList \",\" \"a,b\" }} {{ join \"-\" (list 1 2) }} {{ (split \",\" \"a,b\")._1 }}",
            d.clone()
        ),
        "[a b] 1-2 b"
    );
    assert_eq!(
        run(
            "{{ repeat 3 \"ab\" }} {{ substr 1 3 \"abcd\" }} {{ nospace \"a b\" }} {{ snakecase \"AbCd\" }}",
            d.clone()
        ),
        "ababab bc ab ab_cd"
    );
    assert_eq!(
        run("{{ randAlphaNum 8 | len }} {{ uuidv4 | len }}", d),
        "8 36"
    );
}

#[test]
fn sprig_lists() {
    let d = json!({"l": ["b", "a", "b"]});
    assert_eq!(
        run(
            "{{ list 1 2 }} {{ first .l }} {{ last .l }} {{ rest .l }} {{ initial .l }}",
            d.clone()
        ),
        "[1 2] b b [a b] [b a]"
    );
    assert_eq!(
        run(
            "{{ append .l \"c\" }} {{ prepend .l \"z\" }} {{ uniq .l }} {{ without .l \"b\" }}",
            d.clone()
        ),
        "[b a b c] [z b a b] [b a] [a]"
    );
    assert_eq!(
        run(
            "{{ has \"a\" .l }} {{ compact (list 1 \"\" 0 2) }} {{ sortAlpha .l }} {{ reverse .l }}",
            d.clone()
        ),
        "true [1 2] [a b b] [b a b]"
    );
    assert_eq!(
        run(
            "{{ until 3 }} {{ untilStep 0 6 2 }} {{ concat (list 1) (list 2) }} {{ seq 3 }}",
            d
        ),
        "[0 1 2] [0 2 4] [1 2] 1 2 3"
    );
}

#[test]
fn sprig_dicts_mutate_in_place() {
    let d = json!({});
    assert_eq!(
        run(
            "{{ $d := dict \"a\" 1 }}{{ $_ := set $d \"b\" 2 }}{{ $d }}",
            d.clone()
        ),
        "map[a:1 b:2]"
    );
    assert_eq!(
        run(
            "{{ $d := dict \"a\" 1 \"b\" 2 }}{{ $_ := unset $d \"a\" }}{{ keys $d }} {{ hasKey $d \"b\" }}",
            d.clone()
        ),
        "[b] true"
    );
    assert_eq!(
        run(
            "{{ $a := dict \"x\" 1 \"n\" (dict \"p\" 1) }}{{ $b := dict \"x\" 2 \"y\" 3 \"n\" (dict \"q\" 2) }}{{ merge $a $b }}",
            d.clone()
        ),
        "map[n:map[p:1 q:2] x:1 y:3]"
    );
    assert_eq!(
        run(
            "{{ $a := dict \"x\" 1 }}{{ mergeOverwrite $a (dict \"x\" 2) }}",
            d.clone()
        ),
        "map[x:2]"
    );
    assert_eq!(
        run(
            "{{ pluck \"a\" (dict \"a\" 1) (dict \"a\" 2) }} {{ values (dict \"a\" 1) }} {{ pick (dict \"a\" 1 \"b\" 2) \"a\" }} {{ omit (dict \"a\" 1 \"b\" 2) \"a\" }}",
            d.clone()
        ),
        "[1 2] [1] map[a:1] map[b:2]"
    );
    assert_eq!(
        run(
            "{{ $a := dict \"x\" (dict \"y\" 1) }}{{ $b := deepCopy $a }}{{ $_ := set $b.x \"y\" 2 }}{{ $a.x.y }}",
            d.clone()
        ),
        "1"
    );
    assert_eq!(
        run(
            "{{ dig \"a\" \"b\" \"def\" (dict \"a\" (dict \"b\" \"v\")) }} {{ get (dict \"a\" 1) \"a\" }}",
            d
        ),
        "v 1"
    );
}

#[test]
fn sprig_defaults_and_logic() {
    let d = json!({"e": "", "v": "x"});
    assert_eq!(
        run(
            "{{ default \"d\" .e }} {{ default \"d\" .v }} {{ default \"d\" .missing }}",
            d.clone()
        ),
        "d x d"
    );
    assert_eq!(
        run(
            "{{ empty .e }} {{ coalesce .e .missing .v }} {{ ternary \"y\" \"n\" true }}",
            d.clone()
        ),
        "true x y"
    );
    assert_eq!(run("{{ required \"need\" .v }}", d.clone()), "x");
    assert!(
        err("{{ required \"need v\" .missing }}", d).contains("HELM_ERR_STARTneed vHELM_ERR_END")
    );
}

#[test]
fn sprig_math_and_conversion() {
    let d = json!({"f": 2.5, "i": 7});
    assert_eq!(
        run(
            "{{ add 1 2 3 }} {{ sub 5 2 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ add1 1 }}",
            d.clone()
        ),
        "6 3 6 3 1 2"
    );
    assert_eq!(
        run(
            "{{ max 1 5 3 }} {{ min 4 2 }} {{ floor 2.7 }} {{ ceil 2.1 }} {{ round 2.567 2 }}",
            d.clone()
        ),
        "5 2 2 3 2.57"
    );
    assert_eq!(
        run(
            "{{ int .f }} {{ float64 .i }} {{ atoi \"42\" }} {{ toString 1.5 }} {{ int64 \"12\" }}",
            d.clone()
        ),
        "2 7 42 1.5 12"
    );
    assert_eq!(
        run(
            "{{ kindOf .f }} {{ typeOf .i }} {{ kindIs \"string\" \"a\" }}",
            d
        ),
        "float64 int true"
    );
}

#[test]
fn sprig_semver_regex_crypto_encoding() {
    let d = json!({});
    assert_eq!(
        run(
            "{{ semverCompare \">=1.19-0\" \"v1.20.0\" }} {{ (semver \"1.2.3\").Minor }}",
            d.clone()
        ),
        "true 2"
    );
    assert_eq!(
        run(
            "{{ regexMatch \"^a.c$\" \"abc\" }} {{ regexFind \"[0-9]+\" \"ab12\" }} {{ regexReplaceAll \"a(x*)b\" \"-ab-axxb-\" \"${1}W\" }} {{ regexSplit \",\" \"a,b\" -1 }}",
            d.clone()
        ),
        "true 12 -W-xxW- [a b]"
    );
    assert_eq!(
        run(
            "{{ b64enc \"abc\" }} {{ b64dec \"YWJj\" }} {{ sha256sum \"abc\" | trunc 8 }} {{ sha1sum \"abc\" | trunc 8 }}",
            d.clone()
        ),
        "YWJj abc ba7816bf a9993e36"
    );
    assert_eq!(
        run(
            "{{ toJson (dict \"a\" 1 \"b\" (list \"<x>\")) }}",
            d.clone()
        ),
        "{\"a\":1,\"b\":[\"\\u003cx\\u003e\"]}"
    );
    assert_eq!(run("{{ (fromJson \"{\\\"a\\\": 1}\").a }}", d.clone()), "1");
}

#[test]
fn helm_yaml_functions() {
    let d = json!({"v": {"b": [1, 2], "a": "x: y", "c": {}}});
    assert_eq!(
        run("{{ toYaml .v }}", d.clone()),
        "a: 'x: y'\nb:\n- 1\n- 2\nc: {}"
    );
    assert_eq!(
        run(
            "{{ $m := fromYaml \"a: 1\\nb: [x]\" }}{{ $m.a }} {{ index $m.b 0 }}",
            d.clone()
        ),
        "1 x"
    );
    assert_eq!(
        run(
            "{{ (fromYaml \"a: [\").Error | contains \"YAML\" }}",
            d.clone()
        ),
        "true"
    );
    assert_eq!(run("{{ fromYamlArray \"- a\\n- b\" }}", d.clone()), "[a b]");
    assert_eq!(run("{{ toToml (dict \"a\" 1) }}", d), "a = 1\n");
}

#[test]
fn date_functions() {
    assert_eq!(
        run(
            "{{ date \"2006\" 0 | len }} {{ now | date \"2006-01-02\" | len }}",
            json!({})
        ),
        "4 10"
    );
    assert_eq!(
        run(
            "{{ toDate \"2006-01-02\" \"2021-03-04\" | date \"02/01/2006\" }}",
            json!({})
        ),
        "04/03/2021"
    );
}

#[test]
fn tpl_renders_values_text() {
    let d = json!({"Values": {"name": "n", "t": "{{ .Values.name }}-x"}, "Template": {"Name": "c/templates/a.yaml"}});
    assert_eq!(run("{{ tpl .Values.t . }}", d), "n-x");
}

#[test]
fn crypto_functions_from_templates() {
    // the usual webhook-certificate idiom: a CA, then a serving cert signed by it
    let out = run(
        r#"{{- $ca := genCA "webhook-ca" 365 -}}
{{- $cert := genSignedCert "svc" nil (list "svc.ns.svc" "svc") 365 $ca -}}
{{ $ca.Cert | b64enc | len | lt 100 }} {{ hasPrefix "-----BEGIN CERTIFICATE-----" $cert.Cert }} {{ hasPrefix "-----BEGIN RSA PRIVATE KEY-----" $cert.Key }}"#,
        json!({}),
    );
    assert_eq!(out, "true true true");
    let out = run(
        r#"{{ $c := genSelfSignedCert "x" (list "10.0.0.1") nil 1 }}{{ hasPrefix "-----BEGIN CERTIFICATE-----" $c.Cert }}"#,
        json!({}),
    );
    assert_eq!(out, "true");
    assert!(run(r#"{{ htpasswd "u" "p" }}"#, json!({})).starts_with("u:$2a$10$"));
    assert_eq!(
        run(
            r#"{{ encryptAES "k" "secret" | decryptAES "k" }}"#,
            json!({})
        ),
        "secret"
    );
    assert_eq!(run(r#"{{ randBytes 12 | len }}"#, json!({})), "16");
    assert!(
        err(
            r#"{{ genSelfSignedCert "x" (list "nope") nil 1 }}"#,
            json!({})
        )
        .contains("error parsing ip: nope")
    );
}
