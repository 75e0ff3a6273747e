//! `--metrics-addr`: where a running server serves `/metrics`, and its
//! samples by series.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{Server, WAIT, header, status_of, tail};

/// Where `server` (started with `--metrics-addr`) serves its metrics, from
/// its "metrics on" line.
pub fn metrics_addr(server: &Server) -> SocketAddr {
    let line = server
        .stdout_line("metrics on", WAIT)
        .unwrap_or_else(|| panic!("no metrics line; log:\n{}", tail(&server.log())));
    let rest = &line[line.find("http://").expect("a URL") + 7..];
    assert!(line.ends_with("/metrics"), "{line}");
    rest[..rest.find('/').expect("a path")].parse().unwrap()
}

/// A raw GET on the metrics port: status, content type, body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    let content_type = header(head, "content-type").unwrap_or_default().to_owned();
    (status_of(head), content_type, body.to_owned())
}

/// Every sample of a scrape by its series (`name{labels}`), checking that
/// each metric has HELP and TYPE lines and a `wschat_` name.
pub fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, content_type, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let mut samples = HashMap::new();
    let mut described = Vec::new();
    for line in body.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, text) = help.split_once(' ').expect("help text");
            assert!(name.starts_with("wschat_") && !text.is_empty(), "{line}");
            described.push(name.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let name = series.split('{').next().unwrap();
        assert!(
            described.iter().any(|d| name.starts_with(d.as_str())),
            "{name} without HELP"
        );
        samples.insert(series.to_owned(), value.parse::<f64>().expect("a number"));
    }
    samples
}

pub fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in the scrape"))
}

/// Scrape until `series` satisfies `ok` (bounded); the last scrape.
pub fn wait_for(addr: SocketAddr, series: &str, ok: impl Fn(f64) -> bool) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = scrape(addr);
        if ok(value(&samples, series)) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed at {}",
            value(&samples, series)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
