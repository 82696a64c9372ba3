//! A Helm chart repository served from 127.0.0.1 for the HelmOps tests (used by
//! controller/tests/helmops.rs and cli/tests/helmops.rs): charts built in the test with the `tar`
//! CLI, `index.yaml` generated from what was published, optional basic auth, and switches for a
//! repository that is down (503) or serves a broken index. Only std and tempfile, so both test
//! crates can include it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct RepoState {
    /// Archive file name → bytes.
    archives: BTreeMap<String, Vec<u8>>,
    /// chart → versions (with archive file names).
    entries: BTreeMap<String, Vec<(String, String)>>,
    /// The `Authorization` header value required, if any.
    auth: Option<String>,
    down: bool,
    broken_index: Option<String>,
    /// Path and Authorization header of every request.
    seen: Vec<(String, Option<String>)>,
}

/// A chart repository at `http://127.0.0.1:<port>/charts`.
pub struct ChartRepo {
    base: String,
    state: Arc<Mutex<RepoState>>,
}

/// Base64 (standard alphabet, padded), for Basic credentials.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The chart archive `<name>-<version>.tgz` of a chart whose templates are `templates` (file
/// name → text) and whose default values are `values`.
pub fn chart_archive(
    name: &str,
    version: &str,
    values: &str,
    templates: &[(&str, &str)],
) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join(name);
    std::fs::create_dir_all(root.join("templates")).expect("mkdir");
    std::fs::write(
        root.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"{version}\"\n"),
    )
    .expect("Chart.yaml");
    std::fs::write(root.join("values.yaml"), values).expect("values.yaml");
    for (file, text) in templates {
        std::fs::write(root.join("templates").join(file), text).expect("template");
    }
    let archive = dir.path().join("chart.tgz");
    let out = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .arg(name)
        .output()
        .expect("running tar");
    assert!(
        out.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&archive).expect("read archive")
}

/// A one-ConfigMap chart: ConfigMap `<name>-config` with the chart version and the value
/// `greeting`.
pub fn configmap_chart(name: &str, version: &str) -> Vec<u8> {
    let template = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-config\ndata:\n  chartVersion: {{{{ .Chart.Version | quote }}}}\n  greeting: {{{{ .Values.greeting | quote }}}}\n"
    );
    chart_archive(
        name,
        version,
        "greeting: hello\n",
        &[("configmap.yaml", &template)],
    )
}

impl ChartRepo {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state: Arc<Mutex<RepoState>> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || serve_one(stream, &shared));
            }
        });
        ChartRepo { base, state }
    }

    /// The repository URL (`helm.repo`).
    pub fn url(&self) -> String {
        format!("{}/charts", self.base)
    }

    /// `host:port` of the server.
    pub fn host(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// Publishes an archive as `name` `version` (the index lists it from now on).
    pub fn publish_archive(&self, name: &str, version: &str, archive: Vec<u8>) {
        let file = format!("{name}-{version}.tgz");
        let mut s = self.state.lock().unwrap();
        s.archives.insert(file.clone(), archive);
        let versions = s.entries.entry(name.to_string()).or_default();
        versions.retain(|(v, _)| v != version);
        versions.push((version.to_string(), file));
    }

    /// Publishes [`configmap_chart`] `name` `version`.
    pub fn publish(&self, name: &str, version: &str) {
        self.publish_archive(name, version, configmap_chart(name, version));
    }

    /// From now on requests need these Basic credentials (401 otherwise).
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        let token = base64(format!("{user}:{password}").as_bytes());
        self.state.lock().unwrap().auth = Some(format!("Basic {token}"));
    }

    /// While down, every request gets 503 Service Unavailable.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Serve `text` as index.yaml instead of the real index (`None` restores it).
    pub fn set_broken_index(&self, text: Option<&str>) {
        self.state.lock().unwrap().broken_index = text.map(str::to_string);
    }

    /// Path and Authorization header of each request so far.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn index_yaml(&self) -> String {
        index_text(&self.state.lock().unwrap())
    }
}

fn index_text(s: &RepoState) -> String {
    let mut out = String::from("apiVersion: v1\nentries:\n");
    for (name, versions) in &s.entries {
        out.push_str(&format!("  {name}:\n"));
        for (version, file) in versions.iter().rev() {
            out.push_str(&format!(
                "  - name: {name}\n    version: {version}\n    apiVersion: v2\n    urls:\n    - {file}\n"
            ));
        }
    }
    out.push_str("generated: \"2026-01-01T00:00:00Z\"\n");
    out
}

fn serve_one(mut stream: std::net::TcpStream, shared: &Mutex<RepoState>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut auth = None;
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("authorization")
        {
            auth = Some(v.trim().to_string());
        }
    }
    let (status, body): (&str, Vec<u8>) = {
        let mut s = shared.lock().unwrap();
        s.seen.push((path.clone(), auth.clone()));
        if s.down {
            ("503 Service Unavailable", b"down for maintenance".to_vec())
        } else if s.auth.is_some() && s.auth != auth {
            ("401 Unauthorized", b"unauthorized".to_vec())
        } else if path == "/charts/index.yaml" {
            let text = s.broken_index.clone().unwrap_or_else(|| index_text(&s));
            ("200 OK", text.into_bytes())
        } else if let Some(data) = path
            .strip_prefix("/charts/")
            .and_then(|f| s.archives.get(f))
        {
            ("200 OK", data.clone())
        } else {
            ("404 Not Found", b"not found".to_vec())
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}

/// A URL on 127.0.0.1 where nothing listens (connection refused).
pub fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/charts")
}
