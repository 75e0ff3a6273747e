#![forbid(unsafe_code)]
use std::net::TcpListener;
use std::sync::Arc;

use wschat::server::{Server, ServerConfig};
use wschat::ws::{Config, Limits, Role};

fn main() {
    env_logger::init();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("echo") => {
            let addr = args.get(2).cloned().unwrap_or("127.0.0.1:9001".into());
            let mut ws = Config::new(Role::Server);
            ws.limits = Limits::LARGE;
            ws.queue_len = 1024;
            let server = Server::new(
                TcpListener::bind(&addr).unwrap(),
                ServerConfig::new(ws),
                Arc::new(wschat::echo::Echo),
            );
            println!("echo on ws://{}", server.local_addr().unwrap());
            server.run();
        }
        Some("autobahn-client") => {
            let n = wschat::autobahn::run(&args[2], "wschat").unwrap();
            println!("{n} cases");
        }
        _ => {}
    }
}
