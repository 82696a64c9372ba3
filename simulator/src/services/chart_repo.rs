//! A Helm chart repository on 127.0.0.1 (`index.yaml` generated from what was published, chart
//! archives packaged with the `tar` CLI), with switches for basic auth, a repository that is
//! down (503) and a broken index. Plain threads, so it also serves tests without a runtime.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;

use super::ServiceError;

#[derive(Default)]
struct RepoState {
    /// Archive file name → bytes.
    archives: BTreeMap<String, Vec<u8>>,
    /// chart → versions (with archive file names), in publishing order.
    entries: BTreeMap<String, Vec<(String, String)>>,
    /// The `Authorization` header value required, if any.
    auth: Option<String>,
    down: bool,
    broken_index: Option<String>,
    /// Path and Authorization header of every request.
    seen: Vec<(String, Option<String>)>,
}

/// A chart repository at `http://127.0.0.1:<port>/charts`; it serves until the process ends.
pub struct ChartRepo {
    base: String,
    state: Arc<Mutex<RepoState>>,
}

impl std::fmt::Debug for ChartRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChartRepo({})", self.url())
    }
}

/// The chart archive `<name>-<version>.tgz` of a chart whose templates are `templates` (file
/// name → text) and whose default values are `values`.
pub fn chart_archive(
    name: &str,
    version: &str,
    values: &str,
    templates: &[(&str, &str)],
) -> Result<Vec<u8>, ServiceError> {
    let io = |what: &str| ServiceError::io(format!("packaging chart {name}: {what}"));
    let dir = tempfile::tempdir().map_err(io("creating a folder"))?;
    let root = dir.path().join(name);
    std::fs::create_dir_all(root.join("templates")).map_err(io("creating templates/"))?;
    std::fs::write(
        root.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"{version}\"\n"),
    )
    .map_err(io("writing Chart.yaml"))?;
    std::fs::write(root.join("values.yaml"), values).map_err(io("writing values.yaml"))?;
    for (file, text) in templates {
        std::fs::write(root.join("templates").join(file), text)
            .map_err(io(&format!("writing templates/{file}")))?;
    }
    let archive = dir.path().join("chart.tgz");
    let out = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .arg(name)
        .output()
        .map_err(io("running tar"))?;
    if !out.status.success() {
        return Err(ServiceError::Package {
            chart: name.to_string(),
            message: format!(
                "tar failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    std::fs::read(&archive).map_err(io("reading the archive"))
}

/// A one-ConfigMap chart: ConfigMap `<name>-config` with the chart version and the value
/// `greeting` (default `hello`).
pub fn configmap_chart(name: &str, version: &str) -> Result<Vec<u8>, ServiceError> {
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

/// A URL on 127.0.0.1 where nothing listens (connection refused).
pub fn dead_url() -> Result<String, ServiceError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(ServiceError::io("binding 127.0.0.1"))?;
    let addr = listener
        .local_addr()
        .map_err(ServiceError::io("reading a free address"))?;
    drop(listener);
    Ok(format!("http://{addr}/charts"))
}

fn lock(state: &Mutex<RepoState>) -> MutexGuard<'_, RepoState> {
    // The state stays consistent at every await-free step, so a panicked holder left it usable.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ChartRepo {
    pub fn start() -> Result<Self, ServiceError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(ServiceError::io(
            "binding the chart repository on 127.0.0.1",
        ))?;
        let addr = listener
            .local_addr()
            .map_err(ServiceError::io("reading the chart repository's address"))?;
        let state: Arc<Mutex<RepoState>> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || serve_one(stream, &shared));
            }
        });
        Ok(ChartRepo {
            base: format!("http://{addr}"),
            state,
        })
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
        let mut s = lock(&self.state);
        s.archives.insert(file.clone(), archive);
        let versions = s.entries.entry(name.to_string()).or_default();
        versions.retain(|(v, _)| v != version);
        versions.push((version.to_string(), file));
    }

    /// Publishes [`configmap_chart`] `name` `version`.
    pub fn publish(&self, name: &str, version: &str) -> Result<(), ServiceError> {
        self.publish_archive(name, version, configmap_chart(name, version)?);
        Ok(())
    }

    /// From now on requests need these Basic credentials (401 otherwise).
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        lock(&self.state).auth = Some(format!("Basic {token}"));
    }

    /// While down, every request gets 503 Service Unavailable.
    pub fn set_down(&self, down: bool) {
        lock(&self.state).down = down;
    }

    /// Serve `text` as index.yaml instead of the real index (`None` restores it).
    pub fn set_broken_index(&self, text: Option<&str>) {
        lock(&self.state).broken_index = text.map(str::to_string);
    }

    /// Path and Authorization header of each request so far.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        lock(&self.state).seen.clone()
    }

    pub fn index_yaml(&self) -> String {
        index_text(&lock(&self.state))
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
        let mut s = lock(shared);
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
