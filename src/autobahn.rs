//! The client driver for Autobahn's fuzzingserver: ask how many cases there
//! are, run each one by echoing every message back, then ask the server to
//! write its report.

use std::time::Duration;

use crate::ws::client::{self, ConnectError};
use crate::ws::{Config, Limits, Message, Role};

fn config() -> Config {
    let mut config = Config::new(Role::Client);
    config.limits = Limits::LARGE;
    config
}

/// Run every case against the fuzzingserver at `base` (e.g.
/// `ws://127.0.0.1:9001`) as `agent`; returns the number of cases.
pub fn run(base: &str, agent: &str, deflate: Option<usize>) -> Result<usize, ConnectError> {
    let timeout = Duration::from_secs(10);
    let (mut reader, _sender) =
        client::connect(&format!("{base}/getCaseCount"), config(), timeout)?;
    let count = match reader.next_message() {
        Ok(Message::Text(text)) => text.trim().parse().unwrap_or(0),
        _ => 0,
    };
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        let (mut reader, sender) = client::connect_offering(&url, config(), timeout, deflate)?;
        while let Ok(message) = reader.next_message() {
            if sender.send_message(&message).is_err() {
                break;
            }
        }
        if case % 50 == 0 || case == count {
            log::info!("autobahn: {case}/{count} cases run");
        }
    }
    let (mut reader, _sender) = client::connect(
        &format!("{base}/updateReports?agent={agent}"),
        config(),
        timeout,
    )?;
    while reader.next_message().is_ok() {}
    Ok(count)
}
