#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use wschat::cli::{Cli, Mode};
use wschat::server::{Server, ServerConfig};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.mode {
        Some(Mode::Echo(args)) => echo(&args.addr, args.deflate.threshold()),
        Some(Mode::AutobahnClient(args)) => {
            match wschat::autobahn::run(&args.url, &args.agent, args.deflate.threshold()) {
                Ok(cases) => {
                    println!("autobahn-client: ran {cases} cases against {}", args.url);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("autobahn-client: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => serve(&cli.serve),
    }
}

fn serve(args: &wschat::cli::ServeArgs) -> ExitCode {
    // Installed before anything is announced, so that a Ctrl-C or SIGTERM
    // that comes right after the address line is not lost.
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    }) {
        log::warn!("cannot handle Ctrl-C/SIGTERM: {e}");
    }
    let running = match wschat::run::start(args, wschat::run::chat_config(args)) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("wschat: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match &running.www {
        Some(www) => log::info!("serving the page from {}", www.display()),
        None => log::warn!("no www directory found; only the WebSocket is served (see --www)"),
    }
    println!(
        "wschat: chat server on {} (open it in a browser; Ctrl-C stops)",
        running.url
    );
    if let Some(url) = running.metrics_url() {
        println!("wschat: metrics on {url}");
    }
    let _ = stop_rx.recv();
    log::info!("shutting down: closing every client with 1001");
    running.shutdown();
    log::info!("bye");
    ExitCode::SUCCESS
}

fn echo(addr: &wschat::cli::ListenAddr, deflate: Option<usize>) -> ExitCode {
    let listener = match wschat::run::listen(addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("wschat echo: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = Server::new(
        listener,
        ServerConfig::new(wschat::echo::ws_config()),
        Arc::new(wschat::echo::Echo::new(deflate)),
    );
    if let Ok(addr) = server.local_addr() {
        println!("wschat echo: ws://{addr}/");
    }
    server.run();
    ExitCode::SUCCESS
}
