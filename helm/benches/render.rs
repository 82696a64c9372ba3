//! Renders a generated 50-template chart; criterion reports templates per second (throughput).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleet_helm::{Chart, RenderOptions, render};

const TEMPLATES: usize = 50;

fn chart() -> Chart {
    let mut files = vec![
        ("Chart.yaml".to_string(), b"apiVersion: v2\nname: bench\nversion: 1.0.0\nappVersion: \"1.0\"\n".to_vec()),
        (
            "values.yaml".to_string(),
            b"replicas: 3\nimage:\n  repository: nginx\n  tag: stable\nlabels:\n  team: platform\n  tier: web\nenv:\n  A: \"1\"\n  B: \"2\"\n  C: \"3\"\nresources:\n  limits:\n    cpu: 100m\n    memory: 64Mi\n".to_vec(),
        ),
        (
            "templates/_helpers.tpl".to_string(),
            b"{{- define \"bench.fullname\" -}}{{ printf \"%s-%s\" .Release.Name .Chart.Name | trunc 63 | trimSuffix \"-\" }}{{- end -}}\n{{- define \"bench.labels\" -}}\napp.kubernetes.io/name: {{ .Chart.Name }}\napp.kubernetes.io/instance: {{ .Release.Name }}\n{{- range $k, $v := .Values.labels }}\n{{ $k }}: {{ $v | quote }}\n{{- end }}\n{{- end -}}\n".to_vec(),
        ),
    ];
    for i in 0..TEMPLATES {
        let body = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{{{ include \"bench.fullname\" . }}}}-{i}\n  labels:\n    {{{{- include \"bench.labels\" . | nindent 4 }}}}\nspec:\n  replicas: {{{{ .Values.replicas }}}}\n  template:\n    spec:\n      containers:\n        - name: c{i}\n          image: \"{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}\"\n          env:\n            {{{{- range $k, $v := .Values.env }}}}\n            - name: {{{{ $k }}}}\n              value: {{{{ $v | quote }}}}\n            {{{{- end }}}}\n          resources:\n            {{{{- toYaml .Values.resources | nindent 12 }}}}\n"
        );
        files.push((format!("templates/deploy-{i:02}.yaml"), body.into_bytes()));
    }
    Chart::from_files(files).unwrap()
}

fn bench(c: &mut Criterion) {
    let chart = chart();
    let opts = RenderOptions::default();
    let values = serde_json::json!({});
    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Elements(TEMPLATES as u64));
    g.bench_function("chart_with_50_templates", |b| {
        b.iter(|| render(&chart, &values, &opts).unwrap());
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
