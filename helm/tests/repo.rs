//! Chart repositories served from 127.0.0.1: index, semver selection, basic auth, credential scoping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use fleet_helm::repo::{RepoOptions, fetch_chart, fetch_index};

/// Requests seen by a server: path and Authorization header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A tiny HTTP server: path -> body; records the Authorization header of each request.
struct Server {
    url: String,
    seen: Seen,
}

fn serve(routes: Vec<(String, Vec<u8>)>, require_auth: Option<&'static str>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut auth = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h
                    .strip_prefix("Authorization: ")
                    .or_else(|| h.strip_prefix("authorization: "))
                {
                    auth = Some(v.trim().to_string());
                }
            }
            seen2.lock().unwrap().push((path.clone(), auth.clone()));
            let authorized = match require_auth {
                Some(want) => auth.as_deref() == Some(want),
                None => true,
            };
            let body = routes
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, b)| b.clone());
            let (status, body) = match (authorized, body) {
                (false, _) => ("401 Unauthorized", b"no".to_vec()),
                (true, Some(b)) => ("200 OK", b),
                (true, None) => ("404 Not Found", b"missing".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    Server { url, seen }
}

fn webapp_tgz() -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut buf, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all(
            "webapp",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webapp"),
        )
        .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    buf
}

fn index(chart_url: &str) -> Vec<u8> {
    format!(
        "apiVersion: v1\nentries:\n  webapp:\n  - name: webapp\n    version: 1.2.3\n    urls: [\"{chart_url}\"]\n  - name: webapp\n    version: 1.1.0\n    urls: [\"old.tgz\"]\n  - name: webapp\n    version: 2.0.0-rc.1\n    urls: [\"rc.tgz\"]\n"
    )
    .into_bytes()
}

#[test]
fn downloads_the_highest_matching_version_with_basic_auth() {
    // "user:pass" in base64
    let srv = serve(
        vec![
            ("/charts/index.yaml".into(), index("webapp-1.2.3.tgz")),
            ("/charts/webapp-1.2.3.tgz".into(), webapp_tgz()),
        ],
        Some("Basic dXNlcjpwYXNz"),
    );
    let opts = RepoOptions {
        username: Some("user".into()),
        password: Some("pass".into()),
        ..Default::default()
    };
    let repo = format!("{}/charts", srv.url);
    let idx = fetch_index(&repo, &opts).unwrap();
    assert_eq!(idx.get("webapp", "^1.0").unwrap().version, "1.2.3");
    assert_eq!(idx.get("webapp", "~1.1").unwrap().version, "1.1.0");
    assert_eq!(idx.get("webapp", "").unwrap().version, "1.2.3");
    assert_eq!(
        idx.get("webapp", "2.0.0-rc.1").unwrap().version,
        "2.0.0-rc.1"
    );
    assert!(idx.get("webapp", ">=3").is_err());
    let chart = fetch_chart(&repo, "webapp", ">=1.2.0 <2.0.0", &opts).unwrap();
    assert_eq!(chart.metadata.version, "1.2.3");
    // wrong password: a clear error
    let bad = RepoOptions {
        username: Some("user".into()),
        password: Some("nope".into()),
        ..Default::default()
    };
    let e = fetch_index(&repo, &bad).unwrap_err().to_string();
    assert!(e.contains("401"), "{e}");
}

#[test]
fn credentials_are_not_sent_to_other_hosts() {
    let other = serve(vec![("/webapp-1.2.3.tgz".into(), webapp_tgz())], None);
    let chart_url = format!("{}/webapp-1.2.3.tgz", other.url);
    let repo = serve(
        vec![("/index.yaml".into(), index(&chart_url))],
        Some("Basic dXNlcjpwYXNz"),
    );
    let opts = RepoOptions {
        username: Some("user".into()),
        password: Some("pass".into()),
        ..Default::default()
    };
    let chart = fetch_chart(&repo.url, "webapp", "1.2.3", &opts).unwrap();
    assert_eq!(chart.name(), "webapp");
    let seen = other.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, None, "credentials leaked to another host");
    // unless explicitly allowed
    let all = RepoOptions {
        pass_credentials_all: true,
        ..opts
    };
    fetch_chart(&repo.url, "webapp", "1.2.3", &all).unwrap();
    assert_eq!(
        other.seen.lock().unwrap()[1].1.as_deref(),
        Some("Basic dXNlcjpwYXNz")
    );
}

#[test]
fn a_bad_ca_bundle_is_an_error() {
    let opts = RepoOptions {
        ca_bundle: Some(b"not a pem".to_vec()),
        ..Default::default()
    };
    let e = fetch_index("https://127.0.0.1:1/", &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("CA bundle"), "{e}");
}
